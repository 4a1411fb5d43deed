package fs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cache/staging"
)

// partStore counts the starts, parts and completions of multipart uploads.
type partStore struct {
	blobstore.Store
	started, parts, completed atomic.Int64
	bigPuts                   atomic.Int64 // PUTs of a part's size or more
}

func (s *partStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	if size >= streamPart {
		s.bigPuts.Add(1)
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

func (s *partStore) Multipart(ctx context.Context, key string, opts blobstore.PutOptions) (blobstore.MultipartUpload, error) {
	u, err := s.Store.Multipart(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	s.started.Add(1)
	return &countedUpload{MultipartUpload: u, s: s}, nil
}

type countedUpload struct {
	blobstore.MultipartUpload
	s *partStore
}

func (u *countedUpload) UploadPart(ctx context.Context, n int, body []byte) (blobstore.Part, error) {
	p, err := u.MultipartUpload.UploadPart(ctx, n, body)
	if err == nil {
		u.s.parts.Add(1)
	}
	return p, err
}

func (u *countedUpload) Complete(ctx context.Context, parts []blobstore.Part) (blobstore.ObjectInfo, error) {
	info, err := u.MultipartUpload.Complete(ctx, parts)
	if err == nil {
		u.s.completed.Add(1)
	}
	return info, err
}

// streamPart is the part size of the stream tests (S3's smallest).
const streamPart = blobstore.MinPartSize

// streamVolume is a test volume with small parts whose store counts parts.
func streamVolume(t *testing.T, mode string, tweak ...func(*Options)) (*testVol, *partStore) {
	ps := &partStore{}
	tweak = append([]func(*Options){func(o *Options) {
		o.PartSize = streamPart
		ps.Store = o.Store
		o.Store = ps
	}}, tweak...)
	return newTestVolume(t, mode, tweak...), ps
}

// waitFor polls cond until it holds; it fails the test after a minute.
// It waits for background work, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pendingUploads lists the multipart uploads in progress in the store.
func pendingUploads(t *testing.T, s blobstore.Store) int {
	t.Helper()
	n := 0
	for _, err := range s.Uploads(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// writeSeq writes data to h in 1 MiB writes from off 0.
func writeSeq(t *testing.T, h *Handle, data []byte) {
	t.Helper()
	for off := 0; off < len(data); off += 1 << 20 {
		end := min(off+1<<20, len(data))
		if _, err := h.WriteAt(context.Background(), data[off:end], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamStartsBeforeClose: parts of a big file written sequentially
// are in the store before its fsync, which completes the upload (one
// multipart completion, no PUT of the body); a fresh mount reads it whole
// with the attributes it had at the fsync.
func TestStreamStartsBeforeClose(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv, ps := streamVolume(t, mode)
			ctx := context.Background()
			h, data := writeStreaming(t, tv, ps)
			if ps.completed.Load() != 0 {
				t.Fatal("completed before fsync")
			}
			mtime := time.Unix(1700000000, 123456789)
			if _, err := h.SetAttr(ctx, SetAttr{Mtime: &mtime}); err != nil {
				t.Fatal(err)
			}
			if err := h.Fsync(ctx); err != nil {
				t.Fatal(err)
			}
			if c := ps.completed.Load(); c != 1 {
				t.Fatalf("%d completions after fsync, want 1", c)
			}
			h.Close(ctx)
			flush(t, tv.Volume)
			if n := ps.bigPuts.Load(); n != 0 {
				t.Errorf("%d PUTs: the body went up again", n)
			}
			other := tv.reopen(t)
			if got := readFile(t, other, "/big"); !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, not what was written", len(got))
			}
			a, err := other.Stat(ctx, "/big")
			if err != nil {
				t.Fatal(err)
			}
			if !sameMtimeIn(mode, a.Mtime, mtime) || a.Mode&0o777 != 0o600 {
				t.Errorf("stored attributes: mtime %v mode %o, want %v 600", a.Mtime, a.Mode&0o777, mtime)
			}
			waitFor(t, "no multipart upload left", func() bool { return pendingUploads(t, tv.store) == 0 })
		})
	}
}

func sameMtimeIn(mode string, a, b time.Time) bool {
	if mode == EncryptionClient {
		return a.Equal(b)
	}
	return a.Unix() == b.Unix()
}

// TestStreamRandomWriteFallback: a write into a range the stream has
// read already aborts it; the file is stored from staging with every
// byte, and no multipart upload is left behind.
func TestStreamRandomWriteFallback(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv, ps := streamVolume(t, mode)
			ctx := context.Background()
			data := randomBytes(4*streamPart + 999)
			h, _, err := tv.Create(ctx, "/big", 0o644, syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			writeSeq(t, h, data)
			waitFor(t, "parts uploaded while the file is open", func() bool { return ps.parts.Load() >= 2 })
			patch := []byte("rewritten after its part went up")
			if _, err := h.WriteAt(ctx, patch, 100); err != nil {
				t.Fatal(err)
			}
			copy(data[100:], patch)
			h.Close(ctx)
			flush(t, tv.Volume)
			if got := readFile(t, tv.reopen(t), "/big"); !bytes.Equal(got, data) {
				t.Fatal("stored file lacks the rewrite")
			}
			waitFor(t, "the aborted upload gone", func() bool { return pendingUploads(t, tv.store) == 0 })
		})
	}
}

// TestStreamCrashRecovers: a mount killed mid-stream, after close(2)
// journalled the file, leaves no object (a multipart upload is invisible
// until completed) and the next mount stores the file whole.
func TestStreamCrashRecovers(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv, ps := streamVolume(t, mode, func(o *Options) { o.WritebackDelay = time.Hour })
			ctx := context.Background()
			data := randomBytes(4*streamPart + 77)
			h, _, err := tv.Create(ctx, "/big", 0o644, syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			writeSeq(t, h, data[:3*streamPart])
			waitFor(t, "parts uploaded while the file is open", func() bool { return ps.parts.Load() >= 1 })
			writeSeq2(t, h, data, 3*streamPart)
			if err := h.Flush(ctx); err != nil { // close(2): journalled
				t.Fatal(err)
			}
			key, _, err := tv.objectKey("/big")
			if err != nil {
				t.Fatal(err)
			}
			crash(t, tv.Volume)
			if _, err := tv.store.Head(ctx, key); !errors.Is(err, blobstore.ErrNotFound) {
				t.Fatalf("after the crash the store has the object (err %v)", err)
			}
			v, _ := tv.remount(t)
			if r := v.Recovered(); r.Recovered != 1 {
				t.Fatalf("recovery: %+v", r)
			}
			if got := readFile(t, tv.reopen(t), "/big"); !bytes.Equal(got, data) {
				t.Fatal("recovered file differs")
			}
		})
	}
}

