package cipher

import (
	gocipher "crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// User metadata names (DESIGN.md §3), without the x-amz-meta- prefix.
const (
	MetaVersion = "coffer-v"
	MetaFileID  = "coffer-fid"
	MetaKEK     = "coffer-kek"
	MetaDEK     = "coffer-dek"
	MetaAttr    = "coffer-attr"
	MetaName    = "coffer-name" // the full encoding of a hashed long name
	MetaInode   = "coffer-ino"  // an inode object's inode ID
)

// MetadataBudget is what all coffer-* user metadata of one object may take,
// names and values counted as S3 counts its 2 KiB limit (DESIGN.md §3).
// Sealing more is ErrMetadataTooBig.
const MetadataBudget = 1800

const (
	metaVersion1 = "1"
	dekAADText   = "coffer dek v1"
	wrappedSize  = sealedOverhead + keySize
	// genDigitsMax is the widest coffer-kek (2^32-1): the budget counts it
	// at that width, so rotation never pushes an object over.
	genDigitsMax = 10

	attrAADText  = "coffer attr v2"
	inodeAADText = "coffer inode attr v2"
)

// dekAAD = "coffer dek v1" | volume ID | generation | file ID.
func dekAAD(v VolumeID, gen uint32, f FileID) []byte {
	aad := make([]byte, 0, len(dekAADText)+len(v)+4+len(f))
	aad = append(aad, dekAADText...)
	aad = append(aad, v[:]...)
	aad = binary.BigEndian.AppendUint32(aad, gen)
	return append(aad, f[:]...)
}

// pathAAD = "coffer attr v2" | volume ID | file ID | canonical path: the
// AAD of attribute and link records, so a record copied to another volume,
// object or path does not open.
func pathAAD(v VolumeID, f FileID, path string) []byte {
	aad := make([]byte, 0, len(attrAADText)+len(v)+len(f)+len(path))
	aad = append(aad, attrAADText...)
	aad = append(aad, v[:]...)
	aad = append(aad, f[:]...)
	return append(aad, path...)
}

// inodeAAD = "coffer inode attr v2" | volume ID | inode ID | file ID.
func inodeAAD(v VolumeID, id InodeID, f FileID) []byte {
	aad := make([]byte, 0, len(inodeAADText)+len(v)+len(id)+len(f))
	aad = append(aad, inodeAADText...)
	aad = append(aad, v[:]...)
	aad = append(aad, id[:]...)
	return append(aad, f[:]...)
}

// dekWrapAEAD is keyed by HKDF(KEK_gen, salt = file ID): a key per object,
// so no AES-GCM key ever comes near its random-nonce limit.
func (k *Keyring) dekWrapAEAD(gen uint32, f FileID) (gocipher.AEAD, error) {
	kek, ok := k.kek(gen)
	if !ok {
		return nil, fmt.Errorf("%w: KEK generation %d is not in the keyring", ErrBadMetadata, gen)
	}
	return newAEAD(deriveKey(kek, f[:], infoDEKWrap)), nil
}

// wrapDEK wraps o's DEK under the current generation.
func (k *Keyring) wrapDEK(o *ObjectKey) (gen uint32, wrapped []byte, err error) {
	gen = k.CurrentGeneration()
	aead, err := k.dekWrapAEAD(gen, o.fileID)
	if err != nil {
		return 0, nil, err
	}
	return gen, aead.Seal(nil, nil, o.dek[:], dekAAD(k.volumeID, gen, o.fileID)), nil
}

func (k *Keyring) unwrapDEK(f FileID, gen uint32, wrapped []byte) (*ObjectKey, error) {
	aead, err := k.dekWrapAEAD(gen, f)
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, nil, wrapped, dekAAD(k.volumeID, gen, f))
	if err != nil {
		return nil, fmt.Errorf("%w: DEK does not unwrap (generation %d)", ErrAuth, gen)
	}
	return newObjectKey(f, dek, gen), nil
}

// SealMetadata returns the coffer-* metadata (without the x-amz-meta- prefix)
// of an object at canonical path with attributes a: a file, directory
// marker, symlink or special file. The DEK is wrapped under the current
// generation, whatever generation o came from; coffer-name is added when
// the path's last segment is a hashed long name. ErrMetadataTooBig when it
// all exceeds MetadataBudget (the extended attributes are what grows).
func (k *Keyring) SealMetadata(o *ObjectKey, path string, a Attr) (map[string]string, error) {
	return k.sealAtPath(o, path, a.encode())
}

