package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallTmpfs mounts an 8 MiB tmpfs on a fresh directory and unmounts it
// when the test ends (after the coffer mount that uses it, since cleanups
// run last-registered first and this one is registered before the mount).
func smallTmpfs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
		msg := "mounting an 8 MiB tmpfs for the cache dir: " + err.Error()
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		// The daemon may hold its log open for a moment after unmount.
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if err = syscall.Unmount(dir, 0); err != syscall.EBUSY || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Logf("cleanup: unmount tmpfs %s: %v; detaching", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// writeBig writes data to path in 1 MiB writes, then fsyncs and closes
// it. It returns how many bytes the writes took and the first error of
// any of those steps.
func writeBig(path string, data []byte) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	var (
		written int64
		first   error
	)
	for off := 0; off < len(data) && first == nil; off += 1 << 20 {
		var n int
		n, first = f.Write(data[off:min(off+1<<20, len(data))])
		written += int64(n)
	}
	if first == nil {
		first = f.Sync()
	}
	if err := f.Close(); first == nil {
		first = err
	}
	return written, first
}

// usedBytes is how much of the file system at dir is in use.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// TestDiskFull: with the cache directory on an 8 MiB tmpfs, writing a
// 32 MiB file fails with ENOSPC in a write, the fsync or the close, never
// silently. The partial file holds exactly the bytes its writes took,
// and, kept as it is, is stored at unmount with those bytes and gives its
// staging space back. A file fsync'd before is intact, the mount keeps
// working once the failed file is removed, and after a remount everything
// fsync'd is there while the removed file does not come back.
func TestDiskFull(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		tmpfs := smallTmpfs(t)
		v := newVolume(t, b.newStore(t))
		v.cacheDir = filepath.Join(tmpfs, "cache")
		t.Cleanup(func() {
			if t.Failed() {
				logTree(t, tmpfs)
				if l, err := os.ReadFile(filepath.Join(v.cacheDir, "coffer.log")); err == nil {
					t.Logf("coffer.log:\n%s", l)
				}
			}
		})
		v.mount()

		keep := pseudoRandom(21, 100<<10)
		f := openFile(t, v.path("keep"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		writeAt(t, f, keep, 0)
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync keep: %v", err)
		}
		closeFile(t, f)

		const bigSize = 32 << 20
		type outcome struct {
			written int64
			err     error
		}
		done := make(chan outcome, 1)
		start := time.Now()
		go func() {
			n, err := writeBig(v.path("big"), pseudoRandom(22, bigSize))
			done <- outcome{n, err}
		}()
		var res outcome
		select {
		case res = <-done:
		case <-time.After(3 * time.Minute):
			t.Fatalf("writing %d bytes with the cache dir on an 8 MiB tmpfs hung for 3 minutes", bigSize)
		}
		err := res.err
		if err == nil {
			t.Fatalf("writing, fsyncing and closing %d bytes with the cache dir on an 8 MiB tmpfs succeeded", bigSize)
		}
		// A staging file that cannot grow is ENOSPC, as on a local disk.
		if en := errnoOf(err); en != syscall.ENOSPC {
			t.Fatalf("big write failed with %v (errno %d), want ENOSPC", err, en)
		}
		// The log's first page was allocated at mount, so the cause fits.
		if l, err := os.ReadFile(filepath.Join(v.cacheDir, "coffer.log")); err != nil || !strings.Contains(string(l), "no space left on device") {
			t.Fatalf("coffer.log does not name the cause (read: %v)", err)
		}
		t.Logf("big write failed after %v, %d bytes written: %v", time.Since(start).Round(time.Millisecond), res.written, err)
		// The first writes fit (8 MiB of tmpfs, 1 MiB writes), the last
		// did not; a write that fails, fails whole.
		if res.written == 0 || res.written >= bigSize {
			t.Fatalf("%d of %d bytes written before ENOSPC: the test needs a partial file", res.written, bigSize)
		}

		checkFile(t, v.path("keep"), keep)
		// checkBig: big exists and holds exactly the bytes its writes took.
		checkBig := func(when string, read bool) {
			t.Helper()
			fi, err := os.Stat(v.path("big"))
			if err != nil {
				t.Fatalf("%s: stat big: %v", when, err)
			}
			if fi.Size() != res.written {
				t.Fatalf("%s: big claims %d bytes; its writes took %d", when, fi.Size(), res.written)
			}
			if read {
				checkFile(t, v.path("big"), pseudoRandom(22, bigSize)[:res.written])
			}
		}
		checkBig("after the failed write", false)

		// Kept as it is, the partial file is stored whole at unmount: what
		// the writes that succeeded put there, nothing more, and its
		// staging space is given back.
		v.remount(false)
		if used := usedBytes(t, tmpfs); used >= res.written/2 {
			logTree(t, tmpfs)
			t.Fatalf("after the partial file was stored, the cache dir still uses %d bytes: its %d bytes of staging were not given back", used, res.written)
		}
		checkBig("after a remount with the partial file kept", true)

		// The mount still works once the space is given back.
		if err := os.Remove(v.path("big")); err != nil {
			t.Fatalf("remove big: %v", err)
		}
		after := pseudoRandom(23, 200<<10)
		f = openFile(t, v.path("after"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		writeAt(t, f, after, 0)
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync after a full disk: %v", err)
		}
		closeFile(t, f)
		checkFile(t, v.path("after"), after)

		// What was fsync'd survives a remount; the failed file does not
		// come back.
		v.remount(false)
		checkFile(t, v.path("keep"), keep)
		checkFile(t, v.path("after"), after)
		if _, err := os.Stat(v.path("big")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("big is back after it was removed: stat: %v", err)
		}
	})
}

