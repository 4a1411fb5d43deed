package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPOSIXErrors checks the errno of the failures a POSIX test suite or
// a backup tool runs into, on a file still staged and on one already
// stored (after a remount), so both paths through the filesystem answer
// alike.
func TestPOSIXErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		for _, stage := range []string{"staged", "stored"} {
			t.Run(stage, func(t *testing.T) {
				if err := os.MkdirAll(v.path(stage, "dir", "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(v.path(stage, "full"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, v.path(stage, "full", "child"), []byte("child"))
				writeFile(t, v.path(stage, "file"), []byte("file content"))
				if err := os.Symlink("loop2", v.path(stage, "loop1")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("loop1", v.path(stage, "loop2")); err != nil {
					t.Fatal(err)
				}
				if stage == "stored" {
					v.remount(true)
				}
				p := func(name ...string) string { return v.path(append([]string{stage}, name...)...) }
				open := func(name string, flag int) error {
					f, err := os.OpenFile(name, flag, 0o644)
					if err == nil {
						f.Close()
					}
					return err
				}
				for _, tc := range []struct {
					what string
					err  error
					want syscall.Errno
					alt  syscall.Errno // POSIX allows either
				}{
					{"O_CREAT|O_EXCL on an existing file", open(p("file"), os.O_CREATE|os.O_EXCL|os.O_WRONLY), syscall.EEXIST, 0},
					{"O_CREAT|O_EXCL on an existing directory", open(p("dir"), os.O_CREATE|os.O_EXCL|os.O_WRONLY), syscall.EEXIST, 0},
					{"open of a missing file", open(p("missing"), os.O_RDONLY), syscall.ENOENT, 0},
					{"open of a directory for writing", open(p("dir"), os.O_WRONLY), syscall.EISDIR, 0},
					{"open of a directory for reading and writing", open(p("dir"), os.O_RDWR), syscall.EISDIR, 0},
					{"create below a file", open(p("file", "x"), os.O_CREATE|os.O_WRONLY), syscall.ENOTDIR, 0},
					{"mkdir on an existing file", os.Mkdir(p("file"), 0o755), syscall.EEXIST, 0},
					{"mkdir on an existing directory", os.Mkdir(p("dir"), 0o755), syscall.EEXIST, 0},
					{"rmdir of a file", syscall.Rmdir(p("file")), syscall.ENOTDIR, 0},
					{"rmdir of a missing directory", syscall.Rmdir(p("missing")), syscall.ENOENT, 0},
					{"rmdir of a non-empty directory", syscall.Rmdir(p("full")), syscall.ENOTEMPTY, 0},
					{"unlink of a directory", syscall.Unlink(p("dir")), syscall.EISDIR, 0},
					{"unlink of a missing file", syscall.Unlink(p("missing")), syscall.ENOENT, 0},
					{"rename of a directory into its own subdirectory", syscall.Rename(p("dir"), p("dir", "sub", "inside")), syscall.EINVAL, 0},
					{"rename of a directory onto its own child", syscall.Rename(p("dir"), p("dir", "sub")), syscall.EINVAL, 0},
					{"rename of a file over a directory", syscall.Rename(p("file"), p("dir")), syscall.EISDIR, 0},
					{"rename of a directory over a file", syscall.Rename(p("dir"), p("file")), syscall.ENOTDIR, 0},
					{"rename of a directory over a non-empty directory", syscall.Rename(p("dir"), p("full")), syscall.ENOTEMPTY, syscall.EEXIST},
					{"rename of a missing file", syscall.Rename(p("missing"), p("other")), syscall.ENOENT, 0},
					{"hard link onto an existing name", syscall.Link(p("file"), p("full", "child")), syscall.EEXIST, 0},
					{"hard link of a directory", syscall.Link(p("dir"), p("link")), syscall.EPERM, 0},
					{"hard link of a missing file", syscall.Link(p("missing"), p("link")), syscall.ENOENT, 0},
					{"setxattr of trusted.*", unix.Setxattr(p("file"), "trusted.test", []byte("x"), 0), syscall.ENOTSUP, 0},
					{"getxattr of a missing name", second(unix.Getxattr(p("file"), "user.missing", nil)), syscall.ENODATA, 0},
					// mv -n uses RENAME_NOREPLACE: it must never replace.
					{"rename RENAME_NOREPLACE onto an existing file", unix.Renameat2(unix.AT_FDCWD, p("file"), unix.AT_FDCWD, p("full", "child"), unix.RENAME_NOREPLACE), syscall.EEXIST, 0},
					{"rename RENAME_EXCHANGE", unix.Renameat2(unix.AT_FDCWD, p("file"), unix.AT_FDCWD, p("full", "child"), unix.RENAME_EXCHANGE), syscall.EINVAL, syscall.ENOTSUP},
					{"name of 256 bytes", open(p(strings.Repeat("n", 256)), os.O_CREATE|os.O_WRONLY), syscall.ENAMETOOLONG, 0},
					{"mkdir of a name of 256 bytes", os.Mkdir(p(strings.Repeat("n", 256)), 0o755), syscall.ENAMETOOLONG, 0},
					{"symlink loop", open(p("loop1"), os.O_RDONLY), syscall.ELOOP, 0},
					{"path through a file", open(p("file", "x"), os.O_RDONLY), syscall.ENOTDIR, 0},
					{"mkdir through a file", os.Mkdir(p("file", "x"), 0o755), syscall.ENOTDIR, 0},
					{"mkfifo on an existing file", syscall.Mkfifo(p("file"), 0o644), syscall.EEXIST, 0},
					{"mknod on an existing directory", syscall.Mknod(p("dir"), syscall.S_IFIFO|0o644, 0), syscall.EEXIST, 0},
					{"symlink on an existing file", os.Symlink("x", p("file")), syscall.EEXIST, 0},
					{"truncate of a directory", os.Truncate(p("dir"), 0), syscall.EISDIR, 0},
					{"truncate to a negative size", os.Truncate(p("file"), -1), syscall.EINVAL, 0},
					{"rmdir of .", syscall.Rmdir(p("dir") + "/."), syscall.EINVAL, 0},
					{"chmod of a missing file", os.Chmod(p("missing"), 0o644), syscall.ENOENT, 0},
					{"utimensat of a missing file", unix.UtimesNano(p("missing"), make([]unix.Timespec, 2)), syscall.ENOENT, 0},
					{"rename into a file", syscall.Rename(p("full", "child"), p("file", "x")), syscall.ENOTDIR, 0},
					{"unlink through a file", syscall.Unlink(p("file", "x")), syscall.ENOTDIR, 0},
					{"O_DIRECTORY on a file", open(p("file"), os.O_RDONLY|syscall.O_DIRECTORY), syscall.ENOTDIR, 0},
					{"readlink of a file", errOf(os.Readlink(p("file"))), syscall.EINVAL, 0},
				} {
					if got := errnoOf(tc.err); got != tc.want && (tc.alt == 0 || got != tc.alt) {
						t.Errorf("%s: %v, want %v", tc.what, tc.err, tc.want)
					}
				}
				// None of the failures changed anything.
				checkFile(t, p("file"), []byte("file content"))
				checkFile(t, p("full", "child"), []byte("child"))
				if fi, err := os.Stat(p("dir", "sub")); err != nil || !fi.IsDir() {
					t.Errorf("dir/sub after the failed renames: %v", err)
				}
				for _, name := range []string{"link", "other", "missing"} {
					if _, err := os.Lstat(p(name)); !os.IsNotExist(err) {
						t.Errorf("%s exists after a failed operation: %v", name, err)
					}
				}
			})
		}
	})
}

