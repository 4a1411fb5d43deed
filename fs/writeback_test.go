package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
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

func TestFailedUploadIsRetriedAndReported(t *testing.T) {
	var fs *failingStore
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		fs = &failingStore{Store: o.Store}
		o.Store = fs
		o.WritebackDelay = 10 * time.Millisecond
	})
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
	h.Close(ctx)
	time.Sleep(1500 * time.Millisecond) // the background retry after 1 s fails too
	if n := fs.puts.Load(); n < 2 {
		t.Fatalf("%d puts, want a retry", n)
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
	if got := readFile(t, tv.reopen(t), "/f"); string(got) != "data" {
		t.Fatalf("stored %q", got)
	}
}

// TestConflictingUploadFails: a file changed in the store since it was
// opened is not overwritten; fsync says so.
func TestConflictingUploadFails(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/c", []byte("v1"))
	flush(t, tv.Volume)
	h, err := tv.Open(ctx, "/c", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("V"), 0); err != nil {
		t.Fatal(err)
	}
	other := tv.reopen(t)
	writeFile(t, other, "/c", []byte("other"))
	flush(t, other)
	if err := h.Fsync(ctx); !errors.Is(err, blobstore.ErrPreconditionFailed) {
		t.Fatalf("fsync = %v, want a precondition failure", err)
	}
	h.Close(ctx)
	if got := readFile(t, tv.reopen(t), "/c"); string(got) != "other" {
		t.Fatalf("stored %q", got)
	}
	// Forget the conflicting version so Close does not report it.
	tv.Unlink(ctx, "/c")
}

// TestReadAfterRemoteChangeIsStale: an open reader never mixes versions.
func TestReadAfterRemoteChangeIsStale(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	data := make([]byte, 1<<20)
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
	writeFile(t, other, "/big", bytes.Repeat([]byte("z"), 1<<20))
	flush(t, other)
	_, err = h.ReadAt(ctx, buf, 900000)
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
