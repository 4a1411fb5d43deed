package cipher

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// Fuzz targets for every parser of stored data. Their seeds run with every
// `go test`; `go test -fuzz FuzzDecrypt ./cipher` explores further.

func fuzzObjectKey() *ObjectKey {
	return newObjectKey(FileID(fixedBytes(16, 0x77)), fixedBytes(32, 0x88), 1)
}

func isTyped(err error) bool {
	for _, e := range []error{ErrAuth, ErrInvalidSize, ErrBadMetadata, ErrBadName, ErrNotConfig, ErrConfigTampered, ErrNoKeyOpens, ErrNameTooLong} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzDecrypt(f *testing.F) {
	o := fuzzObjectKey()
	for _, size := range []int64{0, 1, 100, ChunkSize, ChunkSize + 1} {
		var buf bytes.Buffer
		w := o.NewEncrypter(&buf)
		w.Write(pseudoRandom(size, 1))
		w.Close()
		body := buf.Bytes()
		f.Add(body, int64(0), size, int64(0))
		f.Add(body[:len(body)-1], int64(0), size, int64(1))
		f.Add(body[HeaderSize:], int64(0), size, int64(size/2))
	}
	f.Add([]byte("CFR\x01"), int64(-1), int64(-1), int64(-5))
	f.Fuzz(func(t *testing.T, body []byte, index, plainSize, off int64) {
		plain, err := io.ReadAll(o.NewDecrypter(bytes.NewReader(body), int64(len(body))))
		if err != nil && !isTyped(err) {
			t.Fatalf("decrypter: untyped error %v", err)
		}
		if err == nil {
			if want, _ := PlainSize(int64(len(body))); int64(len(plain)) != want {
				t.Fatalf("decrypter returned %d bytes for a %d-byte body", len(plain), len(body))
			}
		}
		if chunk, err := o.OpenChunk(nil, body, index, plainSize); err != nil {
			if !errors.Is(err, ErrAuth) || len(chunk) != 0 {
				t.Fatalf("OpenChunk: %d bytes, %v", len(chunk), err)
			}
		}
		if plainSize < 0 || off < 0 {
			return
		}
		fetch := func(o, n int64) ([]byte, error) {
			if o >= int64(len(body)) {
				return nil, nil
			}
			return body[o:min(o+n, int64(len(body)))], nil
		}
		p := make([]byte, 1000)
		n, err := o.NewReaderAt(fetch, plainSize).ReadAt(p, off)
		if err != nil && err != io.EOF && !isTyped(err) {
			t.Fatalf("ReadAt: untyped error %v", err)
		}
		if n < 0 || n > len(p) {
			t.Fatalf("ReadAt returned n = %d", n)
		}
	})
}

func FuzzDecryptSegment(f *testing.F) {
	n := katKeyring(f).Names()
	for _, name := range []string{"a", "hello.txt", strings.Repeat("l", 200), strings.Repeat("z", 255)} {
		seg, long, _ := n.EncryptSegment("/d", name)
		f.Add("/d", seg, long, []byte(name))
	}
	f.Add("/", "~AAAA", "", []byte{})
	f.Add("/", "", "", []byte(".."))
	f.Add("/x", "AAAAAAAAAAAAAAAAAAAAAA", "", []byte("a/b"))
	f.Add("/x", strings.Repeat("A", 300), "", []byte("nul\x00"))
	f.Fuzz(func(t *testing.T, parent, seg, long string, raw []byte) {
		check := func(name string, err error) {
			if err != nil {
				if !errors.Is(err, ErrBadName) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if checkName(name) != nil {
				t.Fatalf("decoded a forbidden name %q", name)
			}
		}
		name, err := n.DecryptSegment(parent, seg, long)
		check(name, err)
		if err == nil {
			// Only canonical encodings decode: re-encryption gives seg back.
			seg2, long2, err := n.EncryptSegment(parent, name)
			if err != nil || seg2 != seg || (IsLongSegment(seg) && long2 != long) {
				t.Fatalf("decoded %q from a non-canonical segment", name)
			}
		}
		// Arbitrary plaintext bytes, validly enciphered, still decode only
		// to valid names.
		raw = raw[:min(len(raw), 400)]
		name, err = n.DecryptSegment(parent, encryptRaw(n, parent, raw), "")
		check(name, err)
		if err == nil && name != string(raw) {
			t.Fatalf("decoded %q from an encoding of %q", name, raw)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	root, _ := NewSymKey(fixedBytes(32, 0x99))
	kr, _ := NewKeyring()
	c, _ := NewConfig(EncryptionClient, SSES3, "", kr, root)
	pass, _ := NewPassphraseKey([]byte("fuzz"))
	pass.argon = cheapArgon2
	c.AddKey(kr, pass)
	data, _ := c.Marshal(kr)
	f.Add(data)
	none, _ := NewConfig(EncryptionNone, SSEC, "", nil, nil)
	data, _ = none.Marshal(nil)
	f.Add(data)
	f.Add([]byte(`{"format":1,"body":"e30","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte("null"))
	// A config from before entry authentication, opened by its sym key.
	preRoot, _ := NewSymKey(fixedBytes(32, 0x5a))
	if raw, err := os.ReadFile("testdata/preauth.json"); err == nil {
		var v preAuthVector
		if json.Unmarshal(raw, &v) == nil {
			f.Add([]byte(v.Config))
			f.Add([]byte(v.ConfigSym))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrNotConfig) {
				t.Fatalf("ParseConfig: untyped error %v", err)
			}
			return
		}
		// Only the sym key: a fuzzed passphrase entry may ask for Argon2 at
		// the (legitimate) limit of 2 GiB.
		kr, err := c.Open(root, preRoot)
		if errors.Is(err, ErrConfigPreAuth) {
			// Upgraded, it opens with entry authentication.
			if kr, err = c.OpenPreAuth(root, preRoot); err != nil {
				if !isTyped(err) {
					t.Fatalf("OpenPreAuth: untyped error %v", err)
				}
				return
			}
			if err := c.Reauth(kr, root, preRoot); err != nil {
				return // a key of no entry, or an entry without its key
			}
		}
		if err != nil {
			if !isTyped(err) {
				t.Fatalf("Open: untyped error %v", err)
			}
			return
		}
		out, err := c.Marshal(kr)
		if err != nil {
			t.Fatalf("Marshal of an opened config: %v", err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c2.Open(root, preRoot); err != nil {
			t.Fatalf("re-marshalled config does not open: %v", err)
		}
	})
}

// The attribute records: whatever decodes is canonical (it encodes back to
// the same bytes), so no record has two readings; every failure is typed.
func FuzzDecodeAttr(f *testing.F) {
	f.Add(testAttr.encode())
	f.Add(Attr{Mode: 0o40755}.encode())
	f.Add(rawRecord(recordAttr, testAttr, -1, rawXattr{"user.b", ""}, rawXattr{"user.a", ""}))
	f.Add(rawRecord(recordAttr, testAttr, 2, rawXattr{"user.a", "x"}))
	f.Add(katLink.encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, plain []byte) {
		a, err := decodeAttr(plain)
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) && !errors.Is(err, ErrIsLink) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(a.encode(), plain) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", plain, a, a.encode())
		}
		checkXattrSet(t, a.Xattrs)
	})
}

func FuzzDecodeInode(f *testing.F) {
	f.Add(katInode().encode())
	f.Add(Inode{Attr: Attr{Mode: 0o100600}, Links: LinkSet{}.With(LinkID{1})}.encode())
	good := katInode().encode()
	f.Add(good[:len(good)-IDSize])
	f.Add(testAttr.encode())
	f.Fuzz(func(t *testing.T, plain []byte) {
		in, err := decodeInode(plain)
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(in.encode(), plain) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", plain, in, in.encode())
		}
		if in.Links.Len() == 0 {
			t.Fatal("an inode without links decoded")
		}
		checkXattrSet(t, in.Attr.Xattrs)
	})
}

func FuzzDecodeLink(f *testing.F) {
	f.Add(katLink.encode())
	f.Add(append(katLink.encode(), 0))
	f.Add(testAttr.encode())
	f.Fuzz(func(t *testing.T, plain []byte) {
		l, err := decodeLink(plain)
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(l.encode(), plain) {
			t.Fatalf("%x decodes to %+v", plain, l)
		}
	})
}

// checkXattrSet: a decoded set obeys every rule With enforces, and its
// accessors agree with each other.
func checkXattrSet(t *testing.T, x Xattrs) {
	t.Helper()
	n, prev := 0, ""
	for name, value := range x.All() {
		if checkXattrName(name) != nil || (n > 0 && name <= prev) {
			t.Fatalf("decoded xattr name %q after %q", name, prev)
		}
		if v, ok := x.Get(name); !ok || !bytes.Equal(v, value) {
			t.Fatalf("Get(%q) disagrees with All", name)
		}
		prev = name
		n++
	}
	if n != x.Len() {
		t.Fatalf("All yields %d, Len says %d", n, x.Len())
	}
}

// FuzzOpenMetadata: whatever metadata the store hands back, every way of
// opening it fails with a typed error or yields what was sealed.
func FuzzOpenMetadata(f *testing.F) {
	kr := katKeyring(f)
	o := fuzzObjectKey()
	attrMeta, _ := kr.SealMetadata(o, "/d/f", testAttr)
	linkMeta, _ := kr.SealLinkMetadata(o, "/d/f", katLink)
	inodeMeta, _ := kr.SealInodeMetadata(o, katLink.Inode, katInode())
	for _, m := range []map[string]string{attrMeta, linkMeta, inodeMeta} {
		f.Add(m[MetaVersion], m[MetaFileID], m[MetaKEK], m[MetaDEK], m[MetaAttr], m[MetaInode], "/d/f")
	}
	f.Add("1", "", "1", "", "", "", "/")
	f.Fuzz(func(t *testing.T, v, fid, kek, dek, attr, ino, path string) {
		meta := map[string]string{MetaVersion: v, MetaFileID: fid, MetaKEK: kek, MetaDEK: dek, MetaAttr: attr, MetaInode: ino}
		typed := func(err error, also ...error) {
			t.Helper()
			if err == nil || isTyped(err) {
				return
			}
			for _, e := range also {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("untyped error %v", err)
		}
		_, a, err := kr.OpenMetadata(meta, path)
		typed(err, ErrIsLink)
		if err == nil && (path != "/d/f" || a != testAttr) {
			t.Fatalf("opened %+v at %q", a, path)
		}
		_, l, err := kr.OpenLink(meta, path)
		typed(err)
		if err == nil && (path != "/d/f" || l != katLink) {
			t.Fatalf("opened link %+v at %q", l, path)
		}
		_, in, err := kr.FollowLink(meta, katLink)
		typed(err, ErrStaleLink)
		if err == nil && in != katInode() {
			t.Fatalf("opened inode %+v", in)
		}
	})
}