// writeSeq2 writes data[from:] at from in 1 MiB writes.
func writeSeq2(t *testing.T, h *Handle, data []byte, from int) {
	t.Helper()
	for off := from; off < len(data); off += 1 << 20 {
		end := min(off+1<<20, len(data))
		if _, err := h.WriteAt(context.Background(), data[off:end], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamConflictCopy: another mount creates the path while this one
// streams its new file there: the completion's If-None-Match fails, the
// other's version stays, and this one is stored as a conflict copy.
func TestStreamConflictCopy(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv, ps := streamVolume(t, mode, func(o *Options) { o.now = func() time.Time { return conflictAt } })
			ctx := context.Background()
			data := randomBytes(3*streamPart + 5)
			h, _, err := tv.Create(ctx, "/big", 0o644, syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			writeSeq(t, h, data)
			waitFor(t, "parts uploaded while the file is open", func() bool { return ps.parts.Load() >= 1 })
			other := tv.reopen(t)
			writeFile(t, other, "/big", []byte("theirs"))
			flush(t, other)
			h.Close(ctx)
			flush(t, tv.Volume)
			fresh := tv.reopen(t)
			if got := readFile(t, fresh, "/big"); string(got) != "theirs" {
				t.Fatalf("the other mount's version was overwritten (%d bytes)", len(got))
			}
			if got := readFile(t, fresh, "/big"+conflictSuffix); !bytes.Equal(got, data) {
				t.Fatal("conflict copy differs")
			}
		})
	}
}

// TestStreamAcrossRefresh: a stream whose DEK was wrapped under a KEK
// generation that a config refresh retired from current before the
// stream completed is stored on the current generation, as any upload
// (TestUploadAcrossRefresh), so a rotation that listed the volume before
// it appeared leaves nothing on the old one.
func TestStreamAcrossRefresh(t *testing.T) {
	ctx := context.Background()
	tv, ps := streamVolume(t, EncryptionClient, func(o *Options) {
		o.WritebackDelay, o.ConfigRefresh = -1, -1
	})
	data := randomBytes(4*streamPart + 777)
	h, _, err := tv.Create(ctx, "/big", 0o600, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	writeSeq(t, h, data[:3*streamPart])
	waitFor(t, "the stream under way", func() bool { return ps.parts.Load() >= 1 })
	addGeneration(t, tv.store, tv.root)
	if _, err := tv.watch.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, data[3*streamPart:], 3*streamPart); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	h.Close(ctx)
	if ps.completed.Load() != 1 {
		t.Fatalf("%d completions, want the stream's one", ps.completed.Load())
	}
	if g := storedGeneration(t, tv.Volume, "/big"); g != 2 {
		t.Fatalf("a stream completed after the refresh is on generation %d, want 2", g)
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, nv, "/big"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not what was written", len(got))
	}
}

// TestStreamRewritesInHoldback: a streaming writer that rewrites what it
// just wrote (within the holdback, so the stream goes on) and writes in
// pieces of every size gets every last byte stored by the one multipart
// upload: the stream never sends bytes that were overwritten since.
func TestStreamRewritesInHoldback(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv, ps := streamVolume(t, mode)
			ctx := context.Background()
			size := 4*streamPart + 4321
			data := randomBytes(size)
			h, _, err := tv.Create(ctx, "/big", 0o644, syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			var first *stream // the file's stream once it started
			write := func(b []byte, off int) {
				t.Helper()
				if _, err := h.WriteAt(ctx, b, int64(off)); err != nil {
					t.Fatal(err)
				}
				h.f.mu.Lock()
				s := h.f.stream
				h.f.mu.Unlock()
				if first == nil {
					first = s
				} else if s != first {
					t.Fatalf("a write of %d bytes at %d ended the stream", len(b), off)
				}
			}
			for off, i := 0, 0; off < size; i++ {
				n := min(size-off, []int{1 << 20, 4096, 333 << 10, 1}[i%4])
				write(bytes.Repeat([]byte{byte(i)}, n), off) // first a wrong version,
				write(data[off:off+n], off)                  // then the right one over it
				if back := min(off, 1000); i%3 == 0 && n+back <= streamHoldback {
					// and one that overlaps the previous write's start,
					// still within the holdback of the written end (a
					// rewrite further back may find it fed: the stream
					// would rightly start over)
					write(data[off-back:off+n/2], off-back)
				}
				off += n
			}
			if first == nil {
				t.Fatal("the file never streamed")
			}
			if err := h.Fsync(ctx); err != nil {
				t.Fatal(err)
			}
			onePass := (tv.lay.objectSize(int64(size)) + streamPart - 1) / streamPart
			if st, parts, c, p := ps.started.Load(), ps.parts.Load(), ps.completed.Load(), ps.bigPuts.Load(); st != 1 || parts != onePass || c != 1 || p != 0 {
				t.Fatalf("%d uploads started, %d parts, %d completions and %d PUTs of the body: want the stream's one upload, %d parts and 1 completion", st, parts, c, p, onePass)
			}
			h.Close(ctx)
			flush(t, tv.Volume)
			if got := readFile(t, tv.reopen(t), "/big"); !bytes.Equal(got, data) {
				t.Fatal("the stored file is not what was written last")
			}
		})
	}
}

