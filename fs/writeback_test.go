package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// failingStore fails every Put while failing is set.
type failingStore struct {
	blobstore.Store
	failing atomic.Bool
	puts    atomic.Int64
}

var errBoom = errors.New("boom")

func (f *failingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	f.puts.Add(1)
	if f.failing.Load() {
		return blobstore.ObjectInfo{}, &blobstore.Error{Op: "put", Key: key, Err: errBoom}
	}
	return f.Store.Put(ctx, key, body, size, opts)
}

// fakeClock arms timers that only fire when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	d     time.Duration
	fn    func()
	ended bool // stopped or fired
}

func (c *fakeClock) AfterFunc(d time.Duration, fn func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, d: d, fn: fn}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	armed := !t.ended
	t.ended = true
	return armed
}

func (c *fakeClock) armedLocked() []*fakeTimer {
	var armed []*fakeTimer
	for _, t := range c.timers {
		if !t.ended {
			armed = append(armed, t)
		}
	}
	return armed
}

// armed returns the delays of the timers armed and not yet fired or
// stopped.
func (c *fakeClock) armed() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.armedLocked() {
		ds = append(ds, t.d)
	}
	return ds
}

// fire runs the one armed timer, which must wait d, as if d had passed.
func (c *fakeClock) fire(tb testing.TB, d time.Duration) {
	tb.Helper()
	c.mu.Lock()
	armed := c.armedLocked()
	if len(armed) != 1 || armed[0].d != d {
		c.mu.Unlock()
		tb.Fatalf("armed timers %v, want one of %v", c.armed(), d)
	}
	armed[0].ended = true
	c.mu.Unlock()
	armed[0].fn()
}

// TestClosedFileUploadedAfterDelay: the last close of a changed file
// arms its upload for the writeback delay, and nothing is stored before
// it fires; then the file is stored and forgotten, with nothing left to
// flush.
func TestClosedFileUploadedAfterDelay(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = 3 * time.Second })
	clk := &fakeClock{}
	tv.clock = clk
	ctx := context.Background()
	tv.store.reset() // the config's put
	writeFile(t, tv.Volume, "/f", []byte("data"))
	if n := tv.store.count("put"); n != 0 {
		t.Fatalf("%d puts before the writeback delay passed", n)
	}
	clk.fire(t, 3*time.Second)
	if n := tv.store.count("put"); n != 1 {
		t.Fatalf("%d puts once the writeback delay passed, want 1", n)
	}
	if a := clk.armed(); len(a) != 0 {
		t.Fatalf("a stored file has uploads armed: %v", a)
	}
	var seen []int
	if err := tv.Flush(ctx, func(n int) { seen = append(seen, n) }); err != nil || !slices.Equal(seen, []int{0}) {
		t.Fatalf("flush after the upload: pending %v, %v", seen, err)
	}
	if got := readFile(t, tv.reopen(t), "/f"); string(got) != "data" {
		t.Fatalf("stored %q", got)
	}
}

// TestFailedUploadIsRetriedAndReported: an upload that fails after the
// last close is retried in the background, 1 s after the first failure
// and then twice as late each time up to a minute, and its error is
// reported to fsync and Flush until an upload succeeds.
func TestFailedUploadIsRetriedAndReported(t *testing.T) {
	var fs *failingStore
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		fs = &failingStore{Store: o.Store}
		o.Store = fs
		o.WritebackDelay = 10 * time.Millisecond
	})
	clk := &fakeClock{}
	tv.clock = clk
	ctx := context.Background()
	fs.failing.Store(true)
	h, _, err := tv.Create(ctx, "/f", 0o644, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	h.WriteAt(ctx, []byte("data"), 0)
	if err := h.Fsync(ctx); !errors.Is(err, errBoom) {
		t.Fatalf("fsync = %v, want the upload error", err)
	}
	if n := fs.puts.Load(); n != 1 {
		t.Fatalf("%d puts after fsync, want 1", n)
	}
	if a := clk.armed(); len(a) != 0 {
		t.Fatalf("an open file armed uploads %v", a)
	}
	h.Close(ctx)
	clk.fire(t, 10*time.Millisecond) // the writeback delay: upload 2 fails
	for i, d := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		if n := fs.puts.Load(); n != int64(i)+2 {
			t.Fatalf("%d puts before retry %d, want %d", n, i+1, i+2)
		}
		clk.fire(t, d*time.Second) // retry i+1 fails too
	}
	if err := tv.Flush(ctx, nil); !errors.Is(err, errBoom) {
		t.Fatalf("flush = %v, want the upload error", err)
	}
	fs.failing.Store(false)
	var seen []int
	if err := tv.Flush(ctx, func(n int) { seen = append(seen, n) }); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || seen[0] != 1 || seen[len(seen)-1] != 0 {
		t.Fatalf("progress %v", seen)
	}
	if a := clk.armed(); len(a) != 0 {
		t.Fatalf("a stored file still has uploads armed: %v", a)
	}
	if got := readFile(t, tv.reopen(t), "/f"); string(got) != "data" {
		t.Fatalf("stored %q", got)
	}
}

