package cipher

// This file pins the API the rest of coffer builds against. The cipher
// work replaces each stub with the real implementation (and may move the
// declarations into the files where they belong); signatures change only
// in agreement with the callers in fs/ and cache/.

type (
	VolumeID [16]byte
)

// RootKind names the kind of a root key; later kinds (kms, hpke) slot in.
type RootKind string

const (
	KindSym        RootKind = "sym"
	KindPassphrase RootKind = "passphrase"
)

// RootKey unlocks a keyring: a 32-byte key file or a passphrase.
type RootKey struct { /* opaque */
}

// LoadKeyFile reads a sym key file (32 raw bytes or their base64),
// refusing files readable by group or others (ErrKeyFileMode, with the
// chmod 600 advice in the message).
func LoadKeyFile(path string) (*RootKey, error) { panic("unimplemented") }

// WriteKeyFile creates path with 32 fresh random bytes, mode 0600. It
// refuses to overwrite an existing file.
func WriteKeyFile(path string) error { panic("unimplemented") }

// LoadPassphraseFile reads a passphrase (first line, trailing newline
// stripped) from a file with the same permission rule as key files.
func LoadPassphraseFile(path string) (*RootKey, error) { panic("unimplemented") }

func (r *RootKey) Kind() RootKind { panic("unimplemented") }

// Keyring holds a volume's secrets and KEK generations.
type Keyring struct { /* opaque */
}

// NewKeyring makes a keyring with a fresh volume ID, fresh secrets and
// KEK generation 1.
func NewKeyring() (*Keyring, error) { panic("unimplemented") }

func (k *Keyring) VolumeID() VolumeID        { panic("unimplemented") }
func (k *Keyring) CurrentGeneration() uint32 { panic("unimplemented") }

// AddGeneration adds a KEK generation and makes it current.
func (k *Keyring) AddGeneration() error { panic("unimplemented") }

// RetireGeneration drops a generation no object uses any more.
func (k *Keyring) RetireGeneration(g uint32) error { panic("unimplemented") }

// LocalSecret is the secret local files (staging, cache) are sealed from.
func (k *Keyring) LocalSecret() []byte { panic("unimplemented") }

// Config is the authenticated config object of a volume.
type Config struct {
	Encryption  string // "client" or "none"
	SSE         string // "", "sse-s3", "sse-kms", "sse-c"
	SSEKMSKeyID string
	// unexported: volume ID, key entries, wrapped keyring
}

// NewConfig makes the config of a new volume. kr and root are nil for
// encryption "none".
func NewConfig(encryption, sse, kmsKeyID string, kr *Keyring, root *RootKey) (*Config, error) {
	panic("unimplemented")
}

// ParseConfig parses a config object (ErrNotConfig) without trusting it:
// call Open before using any field.
func ParseConfig(data []byte) (*Config, error) { panic("unimplemented") }

// Open authenticates the config with the first root key that opens it and
// returns its keyring (nil in "none" mode). Errors: ErrNoKeyOpens,
// ErrConfigTampered.
func (c *Config) Open(roots ...*RootKey) (*Keyring, error) { panic("unimplemented") }

// Marshal serialises the config with its MAC; kr must be the keyring Open
// returned (its changes, such as new generations, are written back).
func (c *Config) Marshal(kr *Keyring) ([]byte, error) { panic("unimplemented") }

// VolumeID is authenticated only after Open.
func (c *Config) VolumeID() VolumeID { panic("unimplemented") }

// AddKey lets root open the volume too; RemoveKey takes key id away
// (refusing to remove the last); Keys lists them.
func (c *Config) AddKey(kr *Keyring, root *RootKey) (id string, err error) { panic("unimplemented") }
func (c *Config) RemoveKey(id string) error                                { panic("unimplemented") }
func (c *Config) Keys() []KeyInfo                                          { panic("unimplemented") }

type KeyInfo struct {
	ID   string
	Kind RootKind
}

// Attr is what coffer keeps of a file's inode attributes.
type Attr struct {
	Mode    uint32 // type bits and permissions, as in st_mode
	UID     uint32
	GID     uint32
	MtimeNs int64
}

// NewObjectKey makes a fresh file ID and DEK under the current generation.
func (k *Keyring) NewObjectKey() (*ObjectKey, error) { panic("unimplemented") }

// SealMetadata returns the coffer-* metadata (without the x-amz-meta-
// prefix) of an object at canonical path with attributes a.
func (k *Keyring) SealMetadata(o *ObjectKey, path string, a Attr) (map[string]string, error) {
	panic("unimplemented")
}

// OpenMetadata unwraps the DEK and opens the attributes of an object
// stored at canonical path. Errors wrap ErrBadMetadata or ErrAuth.
func (k *Keyring) OpenMetadata(meta map[string]string, path string) (*ObjectKey, Attr, error) {
	panic("unimplemented")
}

// Names encrypts and decrypts path segments (client mode).
type Names struct { /* opaque */
}

func (k *Keyring) Names() *Names { panic("unimplemented") }

// EncryptSegment encrypts name (a child of canonical parentPath). When the
// encoding is longer than 200 bytes, seg is "~" + hash and long is the
// full encoding, to be stored in coffer-name. ErrNameTooLong over NAME_MAX.
func (n *Names) EncryptSegment(parentPath, name string) (seg, long string, err error) {
	panic("unimplemented")
}

// DecryptSegment decrypts seg (with long, the coffer-name value, when seg
// is hashed). It never panics and never returns "", ".", "..", or a name
// with '/' or NUL; such input gives ErrBadName.
func (n *Names) DecryptSegment(parentPath, seg, long string) (string, error) {
	panic("unimplemented")
}

// LocalSealer seals blocks of one local file (staging or cache) under a
// key derived from a local secret and the file's random salt.
type LocalSealer struct { /* opaque */
}

const LocalSaltSize = 32

func NewLocalSealer(secret, salt []byte) (*LocalSealer, error) { panic("unimplemented") }

// Seal appends nonce|ciphertext|tag of block index to dst; Open reverses
// it (ErrAuth on any change or a block moved to another index).
func (s *LocalSealer) Seal(dst, plain []byte, index uint64) []byte           { panic("unimplemented") }
func (s *LocalSealer) Open(dst, sealed []byte, index uint64) ([]byte, error) { panic("unimplemented") }