// SealLinkMetadata returns the metadata of a link object at canonical path
// (a name of an inode). o is the link object's own key; like any object's,
// its DEK is wrapped so rotation treats it alike.
func (k *Keyring) SealLinkMetadata(o *ObjectKey, path string, l Link) (map[string]string, error) {
	return k.sealAtPath(o, path, l.encode())
}

// sealAtPath seals under o's own origin: a change of a writer's object by
// the full key keeps it (writer.go).
func (k *Keyring) sealAtPath(o *ObjectKey, path string, record []byte) (map[string]string, error) {
	return k.sealAtPathAs(o, o.origin, path, record)
}

func (k *Keyring) sealAtPathAs(o *ObjectKey, origin Origin, path string, record []byte) (map[string]string, error) {
	if origin.IsWriter() {
		if record[0] == recordLink {
			return nil, fmt.Errorf("%w: a link object is the full key's: seal it with a fresh key", ErrWriterOrigin)
		}
		w, err := k.usableWriter(origin, nil)
		if err != nil {
			return nil, err
		}
		if err := checkWriterPath(path, w.scope); err != nil {
			return nil, fmt.Errorf("%w (adopt it first)", err)
		}
	}
	long, err := k.longName(path)
	if err != nil {
		return nil, err
	}
	meta, err := k.baseMetadataAs(o, origin)
	if err != nil {
		return nil, err
	}
	meta[MetaAttr] = b64.EncodeToString(o.attr.Seal(nil, nil, record, pathAAD(k.volumeID, o.fileID, path)))
	if long != "" {
		meta[MetaName] = long
	}
	return meta, checkBudget(meta)
}

// SealInodeMetadata returns the metadata of inode object id, whose body is
// o's. ErrMetadataTooBig when the record with its links and extended
// attributes exceeds MetadataBudget (EMLINK when a link added them).
func (k *Keyring) SealInodeMetadata(o *ObjectKey, id InodeID, in Inode) (map[string]string, error) {
	switch n := in.Links.Len(); {
	case o.origin.IsWriter():
		return nil, fmt.Errorf("%w: a writer's object becomes an inode only once adopted", ErrWriterOrigin)
	case n == 0:
		return nil, errors.New("cipher: an inode without links is removed, not sealed")
	case n > linkCountMax:
		return nil, fmt.Errorf("%w: %d links", ErrMetadataTooBig, n)
	}
	meta, err := k.baseMetadata(o)
	if err != nil {
		return nil, err
	}
	meta[MetaInode] = b64.EncodeToString(id[:])
	meta[MetaAttr] = b64.EncodeToString(o.attr.Seal(nil, nil, in.encode(), inodeAAD(k.volumeID, id, o.fileID)))
	return meta, checkBudget(meta)
}

// baseMetadata is what every object carries: version, file ID and the
// wrapped DEK.
func (k *Keyring) baseMetadata(o *ObjectKey) (map[string]string, error) {
	return k.baseMetadataAs(o, o.origin)
}

// baseMetadataAs adds coffer-origin for a writer's object, whose DEK the
// KEK then wraps bound to it (writer.go).
func (k *Keyring) baseMetadataAs(o *ObjectKey, origin Origin) (map[string]string, error) {
	gen, wrapped, err := k.wrapDEKAs(o, origin)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{
		MetaVersion: metaVersion1,
		MetaFileID:  b64.EncodeToString(o.fileID[:]),
		MetaKEK:     strconv.FormatUint(uint64(gen), 10),
		MetaDEK:     b64.EncodeToString(wrapped),
	}
	if origin.IsWriter() {
		meta[MetaOrigin] = b64.EncodeToString(origin.bytes())
	}
	return meta, nil
}

func checkBudget(meta map[string]string) error {
	n := genDigitsMax - len(meta[MetaKEK])
	if _, ok := meta[MetaKEK]; !ok {
		n += len(MetaKEK) // a writer's object: rotation adds coffer-kek
	}
	for name, v := range meta {
		n += len(name) + len(v)
	}
	if n > MetadataBudget {
		return fmt.Errorf("%w: %d bytes", ErrMetadataTooBig, n)
	}
	return nil
}

// longName is the coffer-name of the object at canonical path: the full
// encoding of its last segment when that is hashed, else "".
func (k *Keyring) longName(path string) (string, error) { return longNameOf(k.names, path) }

func longNameOf(names *Names, path string) (string, error) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", fmt.Errorf("%w: %q is not a canonical path", ErrBadName, path)
	}
	parent, name := path[:i], path[i+1:]
	if parent == "" {
		parent = "/"
	}
	if path == "/" || !mayBeLong(name) {
		return "", nil
	}
	_, long, err := names.EncryptSegment(parent, name)
	return long, err
}

