package cipher

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// roundTripSizes are the plaintext sizes issue 2 names.
var roundTripSizes = []int64{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3 * ChunkSize, 10 << 20}

func pseudoRandom(n int64, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return b
}

// encrypt seals plain with o through the streaming encrypter, written in
// uneven pieces so chunk boundaries fall inside writes.
func encrypt(t testing.TB, o *ObjectKey, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := o.NewEncrypter(&buf)
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 10007)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decryptAll(o *ObjectKey, body []byte) ([]byte, error) {
	return io.ReadAll(o.NewDecrypter(bytes.NewReader(body), int64(len(body))))
}

func TestEnvelopeRoundTrip(t *testing.T) {
	o := newRandomObjectKey(1)
	for _, size := range roundTripSizes {
		plain := pseudoRandom(size, uint64(size))
		body := encrypt(t, o, plain)
		if int64(len(body)) != CipherSize(size) {
			t.Fatalf("size %d: body is %d bytes, CipherSize says %d", size, len(body), CipherSize(size))
		}
		if got, err := PlainSize(int64(len(body))); err != nil || got != size {
			t.Fatalf("size %d: PlainSize = %d, %v", size, got, err)
		}
		got, err := decryptAll(o, body)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("size %d: round trip changed the bytes", size)
		}
		// Chunk by chunk through OpenChunk, as the filesystem reads.
		var joined []byte
		for i := range ChunkCount(size) {
			off, n := ChunkCipherRange(i, size)
			joined, err = o.OpenChunk(joined, body[off:off+n], i, size)
			if err != nil {
				t.Fatalf("size %d chunk %d: %v", size, i, err)
			}
		}
		if !bytes.Equal(joined, plain) {
			t.Fatalf("size %d: OpenChunk changed the bytes", size)
		}
	}
}

func TestEmptyObjectIs48Bytes(t *testing.T) {
	body := encrypt(t, newRandomObjectKey(1), nil)
	if len(body) != EmptyObjectSize || EmptyObjectSize != 48 {
		t.Fatalf("empty object is %d bytes", len(body))
	}
}

// countingFetch serves ranges of body and records what was fetched.
type countingFetch struct {
	body    []byte
	calls   int
	fetched int64
}

func (c *countingFetch) fetch(off, n int64) ([]byte, error) {
	c.calls++
	c.fetched += n
	if off >= int64(len(c.body)) {
		return nil, nil
	}
	if off+n > int64(len(c.body)) {
		return c.body[off:], nil // a short read, as from a truncated object
	}
	return c.body[off : off+n], nil
}

func TestReaderAtFetchesOnlyNeededChunks(t *testing.T) {
	o := newRandomObjectKey(1)
	const size = 10*ChunkSize + 123
	plain := pseudoRandom(size, 7)
	body := encrypt(t, o, plain)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		off := rng.Int64N(size + 10)
		n := rng.Int64N(3*ChunkSize) + 1
		cf := &countingFetch{body: body}
		r := o.NewReaderAt(cf.fetch, size)
		p := make([]byte, n)
		got, err := r.ReadAt(p, off)
		end := min(off+n, size)
		wantN := max(end-off, 0)
		if int64(got) != wantN {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d (%v)", off, n, got, wantN, err)
		}
		if wantN < n && err != io.EOF {
			t.Fatalf("ReadAt(%d, %d) past the end: err %v, want io.EOF", off, n, err)
		}
		if wantN == n && err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p[:got], plain[min(off, size):end]) {
			t.Fatalf("ReadAt(%d, %d) returned wrong bytes", off, n)
		}
		if wantN == 0 {
			if cf.calls != 0 {
				t.Fatalf("ReadAt(%d, %d) past the end fetched %d times", off, n, cf.calls)
			}
			continue
		}
		first, last, _ := PlainRangeToChunks(off, n, size)
		_, wantBytes := ChunksCipherRange(first, last, size)
		if cf.calls != 1 || cf.fetched != wantBytes {
			t.Fatalf("ReadAt(%d, %d): %d fetches of %d bytes, want 1 of %d (chunks %d..%d)",
				off, n, cf.calls, cf.fetched, wantBytes, first, last)
		}
	}
}

func TestMultipartPartsMakeOneValidObject(t *testing.T) {
	o := newRandomObjectKey(1)
	for _, tc := range []struct {
		size      int64
		partPlain int64 // plaintext bytes per part, a multiple of ChunkSize
	}{
		{0, 5 * ChunkSize},
		{ChunkSize, ChunkSize},
		{5*ChunkSize + 17, 2 * ChunkSize},
		{6 * ChunkSize, 2 * ChunkSize},
		{6*ChunkSize + 1, 3 * ChunkSize},
	} {
		plain := pseudoRandom(tc.size, 3)
		var parts [][]byte
		for start := int64(0); start < tc.size || start == 0; start += tc.partPlain {
			end := min(start+tc.partPlain, tc.size)
			last := end == tc.size
			var buf bytes.Buffer
			w := o.NewPartEncrypter(&buf, uint64(start/ChunkSize), last)
			if _, err := w.Write(plain[start:end]); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("size %d part at %d: %v", tc.size, start, err)
			}
			if int64(buf.Len()) != PartCipherSize(uint64(start/ChunkSize), end-start) {
				t.Fatalf("size %d part at %d: %d bytes, PartCipherSize says %d", tc.size, start, buf.Len(), PartCipherSize(uint64(start/ChunkSize), end-start))
			}
			parts = append(parts, buf.Bytes())
			if last {
				break
			}
		}
		body := bytes.Join(parts, nil)
		got, err := decryptAll(o, body)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d in parts of %d: %v", tc.size, tc.partPlain, err)
		}
	}
}

func TestPartEncrypterRejectsRaggedParts(t *testing.T) {
	o := newRandomObjectKey(1)
	for _, tc := range []struct {
		name  string
		first uint64
		n     int
		last  bool
	}{
		{"middle part not whole chunks", 1, ChunkSize + 1, false},
		{"empty middle part", 1, 0, false},
		{"empty final part", 2, 0, true},
	} {
		w := o.NewPartEncrypter(io.Discard, tc.first, tc.last)
		w.Write(make([]byte, tc.n))
		if err := w.Close(); err == nil {
			t.Errorf("%s: Close succeeded", tc.name)
		}
	}
}

func TestEncrypterWriteAfterClose(t *testing.T) {
	w := newRandomObjectKey(1).NewEncrypter(io.Discard)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDecrypterRejectsOtherFileID(t *testing.T) {
	a, b := newRandomObjectKey(1), newRandomObjectKey(1)
	body := encrypt(t, a, []byte("hello"))
	if _, err := decryptAll(b, body); !errors.Is(err, ErrAuth) {
		t.Fatalf("body opened under another object's key: %v", err)
	}
}
