package cipher

import (
	"bytes"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The config object (DESIGN.md §3):
//
//	{"format":1,"body":"<base64url of the body JSON>","mac":"<base64url HMAC-SHA256 of the body bytes>"}
//
// The body lists the root key entries and holds the keyring sealed once
// under a random keyring-wrapping key (KWK); each entry carries the KWK
// sealed to a key pair derived from its root key (see doc.go).

const (
	configFormat   = 1
	configMaxSize  = 1 << 20
	configMaxKeys  = 64
	macSize        = sha256.Size
	kwkInfoPrefix  = "coffer kwk v1"
	keyringAADText = "coffer keyring v1"
	entryAuthText  = "coffer entry v1"
)

// Encryption and SSE modes a config may hold.
const (
	EncryptionClient = "client"
	EncryptionNone   = "none"
	SSENone          = ""
	SSES3            = "sse-s3"
	SSEKMS           = "sse-kms"
	SSEC             = "sse-c"
)

// Config is the authenticated config object of a volume. Its exported fields
// are filled by NewConfig or by Open, never by ParseConfig alone.
type Config struct {
	Encryption  string // "client" or "none"
	SSE         string // "", "sse-s3", "sse-kms", "sse-c"
	SSEKMSKeyID string

	volumeID VolumeID
	entries  []*keyEntry

	// As parsed, not yet trusted.
	body      []byte
	mac       []byte
	claimed   configBody
	canonical bool

	// Known once the config is new or opened.
	opened      bool
	kwk         []byte
	sealed      []byte // keyring sealed under kwk
	sealedPlain []byte // the keyring encoding sealed holds
	rekey       bool   // a key was removed: new KWK and config secret on Marshal
	preAuth     bool   // opened by OpenPreAuth: nothing may be written until Reauth
	openedBy    *EntryKey

	now func() time.Time // the clock of AddKey's added times
}

type configOuter struct {
	Format int    `json:"format"`
	Body   string `json:"body"`
	MAC    string `json:"mac"`
}

type configBody struct {
	VolumeID    string            `json:"volume_id"`
	Encryption  string            `json:"encryption"`
	SSE         string            `json:"sse"`
	SSEKMSKeyID string            `json:"sse_kms_key_id"`
	Keys        []json.RawMessage `json:"keys"`
	Keyring     string            `json:"keyring,omitempty"`
}

// keyEntry is one root key's entry. Entries of kinds this version does not
// know are kept verbatim (raw) and skipped by Open.
type keyEntry struct {
	ID      string     `json:"id"`
	Kind    RootKind   `json:"kind"`
	Argon2  *argonJSON `json:"argon2,omitempty"`
	Public  string     `json:"public"`
	Wrapped string     `json:"wrapped"`
	Auth    string     `json:"auth,omitempty"`  // absent before entry authentication
	Added   int64      `json:"added,omitempty"` // Unix seconds; absent in entries from before it was recorded
	KMS     *kmsJSON   `json:"kms,omitempty"`   // kind kms only (kms.go)

	raw     json.RawMessage
	pub     []byte
	wrapped []byte
	auth    []byte
	salt    []byte
	params  Argon2Params
	kmsBlob []byte // kind kms: the KMS ciphertext of the root secret
}

type argonJSON struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      string `json:"salt"`
}

// KeyInfo describes one root key entry of a config.
type KeyInfo struct {
	ID    string
	Kind  RootKind
	Added time.Time // zero when the entry predates the added field
	// KMSKeyARN is the ARN of a kms entry's KMS key, as KMS answered at
	// add time (kms.go).
	KMSKeyARN string
}

func checkModes(encryption, sse, kmsKeyID string) error {
	switch encryption {
	case EncryptionClient, EncryptionNone:
	default:
		return fmt.Errorf("encryption mode %q: want %q or %q", encryption, EncryptionClient, EncryptionNone)
	}
	switch sse {
	case SSENone, SSES3, SSEKMS, SSEC:
	default:
		return fmt.Errorf("SSE mode %q: want sse-s3, sse-kms or sse-c", sse)
	}
	if kmsKeyID != "" && sse != SSEKMS {
		return errors.New("an SSE-KMS key ID needs --sse sse-kms")
	}
	return nil
}

