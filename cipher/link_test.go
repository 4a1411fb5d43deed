package cipher

import (
	"errors"
	"maps"
	"testing"
)

// linkFixture is a file with two names: inode object ino, link objects at
// /a/one and /b/two.
type linkFixture struct {
	kr               *Keyring
	inodeKey         *ObjectKey
	ino              InodeID
	one, two         Link
	inode            Inode
	inodeMeta        map[string]string
	oneMeta, twoMeta map[string]string
	oneKey           *ObjectKey
}

func newLinkFixture(t *testing.T) *linkFixture {
	t.Helper()
	f := &linkFixture{kr: testKeyring(t), ino: NewInodeID()}
	f.one = Link{Inode: f.ino, ID: NewLinkID()}
	f.two = Link{Inode: f.ino, ID: NewLinkID()}
	f.inode = Inode{Attr: testAttr, Links: LinkSet{}.With(f.one.ID).With(f.two.ID)}
	f.inodeKey, _ = f.kr.NewObjectKey()
	var err error
	if f.inodeMeta, err = f.kr.SealInodeMetadata(f.inodeKey, f.ino, f.inode); err != nil {
		t.Fatal(err)
	}
	f.oneKey, _ = f.kr.NewObjectKey()
	twoKey, _ := f.kr.NewObjectKey()
	if f.oneMeta, err = f.kr.SealLinkMetadata(f.oneKey, "/a/one", f.one); err != nil {
		t.Fatal(err)
	}
	if f.twoMeta, err = f.kr.SealLinkMetadata(twoKey, "/b/two", f.two); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLinkRoundTrip(t *testing.T) {
	f := newLinkFixture(t)
	kr := f.kr
	if _, ok := f.inodeMeta[MetaInode]; !ok || f.oneMeta[MetaInode] != "" {
		t.Fatalf("coffer-ino on the inode only: %v / %v", f.inodeMeta, f.oneMeta)
	}
	for _, tc := range []struct {
		path string
		meta map[string]string
		want Link
	}{{"/a/one", f.oneMeta, f.one}, {"/b/two", f.twoMeta, f.two}} {
		o, l, err := kr.OpenLink(tc.meta, tc.path)
		if err != nil || l != tc.want {
			t.Fatalf("OpenLink %s: %+v %v", tc.path, l, err)
		}
		if _, _, err := kr.OpenMetadata(tc.meta, tc.path); !errors.Is(err, ErrIsLink) || errors.Is(err, ErrBadMetadata) || errors.Is(err, ErrAuth) {
			t.Fatalf("OpenMetadata of a link: %v, want ErrIsLink alone", err)
		}
		io, in, err := kr.FollowLink(f.inodeMeta, l)
		if err != nil || in != f.inode || in.Links.Len() != 2 || io.FileID() != f.inodeKey.FileID() || io.dek != f.inodeKey.dek {
			t.Fatalf("FollowLink from %s: %+v %v", tc.path, in, err)
		}
		if o.FileID() == io.FileID() {
			t.Fatal("a link shares its inode's file ID")
		}
	}
	// An attributes object is not a link.
	o, _ := kr.NewObjectKey()
	plain, _ := kr.SealMetadata(o, "/a/one", testAttr)
	if _, l, err := kr.OpenLink(plain, "/a/one"); !errors.Is(err, ErrBadMetadata) || l != (Link{}) {
		t.Fatalf("OpenLink of an attributes object: %+v %v", l, err)
	}
	// After one name's unlink (the inode dropped its ID), that link is
	// stale and the other still follows.
	fewer := Inode{Attr: f.inode.Attr, Links: f.inode.Links.Without(f.one.ID)}
	meta, err := kr.SealInodeMetadata(f.inodeKey, f.ino, fewer)
	if err != nil {
		t.Fatal(err)
	}
	if _, in, err := kr.FollowLink(meta, f.one); !errors.Is(err, ErrStaleLink) || in != (Inode{}) {
		t.Fatalf("a link dropped from the live set: %v", err)
	}
	if _, in, err := kr.FollowLink(meta, f.two); err != nil || in.Links.Len() != 1 {
		t.Fatalf("the remaining link: %v", err)
	}
	// fsck opens an inode by its object name alone.
	if _, in, err := kr.OpenInode(f.inodeMeta, f.ino); err != nil || in != f.inode {
		t.Fatalf("OpenInode: %v", err)
	}
	// Rotation rewraps links and inodes like any object.
	kr.AddGeneration()
	for name, m := range map[string]map[string]string{"link": f.oneMeta, "inode": f.inodeMeta} {
		re, err := kr.RewrapMetadata(m)
		if err != nil || re[MetaKEK] != "2" || re[MetaInode] != m[MetaInode] {
			t.Fatalf("rewrap of the %s: %v", name, err)
		}
		if name == "link" {
			_, _, err = kr.OpenLink(re, "/a/one")
		} else {
			_, _, err = kr.FollowLink(re, f.one)
		}
		if err != nil {
			t.Fatalf("rewrapped %s: %v", name, err)
		}
	}
}

// TestTamperLinks: link and inode records moved to another path, object,
// inode or volume, bit-flipped, or crafted with bytes coffer never writes,
// do not open; nor does any record opened as another kind.
func TestTamperLinks(t *testing.T) {
	f := newLinkFixture(t)
	kr := f.kr
	with := func(m map[string]string, k, v string) map[string]string {
		m = maps.Clone(m)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	other := newLinkFixture(t) // another volume
	otherIno := NewInodeID()
	otherInodeMeta, _ := kr.SealInodeMetadata(f.inodeKey, otherIno, f.inode)
	sameKEKs := cloneKeyringWithVolume(t, kr, VolumeID{7})
	attrKey, _ := kr.NewObjectKey()
	attrMeta, _ := kr.SealMetadata(attrKey, "/a/one", testAttr)
	otherLinkKey, _ := kr.NewObjectKey()
	otherLinkMeta, _ := kr.SealLinkMetadata(otherLinkKey, "/a/one", Link{Inode: otherIno, ID: f.one.ID})

	t.Run("links", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			kr   *Keyring
			meta map[string]string
			path string
		}{
			{"moved to another path", kr, f.oneMeta, "/a/two"},
			{"moved to another directory", kr, f.oneMeta, "/b/one"},
			{"moved to the other link's path", kr, f.oneMeta, "/b/two"},
			{"record moved onto another link object", kr, with(f.twoMeta, MetaAttr, f.oneMeta[MetaAttr]), "/a/one"},
			{"record of another inode's link", kr, with(f.oneMeta, MetaAttr, otherLinkMeta[MetaAttr]), "/a/one"},
			{"opened in another volume", other.kr, f.oneMeta, "/a/one"},
			{"opened under another volume ID, same KEKs", sameKEKs, f.oneMeta, "/a/one"},
			{"an inode object opened as a link at a path", kr, f.inodeMeta, "/a/one"},
			{"an attributes object opened as a link", kr, attrMeta, "/a/one"},
		} {
			if _, l, err := tc.kr.OpenLink(tc.meta, tc.path); (!errors.Is(err, ErrAuth) && !errors.Is(err, ErrBadMetadata)) || l != (Link{}) {
				t.Errorf("%s: %+v, %v", tc.name, l, err)
			}
		}
	})

	t.Run("inodes", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			kr   *Keyring
			meta map[string]string
			link Link
		}{
			{"asked for another inode", kr, f.inodeMeta, Link{Inode: otherIno, ID: f.one.ID}},
			{"coffer-ino relabelled to the inode asked for", kr, with(f.inodeMeta, MetaInode, otherInodeMeta[MetaInode]), Link{Inode: otherIno, ID: f.one.ID}},
			{"record of another inode under this inode's name", kr, with(f.inodeMeta, MetaAttr, otherInodeMeta[MetaAttr]), f.one},
			{"coffer-ino of another inode on this inode's record", kr, with(f.inodeMeta, MetaInode, otherInodeMeta[MetaInode]), f.one},
			{"coffer-ino missing", kr, with(f.inodeMeta, MetaInode, ""), f.one},
			{"coffer-ino malformed", kr, with(f.inodeMeta, MetaInode, "AAAA"), f.one},
			{"record moved onto another object (file ID)", kr, with(with(f.inodeMeta, MetaFileID, f.oneMeta[MetaFileID]), MetaDEK, f.oneMeta[MetaDEK]), f.one},
			{"opened in another volume", other.kr, f.inodeMeta, f.one},
			{"opened under another volume ID, same KEKs", sameKEKs, f.inodeMeta, f.one},
			{"a link object opened as an inode", kr, with(f.oneMeta, MetaInode, f.inodeMeta[MetaInode]), f.one},
			{"an attributes object opened as an inode", kr, with(attrMeta, MetaInode, f.inodeMeta[MetaInode]), f.one},
			{"a link that is not live", kr, f.inodeMeta, Link{Inode: f.ino, ID: NewLinkID()}},
		} {
			if _, in, err := tc.kr.FollowLink(tc.meta, tc.link); (!errors.Is(err, ErrAuth) && !errors.Is(err, ErrBadMetadata) && !errors.Is(err, ErrStaleLink)) || in != (Inode{}) {
				t.Errorf("%s: %+v, %v", tc.name, in, err)
			}
		}
		if _, a, err := kr.OpenMetadata(f.inodeMeta, "/a/one"); !errors.Is(err, ErrAuth) || a != (Attr{}) {
			t.Errorf("an inode object opened as attributes at a path: %v", err)
		}
	})

	t.Run("bit flips", func(t *testing.T) {
		for name, tc := range map[string]struct {
			meta map[string]string
			open func(map[string]string) error
		}{
			"attributes": {attrMeta, func(m map[string]string) error { _, _, err := kr.OpenMetadata(m, "/a/one"); return err }},
			"link":       {f.oneMeta, func(m map[string]string) error { _, _, err := kr.OpenLink(m, "/a/one"); return err }},
			"inode":      {f.inodeMeta, func(m map[string]string) error { _, _, err := kr.FollowLink(m, f.one); return err }},
		} {
			sealed, _ := b64.DecodeString(tc.meta[MetaAttr])
			for i := range len(sealed) * 8 {
				flipped := []byte(string(sealed))
				flipped[i/8] ^= 1 << (i % 8)
				if err := tc.open(with(tc.meta, MetaAttr, b64.EncodeToString(flipped))); !errors.Is(err, ErrAuth) {
					t.Fatalf("%s record with bit %d flipped: %v", name, i, err)
				}
			}
			if err := tc.open(tc.meta); err != nil {
				t.Fatalf("%s record unflipped: %v", name, err)
			}
		}
	})

	// Records that authenticate but that coffer never writes: a key
	// holder's bug must not yield a second reading of the bytes.
	t.Run("crafted records", func(t *testing.T) {
		sealAtPath := func(path string, plain []byte) map[string]string {
			return with(f.oneMeta, MetaAttr, b64.EncodeToString(f.oneKey.attr.Seal(nil, nil, plain, pathAAD(kr.VolumeID(), f.oneKey.fileID, path))))
		}
		sealInode := func(plain []byte) map[string]string {
			return with(f.inodeMeta, MetaAttr, b64.EncodeToString(f.inodeKey.attr.Seal(nil, nil, plain, inodeAAD(kr.VolumeID(), f.ino, f.inodeKey.fileID))))
		}
		attrOf := func(meta map[string]string) error { _, _, err := kr.OpenMetadata(meta, "/a/one"); return err }
		linkOf := func(meta map[string]string) error { _, _, err := kr.OpenLink(meta, "/a/one"); return err }
		inodeOf := func(meta map[string]string) error { _, _, err := kr.FollowLink(meta, f.one); return err }
		good := f.inode.encode()
		fields := good[:len(good)-2-2*IDSize]
		links := func(ids ...LinkID) []byte {
			b := []byte{0, byte(len(ids))}
			for _, id := range ids {
				b = append(b, id[:]...)
			}
			return b
		}
		ids := []LinkID{f.one.ID, f.two.ID}
		if string(ids[0][:]) > string(ids[1][:]) {
			ids[0], ids[1] = ids[1], ids[0]
		}
		cat := func(parts ...[]byte) []byte {
			var b []byte
			for _, p := range parts {
				b = append(b, p...)
			}
			return b
		}
		for _, tc := range []struct {
			name string
			meta map[string]string
			open func(map[string]string) error
		}{
			{"attributes with a trailing byte", sealAtPath("/a/one", append(testAttr.encode(), 0)), attrOf},
			{"attributes with unsorted xattrs", sealAtPath("/a/one", rawRecord(recordAttr, testAttr, -1, rawXattr{"user.b", ""}, rawXattr{"user.a", ""})), attrOf},
			{"attributes with a duplicate xattr", sealAtPath("/a/one", rawRecord(recordAttr, testAttr, -1, rawXattr{"user.a", "1"}, rawXattr{"user.a", "1"})), attrOf},
			{"attributes with a trusted.* xattr", sealAtPath("/a/one", rawRecord(recordAttr, testAttr, -1, rawXattr{"trusted.a", "1"})), attrOf},
			{"attributes of version 1", sealAtPath("/a/one", append([]byte{1}, make([]byte, 20)...)), attrOf},
			{"a link with a trailing byte", sealAtPath("/a/one", append(f.one.encode(), 0)), linkOf},
			{"a short link", sealAtPath("/a/one", f.one.encode()[:linkRecordSize-1]), linkOf},
			{"attributes opened as a link", sealAtPath("/a/one", testAttr.encode()), linkOf},
			{"an inode record at a path", sealAtPath("/a/one", good), attrOf},
			{"an inode record at a path, as a link", sealAtPath("/a/one", good), linkOf},
			{"an inode with a trailing byte", sealInode(append(good[:len(good):len(good)], 0)), inodeOf},
			{"an inode without links", sealInode(cat(fields, links())), inodeOf},
			{"an inode with unsorted links", sealInode(cat(fields, links(ids[1], ids[0]))), inodeOf},
			{"an inode with a duplicate link", sealInode(cat(fields, links(f.one.ID, f.one.ID))), inodeOf},
			{"an inode whose count exceeds its links", sealInode(cat(fields, links(ids...)[:2+IDSize])), inodeOf},
			{"an inode with unsorted xattrs", sealInode(cat(rawRecord(recordInode, testAttr, -1, rawXattr{"user.b", ""}, rawXattr{"user.a", ""}), links(ids...))), inodeOf},
			{"an inode with a security.* xattr", sealInode(cat(rawRecord(recordInode, testAttr, -1, rawXattr{"security.a", ""}), links(ids...))), inodeOf},
			{"attributes in an inode object", sealInode(testAttr.encode()), inodeOf},
			{"a link record in an inode object", sealInode(f.one.encode()), inodeOf},
		} {
			if err := tc.open(tc.meta); !errors.Is(err, ErrBadMetadata) {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		// The builders above make the records coffer does write.
		if err := inodeOf(sealInode(cat(fields, links(ids...)))); err != nil {
			t.Fatalf("the crafted good inode: %v", err)
		}
		if err := linkOf(sealAtPath("/a/one", f.one.encode())); err != nil {
			t.Fatalf("the crafted good link: %v", err)
		}
	})
}