// TestDiskFullCacheGivesWay: when the block cache has filled the disk
// that staging shares with it, staging wins. Unlinking a file that a
// reader still holds open copies the version it opened into staging;
// with the cache dir on an 8 MiB tmpfs and 6 MiB of that file cached,
// the copy fits only if the cache gives its space back, and the reader
// goes on reading the right bytes after the unlink.
func TestDiskFullCacheGivesWay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		tmpfs := smallTmpfs(t)
		v := newVolume(t, b.newStore(t))
		v.cacheDir = filepath.Join(tmpfs, "cache")
		v.mount()
		const size = 6 << 20
		data := pseudoRandom(31, size)
		if n, err := writeBig(v.path("big"), data); err != nil {
			t.Fatalf("writing %d bytes (%d taken): %v", size, n, err)
		}
		v.remount(false) // big is stored; its staging space is free again

		r := openFile(t, v.path("big"), os.O_RDONLY)
		defer r.Close()
		readAt := func(when string) {
			t.Helper()
			got := make([]byte, size)
			if n, err := r.ReadAt(got, 0); n != size {
				t.Fatalf("%s: read %d of %d bytes from the open handle: %v", when, n, size, err)
			}
			if err := sameBytes(got, data); err != nil {
				t.Fatalf("%s: the open handle reads %v", when, err)
			}
		}
		readAt("before the remove")
		// The cache writes to disk behind the reads: wait until it holds
		// big, so that the copy below cannot fit beside it.
		for deadline := time.Now().Add(time.Minute); usedBytes(t, tmpfs) < size; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				logTree(t, tmpfs)
				t.Fatalf("a minute after big was read, the cache dir holds %d bytes: the block cache did not keep it", usedBytes(t, tmpfs))
			}
		}
		if err := os.Remove(v.path("big")); err != nil {
			t.Fatalf("remove big while a reader holds it open, its chunks cached: %v", err)
		}
		if _, err := os.Stat(v.path("big")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat after remove: %v", err)
		}
		// The reads after the remove must reach the mount, not the
		// kernel's page cache of the reads before.
		if err := unix.Fadvise(int(r.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		readAt("after the remove")
		l, err := os.ReadFile(filepath.Join(v.cacheDir, "coffer.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(l), "the block cache gave space back to staging") || strings.Contains(string(l), "no room on the local disk") {
			t.Fatalf("the copy for the reader did not take the cache's room; coffer.log:\n%s", l)
		}
		closeFile(t, r)

		// With the disk full of something else, there is no room for the
		// copy: the remove still succeeds (a user frees space by removing
		// files), and the reader's reads fail as when another client
		// removed the file (ENOENT, ESTALE: fs/doc.go), never wrong bytes.
		second := pseudoRandom(32, 2<<20)
		if n, err := writeBig(v.path("second"), second); err != nil {
			t.Fatalf("writing second (%d taken): %v", n, err)
		}
		v.remount(false)
		r = openFile(t, v.path("second"), os.O_RDONLY)
		defer r.Close()
		fillDisk(t, filepath.Join(tmpfs, "filler"))
		if err := os.Remove(v.path("second")); err != nil {
			t.Fatalf("remove second while a reader holds it open, the disk full: %v", err)
		}
		got := make([]byte, len(second))
		if n, err := r.ReadAt(got, 0); errnoOf(err) != syscall.ENOENT && errnoOf(err) != syscall.ESTALE {
			t.Fatalf("reading second after its remove on a full disk: %d bytes, err %v; want ENOENT or ESTALE", n, err)
		}
		if l, err := os.ReadFile(filepath.Join(v.cacheDir, "coffer.log")); err != nil || !strings.Contains(string(l), "no room on the local disk to keep the version open handles read") {
			t.Fatalf("coffer.log does not say why the reader fails (read: %v)", err)
		}
		closeFile(t, r)
	})
}

// fillDisk writes path until the file system it is on is full, and
// removes it at cleanup.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); os.Remove(path) })
	for _, n := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, n)
		for {
			if _, err := f.Write(buf); err != nil {
				if errnoOf(err) != syscall.ENOSPC {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
}

// logTree logs every file under root with its size.
func logTree(t *testing.T, root string) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Logf("%s: %d bytes", p, fi.Size())
		}
		return nil
	})
}