// NewConfig makes the config of a new volume. kr and root are nil for
// encryption "none".
func NewConfig(encryption, sse, kmsKeyID string, kr *Keyring, root *RootKey) (*Config, error) {
	return newConfigAt(time.Now, encryption, sse, kmsKeyID, kr, root)
}

func newConfigAt(now func() time.Time, encryption, sse, kmsKeyID string, kr *Keyring, root *RootKey) (*Config, error) {
	if err := checkModes(encryption, sse, kmsKeyID); err != nil {
		return nil, err
	}
	c := &Config{Encryption: encryption, SSE: sse, SSEKMSKeyID: kmsKeyID, opened: true, now: now}
	if encryption == EncryptionNone {
		if kr != nil || root != nil {
			return nil, errors.New("encryption none takes no keyring and no root key")
		}
		rand.Read(c.volumeID[:])
		return c, nil
	}
	if kr == nil || root == nil {
		return nil, errors.New("client-side encryption needs a keyring and a root key")
	}
	c.volumeID = kr.VolumeID()
	c.kwk = randomKey()
	if _, err := c.AddKey(kr, root); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseConfig parses a config object without trusting it: call Open before
// using any field. Errors wrap ErrNotConfig.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > configMaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotConfig, len(data))
	}
	var outer configOuter
	if err := strictUnmarshal(data, &outer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotConfig, err)
	}
	if outer.Format != configFormat {
		return nil, fmt.Errorf("%w: format %d (this coffer reads format %d)", ErrNotConfig, outer.Format, configFormat)
	}
	c := &Config{now: time.Now}
	var err error
	if c.body, err = b64.DecodeString(outer.Body); err != nil {
		return nil, fmt.Errorf("%w: body is not base64url", ErrNotConfig)
	}
	if c.mac, err = decodeFixed(outer.MAC, macSize); err != nil {
		return nil, fmt.Errorf("%w: mac: %v", ErrNotConfig, err)
	}
	// The MAC covers the body only; any other change to the object shows
	// as a non-canonical encoding, which Open reports as tampering.
	c.canonical = bytes.Equal(data, marshalOuter(c.body, c.mac))
	if err := strictUnmarshal(c.body, &c.claimed); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrNotConfig, err)
	}
	vid, err := decodeFixed(c.claimed.VolumeID, len(c.volumeID))
	if err != nil {
		return nil, fmt.Errorf("%w: volume ID: %v", ErrNotConfig, err)
	}
	copy(c.volumeID[:], vid)
	if len(c.claimed.Keys) > configMaxKeys {
		return nil, fmt.Errorf("%w: %d keys", ErrNotConfig, len(c.claimed.Keys))
	}
	for _, raw := range c.claimed.Keys {
		e, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotConfig, err)
		}
		c.entries = append(c.entries, e)
	}
	if c.claimed.Keyring != "" {
		if c.sealed, err = b64.DecodeString(c.claimed.Keyring); err != nil {
			return nil, fmt.Errorf("%w: keyring is not base64url", ErrNotConfig)
		}
	}
	return c, nil
}

func strictUnmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

func parseEntry(raw json.RawMessage) (*keyEntry, error) {
	e := &keyEntry{raw: raw}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("key entry: %v", err)
	}
	if e.ID == "" || strings.ContainsRune(e.ID, 0) {
		return nil, errors.New("key entry without an ID")
	}
	if !e.known() {
		return e, nil // a later kind: kept, skipped
	}
	var err error
	if e.pub, err = decodeFixed(e.Public, 32); err != nil {
		return nil, fmt.Errorf("key %s public key: %v", e.ID, err)
	}
	if e.wrapped, err = b64.DecodeString(e.Wrapped); err != nil || len(e.wrapped) != 32+keySize+16 {
		return nil, fmt.Errorf("key %s: malformed wrapped key", e.ID)
	}
	if e.Added < 0 {
		return nil, fmt.Errorf("key %s: negative added time", e.ID)
	}
	if e.Auth != "" {
		if e.auth, err = decodeFixed(e.Auth, macSize); err != nil {
			return nil, fmt.Errorf("key %s auth: %v", e.ID, err)
		}
	}
	if (e.Kind == KindPassphrase) != (e.Argon2 != nil) {
		return nil, fmt.Errorf("key %s: argon2 parameters belong to passphrase entries only", e.ID)
	}
	if err := e.parseKMS(); err != nil {
		return nil, err
	}
	if e.Argon2 != nil {
		e.params = Argon2Params{Time: e.Argon2.Time, MemoryKiB: e.Argon2.MemoryKiB, Threads: e.Argon2.Threads}
		if err := e.params.check(); err != nil {
			return nil, fmt.Errorf("key %s: %v", e.ID, err)
		}
		if e.salt, err = decodeFixed(e.Argon2.Salt, argonSaltSize); err != nil {
			return nil, fmt.Errorf("key %s salt: %v", e.ID, err)
		}
	}
	return e, nil
}

