package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// rangeStore records the length of every ranged GET.
type rangeStore struct {
	blobstore.Store
	mu   sync.Mutex
	gets []int64
}

func (s *rangeStore) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	s.mu.Lock()
	s.gets = append(s.gets, opts.Length)
	s.mu.Unlock()
	return s.Store.Get(ctx, key, opts)
}

func (s *rangeStore) lengths() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.gets...)
}

// streamed are caches too small for the files of these tests, so
// read-ahead streams them into pooled buffers.
func streamed(o *Options) { o.MemCacheSize, o.CacheSize = 1<<20, 4<<20 }

// reopenThrough reopens tv's store (cold caches) through wrap.
func reopenThrough(t *testing.T, tv *testVol, wrap func(blobstore.Store) blobstore.Store) *Volume {
	t.Helper()
	opts := tv.options
	opts.CacheDir = t.TempDir()
	opts.Store = wrap(opts.Store)
	v, err := OpenVolume(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close(context.Background()) })
	return v
}

// TestReadAheadFromStart: the first read at offset 0 of a file larger
// than the read starts read-ahead (its GET reaches past the read), as
// the kernel reads a file from its start.
func TestReadAheadFromStart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode, streamed)
			ctx := context.Background()
			data := make([]byte, 12<<20)
			rand.Read(data)
			writeFile(t, tv.Volume, "/big", data)
			flush(t, tv.Volume)
			rs := &rangeStore{}
			v := reopenThrough(t, tv, func(s blobstore.Store) blobstore.Store { rs.Store = s; return rs })

			h, err := v.Open(ctx, "/big", syscall.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(ctx)
			before := len(rs.lengths()) // the config, the lookup's first chunk
			buf := make([]byte, 128<<10)
			if n, err := h.ReadAt(ctx, buf, 0); err != nil || !bytes.Equal(buf[:n], data[:len(buf)]) {
				t.Fatalf("first read: %d bytes, %v", n, err)
			}
			gets := rs.lengths()[before:]
			seg := v.lay.objectSize(segChunks * cipher.ChunkSize)
			if len(gets) == 0 || gets[0] < seg {
				t.Fatalf("the first read at 0 fetched %v bytes, want read-ahead (a GET of at least one %d-byte segment)", gets, seg)
			}

		})
	}
}

