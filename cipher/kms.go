package cipher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Root keys kept in AWS KMS (DESIGN.md §2, kind kms). KMS encrypts a
// 32-byte root secret R drawn for one config entry, under the encryption
// context KMSEncryptionContext gives (volume, entry, purpose), so the
// ciphertext decrypts for that entry of that volume only. The entry's key
// pair and auth key derive from R as a sym entry's derive from its key, so
// entry authentication applies unchanged and key remove, passwd, Reauth's
// rewrap and rotate need no KMS call. This package never calls KMS itself:
// the caller hands it a KMSEncrypter or KMSDecrypter (cmd/coffer's talks to
// AWS; tests use a fake), and gets a RootKey back.

// Encryption context keys and the purpose value of a kms entry's root
// secret.
const (
	KMSContextVolume  = "coffer-volume"
	KMSContextEntry   = "coffer-entry"
	KMSContextPurpose = "coffer-purpose"
	KMSPurposeRoot    = "root v1"
)

// Limits on what a kms entry stores: KMS ciphertext blobs are at most
// 6,144 bytes, key ARNs and alias names at most 2,048 characters.
const (
	kmsBlobMax  = 6144
	kmsNameMax  = 2048
	kmsSecretSz = keySize
)

// ErrKMSCiphertext is what a KMSDecrypter returns (wrapped) when KMS
// refuses the ciphertext itself: it was made under another key or another
// encryption context (moved from another volume or entry), or altered
// (KMS InvalidCiphertextException, IncorrectKeyException). Any other
// Decrypt error (access denied, disabled key, network) is about the key
// or the way to KMS, and KMSRootKey returns it as it is.
var ErrKMSCiphertext = errors.New("KMS refuses the ciphertext")

// ErrNoKMSEntry: KMSRootKey was asked for a KMS key but the config lists
// no kms entry.
var ErrNoKMSEntry = errors.New("the volume lists no KMS root key")

// KMSEncrypter is KMS Encrypt as a new kms entry needs it: plaintext
// encrypted under keyID (key ID, key ARN, alias name or alias ARN) with
// the encryption context, returning the ciphertext blob and the ARN of the
// key that made it.
type KMSEncrypter interface {
	Encrypt(ctx context.Context, keyID string, plaintext []byte, encryptionContext map[string]string) (ciphertext []byte, keyARN string, err error)
}

// KMSDecrypter is KMS Decrypt with an explicit KeyId: keyID is always the
// key the user named, never one read from the config, so a forged entry
// cannot make the user's credentials decrypt under a key of the forger's.
type KMSDecrypter interface {
	Decrypt(ctx context.Context, keyID string, ciphertext []byte, encryptionContext map[string]string) ([]byte, error)
}

// KMSEncryptionContext is the encryption context of the root secret of
// kms entry entryID of volume v.
func KMSEncryptionContext(v VolumeID, entryID string) map[string]string {
	return map[string]string{
		KMSContextVolume:  v.String(),
		KMSContextEntry:   entryID,
		KMSContextPurpose: KMSPurposeRoot,
	}
}

// kmsRoot is what a kms RootKey knows besides its root secret: the entry
// it belongs to, and for a new entry what the entry stores.
type kmsRoot struct {
	entryID string
	volume  VolumeID
	keyID   string // as the user named it
	keyARN  string // as KMS Encrypt answered
	blob    []byte // the KMS ciphertext of the root secret; nil when opened from a config
}

// kmsJSON is the kms field of a kms entry. key_id is the key as the user
// named it when the entry was added, key_arn the ARN KMS answered; both
// only choose which entry to try (KMSRootKey), neither is ever passed to
// KMS.
type kmsJSON struct {
	KeyID      string `json:"key_id"`
	KeyARN     string `json:"key_arn"`
	Ciphertext string `json:"ciphertext"`
}

