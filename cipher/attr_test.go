package cipher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// rawXattr is one stored entry, written as is (no checks), to build
// records coffer itself would never write.
type rawXattr struct{ name, value string }

// rawRecord is kind | the fields of a | count | entries; count < 0 means
// len(xs).
func rawRecord(kind byte, a Attr, count int, xs ...rawXattr) []byte {
	a.Xattrs = Xattrs{}
	b := a.appendFields([]byte{kind})
	b = b[:len(b)-2] // the empty set's count
	if count < 0 {
		count = len(xs)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(count))
	for _, x := range xs {
		b = append(b, byte(len(x.name)))
		b = append(b, x.name...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(x.value)))
		b = append(b, x.value...)
	}
	return b
}

// TestAttrRecordLayout spells the version 2 record out field by field
// (DESIGN.md §3); the known-answer vectors pin the same bytes.
func TestAttrRecordLayout(t *testing.T) {
	var want []byte
	want = append(want, 0x02)
	want = binary.BigEndian.AppendUint32(want, testAttr.Mode)
	want = binary.BigEndian.AppendUint32(want, testAttr.UID)
	want = binary.BigEndian.AppendUint32(want, testAttr.GID)
	want = binary.BigEndian.AppendUint64(want, uint64(testAttr.AtimeNs))
	want = binary.BigEndian.AppendUint64(want, uint64(testAttr.MtimeNs))
	want = binary.BigEndian.AppendUint64(want, uint64(testAttr.CtimeNs))
	want = binary.BigEndian.AppendUint32(want, testAttr.Rdev)
	want = binary.BigEndian.AppendUint64(want, testAttr.Changes)
	want = append(want, 0, 3) // three xattrs, sorted by name
	want = append(want, 6)
	want = append(want, "user.a"...)
	want = append(want, 0, 0)
	want = append(want, 8)
	want = append(want, "user.bin"...)
	want = append(want, 0, 2, 0x00, 0xff)
	want = append(want, 14)
	want = append(want, "user.mime_type"...)
	want = append(want, 0, 10)
	want = append(want, "text/plain"...)
	got := testAttr.encode()
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got %x\nwant %x", got, want)
	}
	back, err := decodeAttr(got)
	if err != nil || back != testAttr {
		t.Fatalf("decode: %+v %v", back, err)
	}
	// Negative times (before 1970) and extreme values survive.
	odd := Attr{Mode: ^uint32(0), UID: ^uint32(0), GID: 1, AtimeNs: -1, MtimeNs: -1 << 63, CtimeNs: 1<<63 - 1, Rdev: ^uint32(0), Changes: ^uint64(0)}
	if back, err := decodeAttr(odd.encode()); err != nil || back != odd {
		t.Fatalf("extreme values: %+v %v", back, err)
	}
	if len(odd.encode()) != attrMinSize {
		t.Fatalf("a record without xattrs is %d bytes, want %d", len(odd.encode()), attrMinSize)
	}
}

// TestAttrRecordRejects: every record coffer would not write is refused,
// each for its own reason, after it authenticated (so a bug or a
// key-holder's mistake cannot smuggle in a second reading of the bytes).
func TestAttrRecordRejects(t *testing.T) {
	a := Attr{Mode: 0o100644, MtimeNs: 5}
	good := rawRecord(recordAttr, a, -1, rawXattr{"user.a", "1"}, rawXattr{"user.b", "2"})
	if _, err := decodeAttr(good); err != nil {
		t.Fatalf("the raw builder's good record: %v", err)
	}
	v1 := make([]byte, 21)
	v1[0] = 1
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"empty", nil},
		{"version 1", v1},
		{"unknown kind", append([]byte{0x03}, good[1:]...)},
		{"an inode record", katInode().encode()},
		{"one trailing byte", append(bytes.Clone(good), 0)},
		{"a trailing entry beyond the count", rawRecord(recordAttr, a, 1, rawXattr{"user.a", "1"}, rawXattr{"user.b", "2"})},
		{"count beyond the entries", rawRecord(recordAttr, a, 3, rawXattr{"user.a", "1"}, rawXattr{"user.b", "2"})},
		{"unsorted names", rawRecord(recordAttr, a, -1, rawXattr{"user.b", "2"}, rawXattr{"user.a", "1"})},
		{"a duplicate name", rawRecord(recordAttr, a, -1, rawXattr{"user.a", "1"}, rawXattr{"user.a", "2"})},
		{"a prefix sorted after its extension", rawRecord(recordAttr, a, -1, rawXattr{"user.ab", ""}, rawXattr{"user.a", ""})},
		{"a trusted.* name", rawRecord(recordAttr, a, -1, rawXattr{"trusted.x", "1"})},
		{"a security.* name", rawRecord(recordAttr, a, -1, rawXattr{"security.selinux", "1"})},
		{"an empty name", rawRecord(recordAttr, a, -1, rawXattr{"", "1"})},
		{"the bare prefix", rawRecord(recordAttr, a, -1, rawXattr{"user.", "1"})},
		{"a NUL in a name", rawRecord(recordAttr, a, -1, rawXattr{"user.a\x00b", "1"})},
		{"a value running past the end", good[:len(good)-1]},
	} {
		if got, err := decodeAttr(tc.plain); !errors.Is(err, ErrBadMetadata) || got != (Attr{}) {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		}
	}
	for n := range len(good) {
		if _, err := decodeAttr(good[:n]); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("record cut to %d of %d bytes: %v", n, len(good), err)
		}
	}
	if _, err := decodeAttr(katLink.encode()); !errors.Is(err, ErrIsLink) || errors.Is(err, ErrBadMetadata) {
		t.Errorf("a link record as attributes: %v, want ErrIsLink alone", err)
	}
}