// TestReadViewOutlivesSegment: a view given to FUSE keeps its segment's
// buffer while the reader moves on and other files reuse the pool, so a
// reply never carries another file's bytes (nor later ones of its own).
func TestReadViewOutlivesSegment(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, streamed)
	ctx := context.Background()
	a, b := make([]byte, 12<<20), make([]byte, 12<<20+777)
	rand.Read(a)
	rand.Read(b)
	writeFile(t, tv.Volume, "/a", a)
	writeFile(t, tv.Volume, "/b", b)
	flush(t, tv.Volume)
	v := tv.reopen(t)

	ha, err := v.Open(ctx, "/a", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close(ctx)
	buf := make([]byte, 1<<20)
	held, err := ha.ReadView(ctx, buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(held.Slices) != 1 || &held.Slices[0][0] == &buf[0] {
		t.Fatalf("a 1 MiB read inside a segment: %d slices (of p: %v), want one of the segment's buffer", len(held.Slices), &held.Slices[0][0] == &buf[0])
	}
	// Read the rest of a (its first segments drop behind) and all of b
	// twice, taking buffers from the pool.
	for off := int64(len(buf)); off < int64(len(a)); off += int64(len(buf)) {
		if n, err := ha.ReadAt(ctx, buf, off); err != nil || !bytes.Equal(buf[:n], a[off:off+int64(n)]) {
			t.Fatalf("read a at %d: %v", off, err)
		}
	}
	for range 2 {
		if got := readFile(t, v, "/b"); !bytes.Equal(got, b) {
			t.Fatal("b differs")
		}
	}
	got := make([]byte, len(buf))
	if n := held.copyTo(got); n != len(buf) || !bytes.Equal(got, a[:len(buf)]) {
		t.Fatal("a view held across other reads changed: its buffer went back to the pool while in use")
	}
	held.Release()
	held.Release() // a second release does nothing
	if got := readFile(t, v, "/a"); !bytes.Equal(got, a) {
		t.Fatal("a differs after the view's buffer was reused")
	}
}

// TestReadViewEOF: views end at the end of the file, and a read past it
// is an empty view with io.EOF.
func TestReadViewEOF(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, streamed)
	ctx := context.Background()
	data := make([]byte, 5<<20+100)
	rand.Read(data)
	writeFile(t, tv.Volume, "/f", data)
	flush(t, tv.Volume)
	v := tv.reopen(t)
	h, err := v.Open(ctx, "/f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	buf := make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(buf)) {
		rv, err := h.ReadView(ctx, buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		want := data[min(off, int64(len(data))):min(off+int64(len(buf)), int64(len(data)))]
		got := make([]byte, rv.Len())
		rv.copyTo(got)
		rv.Release()
		if !bytes.Equal(got, want) {
			t.Fatalf("view at %d: %d bytes, want %d", off, len(got), len(want))
		}
		if (len(want) < len(buf)) != errors.Is(err, io.EOF) {
			t.Fatalf("view at %d of %d bytes: err %v", off, len(want), err)
		}
		if len(want) == 0 {
			break
		}
	}
}

// shortStore cuts every GET body after cut bytes, as a store (or a
// proxy) that ends a response early.
type shortStore struct {
	blobstore.Store
	cut int64
}

func (s shortStore) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, key, opts)
	if err != nil {
		return rc, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, s.cut), rc}, info, nil
}

// TestReadShortBody: a GET body that ends before its range does fails
// the read with EIO, streamed or not; no byte of the missing part is
// made up.
func TestReadShortBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(*Options)
	}{{"streamed", streamed}, {"cached", func(*Options) {}}} {
		t.Run(tc.name, func(t *testing.T) {
			tv := newTestVolume(t, EncryptionClient, tc.tweak)
			ctx := context.Background()
			data := make([]byte, 12<<20)
			rand.Read(data)
			writeFile(t, tv.Volume, "/big", data)
			flush(t, tv.Volume)
			v := reopenThrough(t, tv, func(s blobstore.Store) blobstore.Store { return shortStore{s, 3<<20 + 100} })
			h, err := v.Open(ctx, "/big", syscall.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(ctx)
			if off := readUntilEIO(t, h, data); off >= int64(len(data)) {
				t.Fatal("every read succeeded from GETs cut short")
			}
		})
	}
}

// TestStreamedAroundDiskCache: a file read sequentially stays out of the
// disk cache when it is larger than a sixteenth of it (a second read
// fetches it again), and is kept when smaller (a second read makes no
// request).
func TestStreamedAroundDiskCache(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MemCacheSize, o.CacheSize = 1<<20, 64<<20 })
	data := make([]byte, 8<<20)
	rand.Read(data)
	writeFile(t, tv.Volume, "/large", data)         // 8 MiB > 64 MiB / 16
	writeFile(t, tv.Volume, "/small", data[:3<<20]) // 3 MiB <= 4 MiB
	flush(t, tv.Volume)
	v := tv.reopen(t)
	for _, tc := range []struct {
		path   string
		cached bool
	}{{"/large", false}, {"/small", true}} {
		if got := readFile(t, v, tc.path); !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("%s differs", tc.path)
		}
		before := tv.store.count("get")
		if got := readFile(t, v, tc.path); !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("%s differs on the second read", tc.path)
		}
		if gets := tv.store.count("get") - before; (gets == 0) != tc.cached {
			t.Fatalf("second read of %s: %d GETs (cached: %v)", tc.path, gets, tc.cached)
		}
	}
}