func (e *keyEntry) known() bool {
	return e.Kind == KindSym || e.Kind == KindPassphrase || e.Kind == KindKMS
}

func (e *keyEntry) marshal() json.RawMessage {
	if !e.known() {
		return e.raw
	}
	e.Public = b64.EncodeToString(e.pub)
	e.Wrapped = b64.EncodeToString(e.wrapped)
	e.Auth = b64.EncodeToString(e.auth)
	e.Argon2 = nil
	if e.Kind == KindPassphrase {
		e.Argon2 = &argonJSON{Time: e.params.Time, MemoryKiB: e.params.MemoryKiB, Threads: e.params.Threads, Salt: b64.EncodeToString(e.salt)}
	}
	out, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("cipher: marshal key entry: %v", err))
	}
	return out
}

// kwkInfo is the HPKE info of an entry's wrapped KWK: it binds the volume,
// the entry's ID and its kind.
func kwkInfo(v VolumeID, id string, kind RootKind) []byte {
	info := append([]byte(kwkInfoPrefix), v[:]...)
	info = append(info, id...)
	info = append(info, 0)
	return append(info, kind...)
}

func keyringAAD(v VolumeID) []byte { return append([]byte(keyringAADText), v[:]...) }

// entryAuth is an entry's auth tag: HMAC-SHA256 under the key derived from
// the entry's root secret, over "coffer entry v1" | volume ID | entry ID |
// 0x00 | kind | public key | anchor. Only a holder of the entry's root key
// can compute it, and it names the keyring (by its anchor) the entry
// accepts.
func entryAuth(authKey []byte, v VolumeID, e *keyEntry, anchor []byte) []byte {
	m := hmac.New(sha256.New, authKey)
	m.Write([]byte(entryAuthText))
	m.Write(v[:])
	m.Write([]byte(e.ID))
	m.Write([]byte{0})
	m.Write([]byte(e.Kind))
	m.Write(e.pub)
	m.Write(anchor)
	return m.Sum(nil)
}

// predatesAuth reports a config whose entries (of the kinds this version
// knows) all lack auth: one written before entry authentication, or made
// to look so.
func (c *Config) predatesAuth() bool {
	known := false
	for _, e := range c.entries {
		if e.known() {
			known = true
			if e.auth != nil {
				return false
			}
		}
	}
	return known
}

// ClaimedEncryption is the encryption mode the config claims before Open
// authenticated it: for error messages only, never for decisions.
func (c *Config) ClaimedEncryption() string {
	if c.opened {
		return c.Encryption
	}
	return c.claimed.Encryption
}

// Open authenticates the config with the first root key that opens it and
// returns its keyring (nil in "none" mode, where roots are not needed).
// Errors: ErrNoKeyOpens when no given key is listed or matches,
// ErrConfigTampered when a listed key matches but the config does not
// verify, ErrConfigPreAuth (which is also ErrConfigTampered) when the
// config predates entry authentication (see OpenPreAuth).
func (c *Config) Open(roots ...*RootKey) (*Keyring, error) {
	return c.open(false, roots)
}

// OpenPreAuth opens a config that Open refused with ErrConfigPreAuth, as
// coffer did before entry authentication: the keyring must open under the
// root key and the MAC verify under its config secret, but nothing ties
// the keyring to the root key, since anyone can seal one to an entry's
// public key. So the keyring it returns may be a forger's: the caller must
// check it against the volume's data (the volume's objects must open under
// it) before it trusts it. The config can then only be re-authenticated
// (Reauth, with every root key) and written back; AddKey and Marshal
// refuse until Reauth.
func (c *Config) OpenPreAuth(roots ...*RootKey) (*Keyring, error) {
	if c.body != nil && !c.predatesAuth() {
		return nil, errors.New("cipher: OpenPreAuth of a config with entry authentication: use Open")
	}
	return c.open(true, roots)
}

