package cipher

import (
	"encoding/binary"
	"fmt"
)

// Attr is what coffer keeps of a file's inode attributes.
type Attr struct {
	Mode    uint32 // type bits and permissions, as in st_mode
	UID     uint32
	GID     uint32
	MtimeNs int64
}

// The sealed encoding: version | mode | uid | gid | mtime ns, big-endian.
const (
	attrVersion = 1
	attrSize    = 1 + 4 + 4 + 4 + 8
)

func (a Attr) encode() []byte {
	b := make([]byte, attrSize)
	b[0] = attrVersion
	binary.BigEndian.PutUint32(b[1:], a.Mode)
	binary.BigEndian.PutUint32(b[5:], a.UID)
	binary.BigEndian.PutUint32(b[9:], a.GID)
	binary.BigEndian.PutUint64(b[13:], uint64(a.MtimeNs))
	return b
}

func decodeAttr(b []byte) (Attr, error) {
	if len(b) != attrSize || b[0] != attrVersion {
		return Attr{}, fmt.Errorf("%w: attributes are not version %d (%d bytes)", ErrBadMetadata, attrVersion, len(b))
	}
	return Attr{
		Mode:    binary.BigEndian.Uint32(b[1:]),
		UID:     binary.BigEndian.Uint32(b[5:]),
		GID:     binary.BigEndian.Uint32(b[9:]),
		MtimeNs: int64(binary.BigEndian.Uint64(b[13:])),
	}, nil
}

// attrAAD = volume ID | file ID | canonical path: attributes copied to
// another volume, object or path do not open.
func attrAAD(v VolumeID, f FileID, path string) []byte {
	aad := make([]byte, 0, len(v)+len(f)+len(path))
	aad = append(aad, v[:]...)
	aad = append(aad, f[:]...)
	return append(aad, path...)
}

func (o *ObjectKey) sealAttr(v VolumeID, path string, a Attr) []byte {
	return o.attr.Seal(nil, nil, a.encode(), attrAAD(v, o.fileID, path))
}

func (o *ObjectKey) openAttr(v VolumeID, path string, sealed []byte) (Attr, error) {
	plain, err := o.attr.Open(nil, nil, sealed, attrAAD(v, o.fileID, path))
	if err != nil {
		return Attr{}, fmt.Errorf("%w: attributes do not open at %q", ErrAuth, path)
	}
	return decodeAttr(plain)
}
