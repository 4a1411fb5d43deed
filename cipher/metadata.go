package cipher

import (
	gocipher "crypto/cipher"
	"encoding/binary"
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
	MetaName    = "coffer-name" // only for hashed long names; set by the caller
)

const (
	metaVersion1 = "1"
	dekAADText   = "coffer dek v1"
	wrappedSize  = sealedOverhead + keySize
	sealedAttrSz = sealedOverhead + attrSize
)

// dekAAD = "coffer dek v1" | volume ID | generation | file ID.
func dekAAD(v VolumeID, gen uint32, f FileID) []byte {
	aad := make([]byte, 0, len(dekAADText)+len(v)+4+len(f))
	aad = append(aad, dekAADText...)
	aad = append(aad, v[:]...)
	aad = binary.BigEndian.AppendUint32(aad, gen)
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
// of an object at canonical path with attributes a. The DEK is wrapped under
// the current generation, whatever generation o came from; the caller adds
// coffer-name for hashed long names.
func (k *Keyring) SealMetadata(o *ObjectKey, path string, a Attr) (map[string]string, error) {
	gen, wrapped, err := k.wrapDEK(o)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		MetaVersion: metaVersion1,
		MetaFileID:  b64.EncodeToString(o.fileID[:]),
		MetaKEK:     strconv.FormatUint(uint64(gen), 10),
		MetaDEK:     b64.EncodeToString(wrapped),
		MetaAttr:    b64.EncodeToString(o.sealAttr(k.volumeID, path, a)),
	}, nil
}

// OpenMetadata unwraps the DEK and opens the attributes of an object stored
// at canonical path. Errors wrap ErrBadMetadata or ErrAuth. The body's
// header must still be checked against the key (ObjectKey.CheckHeader, or
// implicitly by every chunk's AAD).
func (k *Keyring) OpenMetadata(meta map[string]string, path string) (*ObjectKey, Attr, error) {
	o, err := k.OpenObjectKey(meta)
	if err != nil {
		return nil, Attr{}, err
	}
	sealed, err := metaBytes(meta, MetaAttr, sealedAttrSz)
	if err != nil {
		return nil, Attr{}, err
	}
	a, err := o.openAttr(k.volumeID, path, sealed)
	if err != nil {
		return nil, Attr{}, err
	}
	return o, a, nil
}

// OpenObjectKey unwraps the DEK alone, for work that needs the body but not
// the attributes (fsck, rotation).
func (k *Keyring) OpenObjectKey(meta map[string]string) (*ObjectKey, error) {
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
// the sealed attributes included, is kept as it is.
func (k *Keyring) RewrapMetadata(meta map[string]string) (map[string]string, error) {
	o, err := k.OpenObjectKey(meta)
	if err != nil {
		return nil, err
	}
	gen, wrapped, err := k.wrapDEK(o)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(meta)
	out[MetaKEK] = strconv.FormatUint(uint64(gen), 10)
	out[MetaDEK] = b64.EncodeToString(wrapped)
	return out, nil
}

// MetadataGeneration is the KEK generation an object's DEK is wrapped
// under, read without unwrapping (to find objects rotation has not reached).
func MetadataGeneration(meta map[string]string) (uint32, error) {
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
