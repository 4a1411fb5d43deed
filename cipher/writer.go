package cipher

import (
	"bytes"
	gocipher "crypto/cipher"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Writer keys (DESIGN.md §2, "Writer keys"): a backup host that may add
// files to a path scope of the volume and read nothing stored there.
//
// The full-key side lives in the keyring: each writer key is an ID, an
// HPKE MLKEM768X25519 private key, an auth secret WA, a scope and, once
// revoked, the epochs it may still be read from. The writer side is the
// credential (writer_credential.go): the public key, WA, the name secret
// and the modes, never a secret that opens anything stored.
//
// Each writer mount session draws an epoch key E, stores it sealed to the
// writer's public key in its epoch object, and wraps the DEKs of its
// uploads under keys derived from E. A full-key reader opens the epoch
// object with the writer's private key after checking its tag under WA,
// so an epoch made from public bytes alone (the public key, which the
// credential holds, without WA) is refused, and then opens the objects.

// WriterID names a writer key: 8 random bytes, hex in object names.
type WriterID [8]byte

// EpochID names one writer mount session: 16 random bytes.
type EpochID [16]byte

func (w WriterID) String() string { return hex.EncodeToString(w[:]) }
func (e EpochID) String() string  { return hex.EncodeToString(e[:]) }

// ParseWriterID reads the hex form back (`key revoke-writer ID`).
func ParseWriterID(s string) (WriterID, error) {
	var w WriterID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(w) || hex.EncodeToString(b) != s {
		return w, fmt.Errorf("writer ID %q: want %d lower-case hex digits", s, 2*len(w))
	}
	copy(w[:], b)
	return w, nil
}

// ParseEpochID reads the hex form of an epoch ID.
func ParseEpochID(s string) (EpochID, error) {
	var e EpochID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(e) || hex.EncodeToString(b) != s {
		return e, fmt.Errorf("epoch ID %q: want %d lower-case hex digits", s, 2*len(e))
	}
	copy(e[:], b)
	return e, nil
}

// Origin says who stored an object: the zero Origin is the full key, any
// other a writer's session. It is what coffer-origin holds.
type Origin struct {
	Writer WriterID
	Epoch  EpochID
}

// IsWriter reports a writer origin.
func (o Origin) IsWriter() bool { return o != Origin{} }

// String is "writer <ID> epoch <ID>" ("" for the full key): the value of
// the coffer.origin xattr and of ls -l's origin column.
func (o Origin) String() string {
	if !o.IsWriter() {
		return ""
	}
	return "writer " + o.Writer.String() + " epoch " + o.Epoch.String()
}

func (o Origin) bytes() []byte { return append(o.Writer[:], o.Epoch[:]...) }

// MetaOrigin is the metadata name of a writer object's origin: base64url
// of writer ID | epoch ID.
const MetaOrigin = "coffer-origin"

const originSize = len(WriterID{}) + len(EpochID{})

// ObjectOrigin reads coffer-origin without verifying anything: which epoch
// a writer object needs (fetch EpochObjectKey(o), open it with
// Keyring.OpenEpoch), or the zero Origin for a full-key object.
func ObjectOrigin(meta map[string]string) (Origin, error) {
	s := metaGet(meta, MetaOrigin)
	if s == "" {
		return Origin{}, nil
	}
	b, err := decodeFixed(s, originSize)
	if err != nil {
		return Origin{}, fmt.Errorf("%w: %s: %v", ErrBadMetadata, MetaOrigin, err)
	}
	var o Origin
	copy(o.Writer[:], b)
	copy(o.Epoch[:], b[len(o.Writer):])
	if !o.IsWriter() {
		return Origin{}, fmt.Errorf("%w: %s is all zero", ErrBadMetadata, MetaOrigin)
	}
	return o, nil
}

// Epoch objects: .coffer/epochs/<writer ID>/<epoch ID> (hex), relative to
// the volume's prefix.
const (
	EpochsPrefix = ".coffer/epochs/"
	reservedDir  = ".coffer"
)

// EpochObjectKey is the object key of an origin's epoch object.
func EpochObjectKey(o Origin) string {
	return EpochsPrefix + o.Writer.String() + "/" + o.Epoch.String()
}

// WriterEpochsPrefix is the prefix under which writer w stores its epochs
// (listed by revoke-writer and key list).
func WriterEpochsPrefix(w WriterID) string { return EpochsPrefix + w.String() + "/" }

// ParseEpochObjectKey reads the origin back from an epoch object's key.
func ParseEpochObjectKey(key string) (Origin, error) {
	rest, ok := strings.CutPrefix(key, EpochsPrefix)
	w, e, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return Origin{}, fmt.Errorf("%q is not an epoch object key", key)
	}
	var o Origin
	var err error
	if o.Writer, err = ParseWriterID(w); err != nil {
		return Origin{}, err
	}
	if o.Epoch, err = ParseEpochID(e); err != nil {
		return Origin{}, err
	}
	return o, nil
}