// OpenMetadata unwraps the DEK and opens the attributes of a full-key
// object stored at canonical path. A link object is ErrIsLink (open it
// with OpenLink), a writer's object ErrWriterOrigin (open it with
// OpenAnyMetadata); other errors wrap ErrBadMetadata or ErrAuth. The body's header must still
// be checked against the key (ObjectKey.CheckHeader, or implicitly by every
// chunk's AAD).
func (k *Keyring) OpenMetadata(meta map[string]string, path string) (*ObjectKey, Attr, error) {
	o, plain, err := k.openAtPath(meta, path)
	if err != nil {
		return nil, Attr{}, err
	}
	a, err := decodeAttr(plain)
	if err != nil {
		return nil, Attr{}, err
	}
	return o, a, nil
}

// OpenLink opens the record of a link object stored at canonical path
// (one OpenMetadata refused with ErrIsLink). Follow it with FollowLink.
func (k *Keyring) OpenLink(meta map[string]string, path string) (*ObjectKey, Link, error) {
	if err := refuseWriterOrigin(meta, "link"); err != nil {
		return nil, Link{}, err
	}
	o, plain, err := k.openAtPath(meta, path)
	if err != nil {
		return nil, Link{}, err
	}
	l, err := decodeLink(plain)
	if err != nil {
		return nil, Link{}, err
	}
	return o, l, nil
}

// FollowLink opens the metadata of the inode object l names and checks that
// l is one of its live links; a link the inode no longer lists is
// ErrStaleLink. The key opens the inode's body.
func (k *Keyring) FollowLink(inodeMeta map[string]string, l Link) (*ObjectKey, Inode, error) {
	o, in, err := k.OpenInode(inodeMeta, l.Inode)
	if err != nil {
		return nil, Inode{}, err
	}
	if !in.Links.Has(l.ID) {
		return nil, Inode{}, fmt.Errorf("%w: link %s of inode %s", ErrStaleLink, l.ID, l.Inode)
	}
	return o, in, nil
}

// OpenInode opens the metadata of inode object id without a link at hand
// (fsck: id is the object's name, parsed with ParseInodeID). Its coffer-ino
// must name id.
func (k *Keyring) OpenInode(meta map[string]string, id InodeID) (*ObjectKey, Inode, error) {
	if err := refuseWriterOrigin(meta, "inode"); err != nil {
		return nil, Inode{}, err
	}
	claimed, err := metaBytes(meta, MetaInode, IDSize)
	if err != nil {
		return nil, Inode{}, err
	}
	if InodeID(claimed) != id {
		return nil, Inode{}, fmt.Errorf("%w: inode object %s claims to be inode %s", ErrAuth, id, InodeID(claimed))
	}
	o, err := k.OpenObjectKey(meta)
	if err != nil {
		return nil, Inode{}, err
	}
	sealed, err := metaSealed(meta)
	if err != nil {
		return nil, Inode{}, err
	}
	plain, err := o.attr.Open(nil, nil, sealed, inodeAAD(k.volumeID, id, o.fileID))
	if err != nil {
		return nil, Inode{}, fmt.Errorf("%w: attributes of inode %s do not open", ErrAuth, id)
	}
	in, err := decodeInode(plain)
	if err != nil {
		return nil, Inode{}, err
	}
	return o, in, nil
}

// openAtPath unwraps the DEK and opens the record bound to path.
func (k *Keyring) openAtPath(meta map[string]string, path string) (*ObjectKey, []byte, error) {
	o, err := k.OpenObjectKey(meta)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := metaSealed(meta)
	if err != nil {
		return nil, nil, err
	}
	plain, err := o.attr.Open(nil, nil, sealed, pathAAD(k.volumeID, o.fileID, path))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: attributes do not open at %q", ErrAuth, path)
	}
	return o, plain, nil
}

// metaSealed decodes coffer-attr: a sealed record no larger than the budget.
func metaSealed(meta map[string]string) ([]byte, error) {
	s := metaGet(meta, MetaAttr)
	if len(s) > MetadataBudget {
		return nil, fmt.Errorf("%w: %s: %d bytes", ErrBadMetadata, MetaAttr, len(s))
	}
	b, err := b64.DecodeString(s)
	if err != nil || len(b) < sealedOverhead+linkRecordSize {
		return nil, fmt.Errorf("%w: %s: not a sealed record", ErrBadMetadata, MetaAttr)
	}
	return b, nil
}