// TestReadAfterRemoteChangeIsStale: an open reader never mixes versions:
// a read that needs the store after another mount replaced the file
// (here past what read-ahead fetched after the first read) is ESTALE.
func TestReadAfterRemoteChangeIsStale(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	data := make([]byte, 16<<20)
	rand.Read(data)
	writeFile(t, tv.Volume, "/big", data)
	flush(t, tv.Volume)
	v := tv.reopen(t)
	h, err := v.Open(ctx, "/big", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	buf := make([]byte, 4096)
	if _, err := h.ReadAt(ctx, buf, 0); err != nil || !bytes.Equal(buf, data[:4096]) {
		t.Fatalf("first read: %v", err)
	}
	other := tv.reopen(t)
	writeFile(t, other, "/big", bytes.Repeat([]byte("z"), 16<<20))
	flush(t, other)
	_, err = h.ReadAt(ctx, buf, 15<<20)
	wantErrno(t, err, syscall.ESTALE)
}

// TestChmodRetriesAfterRemoteChange: a metadata copy that meets a newer
// version (412) re-reads it and applies the change to that version.
func TestChmodRetriesAfterRemoteChange(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/f", []byte("v1"))
	flush(t, tv.Volume)
	if _, err := tv.Stat(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	other := tv.reopen(t)
	writeFile(t, other, "/f", []byte("v2"))
	flush(t, other)
	m := uint32(0o604)
	a, err := tv.SetAttr(ctx, "/f", SetAttr{Mode: &m})
	if err != nil || a.Mode&0o777 != 0o604 {
		t.Fatalf("chmod = %+v, %v", a, err)
	}
	v3 := tv.reopen(t)
	a, _ = v3.Stat(ctx, "/f")
	if got := readFile(t, v3, "/f"); string(got) != "v2" || a.Mode&0o777 != 0o604 {
		t.Fatalf("after chmod: %q %o", got, a.Mode)
	}
}

// TestReadPatterns reads a stored file sequentially (twice: cold, then
// warm), slightly out of order (as the kernel's parallel read-ahead
// does) and at random, with the caches that hold a file of its size and
// with caches too small, where read-ahead streams around them.
func TestReadPatterns(t *testing.T) {
	data := make([]byte, 21<<20+123)
	rand.Read(data)
	tests := []struct {
		name  string
		tweak func(*Options)
	}{
		{"cached", func(*Options) {}},
		{"disk cache only", func(o *Options) { o.MemCacheSize = 1 << 20 }},
		{"streamed", func(o *Options) { o.MemCacheSize, o.CacheSize = 1<<20, 4<<20 }},
	}
	for _, mode := range modes {
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				tv := newTestVolume(t, mode, tc.tweak)
				ctx := context.Background()
				writeFile(t, tv.Volume, "/big", data)
				flush(t, tv.Volume)
				v := tv.reopen(t)
				h, err := v.Open(ctx, "/big", syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close(ctx)
				var offs []int64
				const step = 128 << 10
				for pass := 0; pass < 2; pass++ {
					for off := int64(0); off < int64(len(data)); off += step {
						offs = append(offs, off)
					}
				}
				for off := int64(0); off < int64(len(data)); off += 2 * step {
					offs = append(offs, off+step, off) // pairs swapped
				}
				for i := 0; i < 50; i++ {
					var b [8]byte
					rand.Read(b[:])
					offs = append(offs, int64(b[0])<<17|int64(b[1])<<9|int64(b[2]))
				}
				buf := make([]byte, step)
				for _, off := range offs {
					if off >= int64(len(data)) {
						continue
					}
					n, err := h.ReadAt(ctx, buf, off)
					if err != nil && !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					if !bytes.Equal(buf[:n], data[off:min(off+step, int64(len(data)))]) {
						t.Fatalf("read at %d differs", off)
					}
				}
			})
		}
	}
}