// CheckWriterObjectKey refuses a writer-origin object stored under
// .coffer/ (the reserved directory: config, inodes, epochs): a writer
// stores its epoch objects there, which carry no metadata, and nothing
// else. fs applies it to the object key (relative to the volume's prefix)
// of every object whose metadata has a writer origin, before opening it.
func CheckWriterObjectKey(key string) error {
	if key == reservedDir || strings.HasPrefix(key, reservedDir+"/") {
		return fmt.Errorf("%w: a writer-origin object under %s/ (%s)", ErrWriterRefused, reservedDir, key)
	}
	return nil
}

// Scope rules. A scope is a canonical directory path; a path is inside it
// when it is the scope or below it. The scope's ancestors need no marker
// (a prefix without one is a directory), so a writer never creates them.

func checkScope(scope string) error {
	if scope == "/" {
		return nil
	}
	if !strings.HasPrefix(scope, "/") || strings.HasSuffix(scope, "/") {
		return fmt.Errorf("scope %q is not a canonical path (\"/\" or \"/a/b\")", scope)
	}
	for _, seg := range strings.Split(scope[1:], "/") {
		if err := checkName(seg); err != nil {
			return fmt.Errorf("scope %q: %w", scope, err)
		}
	}
	if inReserved(scope) {
		return fmt.Errorf("scope %q is inside the reserved /%s", scope, reservedDir)
	}
	return nil
}

// InScope reports whether canonical path lies inside scope.
func InScope(path, scope string) bool {
	return scope == "/" || path == scope || strings.HasPrefix(path, scope+"/")
}

func inReserved(path string) bool {
	return path == "/"+reservedDir || strings.HasPrefix(path, "/"+reservedDir+"/")
}

// checkWriterPath is the path rule of every writer object, on both sides.
func checkWriterPath(path, scope string) error {
	switch {
	case inReserved(path):
		return fmt.Errorf("%w: %q is inside the reserved /%s", ErrWriterRefused, path, reservedDir)
	case !InScope(path, scope):
		return fmt.Errorf("%w: %q lies outside the writer's scope %q", ErrOutOfScope, path, scope)
	}
	return nil
}

// Formats.
const (
	epochInfoText = "coffer epoch v1"
	wdekAADText   = "coffer wdek v1"
	dekV2AADText  = "coffer dek v2"
	infoEpochAuth = "coffer epoch auth"      // WA -> epoch tag key
	infoWDEKWrap  = "coffer writer dek wrap" // E (salt = file ID) -> DEK wrap key

	writerSeedSize   = 32                  // MLKEM768X25519 private key (seed)
	writerPublicSize = 1216                // its public key
	epochSealedSize  = 1120 + keySize + 16 // HPKE enc | AES-GCM(E) | tag
	epochObjectSize  = epochSealedSize + macSize
	writerLabelMax   = 128
)