// TestRenameOntoItself: renaming a file or a directory onto itself
// succeeds and changes nothing, staged or stored.
func TestRenameOntoItself(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		data := pseudoRandom(21, 3*chunk+5)
		writeFile(t, v.path("stored"), data)
		if err := os.MkdirAll(v.path("d/e"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, v.path("d/e/f"), []byte("inside"))
		v.remount(true)
		writeFile(t, v.path("staged"), []byte("staged"))
		// syscall.Rename: os.Rename itself refuses any rename onto an
		// existing directory (EEXIST) without asking the filesystem.
		for _, name := range []string{"stored", "staged", "d", "d/e", "d/e/f"} {
			if err := syscall.Rename(v.path(name), v.path(name)); err != nil {
				t.Errorf("rename %s onto itself: %v", name, err)
			}
		}
		check := func(when string) {
			t.Helper()
			checkFile(t, v.path("stored"), data)
			checkFile(t, v.path("staged"), []byte("staged"))
			checkFile(t, v.path("d/e/f"), []byte("inside"))
		}
		check("mounted")
		v.remount(true)
		check("after remount")
	})
}

// TestUnlinkOpenFile: a file unlinked, renamed or replaced by a rename
// while open stays readable (and writable) through the open descriptor;
// an unlinked one is gone from its directory at once, and its name can
// be reused without touching the open file.
func TestUnlinkOpenFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		data := pseudoRandom(22, 2*chunk+300)
		writeFile(t, v.path("stored"), data)
		moving, victim := pseudoRandom(24, chunk+1), pseudoRandom(25, 3*chunk)
		writeFile(t, v.path("moving"), moving)
		writeFile(t, v.path("victim"), victim)
		writeFile(t, v.path("winner"), []byte("the new file"))
		v.remount(true)
		replaced := false

		t.Run("stored, open for reading", func(t *testing.T) {
			// Nothing read yet, so no chunk is cached when it is unlinked.
			r := openFile(t, v.path("stored"), os.O_RDONLY)
			defer r.Close()
			if err := os.Remove(v.path("stored")); err != nil {
				t.Fatalf("unlink of an open file: %v", err)
			}
			if _, err := os.Stat(v.path("stored")); !os.IsNotExist(err) {
				t.Fatalf("stat after unlink: %v, want ENOENT", err)
			}
			writeFile(t, v.path("stored"), []byte("a new file under the old name"))
			replaced = true
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read from the unlinked file's descriptor: %v", err)
			}
			if err := sameBytes(got, data); err != nil {
				t.Fatalf("read from the unlinked file's descriptor: %v", err)
			}
		})

		t.Run("stored, renamed while open", func(t *testing.T) {
			r := openFile(t, v.path("moving"), os.O_RDONLY)
			defer r.Close()
			if err := os.Rename(v.path("moving"), v.path("moved")); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read from a descriptor opened before the rename: %v", err)
			}
			if err := sameBytes(got, moving); err != nil {
				t.Fatalf("read from a descriptor opened before the rename: %v", err)
			}
		})

		t.Run("stored, replaced by a rename while open", func(t *testing.T) {
			r := openFile(t, v.path("victim"), os.O_RDONLY)
			defer r.Close()
			if err := os.Rename(v.path("winner"), v.path("victim")); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read from the replaced file's descriptor: %v", err)
			}
			if err := sameBytes(got, victim); err != nil {
				t.Fatalf("read from the replaced file's descriptor: %v", err)
			}
			checkFile(t, v.path("victim"), []byte("the new file"))
		})

		t.Run("staged, open for reading and writing", func(t *testing.T) {
			w := openFile(t, v.path("staged"), os.O_RDWR|os.O_CREATE)
			defer w.Close()
			writeAt(t, w, []byte("before unlink"), 0)
			if err := os.Remove(v.path("staged")); err != nil {
				t.Fatalf("unlink of a file open for writing: %v", err)
			}
			writeAt(t, w, []byte(" and after"), int64(len("before unlink")))
			buf := make([]byte, 100)
			n, err := w.ReadAt(buf, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("read back from the unlinked staged file: %v", err)
			}
			if string(buf[:n]) != "before unlink and after" {
				t.Fatalf("unlinked staged file holds %q", buf[:n])
			}
			closeFile(t, w)
		})

		// Closing the unlinked files brings neither back.
		v.remount(true)
		if _, err := os.Stat(v.path("staged")); !os.IsNotExist(err) {
			t.Errorf("unlinked staged file reappeared after close and remount: %v", err)
		}
		if replaced {
			checkFile(t, v.path("stored"), []byte("a new file under the old name"))
		}
	})
}