func (c *Config) open(preAuth bool, roots []*RootKey) (*Keyring, error) {
	if c.body == nil {
		return nil, errors.New("cipher: Open of a config that was not parsed")
	}
	if !c.canonical {
		return nil, fmt.Errorf("%w: config object is not in canonical form", ErrConfigTampered)
	}
	if c.claimed.Encryption == EncryptionNone {
		if !hmac.Equal(c.mac, configMAC(noneMACKey(), c.body)) {
			return nil, fmt.Errorf("%w: MAC mismatch", ErrConfigTampered)
		}
		if len(c.entries) != 0 || c.sealed != nil {
			return nil, fmt.Errorf("%w: keys listed in a volume without client-side encryption", ErrConfigTampered)
		}
		return nil, c.accept()
	}
	var tampered error
	for _, root := range roots {
		for _, e := range c.entries {
			kr, err := c.openWith(root, e, preAuth)
			if errors.Is(err, errNotThisKey) {
				continue
			}
			if err != nil {
				tampered = err
				continue
			}
			if err := c.accept(); err != nil {
				return nil, err
			}
			c.preAuth = preAuth
			return kr, nil
		}
	}
	if tampered != nil {
		return nil, tampered
	}
	var listed []string
	for _, e := range c.entries {
		listed = append(listed, fmt.Sprintf("%s (%s)", e.ID, e.Kind))
	}
	return nil, fmt.Errorf("%w: it lists %s", ErrNoKeyOpens, strings.Join(listed, ", "))
}

var errNotThisKey = errors.New("root key does not match this entry")

// entryKeysOf derives root's keys for entry e. errNotThisKey means the key
// is not the entry's; any other error means it is, and the entry is
// altered.
func entryKeysOf(root *RootKey, e *keyEntry) (entryKeys, error) {
	if e.Kind != root.kind || !e.known() {
		return entryKeys{}, errNotThisKey
	}
	if root.kind == KindSym && e.ID != symID(root.secret) || root.kind == KindKMS && e.ID != root.kms.entryID {
		return entryKeys{}, errNotThisKey
	}
	keys, err := root.deriveEntry(e.salt, e.params)
	if err != nil {
		return entryKeys{}, err
	}
	if !bytes.Equal(keys.priv.PublicKey().Bytes(), e.pub) {
		if root.kind != KindPassphrase {
			return entryKeys{}, fmt.Errorf("%w: key %s has another public key", ErrConfigTampered, e.ID)
		}
		return entryKeys{}, errNotThisKey // another passphrase
	}
	return keys, nil
}

// openWith tries one root key on one entry. errNotThisKey means the key is
// not the entry's; any other error means it is, and the config is altered
// (or, unless preAuth, predates entry authentication).
func (c *Config) openWith(root *RootKey, e *keyEntry, preAuth bool) (*Keyring, error) {
	keys, err := entryKeysOf(root, e)
	if err != nil {
		return nil, err
	}
	return c.openEntry(keys, e, preAuth)
}