// TestStreamRenameAfterClose: rsync's pattern on a streamed file (close,
// utimens and chmod, then rename to the final name, all within the
// writeback delay) finishes the upload under the old name and moves it
// server-side: the body goes up once (one upload's parts, one
// completion, no PUT of it), the final name has the attributes set
// after the close, the temporary name is gone, and no upload is left.
func TestStreamRenameAfterClose(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv, ps := streamVolume(t, mode, func(o *Options) { o.WritebackDelay = time.Hour })
			ctx := context.Background()
			data := randomBytes(4*streamPart + 777)
			h, _, err := tv.Create(ctx, "/.big.tmp", 0o600, syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			writeSeq(t, h, data)
			if err := h.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			h.Close(ctx)
			mtime, mode644 := time.Unix(1700000000, 0), uint32(0o644)
			if _, err := tv.SetAttr(ctx, "/.big.tmp", SetAttr{Mtime: &mtime, Atime: &mtime}); err != nil {
				t.Fatal(err)
			}
			if _, err := tv.SetAttr(ctx, "/.big.tmp", SetAttr{Mode: &mode644}); err != nil {
				t.Fatal(err)
			}
			if err := tv.Rename(ctx, "/.big.tmp", "/big", 0); err != nil {
				t.Fatal(err)
			}
			flush(t, tv.Volume)
			onePass := (tv.lay.objectSize(int64(len(data))) + streamPart - 1) / streamPart
			if p, c, b := ps.parts.Load(), ps.completed.Load(), ps.bigPuts.Load(); p != onePass || c != 1 || b != 0 {
				t.Fatalf("%d parts, %d completions, %d PUTs of the body; want the %d parts of one upload, 1 completion, no PUT", p, c, b, onePass)
			}
			other := tv.reopen(t)
			if got := readFile(t, other, "/big"); !bytes.Equal(got, data) {
				t.Fatal("/big is not what was written")
			}
			a, err := other.Stat(ctx, "/big")
			if err != nil {
				t.Fatal(err)
			}
			if !a.Mtime.Equal(mtime) || a.Mode&0o777 != 0o644 {
				t.Errorf("/big: mtime %v mode %o, want %v 644", a.Mtime, a.Mode&0o777, mtime)
			}
			if _, err := other.Stat(ctx, "/.big.tmp"); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("/.big.tmp after the rename: %v, want ENOENT", err)
			}
			waitFor(t, "no multipart upload left", func() bool { return pendingUploads(t, tv.store) == 0 })
		})
	}
}

