package cipher

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// The writer credential: what a write-only mount holds (DESIGN.md §2). It
// pins the volume ID, the encryption and SSE modes and the SSE-KMS key ID
// (the writer trusts nothing of the config but checks its volume ID), the
// writer ID, the scope, the name secret (names are encrypted as every
// mount encrypts them, and read back), the writer's public key and its
// auth secret WA (the epoch tag). Never the local, config or anchor
// secrets, a KEK or the private key: nothing in it opens a stored DEK.
//
// The file is JSON, one line, mode 0600:
//
//	{"type":"coffer writer credential","version":1,"volume_id":B64,
//	 "encryption":"client","sse":"","sse_kms_key_id":"","writer_id":HEX,
//	 "label":"...","scope":"/backups/host1","name_secret":B64,
//	 "public_key":B64 (1,216 bytes),"auth_secret":B64}
//
// Its type field tells it from a sym key file (32 bytes or their base64,
// which never starts with '{'); IsWriterCredential checks that.

const (
	credentialType    = "coffer writer credential"
	credentialVersion = 1
	credentialMaxSize = 8 << 10
)

// WriterCredential is a writer key's credential. Its String shows no
// secret.
type WriterCredential struct {
	Encryption  string
	SSE         string
	SSEKMSKeyID string

	volumeID   VolumeID
	writer     WriterID
	label      string
	scope      string
	nameSecret []byte
	public     []byte
	auth       []byte
}

type credentialJSON struct {
	Type        string `json:"type"`
	Version     int    `json:"version"`
	VolumeID    string `json:"volume_id"`
	Encryption  string `json:"encryption"`
	SSE         string `json:"sse"`
	SSEKMSKeyID string `json:"sse_kms_key_id"`
	WriterID    string `json:"writer_id"`
	Label       string `json:"label"`
	Scope       string `json:"scope"`
	NameSecret  string `json:"name_secret"`
	PublicKey   string `json:"public_key"`
	AuthSecret  string `json:"auth_secret"`
}

func (c *WriterCredential) VolumeID() VolumeID { return c.volumeID }
func (c *WriterCredential) Writer() WriterID   { return c.writer }
func (c *WriterCredential) Label() string      { return c.label }
func (c *WriterCredential) Scope() string      { return c.scope }

func (c *WriterCredential) String() string {
	return fmt.Sprintf("writer credential %s (volume %s, scope %q)", c.writer, c.volumeID, c.scope)
}
func (c *WriterCredential) GoString() string { return c.String() }

// Marshal encodes the credential (one line of JSON and a newline).
func (c *WriterCredential) Marshal() []byte {
	out, err := json.Marshal(credentialJSON{
		Type: credentialType, Version: credentialVersion, VolumeID: b64.EncodeToString(c.volumeID[:]),
		Encryption: c.Encryption, SSE: c.SSE, SSEKMSKeyID: c.SSEKMSKeyID,
		WriterID: c.writer.String(), Label: c.label, Scope: c.scope,
		NameSecret: b64.EncodeToString(c.nameSecret), PublicKey: b64.EncodeToString(c.public), AuthSecret: b64.EncodeToString(c.auth),
	})
	if err != nil {
		panic(fmt.Sprintf("cipher: marshal writer credential: %v", err))
	}
	return append(out, '\n')
}

// IsWriterCredential reports whether data is (meant to be) a writer
// credential, so a key-file loader can tell one from a sym key.
func IsWriterCredential(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	var probe struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Type == credentialType
}

// ErrNotCredential: the data is not a writer credential coffer can read.
var ErrNotCredential = errors.New("not a coffer writer credential")