// writerKEM is the writers' KEM: hybrid ML-KEM-768 + X25519 (X-Wing),
// post-quantum.
func writerKEM() hpke.KEM { return hpke.MLKEM768X25519() }

// epochInfo = "coffer epoch v1" | volume ID | writer ID | epoch ID.
func epochInfo(v VolumeID, o Origin) []byte {
	info := append([]byte(epochInfoText), v[:]...)
	return append(info, o.bytes()...)
}

// epochTag = HMAC-SHA256(HKDF(WA, "coffer epoch auth"), info | HPKE
// ciphertext).
func epochTag(wa, info, sealed []byte) []byte {
	m := hmac.New(sha256.New, deriveKey(wa, nil, infoEpochAuth))
	m.Write(info)
	m.Write(sealed)
	return m.Sum(nil)
}

// wdekAAD = "coffer wdek v1" | volume ID | writer ID | epoch ID | file ID.
func wdekAAD(v VolumeID, o Origin, f FileID) []byte {
	aad := append([]byte(wdekAADText), v[:]...)
	aad = append(aad, o.bytes()...)
	return append(aad, f[:]...)
}

// dekAADv2 = "coffer dek v2" | volume ID | generation | file ID | writer
// ID | epoch ID: a writer object's DEK under a KEK (after rotate, or a
// full-key metadata change that keeps the origin).
func dekAADv2(v VolumeID, gen uint32, f FileID, o Origin) []byte {
	aad := append([]byte(dekV2AADText), v[:]...)
	aad = binary.BigEndian.AppendUint32(aad, gen)
	aad = append(aad, f[:]...)
	return append(aad, o.bytes()...)
}

// wdekAEAD is keyed by HKDF(E, salt = file ID, "coffer writer dek wrap").
func wdekAEAD(e []byte, f FileID) gocipher.AEAD {
	return newAEAD(deriveKey(e, f[:], infoWDEKWrap))
}

// writerKey is one writer key as the keyring holds it.
type writerKey struct {
	id        WriterID
	label     string
	seed      []byte
	priv      hpke.PrivateKey
	auth      []byte // WA
	scope     string
	revoked   bool
	revokedAt int64                // Unix seconds
	known     map[EpochID][32]byte // revoked: the epochs still read, with the SHA-256 of their epoch object
}

func newWriterKey(id WriterID, seed []byte) (*writerKey, error) {
	priv, err := writerKEM().NewPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("writer %s: %w", id, err)
	}
	return &writerKey{id: id, seed: seed, priv: priv}, nil
}

func checkLabel(label string) error {
	if len(label) > writerLabelMax || !utf8.ValidString(label) ||
		strings.ContainsFunc(label, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("writer label: at most %d bytes of printable UTF-8", writerLabelMax)
	}
	return nil
}

// WriterInfo describes a writer key of the keyring.
type WriterInfo struct {
	ID          WriterID
	Label       string
	Scope       string
	Revoked     bool
	RevokedAt   time.Time // zero unless revoked
	KnownEpochs []EpochID // revoked: the epochs whose files are still read
}

// Writers lists the keyring's writer keys, by ID.
func (k *Keyring) Writers() []WriterInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []WriterInfo
	for _, w := range k.writers {
		i := WriterInfo{ID: w.id, Label: w.label, Scope: w.scope, Revoked: w.revoked}
		if w.revoked {
			i.RevokedAt = time.Unix(w.revokedAt, 0).UTC()
			for e := range w.known {
				i.KnownEpochs = append(i.KnownEpochs, e)
			}
			slices.SortFunc(i.KnownEpochs, func(a, b EpochID) int { return bytes.Compare(a[:], b[:]) })
		}
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b WriterInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// addWriter draws a new writer key.
func (k *Keyring) addWriter(scope, label string) (*writerKey, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	var id WriterID
	rand.Read(id[:])
	seed := make([]byte, writerSeedSize)
	rand.Read(seed)
	w, err := newWriterKey(id, seed)
	if err != nil {
		return nil, err
	}
	w.auth, w.scope, w.label = randomKey(), scope, label
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.writers) >= writersMax {
		return nil, fmt.Errorf("a volume holds at most %d writer keys", writersMax)
	}
	if _, dup := k.writers[id]; dup {
		return nil, errors.New("cipher: writer ID collision")
	}
	if k.writers == nil {
		k.writers = map[WriterID]*writerKey{}
	}
	k.writers[id] = w
	return w, nil
}