// NewKMSRootKey draws the root secret of a new kms entry of volume v and
// has KMS encrypt it under keyID with the entry's encryption context. Add
// the key with Config.AddKey (or NewConfig) of the same volume.
func NewKMSRootKey(ctx context.Context, kms KMSEncrypter, v VolumeID, keyID string) (*RootKey, error) {
	if err := checkKMSName(keyID); err != nil {
		return nil, fmt.Errorf("KMS key ID: %w", err)
	}
	secret := randomKey()
	id := randomID()
	blob, arn, err := kms.Encrypt(ctx, keyID, secret, KMSEncryptionContext(v, id))
	if err != nil {
		return nil, err
	}
	if len(blob) == 0 || len(blob) > kmsBlobMax {
		return nil, fmt.Errorf("KMS Encrypt answered a %d-byte ciphertext", len(blob))
	}
	if arn == "" {
		arn = keyID
	}
	if err := checkKMSName(arn); err != nil {
		return nil, fmt.Errorf("KMS Encrypt answered key %q: %w", arn, err)
	}
	return &RootKey{kind: KindKMS, secret: secret, kms: &kmsRoot{entryID: id, volume: v, keyID: keyID, keyARN: arn, blob: blob}}, nil
}

func checkKMSName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > kmsNameMax:
		return fmt.Errorf("longer than %d bytes", kmsNameMax)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("not printable UTF-8")
	}
	return nil
}

// parseKMS checks and decodes the kms field: present on kms entries only.
func (e *keyEntry) parseKMS() error {
	if (e.Kind == KindKMS) != (e.KMS != nil) {
		return fmt.Errorf("key %s: a kms field belongs to kms entries only", e.ID)
	}
	if e.KMS == nil {
		return nil
	}
	if err := checkKMSName(e.KMS.KeyID); err != nil {
		return fmt.Errorf("key %s: KMS key ID %w", e.ID, err)
	}
	if err := checkKMSName(e.KMS.KeyARN); err != nil {
		return fmt.Errorf("key %s: KMS key ARN %w", e.ID, err)
	}
	blob, err := b64.DecodeString(e.KMS.Ciphertext)
	if err != nil || len(blob) == 0 || len(blob) > kmsBlobMax {
		return fmt.Errorf("key %s: malformed KMS ciphertext", e.ID)
	}
	e.kmsBlob = blob
	return nil
}

// addKMSEntry fills a new entry for kms root key root.
func (c *Config) addKMSEntry(e *keyEntry, root *RootKey) error {
	k := root.kms
	if k == nil || k.blob == nil {
		return errors.New("cipher: this KMS root key opens its entry but cannot add one: make a new one with NewKMSRootKey")
	}
	if k.volume != c.volumeID {
		return fmt.Errorf("the KMS root key was made for volume %s, not %s", k.volume, c.volumeID)
	}
	for _, old := range c.entries {
		if old.ID == k.entryID {
			return fmt.Errorf("key %s is already listed", k.entryID)
		}
		if old.KMS != nil && old.KMS.KeyARN == k.keyARN {
			return fmt.Errorf("KMS key %s already opens this volume (key %s)", k.keyARN, old.ID)
		}
	}
	e.ID = k.entryID
	e.KMS = &kmsJSON{KeyID: k.keyID, KeyARN: k.keyARN, Ciphertext: b64.EncodeToString(k.blob)}
	e.kmsBlob = k.blob
	return nil
}

// KMSEntry describes a kms entry of a config as listed (before Open, not
// yet authenticated).
type KMSEntry struct {
	ID     string // the entry's ID
	KeyID  string // the KMS key as named when the entry was added
	KeyARN string // the ARN KMS answered then
}

// KMSEntries lists the config's kms entries in config order.
func (c *Config) KMSEntries() []KMSEntry {
	var out []KMSEntry
	for _, e := range c.entries {
		if e.Kind == KindKMS && e.KMS != nil {
			out = append(out, KMSEntry{ID: e.ID, KeyID: e.KMS.KeyID, KeyARN: e.KMS.KeyARN})
		}
	}
	return out
}