// ParseWriterCredential decodes a credential strictly: the exact type and
// version, no unknown field, every binary field of its size, a valid scope
// and modes.
func ParseWriterCredential(data []byte) (*WriterCredential, error) {
	if len(data) > credentialMaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotCredential, len(data))
	}
	var j credentialJSON
	if err := strictUnmarshal(bytes.TrimRight(data, "\r\n"), &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCredential, err)
	}
	if j.Type != credentialType {
		return nil, fmt.Errorf("%w: type %q", ErrNotCredential, j.Type)
	}
	if j.Version != credentialVersion {
		return nil, fmt.Errorf("%w: version %d (this coffer reads version %d)", ErrNotCredential, j.Version, credentialVersion)
	}
	c := &WriterCredential{Encryption: j.Encryption, SSE: j.SSE, SSEKMSKeyID: j.SSEKMSKeyID, label: j.Label, scope: j.Scope}
	if j.Encryption != EncryptionClient {
		return nil, fmt.Errorf("%w: encryption %q (writers need client-side encryption)", ErrNotCredential, j.Encryption)
	}
	if err := checkModes(j.Encryption, j.SSE, j.SSEKMSKeyID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCredential, err)
	}
	vid, err := decodeFixed(j.VolumeID, len(c.volumeID))
	if err != nil {
		return nil, fmt.Errorf("%w: volume ID: %v", ErrNotCredential, err)
	}
	copy(c.volumeID[:], vid)
	if c.writer, err = ParseWriterID(j.WriterID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCredential, err)
	}
	if err := checkScope(j.Scope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCredential, err)
	}
	if err := checkLabel(j.Label); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCredential, err)
	}
	for _, f := range []struct {
		dst  *[]byte
		src  string
		size int
		what string
	}{{&c.nameSecret, j.NameSecret, keySize, "name secret"}, {&c.public, j.PublicKey, writerPublicSize, "public key"}, {&c.auth, j.AuthSecret, keySize, "auth secret"}} {
		if *f.dst, err = decodeFixed(f.src, f.size); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNotCredential, f.what, err)
		}
	}
	if _, err := writerKEM().NewPublicKey(c.public); err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrNotCredential, err)
	}
	return c, nil
}

// LoadWriterCredential reads a credential file; like key files it must
// not be readable by group or others (ErrKeyFileMode).
func LoadWriterCredential(path string) (*WriterCredential, error) {
	data, err := readPrivateFile(path, credentialMaxSize)
	if err != nil {
		return nil, err
	}
	c, err := ParseWriterCredential(data)
	if err != nil {
		return nil, fmt.Errorf("writer credential %s: %w", path, err)
	}
	return c, nil
}

// LoadKey reads a --key-file: a sym root key, or a writer credential
// (exactly one of the two is returned).
func LoadKey(path string) (*RootKey, *WriterCredential, error) {
	data, err := readPrivateFile(path, credentialMaxSize)
	if err != nil {
		return nil, nil, err
	}
	if IsWriterCredential(data) {
		c, err := ParseWriterCredential(data)
		if err != nil {
			return nil, nil, fmt.Errorf("writer credential %s: %w", path, err)
		}
		return nil, c, nil
	}
	r, err := LoadKeyFile(path)
	return r, nil, err
}

// WriteWriterCredential creates path (O_EXCL, 0600) holding c.
func WriteWriterCredential(path string, c *WriterCredential) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create writer credential: %w", err)
	}
	_, err = f.Write(c.Marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write writer credential %s: %w", path, err)
	}
	return nil
}

// CheckConfig is all a writer asks of the volume config (DESIGN.md §2): its
// volume ID must be the credential's. Nothing else of the config is used,
// so nothing else needs authenticating (the writer cannot authenticate it:
// it holds no root key).
func (c *WriterCredential) CheckConfig(cfg *Config) error {
	if cfg.VolumeID() != c.volumeID {
		return fmt.Errorf("the store holds volume %s, but this writer credential is for volume %s", cfg.VolumeID(), c.volumeID)
	}
	return nil
}

// WriterSession is one write-only mount session: a fresh epoch key E,
// sealed in the epoch object the session stores first (once, with
// If-None-Match), and used to wrap the DEK of every object it uploads. It
// opens what it stored itself, nothing else. Safe for concurrent use.
type WriterSession struct {
	cred   *WriterCredential
	origin Origin
	key    []byte // E
	object []byte // the epoch object
	names  *Names
}

// NewSession draws a new epoch: one HPKE seal to the writer's public key.
func (c *WriterCredential) NewSession() (*WriterSession, error) {
	pub, err := writerKEM().NewPublicKey(c.public)
	if err != nil {
		return nil, err
	}
	s := &WriterSession{cred: c, key: randomKey(), names: newNames(c.nameSecret)}
	s.origin.Writer = c.writer
	rand.Read(s.origin.Epoch[:])
	info := epochInfo(c.volumeID, s.origin)
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, s.key)
	if err != nil {
		return nil, fmt.Errorf("sealing the epoch key: %w", err)
	}
	if len(sealed) != epochSealedSize {
		return nil, fmt.Errorf("cipher: epoch key sealed to %d bytes, want %d", len(sealed), epochSealedSize)
	}
	s.object = append(sealed, epochTag(c.auth, info, sealed)...)
	return s, nil
}