// TestFtruncateAndMtime: ftruncate on an open descriptor (down, up, to
// zero) between writes, mtime moving forward on every write, and
// st_blocks = ceil(size/512) (what du counts).
func TestFtruncateAndMtime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		model := pseudoRandom(23, 3*chunk+11)
		writeFile(t, v.path("f"), model)
		old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(v.path("f"), old, old); err != nil {
			t.Fatal(err)
		}
		v.remount(true) // f is stored, with the old mtime

		f := openFile(t, v.path("f"), os.O_RDWR)
		before := time.Now().Add(-2 * time.Second) // slack for coarse clocks
		writeAt(t, f, []byte("patched"), 10)
		copy(model[10:], "patched")
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().Before(before) {
			t.Errorf("mtime after a write through an open descriptor: %v, want about now", fi.ModTime())
		}
		for _, size := range []int{chunk + 3, 2*chunk + 100, 0, 5} {
			if err := f.Truncate(int64(size)); err != nil {
				t.Fatalf("ftruncate to %d: %v", size, err)
			}
			model = resize(model, size)
			if fi, err := f.Stat(); err != nil || fi.Size() != int64(size) {
				t.Fatalf("fstat after ftruncate to %d: %v, size %d", size, err, fi.Size())
			}
			got := make([]byte, len(model)+10)
			n, err := f.ReadAt(got, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if err := sameBytes(got[:n], model); err != nil {
				t.Fatalf("after ftruncate to %d: %v", size, err)
			}
		}
		writeAt(t, f, []byte("tail"), 2*chunk)
		model = resize(model, 2*chunk+4)
		copy(model[2*chunk:], "tail")
		closeFile(t, f)
		checkFile(t, v.path("f"), model)
		fi, err = os.Stat(v.path("f"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Blocks != (fi.Size()+511)/512 {
			t.Errorf("st_blocks %d for %d bytes, want ceil(size/512) = %d", st.Blocks, fi.Size(), (fi.Size()+511)/512)
		}
		mtime := fi.ModTime()
		if mtime.Before(before) {
			t.Errorf("mtime after close: %v, want about now", mtime)
		}
		v.remount(true)
		checkFile(t, v.path("f"), model)
		if fi, err := os.Stat(v.path("f")); err != nil || !fi.ModTime().Equal(mtime) {
			t.Errorf("mtime after remount: %v (%v), want %v", fi.ModTime(), err, mtime)
		}
		// A later write moves mtime again (and O_TRUNC alone does too).
		time.Sleep(20 * time.Millisecond)
		writeFile(t, v.path("f"), []byte("rewritten"))
		if fi, err := os.Stat(v.path("f")); err != nil || !fi.ModTime().After(mtime) {
			t.Errorf("mtime after rewrite: %v (%v), want after %v", fi.ModTime(), err, mtime)
		}
	})
}