// openEntry opens the config through entry e with the keys its root key
// derived, and remembers them (EntryKey).
func (c *Config) openEntry(keys entryKeys, e *keyEntry, preAuth bool) (*Keyring, error) {
	kwk, err := hpke.Open(keys.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), kwkInfo(c.volumeID, e.ID, e.Kind), e.wrapped)
	if err != nil || len(kwk) != keySize {
		return nil, fmt.Errorf("%w: key %s: wrapped key does not open", ErrConfigTampered, e.ID)
	}
	plain, err := newAEAD(kwk).Open(nil, nil, c.sealed, keyringAAD(c.volumeID))
	if err != nil {
		return nil, fmt.Errorf("%w: keyring does not open", ErrConfigTampered)
	}
	kr, err := unmarshalKeyring(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfigTampered, err)
	}
	// Anyone can seal a keyring to e's public key: until the entry's auth
	// tag verifies, nothing the keyring says (its config secret included)
	// is trusted.
	anchor := kr.anchor()
	switch {
	case preAuth && anchor != nil:
		return nil, fmt.Errorf("%w: key %s: entry authentication stripped from a config whose keyring has an anchor", ErrConfigTampered, e.ID)
	case preAuth:
	case e.auth == nil && anchor == nil && c.predatesAuth():
		return nil, ErrConfigPreAuth
	case e.auth == nil:
		return nil, fmt.Errorf("%w: key %s carries no entry authentication", ErrConfigTampered, e.ID)
	case !hmac.Equal(e.auth, entryAuth(keys.auth, c.volumeID, e, anchor)):
		return nil, fmt.Errorf("%w: key %s does not authenticate this keyring (it was not written with this key)", ErrConfigTampered, e.ID)
	}
	if kr.volumeID != c.volumeID {
		return nil, fmt.Errorf("%w: keyring of another volume", ErrConfigTampered)
	}
	if !hmac.Equal(c.mac, configMAC(kr.configMACKey(), c.body)) {
		return nil, fmt.Errorf("%w: MAC mismatch", ErrConfigTampered)
	}
	// The body is authentic now; coffer writes auth on every entry or on
	// none, so a mix is not a config coffer wrote.
	if !preAuth {
		for _, o := range c.entries {
			if o.known() && o.auth == nil {
				return nil, fmt.Errorf("%w: key %s carries no entry authentication", ErrConfigTampered, o.ID)
			}
		}
	}
	c.kwk, c.sealedPlain = kwk, plain
	c.openedBy = &EntryKey{id: e.ID, kind: e.Kind, pub: e.pub, salt: e.salt, params: e.params, keys: keys}
	return kr, nil
}

// accept fills the exported fields from the authenticated body.
func (c *Config) accept() error {
	b := c.claimed
	if err := checkModes(b.Encryption, b.SSE, b.SSEKMSKeyID); err != nil {
		return fmt.Errorf("%w: %v", ErrNotConfig, err)
	}
	c.Encryption, c.SSE, c.SSEKMSKeyID = b.Encryption, b.SSE, b.SSEKMSKeyID
	c.opened = true
	return nil
}

func noneMACKey() []byte { return deriveKey([]byte(noneConfigSeed), nil, infoConfigMAC) }

func configMAC(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

func marshalOuter(body, mac []byte) []byte {
	out, err := json.Marshal(configOuter{Format: configFormat, Body: b64.EncodeToString(body), MAC: b64.EncodeToString(mac)})
	if err != nil {
		panic(fmt.Sprintf("cipher: marshal config: %v", err))
	}
	return out
}

// Marshal serialises the config with its MAC; kr must be the keyring Open
// (or NewConfig) used, nil in "none" mode. Changes to kr, such as new
// generations, are written back. Marshal is deterministic unless the
// keyring changed or a key was removed: then the keyring is resealed
// (fresh nonce) and, after a removal, the KWK and the config secret are
// replaced.
func (c *Config) Marshal(kr *Keyring) ([]byte, error) {
	if !c.opened {
		return nil, errors.New("cipher: Marshal of a config that was not opened")
	}
	if c.preAuth {
		return nil, errors.New("cipher: a config opened without entry authentication is written only after Reauth")
	}
	if err := checkModes(c.Encryption, c.SSE, c.SSEKMSKeyID); err != nil {
		return nil, err
	}
	body := configBody{
		VolumeID:    b64.EncodeToString(c.volumeID[:]),
		Encryption:  c.Encryption,
		SSE:         c.SSE,
		SSEKMSKeyID: c.SSEKMSKeyID,
		Keys:        []json.RawMessage{},
	}
	macKey := noneMACKey()
	if c.Encryption == EncryptionClient {
		if kr == nil || kr.VolumeID() != c.volumeID {
			return nil, errors.New("cipher: Marshal needs the keyring of this volume")
		}
		if kr.anchor() == nil {
			return nil, errors.New("cipher: Marshal of a keyring without anchor")
		}
		if c.rekey {
			if err := c.rewrapAll(kr); err != nil {
				return nil, err
			}
		}
		if plain := kr.marshal(); c.sealed == nil || !bytes.Equal(plain, c.sealedPlain) {
			c.sealed = newAEAD(c.kwk).Seal(nil, nil, plain, keyringAAD(c.volumeID))
			c.sealedPlain = plain
		}
		for _, e := range c.entries {
			body.Keys = append(body.Keys, e.marshal())
		}
		body.Keyring = b64.EncodeToString(c.sealed)
		macKey = kr.configMACKey()
	} else if kr != nil {
		return nil, errors.New("cipher: a volume without client-side encryption has no keyring")
	}
	bodyJSON, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("cipher: marshal config body: %w", err)
	}
	c.body, c.mac, c.claimed, c.canonical = bodyJSON, configMAC(macKey, bodyJSON), body, true
	return marshalOuter(c.body, c.mac), nil
}

