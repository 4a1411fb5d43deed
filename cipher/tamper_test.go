package cipher

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"testing"
)

// The tamper table of issue 2: every change to stored data is detected with
// a typed error, and no byte that did not verify is ever returned.

// openBody decrypts body with o in the three ways the filesystem can (whole
// body, chunk by chunk with OpenChunk, random access) and checks each either
// fails with a typed error or returns plain. claimedSize is the object size
// a listing would report. It returns the first error seen.
func openBody(t *testing.T, o *ObjectKey, body []byte, claimedSize int64, plain []byte) error {
	t.Helper()
	var first error
	note := func(how string, got []byte, err error) {
		if err == nil {
			if !bytes.Equal(got, plain) {
				t.Fatalf("%s: returned wrong bytes without an error", how)
			}
			return
		}
		if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("%s: untyped error %v", how, err)
		}
		if !bytes.HasPrefix(plain, got) {
			t.Fatalf("%s: returned %d unverified bytes before failing", how, len(got))
		}
		if first == nil {
			first = err
		}
	}

	got, err := io.ReadAll(o.NewDecrypter(bytes.NewReader(body), claimedSize))
	note("decrypter", got, err)

	plainSize, err := PlainSize(claimedSize)
	if err != nil {
		note("PlainSize", nil, err)
		return first
	}
	var joined []byte
	for i := range ChunkCount(plainSize) {
		off, n := ChunkCipherRange(i, plainSize)
		if off+n > int64(len(body)) {
			err = ErrAuth // the store would answer a short read
			break
		}
		if joined, err = o.OpenChunk(joined, body[off:off+n], i, plainSize); err != nil {
			break
		}
	}
	note("OpenChunk", joined, err)

	cf := &countingFetch{body: body}
	buf := make([]byte, plainSize)
	n, err := o.NewReaderAt(cf.fetch, plainSize).ReadAt(buf, 0)
	if err == io.EOF && plainSize == 0 {
		err = nil
	}
	note("ReaderAt", buf[:n], err)
	return first
}

func mustFail(t *testing.T, name string, o *ObjectKey, body []byte, claimedSize int64, plain []byte) {
	t.Helper()
	if err := openBody(t, o, body, claimedSize, plain); err == nil {
		t.Fatalf("%s: tampered body opened", name)
	}
}

func TestTamperBitFlips(t *testing.T) {
	o := newRandomObjectKey(1)
	// Every bit of a one-chunk object.
	plain := pseudoRandom(100, 1)
	body := encrypt(t, o, plain)
	for bit := range len(body) * 8 {
		b := bytes.Clone(body)
		b[bit/8] ^= 1 << (bit % 8)
		mustFail(t, "one-chunk bit flip", o, b, int64(len(b)), plain)
	}
	// Every header bit, and bits in the nonce, ciphertext and tag of each
	// chunk of a three-chunk object.
	plain = pseudoRandom(2*ChunkSize+100, 2)
	body = encrypt(t, o, plain)
	var positions []int
	for i := range HeaderSize {
		positions = append(positions, i)
	}
	for c := range int64(3) {
		off, n := ChunkCipherRange(c, int64(len(plain)))
		for _, p := range []int64{0, 5, 11, 12, 13, n / 2, n - 17, n - 16, n - 8, n - 1} {
			positions = append(positions, int(off+p))
		}
	}
	for _, pos := range positions {
		for _, bit := range []byte{1, 0x80} {
			b := bytes.Clone(body)
			b[pos] ^= bit
			mustFail(t, "three-chunk bit flip", o, b, int64(len(b)), plain)
		}
	}
}

