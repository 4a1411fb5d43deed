package cipher

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/argon2"
)

// RootKind names the kind of a root key.
type RootKind string

const (
	KindSym        RootKind = "sym"
	KindPassphrase RootKind = "passphrase"
	KindKMS        RootKind = "kms" // a root secret KMS encrypted (kms.go)
)

// Argon2Params are the Argon2id parameters of one passphrase entry, stored
// beside its salt in the config.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is what new passphrase entries use: about half a second and
// 64 MiB on a current core.
func DefaultArgon2() Argon2Params { return Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 4} }

// Limits on stored Argon2 parameters, checked before any work is done, so a
// forged config cannot make Open allocate gigabytes or spin for minutes.
const (
	argonMaxTime     = 16
	argonMaxMemory   = 2 << 20 // KiB: 2 GiB
	argonMaxThreads  = 16
	argonSaltSize    = 16
	passphraseMaxLen = 4 << 10
	keyFileMaxLen    = 4 << 10
)

func (p Argon2Params) check() error {
	if p.Time < 1 || p.Time > argonMaxTime || p.Threads < 1 || p.Threads > argonMaxThreads ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > argonMaxMemory {
		return fmt.Errorf("argon2id parameters out of range (time %d, memory %d KiB, threads %d)", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// RootKey unlocks a keyring: a 32-byte key file or a passphrase. Its String
// never shows the secret.
type RootKey struct {
	kind   RootKind
	secret []byte
	argon  Argon2Params // for entries this key adds (SetArgon2)
	kms    *kmsRoot     // kind kms: the one entry this root secret belongs to
}

// NewSymKey makes a sym root key from 32 key bytes.
func NewSymKey(key []byte) (*RootKey, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("sym key is %d bytes, want %d", len(key), keySize)
	}
	return &RootKey{kind: KindSym, secret: bytes.Clone(key)}, nil
}

// NewPassphraseKey makes a passphrase root key.
func NewPassphraseKey(passphrase []byte) (*RootKey, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if len(passphrase) > passphraseMaxLen {
		return nil, fmt.Errorf("passphrase longer than %d bytes", passphraseMaxLen)
	}
	return &RootKey{kind: KindPassphrase, secret: bytes.Clone(passphrase), argon: DefaultArgon2()}, nil
}

// SetArgon2 sets the Argon2id parameters of the entries this passphrase
// key adds from now on (default DefaultArgon2). Parameters Open would refuse
// are refused here too.
func (r *RootKey) SetArgon2(p Argon2Params) error {
	if r.kind != KindPassphrase {
		return fmt.Errorf("Argon2id parameters apply to passphrases, not to a %s key", r.kind)
	}
	if err := p.check(); err != nil {
		return err
	}
	r.argon = p
	return nil
}

// Kind says whether r is a key file or a passphrase.
func (r *RootKey) Kind() RootKind { return r.kind }

// String and GoString name the kind only, so a key printed by mistake
// (%v, %#v, a log attribute) shows no secret.
func (r RootKey) String() string   { return fmt.Sprintf("root key (%s)", r.kind) }
func (r RootKey) GoString() string { return r.String() }

// symID is the key ID of a sym key: a fingerprint derived from the key, so
// the same key file always has the same ID and `key remove ID` can name it.
func symID(key []byte) string {
	return hex.EncodeToString(deriveKey(key, nil, infoKeyID)[:8])
}

// randomID is the key ID of a passphrase entry.
func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// wrapKEM is the KEM each root key entry uses to receive the keyring-wrapping
// key (see doc.go): X25519 with a key pair derived from the root key.
func wrapKEM() hpke.KEM { return hpke.DHKEM(ecdh.X25519()) }

// entryKeys are what one config entry derives from its root key: the key
// pair that receives the keyring-wrapping key, and the key of the entry's
// auth tag (see doc.go, "Entry authentication").
type entryKeys struct {
	priv hpke.PrivateKey
	auth []byte
}

// deriveEntry derives the keys of one config entry from the root key. For
// passphrases this runs Argon2id (once) with the entry's stored parameters.
func (r *RootKey) deriveEntry(salt []byte, p Argon2Params) (entryKeys, error) {
	secret, info, err := r.entrySecret(salt, p)
	if err != nil {
		return entryKeys{}, err
	}
	priv, err := wrapKEM().DeriveKeyPair(deriveKey(secret, nil, info))
	if err != nil {
		return entryKeys{}, err
	}
	return entryKeys{priv: priv, auth: deriveKey(secret, nil, infoEntryAuth)}, nil
}

// entrySecret is the entry root secret, the one secret an entry's keys
// derive from: the key itself for a sym key, the Argon2id output for a
// passphrase. info is the label of the entry's key pair.
func (r *RootKey) entrySecret(salt []byte, p Argon2Params) (secret []byte, info string, err error) {
	switch r.kind {
	case KindSym:
		return r.secret, infoRootSym, nil
	case KindPassphrase:
		if err := p.check(); err != nil {
			return nil, "", err
		}
		return argon2.IDKey(r.secret, salt, p.Time, p.MemoryKiB, p.Threads, keySize), infoRootPass, nil
	case KindKMS:
		return r.secret, infoRootKMS, nil
	}
	return nil, "", fmt.Errorf("root key kind %q not supported", r.kind)
}

// LoadKeyFile reads a sym key file: 32 raw bytes, or their base64 (standard
// or URL alphabet, padded or not, trailing newline allowed). It refuses files
// readable by group or others (ErrKeyFileMode, with the chmod 600 advice).
func LoadKeyFile(path string) (*RootKey, error) {
	data, err := readPrivateFile(path, keyFileMaxLen)
	if err != nil {
		return nil, err
	}
	if len(data) == keySize {
		return NewSymKey(data)
	}
	text := bytes.TrimRight(data, "\r\n")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(string(text)); err == nil && len(key) == keySize {
			return NewSymKey(key)
		}
	}
	if IsWriterCredential(data) {
		return nil, fmt.Errorf("%w: %s holds a writer credential, which mounts write-only and opens nothing for reading", ErrIsWriterCredential, path)
	}
	// Never echo the content: it may be a key.
	return nil, fmt.Errorf("key file %s: want 32 bytes or their base64, found %d bytes of something else", path, len(data))
}

// WriteKeyFile creates path with 32 fresh random bytes, base64 with a
// trailing newline (printable, so it can be backed up on paper), mode 0600.
// It refuses to overwrite an existing file.
func WriteKeyFile(path string) error {
	key := make([]byte, keySize)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// LoadPassphraseFile reads a passphrase (first line, trailing CR/LF
// stripped) from a file with the same permission rule as key files.
func LoadPassphraseFile(path string) (*RootKey, error) {
	data, err := readPrivateFile(path, passphraseMaxLen+2)
	if err != nil {
		return nil, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return nil, fmt.Errorf("passphrase file %s: first line is empty", path)
	}
	return NewPassphraseKey(line)
}

// readPrivateFile reads at most limit bytes of a file that only its owner
// may read. The mode is checked on the open file, not the path.
func readPrivateFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrKeyFileMode, path, st.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// SymID is the ID of the entry a sym key has or would have (a fingerprint
// of the key, see symID); ok is false for a passphrase, whose entry IDs
// are random.
func (r *RootKey) SymID() (id string, ok bool) {
	if r.kind != KindSym {
		return "", false
	}
	return symID(r.secret), true
}