func TestXattrs(t *testing.T) {
	var x Xattrs
	if x.Len() != 0 {
		t.Fatal("zero value is not empty")
	}
	x1, err := x.With("user.b", []byte("2"))
	if err != nil {
		t.Fatal(err)
	}
	x2, _ := x1.With("user.a", []byte("1"))
	x3, _ := x2.With("user.c", nil)
	x4, _ := x3.With("user.b", []byte("two"))
	if x.Len() != 0 || x1.Len() != 1 || x2.Len() != 2 || x4.Len() != 3 {
		t.Fatal("With changed the set it was called on")
	}
	if got := maps.Collect(x4.All()); len(got) != 3 || string(got["user.b"]) != "two" || string(got["user.a"]) != "1" || len(got["user.c"]) != 0 {
		t.Fatalf("All: %q", got)
	}
	var names []string
	for name := range x4.All() {
		names = append(names, name)
	}
	if !slices.Equal(names, []string{"user.a", "user.b", "user.c"}) {
		t.Fatalf("All in order %q", names)
	}
	if v, ok := x4.Get("user.b"); !ok || string(v) != "two" {
		t.Fatalf("Get: %q %v", v, ok)
	}
	if _, ok := x4.Get("user.d"); ok {
		t.Fatal("Get of a missing name")
	}
	v, _ := x4.Get("user.a")
	v[0] = 'X'
	if v2, _ := x4.Get("user.a"); string(v2) != "1" {
		t.Fatal("a value from Get aliases the set")
	}
	// Equal sets are ==, whatever order they were built in.
	y, _ := Xattrs{}.With("user.c", nil)
	y, _ = y.With("user.b", []byte("two"))
	y, _ = y.With("user.a", []byte("1"))
	if y != x4 {
		t.Fatal("the same set built in another order is not ==")
	}
	if x4.Without("user.c").Without("user.b") != x2.Without("user.b") || x4.Without("user.zz") != x4 {
		t.Fatal("Without")
	}
	if z := x4.Without("user.a").Without("user.b").Without("user.c"); z.Len() != 0 || z != (Xattrs{}) {
		t.Fatalf("emptied set %+v is not the zero value", z)
	}
	if back, err := decodeAttr(Attr{Xattrs: x4}.encode()); err != nil || back.Xattrs != x4 {
		t.Fatalf("round trip: %v", err)
	}

	for _, tc := range []struct {
		name  string
		value []byte
		want  error
	}{
		{"security.selinux", nil, ErrXattrNamespace},
		{"trusted.overlay", nil, ErrXattrNamespace},
		{"system.posix_acl_access", nil, ErrXattrNamespace},
		{"user", nil, ErrXattrNamespace},
		{"USER.x", nil, ErrXattrNamespace},
		{"", nil, ErrXattrNamespace},
		{"user.", nil, ErrXattrName},
		{"user.a\x00", nil, ErrXattrName},
		{"user." + strings.Repeat("n", 251), nil, ErrXattrName},
		{"user.big", make([]byte, 1<<16), ErrMetadataTooBig},
	} {
		got, err := x4.With(tc.name, tc.value)
		if !errors.Is(err, tc.want) || got != x4 {
			t.Errorf("With(%q, %d bytes): %v, want %v (set unchanged)", tc.name, len(tc.value), err, tc.want)
		}
	}
	if _, err := x.With("user."+strings.Repeat("n", 250), make([]byte, 1<<16-1)); err != nil {
		t.Errorf("the longest name and value: %v", err)
	}
}

func TestLinkSet(t *testing.T) {
	a, b, c := LinkID{3}, LinkID{1}, LinkID{2}
	s := LinkSet{}.With(a).With(b).With(c).With(b)
	if s.Len() != 3 || !s.Has(a) || !s.Has(b) || !s.Has(c) || s.Has(LinkID{4}) {
		t.Fatalf("set %v", s)
	}
	if got := slices.Collect(s.All()); !slices.Equal(got, []LinkID{b, c, a}) {
		t.Fatalf("All: %v", got)
	}
	if s != (LinkSet{}).With(c).With(a).With(b) {
		t.Fatal("the same set built in another order is not ==")
	}
	w := s.Without(c)
	if w.Len() != 2 || w.Has(c) || s.Len() != 3 || !s.Has(c) || w.Without(c) != w {
		t.Fatal("Without")
	}
	if w.Without(a).Without(b) != (LinkSet{}) {
		t.Fatal("emptied set is not the zero value")
	}
	id := NewInodeID()
	if back, err := ParseInodeID(id.String()); err != nil || back != id || NewInodeID() == id || NewLinkID() == NewLinkID() {
		t.Fatalf("inode IDs: %v", err)
	}
	for _, bad := range []string{"", "00", strings.ToUpper(id.String()), id.String() + "00", "zz" + id.String()[2:]} {
		if _, err := ParseInodeID(bad); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("ParseInodeID(%q): %v", bad, err)
		}
	}
}