const writersMax = 256

func (k *Keyring) writer(id WriterID) (*writerKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	w, ok := k.writers[id]
	return w, ok
}

// RevokeWriter revokes writer id. From then on a reader opens only files
// of the epochs in keep (epochs this keyring opened with OpenEpoch, listed
// from .coffer/epochs/<id>/ by the caller), and an epoch object only if it
// is byte for byte the one opened then: whoever holds the credential can
// start new epochs, or replace an epoch object, but neither is read. The
// revocation time is recorded for display only; nothing stored by a writer
// (its epoch objects, their timestamps) is trusted to date anything.
func (k *Keyring) RevokeWriter(id WriterID, keep []*Epoch, now time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	w, ok := k.writers[id]
	if !ok {
		return fmt.Errorf("no writer %s in this volume", id)
	}
	if w.revoked {
		return fmt.Errorf("writer %s is already revoked", id)
	}
	known := map[EpochID][32]byte{}
	for _, e := range keep {
		if e.origin.Writer != id {
			return fmt.Errorf("epoch %s is writer %s's, not %s's", e.origin.Epoch, e.origin.Writer, id)
		}
		known[e.origin.Epoch] = e.digest
	}
	if len(known) > epochsKnownMax {
		return fmt.Errorf("a revoked writer keeps at most %d epochs (%d given): adopt its files and keep fewer", epochsKnownMax, len(known))
	}
	w.revoked, w.revokedAt, w.known = true, now.Unix(), known
	return nil
}

// epochsKnownMax keeps a revoked writer's record within the config's 1 MiB
// (64 bytes of base64 per epoch).
const epochsKnownMax = 8192

// Epoch is an epoch key that opened and verified (Keyring.OpenEpoch): the
// key a writer session wrapped its DEKs under. Safe to share; its String
// shows no key.
type Epoch struct {
	origin Origin
	key    []byte
	digest [32]byte // SHA-256 of the epoch object it came from
}

func (e *Epoch) Origin() Origin   { return e.origin }
func (e *Epoch) String() string   { return "epoch key of " + e.origin.String() }
func (e *Epoch) GoString() string { return e.String() }

// OpenEpoch verifies and opens epoch object data of origin o (read from
// EpochObjectKey(o)): the writer must be in the keyring (and, if revoked,
// the epoch one it kept, with these exact bytes), the tag must verify
// under the writer's WA, and the HPKE ciphertext open under its private
// key with the epoch's info (volume, writer, epoch: an epoch object moved
// from another volume, writer or epoch ID does not open). Failures wrap
// ErrWriterRefused (ErrWriterRevoked for a revoked writer's epoch) or
// ErrAuth.
func (k *Keyring) OpenEpoch(o Origin, data []byte) (*Epoch, error) {
	w, err := k.usableWriter(o, nil)
	if err != nil {
		return nil, err
	}
	if len(data) != epochObjectSize {
		return nil, fmt.Errorf("%w: epoch object of %s is %d bytes, want %d", ErrAuth, o, len(data), epochObjectSize)
	}
	digest := sha256.Sum256(data)
	if _, err := k.usableWriter(o, &digest); err != nil {
		return nil, err
	}
	info := epochInfo(k.volumeID, o)
	sealed, tag := data[:epochSealedSize], data[epochSealedSize:]
	if !hmac.Equal(tag, epochTag(w.auth, info, sealed)) {
		return nil, fmt.Errorf("%w: epoch object of %s: its tag does not verify under the writer's auth secret", ErrAuth, o)
	}
	key, err := hpke.Open(w.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), info, sealed)
	if err != nil || len(key) != keySize {
		return nil, fmt.Errorf("%w: epoch object of %s does not open", ErrAuth, o)
	}
	return &Epoch{origin: o, key: key, digest: digest}, nil
}

