package cipher

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"sort"
	"strings"
)

// Hard links (DESIGN.md §3). A file with a second name becomes an inode
// object whose sealed record holds its attributes and the set of live link
// IDs; every name is a link object whose sealed record names the inode and
// carries one link ID.

// IDSize is the size of inode and link IDs.
const IDSize = 16

// InodeID names an inode object (.coffer/inodes/<hex inode ID>); drawn at
// the first link of a file and kept for its life.
type InodeID [IDSize]byte

// LinkID tells one name of an inode from the others.
type LinkID [IDSize]byte

// NewInodeID draws a random inode ID.
func NewInodeID() InodeID {
	var id InodeID
	rand.Read(id[:])
	return id
}

// NewLinkID draws a random link ID.
func NewLinkID() LinkID {
	var id LinkID
	rand.Read(id[:])
	return id
}

// String is the lower-case hex form, the inode object's name.
func (i InodeID) String() string { return hex.EncodeToString(i[:]) }

// String is the lower-case hex form.
func (l LinkID) String() string { return hex.EncodeToString(l[:]) }

// ParseInodeID reads the name of an inode object (exactly 32 lower-case hex
// digits, as String writes it).
func ParseInodeID(s string) (InodeID, error) {
	var id InodeID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != IDSize || hex.EncodeToString(b) != s {
		return id, fmt.Errorf("%w: %q is not an inode ID", ErrBadMetadata, s)
	}
	copy(id[:], b)
	return id, nil
}

// Link is what a link object holds: the inode it names and its own link ID.
type Link struct {
	Inode InodeID
	ID    LinkID
}

// Inode is what an inode object's record holds: the file's attributes and
// the live link IDs. nlink is Links.Len().
type Inode struct {
	Attr  Attr
	Links LinkSet
}

// LinkSet is an immutable set of link IDs, held sorted in its encoding (so
// Inode stays comparable with ==). The zero value is the empty set.
type LinkSet struct {
	enc string // IDSize-byte IDs, strictly increasing
}

const linkCountMax = 1<<16 - 1 // what the u16 count holds

// Len is the number of links (st_nlink).
func (s LinkSet) Len() int { return len(s.enc) / IDSize }

func (s LinkSet) at(i int) string { return s.enc[i*IDSize : (i+1)*IDSize] }

// search is the index of id, or where it would go.
func (s LinkSet) search(id LinkID) (int, bool) {
	key := string(id[:])
	i := sort.Search(s.Len(), func(i int) bool { return s.at(i) >= key })
	return i, i < s.Len() && s.at(i) == key
}

// Has reports whether id is live.
func (s LinkSet) Has(id LinkID) bool {
	_, ok := s.search(id)
	return ok
}

// With returns s with id added (s itself when it is already there).
func (s LinkSet) With(id LinkID) LinkSet {
	i, ok := s.search(id)
	if ok {
		return s
	}
	return LinkSet{enc: s.enc[:i*IDSize] + string(id[:]) + s.enc[i*IDSize:]}
}

// Without returns s with id removed (s itself when it is not there).
func (s LinkSet) Without(id LinkID) LinkSet {
	i, ok := s.search(id)
	if !ok {
		return s
	}
	return LinkSet{enc: s.enc[:i*IDSize] + s.enc[(i+1)*IDSize:]}
}

// All yields the IDs in increasing order.
func (s LinkSet) All() iter.Seq[LinkID] {
	return func(yield func(LinkID) bool) {
		for i := range s.Len() {
			var id LinkID
			copy(id[:], s.at(i))
			if !yield(id) {
				return
			}
		}
	}
}

// String lists the IDs in hex (they are not secret, but long).
func (s LinkSet) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for id := range s.All() {
		if b.Len() > 1 {
			b.WriteByte(' ')
		}
		b.WriteString(id.String())
	}
	b.WriteByte('}')
	return b.String()
}

// parseLinkSet reads count u16 and the IDs from r: at least one, strictly
// increasing.
func parseLinkSet(r *recordReader) (LinkSet, error) {
	count := int(r.u16())
	ids := r.bytes(count * IDSize)
	if r.short {
		return LinkSet{}, fmt.Errorf("%w: record ends inside its %d link IDs", ErrBadMetadata, count)
	}
	if count == 0 {
		return LinkSet{}, fmt.Errorf("%w: an inode without links", ErrBadMetadata)
	}
	s := LinkSet{enc: string(ids)}
	for i := 1; i < count; i++ {
		if s.at(i) <= s.at(i-1) {
			return LinkSet{}, fmt.Errorf("%w: link IDs not strictly sorted at %d", ErrBadMetadata, i+1)
		}
	}
	return s, nil
}

func (s LinkSet) appendTo(b []byte) []byte {
	b = append(b, byte(s.Len()>>8), byte(s.Len()))
	return append(b, s.enc...)
}