// rewrapAll replaces the KWK and the config secret after a key removal and
// seals the new KWK to every remaining entry's public key; no root key is
// needed for that.
func (c *Config) rewrapAll(kr *Keyring) error {
	kwk := randomKey()
	wrapped := make([][]byte, len(c.entries))
	for i, e := range c.entries {
		if !e.known() {
			return fmt.Errorf("key %s is of kind %q, which this coffer cannot rewrap", e.ID, e.Kind)
		}
		var err error
		if wrapped[i], err = wrapKWK(kwk, c.volumeID, e); err != nil {
			return err
		}
	}
	for i, e := range c.entries {
		e.wrapped = wrapped[i]
	}
	kr.rotateConfigSecret()
	c.kwk, c.sealed, c.rekey = kwk, nil, false
	return nil
}

func wrapKWK(kwk []byte, v VolumeID, e *keyEntry) ([]byte, error) {
	pub, err := wrapKEM().NewPublicKey(e.pub)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", e.ID, err)
	}
	return hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), kwkInfo(v, e.ID, e.Kind), kwk)
}

// String and GoString keep the keyring-wrapping key out of anything that
// prints a config.
func (c *Config) String() string {
	return fmt.Sprintf("coffer config (volume %s, encryption %q, sse %q, %d keys)", c.volumeID, c.ClaimedEncryption(), c.SSE, len(c.entries))
}
func (c *Config) GoString() string { return c.String() }

// VolumeID is authenticated only after Open.
func (c *Config) VolumeID() VolumeID { return c.volumeID }

// AddKey lets root open the volume too and returns its key ID. For a
// passphrase this runs Argon2id once.
func (c *Config) AddKey(kr *Keyring, root *RootKey) (id string, err error) {
	if !c.opened || c.kwk == nil {
		return "", errors.New("cipher: AddKey needs an opened client-mode config")
	}
	if kr == nil || kr.VolumeID() != c.volumeID {
		return "", errors.New("cipher: AddKey needs the keyring of this volume")
	}
	anchor := kr.anchor()
	if c.preAuth || anchor == nil {
		return "", errors.New("cipher: AddKey on a config without entry authentication: run Reauth first")
	}
	e := &keyEntry{Kind: root.kind}
	switch root.kind {
	case KindSym:
		e.ID = symID(root.secret)
		for _, old := range c.entries {
			if old.ID == e.ID {
				return "", fmt.Errorf("key %s is already listed", e.ID)
			}
		}
	case KindPassphrase:
		e.ID = randomID()
		e.params = root.argon
		e.salt = make([]byte, argonSaltSize)
		rand.Read(e.salt)
	case KindKMS:
		if err := c.addKMSEntry(e, root); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("root key kind %q not supported", root.kind)
	}
	if len(c.entries) >= configMaxKeys {
		return "", fmt.Errorf("a volume holds at most %d keys", configMaxKeys)
	}
	keys, err := root.deriveEntry(e.salt, e.params)
	if err != nil {
		return "", err
	}
	e.pub = keys.priv.PublicKey().Bytes()
	if e.wrapped, err = wrapKWK(c.kwk, c.volumeID, e); err != nil {
		return "", err
	}
	e.auth = entryAuth(keys.auth, c.volumeID, e, anchor)
	e.Added = c.now().Unix()
	c.entries = append(c.entries, e)
	return e.ID, nil
}

// RemoveKey takes key id away, refusing to remove the last key. The next
// Marshal replaces the KWK and the config secret, so the removed key cannot
// open configs written from now on; the anchor stays, so the other entries
// need no root key (see doc.go for what the removed key keeps, and Reauth).
func (c *Config) RemoveKey(id string) error {
	if !c.opened {
		return errors.New("cipher: RemoveKey needs an opened config")
	}
	i := slices.IndexFunc(c.entries, func(e *keyEntry) bool { return e.ID == id })
	if i < 0 {
		return fmt.Errorf("no key %q in this volume", id)
	}
	if len(c.entries) == 1 {
		return fmt.Errorf("key %s is the last key of this volume", id)
	}
	c.entries = slices.Delete(c.entries, i, i+1)
	c.rekey = true
	return nil
}