// usableWriter is the writer of o if its objects may be opened: it is in
// the keyring and, if revoked, o's epoch is one it kept (and, given the
// epoch object's digest, that very object).
func (k *Keyring) usableWriter(o Origin, digest *[32]byte) (*writerKey, error) {
	w, ok := k.writer(o.Writer)
	if !ok {
		return nil, fmt.Errorf("%w: writer %s is not in the keyring", ErrWriterRefused, o.Writer)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !w.revoked {
		return w, nil
	}
	kept, ok := w.known[o.Epoch]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: epoch %s of writer %s began after its revocation", ErrWriterRevoked, o.Epoch, o.Writer)
	case digest != nil && kept != *digest:
		return nil, fmt.Errorf("%w: the epoch object of %s is not the one kept at the writer's revocation", ErrWriterRevoked, o)
	}
	return w, nil
}

// EpochSource gives the verified epoch of a writer origin: fs fetches
// EpochObjectKey(o) and calls Keyring.OpenEpoch, caching the result per
// origin.
type EpochSource func(Origin) (*Epoch, error)

// OpenAnyMetadata opens the metadata of any object stored at canonical
// path, whatever its origin, and returns the origin (zero for the full
// key). A writer object opens only if its writer is usable (in the
// keyring; if revoked, of an epoch it kept), the path lies in the writer's
// scope and outside /.coffer, and its DEK opens: under the epoch key that
// epochs gives (called only for a writer object whose DEK no KEK wraps
// yet), or under a KEK bound to its origin once rotate or a full-key
// change rewrapped it. Links are ErrIsLink as for OpenMetadata; fs applies
// CheckWriterObjectKey to the object key before. The key's Origin is the
// object's, so SealMetadata of a change keeps it (only AdoptMetadata
// clears it).
func (k *Keyring) OpenAnyMetadata(meta map[string]string, path string, epochs EpochSource) (*ObjectKey, Attr, Origin, error) {
	o, plain, err := k.openAnyAtPath(meta, path, epochs)
	if err != nil {
		return nil, Attr{}, Origin{}, err
	}
	a, err := decodeAttr(plain)
	if err != nil {
		return nil, Attr{}, Origin{}, err
	}
	return o, a, o.origin, nil
}

// OpenAnyObjectKey unwraps the DEK of any object, without attributes or a
// path (fsck, rotate). For a writer object only the writer and epoch are
// checked: the scope needs the path (OpenAnyMetadata).
func (k *Keyring) OpenAnyObjectKey(meta map[string]string, epochs EpochSource) (*ObjectKey, error) {
	origin, err := ObjectOrigin(meta)
	if err != nil {
		return nil, err
	}
	if !origin.IsWriter() {
		return k.OpenObjectKey(meta)
	}
	return k.openWriterKey(meta, origin, epochs)
}

func (k *Keyring) openAnyAtPath(meta map[string]string, path string, epochs EpochSource) (*ObjectKey, []byte, error) {
	origin, err := ObjectOrigin(meta)
	if err != nil {
		return nil, nil, err
	}
	if !origin.IsWriter() {
		return k.openAtPath(meta, path)
	}
	w, err := k.usableWriter(origin, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := checkWriterPath(path, w.scope); err != nil {
		return nil, nil, err
	}
	o, err := k.openWriterKey(meta, origin, epochs)
	if err != nil {
		return nil, nil, err
	}
	plain, err := o.openRecord(meta, pathAAD(k.volumeID, o.fileID, path))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: attributes do not open at %q", ErrAuth, path)
	}
	return o, plain, nil
}

