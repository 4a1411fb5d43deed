package cipher

import (
	"encoding/binary"
	"fmt"
	"iter"
	"strings"
)

// Extended attributes live in the sealed attribute record (DESIGN.md §3):
// only the user namespace, names strictly sorted and unique, each entry
// name length u8 | name | value length u16 | value.

// XattrPrefix is the namespace coffer stores; security.*, trusted.* and
// system.* are refused with ErrXattrNamespace.
const XattrPrefix = "user."

const (
	xattrNameMax  = 255       // XATTR_NAME_MAX, and what a u8 length holds
	xattrValueMax = 1<<16 - 1 // what a u16 length holds
	xattrCountMax = 1<<16 - 1 // what the u16 count holds
)

// Xattrs is an immutable set of user.* extended attributes. It holds its
// canonical encoding, so an Attr stays comparable with == and a copied Attr
// never shares anything mutable. The zero value is the empty set.
type Xattrs struct {
	enc string // (name len u8 | name | value len u16 | value)*, names sorted
	n   int
}

// checkXattrName applies the rules every stored name obeys, on the way in
// and on the way out.
func checkXattrName(name string) error {
	switch {
	case !strings.HasPrefix(name, XattrPrefix):
		return fmt.Errorf("%w: %q", ErrXattrNamespace, name)
	case len(name) == len(XattrPrefix):
		return fmt.Errorf("%w: empty name after %q", ErrXattrName, XattrPrefix)
	case len(name) > xattrNameMax:
		return fmt.Errorf("%w: %d bytes (XATTR_NAME_MAX is %d)", ErrXattrName, len(name), xattrNameMax)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrXattrName)
	}
	return nil
}

// Len is the number of attributes.
func (x Xattrs) Len() int { return x.n }

// All yields every attribute in name order. The value slices are fresh
// copies.
func (x Xattrs) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for rest := x.enc; rest != ""; {
			name, value, next := nextXattr(rest)
			if !yield(name, []byte(value)) {
				return
			}
			rest = next
		}
	}
}

// Get returns the value of name.
func (x Xattrs) Get(name string) ([]byte, bool) {
	for rest := x.enc; rest != ""; {
		n, value, next := nextXattr(rest)
		if n == name {
			return []byte(value), true
		}
		rest = next
	}
	return nil, false
}

// With returns x with name set to value (added or replaced). A name outside
// user.* is ErrXattrNamespace, an empty, over-long or NUL-carrying one
// ErrXattrName, a value over 65,535 bytes ErrMetadataTooBig. Whether the
// record still fits the metadata budget is known only when it is sealed.
func (x Xattrs) With(name string, value []byte) (Xattrs, error) {
	if err := checkXattrName(name); err != nil {
		return x, err
	}
	if len(value) > xattrValueMax {
		return x, fmt.Errorf("%w: extended attribute value of %d bytes", ErrMetadataTooBig, len(value))
	}
	var b strings.Builder
	b.Grow(len(x.enc) + 3 + len(name) + len(value))
	n, placed := 0, false
	for rest := x.enc; rest != ""; {
		k, v, next := nextXattr(rest)
		rest = next
		if !placed && k >= name {
			appendXattr(&b, name, string(value))
			n, placed = n+1, true
			if k == name {
				continue // replaced
			}
		}
		appendXattr(&b, k, v)
		n++
	}
	if !placed {
		appendXattr(&b, name, string(value))
		n++
	}
	if n > xattrCountMax {
		return x, fmt.Errorf("%w: more than %d extended attributes", ErrMetadataTooBig, xattrCountMax)
	}
	return Xattrs{enc: b.String(), n: n}, nil
}

// Without returns x without name (x itself when name is not set).
func (x Xattrs) Without(name string) Xattrs {
	var b strings.Builder
	n := 0
	for rest := x.enc; rest != ""; {
		k, v, next := nextXattr(rest)
		if k != name {
			appendXattr(&b, k, v)
			n++
		}
		rest = next
	}
	if n == x.n {
		return x
	}
	return Xattrs{enc: b.String(), n: n}
}

func appendXattr(b *strings.Builder, name, value string) {
	b.WriteByte(byte(len(name)))
	b.WriteString(name)
	b.WriteByte(byte(len(value) >> 8))
	b.WriteByte(byte(len(value)))
	b.WriteString(value)
}

// nextXattr splits the first entry off a canonical encoding (which
// parseXattrs or With made, so it is well formed).
func nextXattr(enc string) (name, value, rest string) {
	nl := int(enc[0])
	name = enc[1 : 1+nl]
	vl := int(enc[1+nl])<<8 | int(enc[2+nl])
	value = enc[3+nl : 3+nl+vl]
	return name, value, enc[3+nl+vl:]
}

// parseXattrs reads count u16 and the entries from r, checking every rule:
// user.* names, strictly increasing, lengths inside the record.
func parseXattrs(r *recordReader) (Xattrs, error) {
	count := int(r.u16())
	start := r.off
	prev := ""
	for i := range count {
		name := string(r.bytes(int(r.u8())))
		r.bytes(int(r.u16()))
		if r.short {
			return Xattrs{}, fmt.Errorf("%w: record ends inside extended attribute %d of %d", ErrBadMetadata, i+1, count)
		}
		if err := checkXattrName(name); err != nil {
			return Xattrs{}, fmt.Errorf("%w: stored extended attribute: %v", ErrBadMetadata, err)
		}
		if i > 0 && name <= prev {
			return Xattrs{}, fmt.Errorf("%w: extended attributes not strictly sorted at %d", ErrBadMetadata, i+1)
		}
		prev = name
	}
	if r.short {
		return Xattrs{}, fmt.Errorf("%w: record ends before its extended attributes", ErrBadMetadata)
	}
	if count == 0 {
		return Xattrs{}, nil
	}
	return Xattrs{enc: string(r.b[start:r.off]), n: count}, nil
}

func (x Xattrs) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(x.n))
	return append(b, x.enc...)
}