func TestTamperChunkStructure(t *testing.T) {
	o := newRandomObjectKey(1)
	const size = 3*ChunkSize + 1000
	plain := pseudoRandom(size, 3)
	body := encrypt(t, o, plain)
	chunk := func(i int64) []byte {
		off, n := ChunkCipherRange(i, size)
		return body[off : off+n]
	}
	header := body[:HeaderSize]
	join := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{header}, parts...), nil) }

	other := newRandomObjectKey(1)
	otherBody := encrypt(t, other, pseudoRandom(size, 4))
	otherChunk1 := otherBody[HeaderSize+cipherChunkSize : HeaderSize+2*cipherChunkSize]

	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"chunk 1 dropped", join(chunk(0), chunk(2), chunk(3))},
		{"final chunk dropped", join(chunk(0), chunk(1), chunk(2))},
		{"chunk 0 duplicated", join(chunk(0), chunk(0), chunk(1), chunk(2), chunk(3))},
		{"chunk 1 duplicated over 2", join(chunk(0), chunk(1), chunk(1), chunk(3))},
		{"chunks 0 and 1 swapped", join(chunk(1), chunk(0), chunk(2), chunk(3))},
		{"chunk from another object", join(chunk(0), otherChunk1, chunk(2), chunk(3))},
		{"header of another object", append(bytes.Clone(otherBody[:HeaderSize]), body[HeaderSize:]...)},
		{"final chunk appended twice", join(chunk(0), chunk(1), chunk(2), chunk(3), chunk(3))},
	} {
		// Opened at its own size (what a listing shows) and at the original.
		mustFail(t, tc.name, o, tc.body, int64(len(tc.body)), plain)
		mustFail(t, tc.name+" (original size)", o, tc.body, int64(len(body)), plain)
	}
}

func TestTamperTruncationAndAppend(t *testing.T) {
	o := newRandomObjectKey(1)
	const size = 2*ChunkSize + 500
	plain := pseudoRandom(size, 5)
	body := encrypt(t, o, plain)
	var cuts []int
	for c := range int64(3) {
		off, n := ChunkCipherRange(c, size)
		cuts = append(cuts, int(off), int(off+1), int(off+12), int(off+n/2), int(off+n-1))
	}
	cuts = append(cuts, 0, 1, HeaderSize-1, len(body)-1)
	for _, cut := range cuts {
		b := body[:cut]
		mustFail(t, "truncated", o, b, int64(len(b)), plain)
		mustFail(t, "truncated (original size)", o, b, int64(len(body)), plain)
	}
	for _, extra := range [][]byte{{0}, make([]byte, 28), make([]byte, 29), make([]byte, cipherChunkSize)} {
		b := append(bytes.Clone(body), extra...)
		mustFail(t, "appended", o, b, int64(len(b)), plain)
		mustFail(t, "appended (original size)", o, b, int64(len(body)), plain)
	}
	// The empty object: a final empty chunk, nothing else.
	empty := encrypt(t, o, nil)
	mustFail(t, "empty truncated", o, empty[:EmptyObjectSize-1], EmptyObjectSize-1, nil)
	mustFail(t, "empty extended", o, append(bytes.Clone(empty), 1), EmptyObjectSize+1, nil)
}

// TestTamperEveryInvalidSize opens a body under every invalid claimed size
// near real chunk boundaries.
func TestTamperEveryInvalidSize(t *testing.T) {
	o := newRandomObjectKey(1)
	plain := pseudoRandom(ChunkSize+10, 6)
	body := encrypt(t, o, plain)
	for s := int64(0); s <= HeaderSize+2*cipherChunkSize+40; s++ {
		if _, err := PlainSize(s); err == nil {
			continue
		}
		_, err := io.ReadAll(o.NewDecrypter(bytes.NewReader(body), s))
		if !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("size %d: %v", s, err)
		}
	}
}