// openWriterKey unwraps a writer object's DEK: under its epoch key while
// no KEK wraps it (no coffer-kek), under KEK_g with the v2 AAD after.
func (k *Keyring) openWriterKey(meta map[string]string, origin Origin, epochs EpochSource) (*ObjectKey, error) {
	if _, err := k.usableWriter(origin, nil); err != nil {
		return nil, err
	}
	fid, wrapped, err := baseFields(meta)
	if err != nil {
		return nil, err
	}
	if metaGet(meta, MetaKEK) != "" {
		gen, err := parseGeneration(metaGet(meta, MetaKEK))
		if err != nil {
			return nil, err
		}
		aead, err := k.dekWrapAEAD(gen, fid)
		if err != nil {
			return nil, err
		}
		dek, err := aead.Open(nil, nil, wrapped, dekAADv2(k.volumeID, gen, fid, origin))
		if err != nil {
			return nil, fmt.Errorf("%w: DEK does not unwrap (generation %d, %s)", ErrAuth, gen, origin)
		}
		o := newObjectKey(fid, dek, gen)
		o.origin = origin
		return o, nil
	}
	if epochs == nil {
		return nil, fmt.Errorf("%w: %s", ErrWriterOrigin, origin)
	}
	ep, err := epochs(origin)
	if err != nil {
		return nil, err
	}
	if ep == nil || ep.origin != origin {
		return nil, fmt.Errorf("cipher: the epoch source gave the epoch of another origin than %s", origin)
	}
	// A cached epoch from before a revocation this keyring knows of.
	if _, err := k.usableWriter(origin, &ep.digest); err != nil {
		return nil, err
	}
	dek, err := wdekAEAD(ep.key, fid).Open(nil, nil, wrapped, wdekAAD(k.volumeID, origin, fid))
	if err != nil {
		return nil, fmt.Errorf("%w: DEK does not unwrap under the epoch key of %s", ErrAuth, origin)
	}
	o := newObjectKey(fid, dek, 0)
	o.origin = origin
	return o, nil
}

// baseFields checks coffer-v and decodes coffer-fid and coffer-dek.
func baseFields(meta map[string]string) (FileID, []byte, error) {
	if v := metaGet(meta, MetaVersion); v != metaVersion1 {
		return FileID{}, nil, fmt.Errorf("%w: %s is %q, want %q", ErrBadMetadata, MetaVersion, v, metaVersion1)
	}
	fid, err := metaBytes(meta, MetaFileID, FileIDSize)
	if err != nil {
		return FileID{}, nil, err
	}
	wrapped, err := metaBytes(meta, MetaDEK, wrappedSize)
	if err != nil {
		return FileID{}, nil, err
	}
	return FileID(fid), wrapped, nil
}

// openRecord opens coffer-attr under aad with o's attribute key.
func (o *ObjectKey) openRecord(meta map[string]string, aad []byte) ([]byte, error) {
	sealed, err := metaSealed(meta)
	if err != nil {
		return nil, err
	}
	return o.attr.Open(nil, nil, sealed, aad)
}

// RewrapAnyMetadata is RewrapMetadata for any object: a writer object's
// DEK is rewrapped under the current KEK with the v2 AAD bound to its
// origin, which it keeps (coffer-origin), so it opens without its epoch
// from then on. This is what `coffer rotate` copies onto each object.
func (k *Keyring) RewrapAnyMetadata(meta map[string]string, epochs EpochSource) (map[string]string, error) {
	o, err := k.OpenAnyObjectKey(meta, epochs)
	if err != nil {
		return nil, err
	}
	return k.rewrap(meta, o)
}

// AdoptMetadata seals the metadata of a writer's object at path as a
// full-key object (no origin), keeping its file ID and DEK: what `coffer
// adopt PATH` writes with a metadata-only copy. o comes from
// OpenAnyMetadata.
func (k *Keyring) AdoptMetadata(o *ObjectKey, path string, a Attr) (map[string]string, error) {
	return k.sealAtPathAs(o, Origin{}, path, a.encode())
}