// metaSize is what checkBudget counts.
func metaSize(meta map[string]string) int {
	n := genDigitsMax - len(meta[MetaKEK])
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n
}

// TestMetadataBudget: extended attributes fill coffer's metadata up to the
// budget and not one byte beyond (E2BIG), a long name leaves less room, and
// the budget counts coffer-kek at its widest so rotation never pushes an
// object over.
func TestMetadataBudget(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	sealWith := func(path string, n int) (map[string]string, error) {
		x, err := Xattrs{}.With("user.comment", bytes.Repeat([]byte("v"), n))
		if err != nil {
			t.Fatal(err)
		}
		return kr.SealMetadata(o, path, Attr{Mode: 0o100644, Xattrs: x})
	}
	largest := func(path string) int {
		n := 0
		for ; ; n++ {
			if _, err := sealWith(path, n+1); err != nil {
				if !errors.Is(err, ErrMetadataTooBig) {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	short := largest("/f")
	meta, err := sealWith("/f", short)
	if err != nil || metaSize(meta) > MetadataBudget || metaSize(meta) < MetadataBudget-3 {
		t.Fatalf("the largest value that fits (%d bytes) makes %d bytes of metadata: %v", short, metaSize(meta), err)
	}
	if metaSize(meta) <= sumSize(meta) {
		t.Fatal("coffer-kek counted at its actual width")
	}
	longPath := "/" + strings.Repeat("n", NameMax)
	long := largest(longPath)
	meta, _ = sealWith(longPath, long)
	if meta[MetaName] == "" || long >= short-250 || metaSize(meta) > MetadataBudget {
		t.Fatalf("at a long name %d bytes fit (%d at a short one), coffer-name %d bytes", long, short, len(meta[MetaName]))
	}
	t.Logf("one xattr value of up to %d bytes fits (%d under a 255-byte name)", short, long)

	// Inode objects: links fill the same budget (EMLINK beyond it).
	inodeWith := func(n int, x Xattrs) (map[string]string, error) {
		var s LinkSet
		for i := range n {
			s = s.With(LinkID{byte(i), byte(i >> 8), 1})
		}
		return kr.SealInodeMetadata(o, InodeID{1}, Inode{Attr: Attr{Mode: 0o100644, Xattrs: x}, Links: s})
	}
	links := 0
	for {
		if _, err := inodeWith(links+1, Xattrs{}); err != nil {
			if !errors.Is(err, ErrMetadataTooBig) {
				t.Fatal(err)
			}
			break
		}
		links++
	}
	if links != maxLinks {
		t.Fatalf("%d links fit, doc.go says %d", links, maxLinks)
	}
	x, _ := Xattrs{}.With("user.k", make([]byte, 100))
	if _, err := inodeWith(links, x); !errors.Is(err, ErrMetadataTooBig) {
		t.Fatalf("xattrs share the inode's budget with its links: %v", err)
	}
	if _, err := inodeWith(0, Xattrs{}); err == nil || errors.Is(err, ErrMetadataTooBig) {
		t.Fatalf("an inode without links: %v", err)
	}
}

// maxLinks is how many links an inode without xattrs holds (doc.go).
const maxLinks = 70

func sumSize(meta map[string]string) int {
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n
}

// TestSealAddsLongName: SealMetadata adds coffer-name exactly when the
// path's last segment is stored hashed (it decides by length alone, so
// every length is checked against the name cipher's own decision).
func TestSealAddsLongName(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	for n := 1; n <= NameMax; n++ {
		name := strings.Repeat("x", n)
		_, long, err := kr.Names().EncryptSegment("/d", name)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := kr.SealMetadata(o, "/d/"+name, Attr{})
		if err != nil || meta[MetaName] != long {
			t.Fatalf("name of %d bytes: coffer-name %q, want %q (%v)", n, meta[MetaName], long, err)
		}
		lmeta, err := kr.SealLinkMetadata(o, "/"+name, katLink)
		if _, want, _ := kr.Names().EncryptSegment("/", name); err != nil || lmeta[MetaName] != want {
			t.Fatalf("link at a name of %d bytes: coffer-name %q (%v)", n, lmeta[MetaName], err)
		}
	}
	for _, bad := range []string{"", "a", "/" + strings.Repeat("x", NameMax+1)} {
		if _, err := kr.SealMetadata(o, bad, Attr{}); err == nil {
			t.Errorf("SealMetadata at %q", bad)
		}
	}
	if meta, err := kr.SealMetadata(o, "/", Attr{Mode: 0o40755}); err != nil || meta[MetaName] != "" {
		t.Fatalf("the root: %v", err)
	}
}