// matchesKMSKey reports whether keyID, as the user names it, is the key
// entry e was added with: the same name as given then, the same ARN, or
// the bare key ID of that ARN ("arn:...:key/ID"). An alias named now but
// not at add time matches nothing (resolving it would take another KMS
// call); KMSRootKey then tries every entry.
func matchesKMSKey(e *keyEntry, keyID string) bool {
	k := e.KMS
	return k.KeyID == keyID || k.KeyARN == keyID || strings.HasSuffix(k.KeyARN, ":key/"+keyID)
}

// KMSRootKey decrypts, with KMS key keyID (as the user named it), the
// root secret of the kms entry that key opens, and returns the root key to
// give Open. Which entries it tries: those whose stored key name or ARN
// match keyID (matchesKMSKey), in config order, stopping at the first that
// decrypts; only when none matches does it try every kms entry in order.
// So with the key named as at add time it makes one Decrypt call, and
// none for the config's other kms entries. The stored names are not
// authenticated before Open, but they only choose what to try: Decrypt
// always passes keyID, and Open then checks the entry as any other.
//
// Errors: ErrNoKMSEntry; a Decrypt error other than ErrKMSCiphertext as
// the KMSDecrypter returned it (denied, disabled, unreachable);
// ErrConfigTampered when an entry made with keyID holds a ciphertext KMS
// refuses under its encryption context (moved from another volume or
// entry, or altered); ErrNoKeyOpens when keyID opens none of the entries.
func (c *Config) KMSRootKey(ctx context.Context, kms KMSDecrypter, keyID string) (*RootKey, error) {
	if err := checkKMSName(keyID); err != nil {
		return nil, fmt.Errorf("KMS key ID: %w", err)
	}
	var all, matched []*keyEntry
	for _, e := range c.entries {
		if e.Kind != KindKMS || e.KMS == nil {
			continue
		}
		all = append(all, e)
		if matchesKMSKey(e, keyID) {
			matched = append(matched, e)
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w (it lists %s)", ErrNoKMSEntry, c.listedKeys())
	}
	try := matched
	if len(try) == 0 {
		try = all
	}
	var refused []string
	for _, e := range try {
		secret, err := kms.Decrypt(ctx, keyID, e.kmsBlob, KMSEncryptionContext(c.volumeID, e.ID))
		if errors.Is(err, ErrKMSCiphertext) {
			refused = append(refused, e.ID)
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(secret) != kmsSecretSz {
			// Only whoever may Encrypt under this context could make it.
			return nil, fmt.Errorf("%w: key %s: KMS decrypts its root secret to %d bytes", ErrConfigTampered, e.ID, len(secret))
		}
		return &RootKey{kind: KindKMS, secret: secret, kms: &kmsRoot{entryID: e.ID, volume: c.volumeID, keyID: keyID}}, nil
	}
	if len(matched) > 0 {
		return nil, fmt.Errorf("%w: KMS refuses the root secret of key %s under its encryption context (moved from another volume or entry, or altered)", ErrConfigTampered, strings.Join(refused, ", "))
	}
	return nil, fmt.Errorf("%w: KMS key %s decrypts none of its KMS entries; it lists %s", ErrNoKeyOpens, keyID, c.listedKeys())
}

// listedKeys names the entries for an error message: ID, kind, and the
// KMS key of kms entries.
func (c *Config) listedKeys() string {
	var listed []string
	for _, e := range c.entries {
		s := fmt.Sprintf("%s (%s)", e.ID, e.Kind)
		if e.KMS != nil {
			s = fmt.Sprintf("%s (kms %s)", e.ID, e.KMS.KeyARN)
		}
		listed = append(listed, s)
	}
	if listed == nil {
		return "no key"
	}
	return strings.Join(listed, ", ")
}