// wrapDEKAs wraps o's DEK under the current generation for an object of
// origin: v1 AAD for the full key, v2 (bound to the origin) for a
// writer's. A writer origin must be usable, and path (when given) in its
// scope.
func (k *Keyring) wrapDEKAs(o *ObjectKey, origin Origin) (gen uint32, wrapped []byte, err error) {
	if !origin.IsWriter() {
		return k.wrapDEK(o)
	}
	if _, err := k.usableWriter(origin, nil); err != nil {
		return 0, nil, err
	}
	gen = k.CurrentGeneration()
	aead, err := k.dekWrapAEAD(gen, o.fileID)
	if err != nil {
		return 0, nil, err
	}
	return gen, aead.Seal(nil, nil, o.dek[:], dekAADv2(k.volumeID, gen, o.fileID, origin)), nil
}

// ExportWriter adds a writer key with path scope and label to kr (the next
// Marshal writes it) and returns its credential, which pins c's modes and
// kr's name secret. c must be open.
func (c *Config) ExportWriter(kr *Keyring, scope, label string) (*WriterCredential, error) {
	if !c.opened || c.Encryption != EncryptionClient {
		return nil, errors.New("cipher: ExportWriter needs an opened client-mode config")
	}
	if kr == nil || kr.VolumeID() != c.volumeID {
		return nil, errors.New("cipher: ExportWriter needs the keyring of this volume")
	}
	w, err := kr.addWriter(scope, label)
	if err != nil {
		return nil, err
	}
	return &WriterCredential{
		volumeID: c.volumeID, Encryption: c.Encryption, SSE: c.SSE, SSEKMSKeyID: c.SSEKMSKeyID,
		writer: w.id, label: w.label, scope: w.scope,
		nameSecret: bytes.Clone(kr.nameSecret), public: w.priv.PublicKey().Bytes(), auth: bytes.Clone(w.auth),
	}, nil
}

// writerJSON is a writer key in the keyring plaintext. epochs, present
// once revoked, is base64url of (epoch ID | SHA-256 of its epoch object)*
// sorted by epoch ID.
type writerJSON struct {
	ID        string `json:"id"`
	Label     string `json:"label,omitempty"`
	Private   string `json:"private"`
	Auth      string `json:"auth"`
	Scope     string `json:"scope"`
	Revoked   bool   `json:"revoked,omitempty"`
	RevokedAt int64  `json:"revoked_at,omitempty"`
	Epochs    string `json:"epochs,omitempty"`
}

const knownEpochSize = len(EpochID{}) + sha256.Size