// TestLargeDirectory creates 2000 files in one directory and lists it in
// small getdents batches (so the listing is resumed at offsets): every
// name once, the same set on every pass and after a remount; then
// rm -rf removes it all.
func TestLargeDirectory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		const n = 2000
		if err := os.Mkdir(v.path("big"), 0o755); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("file-%04d-%s", i, []string{"a", "bb", "ccc"}[i%3]))
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					if err := os.WriteFile(v.path("big", want[i]), []byte(want[i]), 0o644); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		t.Logf("created %d files in %v", n, time.Since(start).Round(time.Millisecond))
		slices.Sort(want)
		list := func(when string, batch int) {
			t.Helper()
			d, err := os.Open(v.path("big"))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var got []string
			for {
				names, err := d.Readdirnames(batch)
				got = append(got, names...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: readdir after %d names: %v", when, len(got), err)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: listing has %d names (%d distinct), want %d; first difference %s", when, len(got), len(slices.Compact(slices.Clone(got))), n, firstDiff(got, want))
			}
		}
		list("first pass", 7)
		list("second pass", 100)
		v.remount(true)
		start = time.Now()
		list("after remount", 13)
		t.Logf("cold listing of %d files: %v", n, time.Since(start).Round(time.Millisecond))
		for _, i := range []int{0, n / 2, n - 1} {
			checkFile(t, v.path("big", want[i]), []byte(want[i]))
		}
		// rm -rf unlinks while it reads the directory: nothing may be
		// skipped (which would leave rmdir with ENOTEMPTY).
		start = time.Now()
		sh(t, "", "rm", "-rf", v.path("big"))
		t.Logf("rm -rf of %d files: %v", n, time.Since(start).Round(time.Millisecond))
		v.remount(true)
		if _, err := os.Stat(v.path("big")); !os.IsNotExist(err) {
			t.Fatalf("big after rm -rf and a remount: %v", err)
		}
	})
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: %q, want %q", i, got[i], want[i])
		}
	}
	if len(got) > len(want) {
		return fmt.Sprintf("extra %q", got[len(want)])
	}
	if len(want) > len(got) {
		return fmt.Sprintf("missing %q", want[len(got)])
	}
	return "none"
}