// TestStreamEvictsWhatItRead: what the stream has read into the upload
// leaves the page cache (it stays in the staging file, which uploads
// whole if the stream is aborted: TestStreamRandomWriteFallback), so a
// big file being written does not fill memory with itself.
func TestStreamEvictsWhatItRead(t *testing.T) {
	tv, ps := streamVolume(t, EncryptionClient)
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(tv.options.CacheDir, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type == 0x01021994 { // TMPFS_MAGIC
		t.Skip("tmpfs keeps its pages: nothing to evict")
	}
	ctx := context.Background()
	h, data := writeStreaming(t, tv, ps)
	h.f.mu.Lock()
	sf := h.f.st.(*staging.File)
	h.f.mu.Unlock()
	// The first two parts were read for the upload: their pages are gone
	// but for a few the kernel had not let go of yet.
	in, all, err := staging.ResidentPages(sf.Path(), 1<<20, 2*streamPart)
	if err != nil {
		t.Fatal(err)
	}
	if all == 0 || in > all/20 {
		t.Errorf("%d of %d pages of the uploaded start resident, want (almost) none", in, all)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	if got := readFile(t, tv.reopen(t), "/big"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not what was written", len(got))
	}
}

// writeStreaming creates /big and writes a little over five parts into
// it sequentially, returning once three parts are uploaded (the file
// still open).
func writeStreaming(t *testing.T, tv *testVol, ps *partStore) (*Handle, []byte) {
	t.Helper()
	data := randomBytes(5*streamPart + 12345)
	h, _, err := tv.Create(context.Background(), "/big", 0o600, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	writeSeq(t, h, data)
	waitFor(t, "parts uploaded while the file is open", func() bool { return ps.parts.Load() >= 3 })
	return h, data
}