// refuseWriterOrigin: links and inodes are the full key's alone (DESIGN.md
// §2); one that carries a writer origin is refused, not opened another way.
func refuseWriterOrigin(meta map[string]string, what string) error {
	if metaGet(meta, MetaOrigin) != "" {
		return fmt.Errorf("%w: a writer-origin %s", ErrWriterRefused, what)
	}
	return nil
}

// OpenObjectKey unwraps the DEK alone, for work that needs the body but not
// the attributes (fsck, rotation). A writer's object is ErrWriterOrigin
// (OpenAnyObjectKey opens it).
func (k *Keyring) OpenObjectKey(meta map[string]string) (*ObjectKey, error) {
	if metaGet(meta, MetaOrigin) != "" {
		return nil, fmt.Errorf("%w: open it with OpenAnyObjectKey", ErrWriterOrigin)
	}
	if v := metaGet(meta, MetaVersion); v != metaVersion1 {
		return nil, fmt.Errorf("%w: %s is %q, want %q", ErrBadMetadata, MetaVersion, v, metaVersion1)
	}
	fid, err := metaBytes(meta, MetaFileID, FileIDSize)
	if err != nil {
		return nil, err
	}
	gen, err := parseGeneration(metaGet(meta, MetaKEK))
	if err != nil {
		return nil, err
	}
	wrapped, err := metaBytes(meta, MetaDEK, wrappedSize)
	if err != nil {
		return nil, err
	}
	return k.unwrapDEK(FileID(fid), gen, wrapped)
}

// RewrapMetadata returns meta with the DEK rewrapped under the current
// generation (what `coffer rotate` copies onto each object). Everything else,
// the sealed attributes included, is kept as it is. A writer's object is
// ErrWriterOrigin: RewrapAnyMetadata rewraps it.
func (k *Keyring) RewrapMetadata(meta map[string]string) (map[string]string, error) {
	o, err := k.OpenObjectKey(meta)
	if err != nil {
		return nil, err
	}
	return k.rewrap(meta, o)
}

// RewrapObjectKey is RewrapMetadata for a caller that holds the object's
// key already (a mount that just uploaded it): nothing is unwrapped, so it
// works even once o's generation left the keyring. meta must be o's
// (same file ID).
func (k *Keyring) RewrapObjectKey(meta map[string]string, o *ObjectKey) (map[string]string, error) {
	fid, err := metaBytes(meta, MetaFileID, FileIDSize)
	if err != nil {
		return nil, err
	}
	if FileID(fid) != o.fileID {
		return nil, fmt.Errorf("%w: metadata of file %x, key of file %s", ErrBadMetadata, fid, o.fileID)
	}
	return k.rewrap(meta, o)
}

// rewrap rewraps o's DEK into meta under the current generation, bound
// to o's origin (a writer's object keeps it, writer.go).
func (k *Keyring) rewrap(meta map[string]string, o *ObjectKey) (map[string]string, error) {
	gen, wrapped, err := k.wrapDEKAs(o, o.origin)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(meta)
	out[MetaKEK] = strconv.FormatUint(uint64(gen), 10)
	out[MetaDEK] = b64.EncodeToString(wrapped)
	return out, nil
}

// MetadataGeneration is the KEK generation an object's DEK is wrapped
// under, read without unwrapping (to find objects rotation has not reached);
// 0 for a writer's object whose DEK no KEK wraps yet (RewrapAnyMetadata
// rewraps it).
func MetadataGeneration(meta map[string]string) (uint32, error) {
	if metaGet(meta, MetaKEK) == "" && metaGet(meta, MetaOrigin) != "" {
		return 0, nil
	}
	return parseGeneration(metaGet(meta, MetaKEK))
}

// parseGeneration accepts only the canonical decimal form, 1..2^32-1.
func parseGeneration(s string) (uint32, error) {
	g, err := strconv.ParseUint(s, 10, 32)
	if err != nil || g == 0 || strconv.FormatUint(g, 10) != s {
		return 0, fmt.Errorf("%w: %s is %q", ErrBadMetadata, MetaKEK, s)
	}
	return uint32(g), nil
}

// metaGet looks name up exactly, then case-insensitively: HTTP header
// names arrive in whatever case the store or SDK chose.
func metaGet(meta map[string]string, name string) string {
	if v, ok := meta[name]; ok {
		return v
	}
	for k, v := range meta {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func metaBytes(meta map[string]string, name string, n int) ([]byte, error) {
	b, err := decodeFixed(metaGet(meta, name), n)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadMetadata, name, err)
	}
	return b, nil
}