// marshalWriters encodes the writer keys sorted by ID (deterministic);
// nil without writers, so a keyring without them encodes as before. The
// caller holds k.mu.
func (k *Keyring) marshalWriters() []writerJSON {
	var out []writerJSON
	for _, w := range k.writers {
		j := writerJSON{
			ID: w.id.String(), Label: w.label, Private: b64.EncodeToString(w.seed),
			Auth: b64.EncodeToString(w.auth), Scope: w.scope, Revoked: w.revoked, RevokedAt: w.revokedAt,
		}
		if w.revoked {
			ids := make([]EpochID, 0, len(w.known))
			for e := range w.known {
				ids = append(ids, e)
			}
			slices.SortFunc(ids, func(a, b EpochID) int { return bytes.Compare(a[:], b[:]) })
			var rec []byte
			for _, e := range ids {
				d := w.known[e]
				rec = append(append(rec, e[:]...), d[:]...)
			}
			j.Epochs = b64.EncodeToString(rec)
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b writerJSON) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// unmarshalWriters decodes the writer keys of an authenticated keyring,
// field by field.
func unmarshalWriters(js []writerJSON) (map[WriterID]*writerKey, error) {
	if len(js) == 0 {
		return nil, nil
	}
	if len(js) > writersMax {
		return nil, fmt.Errorf("keyring: %d writer keys", len(js))
	}
	out := make(map[WriterID]*writerKey, len(js))
	for _, j := range js {
		id, err := ParseWriterID(j.ID)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("keyring: writer %s listed twice", id)
		}
		seed, err := decodeFixed(j.Private, writerSeedSize)
		if err != nil {
			return nil, fmt.Errorf("keyring writer %s private key: %w", id, err)
		}
		w, err := newWriterKey(id, seed)
		if err != nil {
			return nil, err
		}
		if w.auth, err = decodeFixed(j.Auth, keySize); err != nil {
			return nil, fmt.Errorf("keyring writer %s auth secret: %w", id, err)
		}
		if err := checkScope(j.Scope); err != nil {
			return nil, fmt.Errorf("keyring writer %s: %w", id, err)
		}
		if err := checkLabel(j.Label); err != nil {
			return nil, fmt.Errorf("keyring writer %s: %w", id, err)
		}
		w.scope, w.label, w.revoked, w.revokedAt = j.Scope, j.Label, j.Revoked, j.RevokedAt
		if !j.Revoked && (j.Epochs != "" || j.RevokedAt != 0) {
			return nil, fmt.Errorf("keyring writer %s: epochs or a revocation time on a writer not revoked", id)
		}
		if j.Revoked {
			rec, err := b64.DecodeString(j.Epochs)
			if err != nil || len(rec)%knownEpochSize != 0 || len(rec)/knownEpochSize > epochsKnownMax {
				return nil, fmt.Errorf("keyring writer %s: malformed epochs", id)
			}
			w.known = map[EpochID][32]byte{}
			var prev []byte
			for ; len(rec) > 0; rec = rec[knownEpochSize:] {
				e := rec[:len(EpochID{})]
				if prev != nil && bytes.Compare(prev, e) >= 0 {
					return nil, fmt.Errorf("keyring writer %s: epochs not strictly sorted", id)
				}
				prev = e
				w.known[EpochID(e)] = [32]byte(rec[len(EpochID{}):knownEpochSize])
			}
		}
		out[id] = w
	}
	return out, nil
}

// AdoptWriters makes k's writer keys those of newer, the keyring of the
// same volume opened from a later version of its config (a running mount
// re-reading it, beside AdoptGenerations): writers added since become
// readable, revocations apply from now on. It refuses a rollback: a
// writer k has revoked that newer lacks, holds unrevoked, or revoked with
// other kept epochs, or a writer whose keys changed (an older config put
// back must not undo a revocation). changed reports whether anything
// changed; the caller then drops the epochs it cached.
func (k *Keyring) AdoptWriters(newer *Keyring) (changed bool, err error) {
	if newer == k {
		return false, nil
	}
	if newer.volumeID != k.volumeID {
		return false, errors.New("the newer keyring is another volume's")
	}
	newer.mu.RLock()
	next := make(map[WriterID]*writerKey, len(newer.writers))
	for id, w := range newer.writers {
		next[id] = w
	}
	newer.mu.RUnlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, old := range k.writers {
		w, ok := next[id]
		switch {
		case !ok && old.revoked:
			return false, fmt.Errorf("writer %s, revoked, is gone from the config: an older config was put back", id)
		case !ok:
			return false, fmt.Errorf("writer %s is gone from the config", id)
		case !hmac.Equal(w.seed, old.seed) || !hmac.Equal(w.auth, old.auth) || w.scope != old.scope:
			return false, fmt.Errorf("writer %s changed", id)
		case old.revoked && (!w.revoked || !sameEpochs(w.known, old.known)):
			return false, fmt.Errorf("writer %s is revoked here and not so in the config: an older config was put back", id)
		}
		if w.revoked != old.revoked || w.label != old.label {
			changed = true
		}
	}
	if len(next) != len(k.writers) {
		changed = true
	}
	if changed {
		k.writers = next
	}
	return changed, nil
}

func sameEpochs(a, b map[EpochID][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for e, d := range a {
		if b[e] != d {
			return false
		}
	}
	return true
}