// Reauth draws a new anchor secret and recomputes every entry's auth tag,
// so that only the holders of the volume's root keys as they stand can
// make an entry accept a keyring: a removed key whose holder kept an old
// keyring (and so knows the old anchor) no longer can. Each entry's tag
// derives from its own root key, so Reauth needs a root key for every
// entry; it refuses with ErrMissingRootKeys naming the entries none of
// roots opens, and refuses a given key that is none of the volume's. Each
// given key's entry must authenticate the keyring as it stands (unless the
// config was opened with OpenPreAuth). The next Marshal also replaces the
// KWK and the config secret, as after RemoveKey.
func (c *Config) Reauth(kr *Keyring, roots ...*RootKey) error {
	if !c.opened || c.kwk == nil {
		return errors.New("cipher: Reauth needs an opened client-mode config")
	}
	if kr == nil || kr.VolumeID() != c.volumeID {
		return errors.New("cipher: Reauth needs the keyring of this volume")
	}
	anchor := kr.anchor()
	if !c.preAuth && anchor == nil {
		return errors.New("cipher: Reauth of an authenticated config whose keyring has no anchor")
	}
	authKeys := make([][]byte, len(c.entries))
	used := make([]bool, len(roots))
	var missing []string
	for i, e := range c.entries {
		if !e.known() {
			return fmt.Errorf("key %s is of kind %q, which this coffer cannot re-authenticate", e.ID, e.Kind)
		}
		for j, root := range roots {
			keys, err := entryKeysOf(root, e)
			if errors.Is(err, errNotThisKey) {
				continue
			}
			if err != nil {
				return err
			}
			if !c.preAuth && !hmac.Equal(e.auth, entryAuth(keys.auth, c.volumeID, e, anchor)) {
				return fmt.Errorf("%w: key %s does not authenticate this keyring (it was not written with this key)", ErrConfigTampered, e.ID)
			}
			authKeys[i], used[j] = keys.auth, true
			break
		}
		if authKeys[i] == nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", e.ID, e.Kind))
		}
	}
	for j, u := range used {
		if !u {
			return fmt.Errorf("root key %d of the %d given (%s) is not one of this volume's keys", j+1, len(roots), roots[j].kind)
		}
	}
	if missing != nil {
		return fmt.Errorf("%w: no key given for %s", ErrMissingRootKeys, strings.Join(missing, ", "))
	}
	kr.rotateAnchorSecret()
	anchor = kr.anchor()
	for i, e := range c.entries {
		e.auth = entryAuth(authKeys[i], c.volumeID, e, anchor)
	}
	c.rekey, c.preAuth = true, false
	return nil
}

// Keys lists the root key entries.
func (c *Config) Keys() []KeyInfo {
	out := make([]KeyInfo, 0, len(c.entries))
	for _, e := range c.entries {
		k := KeyInfo{ID: e.ID, Kind: e.Kind}
		if e.KMS != nil {
			k.KMSKeyARN = e.KMS.KeyARN
		}
		if e.Added > 0 {
			k.Added = time.Unix(e.Added, 0).UTC()
		}
		out = append(out, k)
	}
	return out
}

// OpenedBy is the ID of the entry whose root key opened the config ("" in
// "none" mode, or before Open).
func (c *Config) OpenedBy() string {
	if c.openedBy == nil {
		return ""
	}
	return c.openedBy.id
}

