package cipher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Directory attribute indexes (fs/dirindex.go) are caches a full-key mount
// keeps in the bucket so that a cold listing costs one LIST and one GET.
// Their content is re-authenticated entry by entry by the filesystem; the
// seal here only keeps them private and bound to one directory of one
// volume.
//
//	object name: DirIndexPrefix | hex(HMAC-SHA256(HKDF(name secret, "coffer dir index name"), canonical dir path))
//	body:        "CFD" | 0x01 | generation (uint32 big-endian) | nonce | AES-256-GCM(key, plaintext) | tag
//	key:         HKDF(KEK_generation, salt = the HMAC above, "coffer dir index")
//	AAD:         "coffer dir index v1" | volume ID | generation | canonical dir path
//
// The name secret never rotates, so a directory's index keeps its name
// across rotations; the body key follows the KEK generations, so an index
// sealed under a retired generation no longer opens (ErrAuth) and is
// simply rebuilt.
const (
	infoDirIndexName = "coffer dir index name"
	infoDirIndex     = "coffer dir index"
	dirIndexAADText  = "coffer dir index v1"
	dirIndexMagic    = "CFD\x01"
	dirIndexHeader   = len(dirIndexMagic) + 4

	// DirIndexPrefix is where directory indexes live, under the
	// reserved tree.
	DirIndexPrefix = ".coffer/dirs/"
)

// dirIndexMAC is the HMAC of dir under the index naming key.
func (k *Keyring) dirIndexMAC(dir string) []byte {
	m := hmac.New(sha256.New, deriveKey(k.nameSecret, nil, infoDirIndexName))
	m.Write([]byte(dir))
	return m.Sum(nil)
}

// DirIndexKey is the object key of the index of canonical directory dir.
// It reveals nothing of dir's name.
func (k *Keyring) DirIndexKey(dir string) string {
	return DirIndexPrefix + hex.EncodeToString(k.dirIndexMAC(dir))
}

func dirIndexAAD(v VolumeID, gen uint32, dir string) []byte {
	aad := make([]byte, 0, len(dirIndexAADText)+len(v)+4+len(dir))
	aad = append(aad, dirIndexAADText...)
	aad = append(aad, v[:]...)
	aad = binary.BigEndian.AppendUint32(aad, gen)
	return append(aad, dir...)
}

// SealDirIndex seals the index plaintext of canonical directory dir under
// the current KEK generation.
func (k *Keyring) SealDirIndex(dir string, plain []byte) ([]byte, error) {
	gen := k.CurrentGeneration()
	kek, ok := k.kek(gen)
	if !ok {
		return nil, fmt.Errorf("%w: KEK generation %d is not in the keyring", ErrBadMetadata, gen)
	}
	aead := newAEAD(deriveKey(kek, k.dirIndexMAC(dir), infoDirIndex))
	out := make([]byte, 0, dirIndexHeader+len(plain)+sealedOverhead)
	out = append(out, dirIndexMagic...)
	out = binary.BigEndian.AppendUint32(out, gen)
	return aead.Seal(out, nil, plain, dirIndexAAD(k.volumeID, gen, dir)), nil
}

// OpenDirIndex opens what SealDirIndex sealed for dir. Bytes sealed for
// another directory or volume, under a generation not in the keyring, or
// altered in any way are ErrAuth.
func (k *Keyring) OpenDirIndex(dir string, sealed []byte) ([]byte, error) {
	if len(sealed) < dirIndexHeader+sealedOverhead || string(sealed[:len(dirIndexMagic)]) != dirIndexMagic {
		return nil, fmt.Errorf("%w: not a directory index", ErrAuth)
	}
	gen := binary.BigEndian.Uint32(sealed[len(dirIndexMagic):])
	kek, ok := k.kek(gen)
	if !ok {
		return nil, fmt.Errorf("%w: directory index sealed under KEK generation %d, which is not in the keyring", ErrAuth, gen)
	}
	aead := newAEAD(deriveKey(kek, k.dirIndexMAC(dir), infoDirIndex))
	plain, err := aead.Open(nil, nil, sealed[dirIndexHeader:], dirIndexAAD(k.volumeID, gen, dir))
	if err != nil {
		return nil, fmt.Errorf("%w: directory index does not open", ErrAuth)
	}
	return plain, nil
}