// TestStreamedReadTampered: a chunk altered in the middle of a file that
// read-ahead streams fails the reads of its segment with EIO (logged
// once); what comes before it reads.
func TestStreamedReadTampered(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MemCacheSize, o.CacheSize = 1<<20, 4<<20 })
	ctx := context.Background()
	data := make([]byte, 12<<20)
	rand.Read(data)
	writeFile(t, tv.Volume, "/big", data)
	flush(t, tv.Volume)
	key := objectKeyOf(t, tv.Volume, "/big")
	rc, info, err := tv.store.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	const bad = 7 << 20 // plaintext offset of the altered chunk
	co, _ := cipher.ChunkCipherRange(bad/cipher.ChunkSize, int64(len(data)))
	body[co+100] ^= 1
	if _, err := tv.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), blobstore.PutOptions{Metadata: info.Metadata}); err != nil {
		t.Fatal(err)
	}
	v, logs := tv.reopenLogging(t, slog.LevelInfo)
	h, err := v.Open(ctx, "/big", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	off := readUntilEIO(t, h, data)
	// Read-ahead authenticates whole 2 MiB segments: the first read of
	// the altered chunk's segment fails.
	if seg := int64(bad) &^ (segChunks*cipher.ChunkSize - 1); off != seg {
		t.Fatalf("the read at %d failed, want the one at %d", off, seg)
	}
	records := 0
	for _, l := range logs.lines() {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "key="+key) {
			records++
		}
	}
	if records != 1 {
		t.Fatalf("%d error records, want 1:\n%s", records, strings.Join(logs.lines(), "\n"))
	}
}

// TestBodySizesAroundOneChunk: bodies of at most one chunk are sealed in
// memory, bigger ones streamed through the encrypter (putBody); either
// way the stored object has the envelope's size and reads back, from a
// fresh mount, as written, in both encryption modes.
func TestBodySizesAroundOneChunk(t *testing.T) {
	for _, mode := range []string{EncryptionClient, EncryptionNone} {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			sizes := []int{0, 1, 4096, cipher.ChunkSize - 1, cipher.ChunkSize, cipher.ChunkSize + 1, 2*cipher.ChunkSize + 7}
			for _, n := range sizes {
				data := make([]byte, n)
				for i := range data {
					data[i] = byte(i*7 + n)
				}
				writeFile(t, tv.Volume, fmt.Sprintf("/f%d", n), data)
			}
			if err := tv.Flush(ctx, nil); err != nil {
				t.Fatal(err)
			}
			fresh := tv.reopen(t)
			for _, n := range sizes {
				p := fmt.Sprintf("/f%d", n)
				key, _, err := tv.objectKey(p)
				if err != nil {
					t.Fatal(err)
				}
				info, err := tv.store.Head(ctx, key)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if want := tv.lay.objectSize(int64(n)); info.Size != want {
					t.Errorf("%s: stored %d bytes, want %d", p, info.Size, want)
				}
				got := readFile(t, fresh, p)
				if len(got) != n {
					t.Fatalf("%s: read %d bytes back, want %d", p, len(got), n)
				}
				for i := range got {
					if got[i] != byte(i*7+n) {
						t.Fatalf("%s: byte %d is %d, want %d", p, i, got[i], byte(i*7+n))
					}
				}
			}
		})
	}
}

// readUntilEIO reads h from the start in 1 MiB reads, each checked
// against data, and returns the offset of the first read that failed,
// which must fail with EIO (len(data) when none did).
func readUntilEIO(t *testing.T, h *Handle, data []byte) int64 {
	t.Helper()
	ctx := context.Background()
	buf := make([]byte, 1<<20)
	var off int64
	for ; off < int64(len(data)); off += int64(len(buf)) {
		n, err := h.ReadAt(ctx, buf, off)
		if err != nil {
			wantErrno(t, err, syscall.EIO)
			break
		}
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("read at %d differs", off)
		}
	}
	return off
}
