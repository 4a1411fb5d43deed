package cipher

import (
	"encoding/binary"
	"fmt"
)

// Attr is what coffer keeps of an inode's attributes (DESIGN.md §3,
// attributes version 2). It is comparable with ==.
type Attr struct {
	Mode    uint32 // type bits and permissions, as in st_mode
	UID     uint32
	GID     uint32
	AtimeNs int64
	MtimeNs int64
	CtimeNs int64
	Rdev    uint32 // device number of a character or block device, as FUSE carries it
	Changes uint64 // change counter: moves with ctime (DESIGN.md §5 guards on it)
	Xattrs  Xattrs // user.* extended attributes
}

// The sealed records (coffer-attr). The first byte names the record and its
// version, so a record of one kind never decodes as another even where two
// kinds share an AAD (attributes and links both bind the path):
//
//	attributes: 0x02 | fields | xattrs
//	inode:      0x22 | fields | xattrs | link count u16 | link ID*
//	link:       0x12 | inode ID | link ID
//
//	fields = mode u32 | uid u32 | gid u32 | atime i64 | mtime i64 |
//	         ctime i64 (ns) | rdev u32 | change counter u64
//	xattrs = count u16 | (name length u8 | name | value length u16 | value)*
//
// big-endian throughout; xattr names user.*, strictly sorted; link IDs
// strictly sorted, at least one; nothing may follow.
const (
	recordAttr  = 0x02
	recordLink  = 0x12
	recordInode = 0x22

	attrFieldsSize = 4 + 4 + 4 + 8 + 8 + 8 + 4 + 8
	attrMinSize    = 1 + attrFieldsSize + 2 // no xattrs
	linkRecordSize = 1 + IDSize + IDSize
)

func (a Attr) appendFields(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, a.Mode)
	b = binary.BigEndian.AppendUint32(b, a.UID)
	b = binary.BigEndian.AppendUint32(b, a.GID)
	b = binary.BigEndian.AppendUint64(b, uint64(a.AtimeNs))
	b = binary.BigEndian.AppendUint64(b, uint64(a.MtimeNs))
	b = binary.BigEndian.AppendUint64(b, uint64(a.CtimeNs))
	b = binary.BigEndian.AppendUint32(b, a.Rdev)
	b = binary.BigEndian.AppendUint64(b, a.Changes)
	return a.Xattrs.appendTo(b)
}

func (a Attr) encode() []byte {
	b := make([]byte, 0, attrMinSize+len(a.Xattrs.enc))
	return a.appendFields(append(b, recordAttr))
}

func (in Inode) encode() []byte {
	b := make([]byte, 0, attrMinSize+len(in.Attr.Xattrs.enc)+2+len(in.Links.enc))
	b = in.Attr.appendFields(append(b, recordInode))
	return in.Links.appendTo(b)
}

func (l Link) encode() []byte {
	b := make([]byte, 0, linkRecordSize)
	b = append(b, recordLink)
	b = append(b, l.Inode[:]...)
	return append(b, l.ID[:]...)
}

// recordReader reads big-endian fields; reading past the end sets short
// and yields zeros, so a parser checks once per step, not per field.
type recordReader struct {
	b     []byte
	off   int
	short bool
}

func (r *recordReader) bytes(n int) []byte {
	if r.short || n > len(r.b)-r.off {
		r.short = true
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *recordReader) u8() uint8 {
	if p := r.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *recordReader) u16() uint16 {
	if p := r.bytes(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *recordReader) u32() uint32 {
	if p := r.bytes(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *recordReader) u64() uint64 {
	if p := r.bytes(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// end checks that nothing follows the record.
func (r *recordReader) end(what string) error {
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d bytes follow the %s record", ErrBadMetadata, len(r.b)-r.off, what)
	}
	return nil
}

func parseAttrFields(r *recordReader) (Attr, error) {
	a := Attr{
		Mode: r.u32(), UID: r.u32(), GID: r.u32(),
		AtimeNs: int64(r.u64()), MtimeNs: int64(r.u64()), CtimeNs: int64(r.u64()),
		Rdev: r.u32(), Changes: r.u64(),
	}
	if r.short {
		return Attr{}, fmt.Errorf("%w: attribute record of %d bytes is too short", ErrBadMetadata, len(r.b))
	}
	var err error
	a.Xattrs, err = parseXattrs(r)
	return a, err
}

func decodeAttr(plain []byte) (Attr, error) {
	if err := wantKind(plain, recordAttr); err != nil {
		return Attr{}, err
	}
	r := &recordReader{b: plain, off: 1}
	a, err := parseAttrFields(r)
	if err != nil {
		return Attr{}, err
	}
	if err := r.end("attribute"); err != nil {
		return Attr{}, err
	}
	return a, nil
}

func decodeInode(plain []byte) (Inode, error) {
	if err := wantKind(plain, recordInode); err != nil {
		return Inode{}, err
	}
	r := &recordReader{b: plain, off: 1}
	a, err := parseAttrFields(r)
	if err != nil {
		return Inode{}, err
	}
	links, err := parseLinkSet(r)
	if err != nil {
		return Inode{}, err
	}
	if err := r.end("inode"); err != nil {
		return Inode{}, err
	}
	return Inode{Attr: a, Links: links}, nil
}

func decodeLink(plain []byte) (Link, error) {
	if err := wantKind(plain, recordLink); err != nil {
		return Link{}, err
	}
	if len(plain) != linkRecordSize {
		return Link{}, fmt.Errorf("%w: link record of %d bytes, want %d", ErrBadMetadata, len(plain), linkRecordSize)
	}
	var l Link
	copy(l.Inode[:], plain[1:])
	copy(l.ID[:], plain[1+IDSize:])
	return l, nil
}

var recordNames = map[byte]string{recordAttr: "attributes", recordLink: "a link", recordInode: "an inode"}

// wantKind checks the first byte of a record. A link where attributes were
// expected is ErrIsLink (the caller follows it); any other mismatch, an
// unknown kind or an older version is ErrBadMetadata.
func wantKind(plain []byte, want byte) error {
	switch {
	case len(plain) == 0:
		return fmt.Errorf("%w: empty attribute record", ErrBadMetadata)
	case plain[0] == want:
		return nil
	case plain[0] == recordLink && want == recordAttr:
		return ErrIsLink
	case recordNames[plain[0]] != "":
		return fmt.Errorf("%w: the record is %s, not %s", ErrBadMetadata, recordNames[plain[0]], recordNames[want])
	default:
		return fmt.Errorf("%w: attribute record of unknown kind or version 0x%02x", ErrBadMetadata, plain[0])
	}
}