// ChangePassphrase replaces passphrase entry id with one for newRoot, a
// passphrase, keeping the entry's ID (so `key list` and scripts still name
// it) and its place in the list: a fresh salt, newRoot's Argon2id
// parameters, a new key pair and auth tag. As after RemoveKey, the next
// Marshal replaces the KWK and the config secret, so the old passphrase
// opens no config written from now on. It runs Argon2id once.
func (c *Config) ChangePassphrase(kr *Keyring, id string, newRoot *RootKey) error {
	if !c.opened || c.kwk == nil {
		return errors.New("cipher: ChangePassphrase needs an opened client-mode config")
	}
	if kr == nil || kr.VolumeID() != c.volumeID {
		return errors.New("cipher: ChangePassphrase needs the keyring of this volume")
	}
	anchor := kr.anchor()
	if c.preAuth || anchor == nil {
		return errors.New("cipher: ChangePassphrase on a config without entry authentication: run Reauth first")
	}
	if newRoot.kind != KindPassphrase {
		return fmt.Errorf("the new key is a %s key, not a passphrase", newRoot.kind)
	}
	i := slices.IndexFunc(c.entries, func(e *keyEntry) bool { return e.ID == id })
	if i < 0 {
		return fmt.Errorf("no key %q in this volume", id)
	}
	old := c.entries[i]
	if old.Kind != KindPassphrase {
		return fmt.Errorf("key %s is a %s key, not a passphrase", id, old.Kind)
	}
	e := &keyEntry{ID: id, Kind: KindPassphrase, params: newRoot.argon, salt: make([]byte, argonSaltSize), Added: c.now().Unix()}
	rand.Read(e.salt)
	keys, err := newRoot.deriveEntry(e.salt, e.params)
	if err != nil {
		return err
	}
	e.pub = keys.priv.PublicKey().Bytes()
	if e.wrapped, err = wrapKWK(c.kwk, c.volumeID, e); err != nil {
		return err
	}
	e.auth = entryAuth(keys.auth, c.volumeID, e, anchor)
	c.entries[i] = e
	c.rekey = true
	return nil
}

// EntryKey is what a root key derived for the config entry it opened: the
// entry's key pair and auth key. It opens later versions of the same
// config entry (a mount re-reading its config) without the root key's
// work (Argon2id) and without trying any other entry, so a forged config
// cannot make a refresh run Argon2id with parameters of its choosing.
// Its String shows no secret.
type EntryKey struct {
	id     string
	kind   RootKind
	pub    []byte
	salt   []byte
	params Argon2Params
	keys   entryKeys
}

func (k *EntryKey) String() string   { return fmt.Sprintf("entry key %s (%s)", k.id, k.kind) }
func (k *EntryKey) GoString() string { return k.String() }

// EntryKey returns the keys of the entry that opened the config (nil in
// "none" mode or before Open).
func (c *Config) EntryKey() *EntryKey { return c.openedBy }

// Open authenticates c, a config parsed later, through the entry k was
// derived for, exactly as Config.Open would with k's root key. Errors:
// ErrNoKeyOpens when the entry is gone or was replaced (its key removed,
// its passphrase changed), ErrConfigTampered as Config.Open (a config from
// before entry authentication included: it is refused, never upgraded).
func (k *EntryKey) Open(c *Config) (*Keyring, error) {
	if c.body == nil {
		return nil, errors.New("cipher: Open of a config that was not parsed")
	}
	if !c.canonical {
		return nil, fmt.Errorf("%w: config object is not in canonical form", ErrConfigTampered)
	}
	if c.claimed.Encryption != EncryptionClient {
		return nil, fmt.Errorf("%w: the config claims encryption %q", ErrConfigTampered, c.claimed.Encryption)
	}
	i := slices.IndexFunc(c.entries, func(e *keyEntry) bool { return e.ID == k.id })
	if i < 0 {
		return nil, fmt.Errorf("%w: key %s is no longer listed", ErrNoKeyOpens, k.id)
	}
	e := c.entries[i]
	switch {
	case e.Kind != k.kind:
		return nil, fmt.Errorf("%w: key %s is now of kind %s", ErrConfigTampered, k.id, e.Kind)
	case k.kind == KindPassphrase && (!bytes.Equal(e.salt, k.salt) || e.params != k.params || !bytes.Equal(e.pub, k.pub)):
		return nil, fmt.Errorf("%w: passphrase entry %s was replaced (passphrase changed)", ErrNoKeyOpens, k.id)
	case !bytes.Equal(e.pub, k.pub):
		return nil, fmt.Errorf("%w: key %s has another public key", ErrConfigTampered, k.id)
	}
	kr, err := c.openEntry(k.keys, e, false)
	if err != nil {
		return nil, err
	}
	if err := c.accept(); err != nil {
		return nil, err
	}
	return kr, nil
}