func TestTamperMetadata(t *testing.T) {
	kr := testKeyring(t)
	a, _ := kr.NewObjectKey()
	b, _ := kr.NewObjectKey()
	metaA, _ := kr.SealMetadata(a, "/dir/a", testAttr)
	metaB, _ := kr.SealMetadata(b, "/dir/b", testAttr)

	withField := func(m map[string]string, k, v string) map[string]string {
		m = maps.Clone(m)
		m[k] = v
		return m
	}
	kr.AddGeneration() // generation 2 exists, so a relabelled generation resolves
	metaA2, _ := kr.SealMetadata(a, "/dir/a", testAttr)

	otherVolume := testKeyring(t) // other secrets, other volume ID
	sameKEKs := cloneKeyringWithVolume(t, kr, VolumeID{1, 2, 3})

	for _, tc := range []struct {
		name string
		kr   *Keyring
		meta map[string]string
		path string
	}{
		{"wrapped DEK of another object", kr, withField(metaA, MetaDEK, metaB[MetaDEK]), "/dir/a"},
		{"sealed attributes of another object", kr, withField(metaA, MetaAttr, metaB[MetaAttr]), "/dir/a"},
		{"file ID of another object", kr, withField(metaA, MetaFileID, metaB[MetaFileID]), "/dir/a"},
		{"attributes opened under another path", kr, metaA, "/dir/b"},
		{"attributes opened under a parent path", kr, metaA, "/dir"},
		{"DEK relabelled to another generation", kr, withField(metaA, MetaKEK, "2"), "/dir/a"},
		{"DEK of generation 2 relabelled 1", kr, withField(metaA2, MetaKEK, "1"), "/dir/a"},
		{"opened in another volume", otherVolume, metaA, "/dir/a"},
		{"opened under another volume ID, same KEKs", sameKEKs, metaA, "/dir/a"},
	} {
		o, attr, err := tc.kr.OpenMetadata(tc.meta, tc.path)
		if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrBadMetadata) {
			t.Errorf("%s: opened (%v, %+v), err %v", tc.name, o != nil, attr, err)
		}
	}

	// Attribute AAD alone: the right DEK under another volume ID, file ID
	// or path does not open the attributes.
	sealed, _ := b64.DecodeString(metaA[MetaAttr])
	for name, aad := range map[string][]byte{
		"other volume ID": pathAAD(VolumeID{9}, a.fileID, "/dir/a"),
		"other file ID":   pathAAD(kr.VolumeID(), b.fileID, "/dir/a"),
		"other path":      pathAAD(kr.VolumeID(), a.fileID, "/dir/a/"),
		"as an inode":     inodeAAD(kr.VolumeID(), InodeID(a.fileID), a.fileID),
	} {
		if plain, err := a.attr.Open(nil, nil, sealed, aad); err == nil {
			t.Errorf("attributes opened under %s: %x", name, plain)
		}
	}
	if plain, err := a.attr.Open(nil, nil, sealed, pathAAD(kr.VolumeID(), a.fileID, "/dir/a")); err != nil || !bytes.Equal(plain, testAttr.encode()) {
		t.Fatalf("the right AAD: %v", err)
	}
	if _, attr, err := kr.OpenMetadata(metaA, "/dir/a"); err != nil || attr != testAttr {
		t.Fatalf("untouched metadata: %v", err)
	}
}

// cloneKeyringWithVolume copies kr's secrets and KEKs under another volume
// ID, to show the volume ID alone keeps DEKs from opening.
func cloneKeyringWithVolume(t *testing.T, kr *Keyring, v VolumeID) *Keyring {
	t.Helper()
	c, err := unmarshalKeyring(kr.marshal())
	if err != nil {
		t.Fatal(err)
	}
	c.volumeID = v
	return c
}

func TestTamperWrongRootKey(t *testing.T) {
	_, _, data := newVolume(t, testSymKey(t, 1))
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if kr, err := c.Open(testSymKey(t, 2)); !errors.Is(err, ErrNoKeyOpens) || kr != nil {
		t.Fatalf("wrong root key: %v", err)
	}
}

func TestChunkOpenRejectsWrongGeometry(t *testing.T) {
	o := newRandomObjectKey(1)
	sealed := o.SealChunk(nil, make([]byte, 10), 0, true)
	for _, tc := range []struct{ index, size int64 }{{1, 10}, {-1, 10}, {0, 11}, {0, 9}, {0, -1}, {0, ChunkSize + 10}} {
		if got, err := o.OpenChunk(nil, sealed, tc.index, tc.size); !errors.Is(err, ErrAuth) || len(got) != 0 {
			t.Errorf("OpenChunk(index %d, size %d) = %d bytes, %v", tc.index, tc.size, len(got), err)
		}
	}
	// A final chunk opened as non-final, and the reverse.
	full := pseudoRandom(ChunkSize, 1)
	nonFinal := o.SealChunk(nil, full, 0, false)
	if _, err := o.OpenChunk(nil, nonFinal, 0, ChunkSize); !errors.Is(err, ErrAuth) {
		t.Errorf("non-final chunk accepted as final: %v", err)
	}
	final := o.SealChunk(nil, full, 0, true)
	if _, err := o.OpenChunk(nil, final, 0, 2*ChunkSize); !errors.Is(err, ErrAuth) {
		t.Errorf("final chunk accepted as non-final: %v", err)
	}
}
