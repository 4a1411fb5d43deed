package integration

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// writeBig writes data to path in 1 MiB writes, then fsyncs
// and closes it, and returns the first error of any of those steps.
func writeBig(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var first error
	for off := 0; off < len(data) && first == nil; off += 1 << 20 {
		_, first = f.Write(data[off:min(off+1<<20, len(data))])
	}
	if first == nil {
		first = f.Sync()
	}
	if err := f.Close(); first == nil {
		first = err
	}
	return first
}

// TestDiskFull: with the cache directory on an 8 MiB tmpfs, writing a
// 32 MiB file fails with ENOSPC in a write,
// the fsync or the close, never silently; a file fsync'd before is
// intact, the mount keeps working once the failed file is removed, and
// after a remount everything fsync'd is there while the big file neither
// comes back nor ever claims its full size.
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
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- writeBig(v.path("big"), pseudoRandom(22, bigSize)) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(3 * time.Minute):
			t.Fatalf("writing %d bytes with the cache dir on an 8 MiB tmpfs hung for 3 minutes", bigSize)
		}
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
		t.Logf("big write failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

		checkFile(t, v.path("keep"), keep)
		checkBig := func(when string) {
			t.Helper()
			fi, err := os.Stat(v.path("big"))
			switch {
			case errors.Is(err, os.ErrNotExist):
				t.Logf("%s: big does not exist", when)
			case err != nil:
				t.Fatalf("%s: stat big: %v", when, err)
			case fi.Size() >= bigSize:
				t.Fatalf("%s: big claims %d bytes though its write failed", when, fi.Size())
			default:
				t.Logf("%s: big holds %d bytes", when, fi.Size())
			}
		}
		checkBig("after the failed write")

		// Kept as it is, the partial file is stored whole at unmount: what
		// the writes that succeeded put there, nothing more, and its
		// staging space is given back.
		v.remount(false)
		checkBig("after a remount with the partial file kept")
		if got, err := os.ReadFile(v.path("big")); err == nil {
			if want := pseudoRandom(22, bigSize)[:len(got)]; !bytes.Equal(got, want) {
				t.Fatalf("the partial file's %d bytes differ from what was written", len(got))
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("read the partial file: %v", err)
		}

		// The mount still works once the space is given back.
		if err := os.Remove(v.path("big")); err != nil && !errors.Is(err, os.ErrNotExist) {
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
		checkBig("after a remount")
		if _, err := os.Stat(v.path("big")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("big is back after it was removed: stat: %v", err)
		}
	})
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