// TestAttributesOfOpenFile: fchmod, fchown and a utimens made while a
// file is open and staged (as cp -a and tar x do before close) are what
// the uploaded file keeps.
func TestAttributesOfOpenFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		mtime := time.Date(2003, 4, 5, 6, 7, 8, 900_000_000, time.UTC)
		data := pseudoRandom(26, chunk+9)
		f := openFile(t, v.path("f"), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		writeAt(t, f, data, 0)
		if err := f.Chmod(0o751); err != nil {
			t.Fatalf("fchmod: %v", err)
		}
		canChown := os.Geteuid() == 0
		if canChown {
			if err := f.Chown(4242, 2424); err != nil {
				t.Fatalf("fchown: %v", err)
			}
		}
		if err := os.Chtimes(v.path("f"), mtime, mtime); err != nil {
			t.Fatalf("utimens of an open file: %v", err)
		}
		closeFile(t, f)
		check := func(when string) {
			t.Helper()
			fi, err := os.Stat(v.path("f"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o751 {
				t.Errorf("%s: mode %v, want 0751", when, fi.Mode().Perm())
			}
			if st := fi.Sys().(*syscall.Stat_t); canChown && (st.Uid != 4242 || st.Gid != 2424) {
				t.Errorf("%s: owner %d:%d, want 4242:2424", when, st.Uid, st.Gid)
			}
			if !fi.ModTime().Equal(mtime) {
				t.Errorf("%s: mtime %v, want %v", when, fi.ModTime(), mtime)
			}
			checkFile(t, v.path("f"), data)
		}
		check("after close")
		// What was uploaded, read from the store itself (the mount would
		// answer from its staging file whether or not it was uploaded).
		ov := v.offline()
		stored := waitStored(t, ov, "/f")
		if stored.Mode != syscall.S_IFREG|0o751 {
			t.Errorf("stored: mode %o, want %o", stored.Mode, syscall.S_IFREG|0o751)
		}
		if canChown && (stored.UID != 4242 || stored.GID != 2424) {
			t.Errorf("stored: owner %d:%d, want 4242:2424", stored.UID, stored.GID)
		}
		if !stored.Mtime.Equal(mtime) {
			t.Errorf("stored: mtime %v, want %v", stored.Mtime, mtime)
		}
		if err := sameBytes(readStored(t, ov, "/f"), data); err != nil {
			t.Errorf("stored: %v", err)
		}
		check("after upload")
		v.remount(true)
		check("after remount")
	})
}

// TestSharedOpenFile: two descriptors on one file see each other's
// writes at once (before any close), stat follows the size, and
// O_APPEND writes from two descriptors all land at the end.
func TestSharedOpenFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		base := pseudoRandom(28, chunk+100)
		writeFile(t, v.path("f"), base)
		v.remount(true)
		r := openFile(t, v.path("f"), os.O_RDONLY)
		defer r.Close()
		w := openFile(t, v.path("f"), os.O_RDWR)
		defer w.Close()
		patch := pseudoRandom(29, 250) // within the file (chunk+100 bytes), across a chunk edge
		writeAt(t, w, patch, chunk-200)
		writeAt(t, w, []byte("grown"), int64(len(base))+50)
		want := resize(bytes.Clone(base), len(base)+55)
		copy(want[chunk-200:], patch)
		copy(want[len(base)+50:], "grown")
		got := make([]byte, len(want)+10)
		n, err := r.ReadAt(got, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if err := sameBytes(got[:n], want); err != nil {
			t.Fatalf("reader before the writer closed: %v", err)
		}
		if fi, err := os.Stat(v.path("f")); err != nil || fi.Size() != int64(len(want)) {
			t.Fatalf("stat while open: %v, size %d, want %d", err, fi.Size(), len(want))
		}
		closeFile(t, w)

		a1 := openFile(t, v.path("log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
		defer a1.Close()
		a2 := openFile(t, v.path("log"), os.O_WRONLY|os.O_APPEND)
		defer a2.Close()
		var log []byte
		for i := range 6 {
			line := []byte(fmt.Sprintf("line %d from fd %d\n", i, i%2+1))
			if _, err := []*os.File{a1, a2}[i%2].Write(line); err != nil {
				t.Fatal(err)
			}
			log = append(log, line...)
		}
		closeFile(t, a1)
		closeFile(t, a2)
		checkFile(t, v.path("log"), log)
		closeFile(t, r)
		v.remount(true)
		checkFile(t, v.path("f"), want)
		checkFile(t, v.path("log"), log)
	})
}
