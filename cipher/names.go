package cipher

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/rfjakob/eme"
)

// Name encryption (DESIGN.md §3): each segment is PKCS#7-padded to 16
// bytes, enciphered with EME (AES-256) under a tweak from the canonical
// parent path, and written as base64url without padding. Encodings longer
// than longNameLimit are stored hashed, the full encoding in coffer-name.

const (
	nameBlock     = 16
	longNameLimit = 200
	longPrefix    = "~"
	// maxNameCipher is NAME_MAX padded: the longest EME input decoding accepts.
	maxNameCipher = (NameMax/nameBlock + 1) * nameBlock
)

// Names encrypts and decrypts path segments (client mode). Safe for
// concurrent use.
type Names struct {
	eme      *eme.EMECipher
	tweakKey []byte
}

// String and GoString keep the tweak key out of anything that prints Names.
func (n *Names) String() string   { return "name cipher" }
func (n *Names) GoString() string { return n.String() }

func newNames(nameSecret []byte) *Names {
	block, err := aes.NewCipher(deriveKey(nameSecret, nil, infoNameEME))
	if err != nil {
		panic(fmt.Sprintf("cipher: aes: %v", err))
	}
	return &Names{eme: eme.New(block), tweakKey: deriveKey(nameSecret, nil, infoNameTweak)}
}

func (n *Names) tweak(parentPath string) []byte {
	m := hmac.New(sha256.New, n.tweakKey)
	m.Write([]byte(parentPath))
	return m.Sum(nil)[:16]
}

// checkName applies the rules every plaintext name obeys, on the way in and
// on the way out.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrBadName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: contains '/' or NUL", ErrBadName)
	case len(name) > NameMax:
		return fmt.Errorf("%w: %d bytes (NAME_MAX is %d)", ErrNameTooLong, len(name), NameMax)
	}
	return nil
}

// EncryptSegment encrypts name (a child of canonical parentPath). When the
// encoding is longer than 200 bytes, seg is "~" + hash and long is the full
// encoding, to be stored in coffer-name. ErrNameTooLong over NAME_MAX;
// ErrBadName for "", ".", ".." and names with '/' or NUL.
func (n *Names) EncryptSegment(parentPath, name string) (seg, long string, err error) {
	if err := checkName(name); err != nil {
		return "", "", err
	}
	pad := nameBlock - len(name)%nameBlock
	padded := make([]byte, len(name)+pad)
	copy(padded, name)
	for i := len(name); i < len(padded); i++ {
		padded[i] = byte(pad)
	}
	enc := b64.EncodeToString(n.eme.Encrypt(n.tweak(parentPath), padded))
	if len(enc) <= longNameLimit {
		return enc, "", nil
	}
	return hashLong(enc), enc, nil
}

// mayBeLong reports whether name's encoding exceeds the hashing limit: the
// encoding's length depends on the name's length alone.
func mayBeLong(name string) bool {
	return b64.EncodedLen((len(name)/nameBlock+1)*nameBlock) > longNameLimit
}

func hashLong(enc string) string {
	sum := sha256.Sum256([]byte(enc))
	return longPrefix + b64.EncodeToString(sum[:])
}

// IsLongSegment reports whether seg is a hashed long name, whose full
// encoding lives in the object's coffer-name metadata.
func IsLongSegment(seg string) bool { return strings.HasPrefix(seg, longPrefix) }

// DecryptSegment decrypts seg (with long, the coffer-name value, when seg is
// hashed). It never panics and never returns "", ".", "..", or a name with
// '/' or NUL; such input, and any encoding coffer would not have produced,
// gives ErrBadName.
func (n *Names) DecryptSegment(parentPath, seg, long string) (string, error) {
	enc := seg
	if IsLongSegment(seg) {
		if len(long) <= longNameLimit || subtle.ConstantTimeCompare([]byte(hashLong(long)), []byte(seg)) != 1 {
			return "", fmt.Errorf("%w: long name does not match its hash", ErrBadName)
		}
		enc = long
	} else if len(seg) > longNameLimit {
		return "", fmt.Errorf("%w: %d-byte segment should have been hashed", ErrBadName, len(seg))
	}
	// Lengths are checked before EME, which panics on bad ones.
	if len(enc) > b64.EncodedLen(maxNameCipher) {
		return "", fmt.Errorf("%w: too long", ErrBadName)
	}
	ct, err := b64.DecodeString(enc)
	if err != nil || len(ct) == 0 || len(ct)%nameBlock != 0 || len(ct) > maxNameCipher {
		return "", fmt.Errorf("%w: not an encrypted name", ErrBadName)
	}
	padded := n.eme.Decrypt(n.tweak(parentPath), ct)
	pad := int(padded[len(padded)-1])
	if pad < 1 || pad > nameBlock {
		return "", fmt.Errorf("%w: bad padding", ErrBadName)
	}
	for _, b := range padded[len(padded)-pad:] {
		if int(b) != pad {
			return "", fmt.Errorf("%w: bad padding", ErrBadName)
		}
	}
	name := string(padded[:len(padded)-pad])
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("%w: decrypts to an invalid name", ErrBadName)
	}
	return name, nil
}

// EncryptPath encrypts every segment of a canonical path ("/a/b") and
// returns the encrypted key ("A/B", no leading slash, no prefix) and, for
// each hashed segment, the encrypted key of the object that carries it
// mapped to its coffer-name value. The root "/" gives "".
func (n *Names) EncryptPath(path string) (key string, longs map[string]string, err error) {
	if path == "/" {
		return "", nil, nil
	}
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		return "", nil, fmt.Errorf("%w: %q is not a canonical path", ErrBadName, path)
	}
	var b strings.Builder
	names := strings.Split(path[1:], "/")
	for i, name := range names {
		seg, long, err := n.EncryptSegment("/"+strings.Join(names[:i], "/"), name)
		if err != nil {
			return "", nil, err
		}
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
		if long != "" {
			if longs == nil {
				longs = make(map[string]string)
			}
			longs[b.String()] = long
		}
	}
	if err := CheckKeyLen(b.String()); err != nil {
		return "", nil, err
	}
	return b.String(), longs, nil
}

// CheckKeyLen returns ErrNameTooLong for an object key over KeyMax bytes
// (the caller passes the full key, store prefix included).
func CheckKeyLen(key string) error {
	if len(key) > KeyMax {
		return fmt.Errorf("%w: object key of %d bytes (at most %d)", ErrNameTooLong, len(key), KeyMax)
	}
	return nil
}