func (s *WriterSession) String() string   { return "writer session " + s.origin.String() }
func (s *WriterSession) GoString() string { return s.String() }

// Origin is this session's writer and epoch, what its objects carry.
func (s *WriterSession) Origin() Origin { return s.origin }

// Credential is the credential the session came from.
func (s *WriterSession) Credential() *WriterCredential { return s.cred }

// EpochObject is the key (relative to the volume's prefix) and the bytes
// of the epoch object to store before any of the session's objects.
func (s *WriterSession) EpochObject() (key string, data []byte) {
	return EpochObjectKey(s.origin), bytes.Clone(s.object)
}

// Names encrypts and decrypts names as every mount of the volume does.
func (s *WriterSession) Names() *Names { return s.names }

// InScope reports whether the session may create an object at canonical
// path (inside the scope, outside /.coffer).
func (s *WriterSession) InScope(path string) bool {
	return checkWriterPath(path, s.cred.scope) == nil
}

// NewObjectKey makes a fresh file ID and DEK of this session's origin.
func (s *WriterSession) NewObjectKey() (*ObjectKey, error) {
	o := newRandomObjectKey(0)
	o.origin = s.origin
	return o, nil
}

// SealMetadata returns the metadata of an object the session stores at
// canonical path with attributes a (a file, directory marker, symlink or
// special file): coffer-origin, the DEK wrapped under E (AAD bound to
// volume, writer, epoch and file ID), the attributes sealed under the
// DEK's attribute key as every object's. ErrOutOfScope (EACCES) outside
// the scope; o must be one of this session's keys.
func (s *WriterSession) SealMetadata(o *ObjectKey, path string, a Attr) (map[string]string, error) {
	if o.origin != s.origin {
		return nil, fmt.Errorf("%w: the object key is not this session's", ErrNotThisSession)
	}
	if err := checkWriterPath(path, s.cred.scope); err != nil {
		return nil, err
	}
	long, err := longNameOf(s.names, path)
	if err != nil {
		return nil, err
	}
	v := s.cred.volumeID
	meta := map[string]string{
		MetaVersion: metaVersion1,
		MetaFileID:  b64.EncodeToString(o.fileID[:]),
		MetaOrigin:  b64.EncodeToString(s.origin.bytes()),
		MetaDEK:     b64.EncodeToString(wdekAEAD(s.key, o.fileID).Seal(nil, nil, o.dek[:], wdekAAD(v, s.origin, o.fileID))),
		MetaAttr:    b64.EncodeToString(o.attr.Seal(nil, nil, a.encode(), pathAAD(v, o.fileID, path))),
	}
	if long != "" {
		meta[MetaName] = long
	}
	return meta, checkBudget(meta)
}

// OpenMetadata opens the metadata of an object this session stored at
// canonical path (a writer reads back what it wrote in this session, and
// nothing else: ErrNotThisSession, which a write-only mount answers with
// EACCES). Only E opens the DEK, and only this process holds E.
func (s *WriterSession) OpenMetadata(meta map[string]string, path string) (*ObjectKey, Attr, error) {
	origin, err := ObjectOrigin(meta)
	if err != nil {
		return nil, Attr{}, err
	}
	if origin != s.origin {
		return nil, Attr{}, ErrNotThisSession
	}
	if metaGet(meta, MetaKEK) != "" {
		return nil, Attr{}, fmt.Errorf("%w: rewrapped by the full key since", ErrNotThisSession)
	}
	fid, wrapped, err := baseFields(meta)
	if err != nil {
		return nil, Attr{}, err
	}
	dek, err := wdekAEAD(s.key, fid).Open(nil, nil, wrapped, wdekAAD(s.cred.volumeID, s.origin, fid))
	if err != nil {
		return nil, Attr{}, fmt.Errorf("%w: DEK does not unwrap under this session's epoch key", ErrAuth)
	}
	o := newObjectKey(fid, dek, 0)
	o.origin = s.origin
	plain, err := o.openRecord(meta, pathAAD(s.cred.volumeID, fid, path))
	if err != nil {
		return nil, Attr{}, fmt.Errorf("%w: attributes do not open at %q", ErrAuth, path)
	}
	a, err := decodeAttr(plain)
	if err != nil {
		return nil, Attr{}, err
	}
	return o, a, nil
}
