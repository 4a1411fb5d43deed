package fusefs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cfs "github.com/cofferfs/coffer/fs"
)

// needFUSE skips without /dev/fuse, unless COFFER_REQUIRE_SERVERS=1.
func needFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatalf("/dev/fuse is missing: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
}

// testMount is a mounted client-mode volume in a local store.
type testMount struct {
	dir     string      // the mountpoint
	vol     *cfs.Volume // the mounted volume
	offline func() *cfs.Volume
}

// mountWith mounts a new client-mode volume in a local store with opts
// (through wrap, if given); offline opens the same store as a second
// volume (cold caches).
func mountWith(t *testing.T, opts MountOptions, wrap ...func(blobstore.Store) blobstore.Store) testMount {
	t.Helper()
	needFUSE(t)
	ctx := context.Background()
	dir := t.TempDir()
	store, err := blobstore.NewLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := cipher.NewSymKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := cipher.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cipher.NewConfig(cfs.EncryptionClient, "", "", kr, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfs.InitVolume(ctx, store, cfg, kr); err != nil {
		t.Fatal(err)
	}
	var mounted blobstore.Store = store
	for _, w := range wrap {
		mounted = w(mounted)
	}
	v, err := cfs.OpenVolume(ctx, cfs.Options{
		Store: mounted, Roots: []*cipher.RootKey{root},
		CacheDir: filepath.Join(dir, "cache"), WritebackDelay: 50 * time.Millisecond,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
	})
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	server, err := Mount(v, mnt, opts)
	if err != nil {
		v.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		server.Wait()
		if err := v.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	offline := func() *cfs.Volume {
		v, err := cfs.OpenVolume(ctx, cfs.Options{Store: store, Roots: []*cipher.RootKey{root}, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close(ctx) })
		return v
	}
	return testMount{dir: mnt, vol: v, offline: offline}
}

func TestMountSmoke(t *testing.T) {
	mnt := mountWith(t, MountOptions{}).dir
	data := make([]byte, 3<<20+5)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Join(mnt, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(mnt, "a/b/file")
	if err := os.WriteFile(f, data, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	if err := os.Rename(f, filepath.Join(mnt, "a/renamed")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(mnt, "a/renamed"))
	if err != nil || st.Size() != int64(len(data)) || st.Mode().Perm() != 0o640 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if err := os.Symlink("renamed", filepath.Join(mnt, "a/link")); err != nil {
		t.Fatal(err)
	}
	if tg, err := os.Readlink(filepath.Join(mnt, "a/link")); err != nil || tg != "renamed" {
		t.Fatalf("readlink %q %v", tg, err)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "a"))
	if err != nil || len(ents) != 3 {
		t.Fatalf("readdir %v %v", ents, err)
	}
	if err := os.Remove(filepath.Join(mnt, "a")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	// A hard link: one inode, two names, through the kernel.
	if err := os.Link(filepath.Join(mnt, "a/renamed"), filepath.Join(mnt, "a/hard")); err != nil {
		t.Fatalf("link: %v", err)
	}
	var st1, st2 syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "a/renamed"), &st1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(mnt, "a/hard"), &st2); err != nil {
		t.Fatal(err)
	}
	if st1.Ino != st2.Ino || st1.Nlink != 2 || st2.Nlink != 2 {
		t.Fatalf("after link: ino %d/%d nlink %d/%d, want one inode with 2 links", st1.Ino, st2.Ino, st1.Nlink, st2.Nlink)
	}
	if err := os.Remove(filepath.Join(mnt, "a/hard")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(mnt, "a/renamed"), &st1); err != nil || st1.Nlink != 1 {
		t.Fatalf("after unlink of the second name: nlink %d, %v", st1.Nlink, err)
	}
	if d, err := os.Open(filepath.Join(mnt, "a")); err != nil || d.Sync() != nil {
		t.Fatalf("fsync of a directory: %v", err)
	} else {
		d.Close()
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); err != nil || sfs.Namelen != 255 {
		t.Fatalf("statfs namelen %d %v", sfs.Namelen, err)
	}
}

// TestMountCopyTree copies a source tree in with cp -a and compares it
// with diff -r, before and after the uploads, and with what the store
// holds once they are done.
func TestMountCopyTree(t *testing.T) {
	m := mountWith(t, MountOptions{})
	mnt := m.dir
	src := filepath.Join(runtime.GOROOT(), "src", "crypto", "internal")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no GOROOT sources: %v", err)
	}
	dst := filepath.Join(mnt, "tree")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	if out, err := exec.Command("diff", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}
	// Reads in the mount come from staging until a file is stored: wait
	// until every upload is done (Flush returns then; it also starts the
	// uploads still waiting for the writeback delay), and read the tree
	// back from the store with a second volume.
	if err := m.vol.Flush(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n := compareStored(t, m.offline(), src, "/tree"); n < 10 {
		t.Fatalf("compared %d stored entries", n)
	}
	if out, err := exec.Command("diff", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("diff -r after upload: %v\n%s", err, out)
	}
	if err := os.Rename(dst, filepath.Join(mnt, "moved")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("diff", "-r", src, filepath.Join(mnt, "moved")).CombinedOutput(); err != nil {
		t.Fatalf("diff -r after rename: %v\n%s", err, out)
	}
	checked := 0
	filepath.Walk(src, func(p string, si os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		di, err := os.Lstat(filepath.Join(mnt, "moved", rel))
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode() != si.Mode() || (!si.IsDir() && !di.ModTime().Equal(si.ModTime())) {
			t.Fatalf("%s: mode %v mtime %v, want %v %v", rel, di.Mode(), di.ModTime(), si.Mode(), si.ModTime())
		}
		checked++
		return nil
	})
	if checked < 10 {
		t.Fatalf("checked %d files", checked)
	}
	if out, err := exec.Command("rm", "-rf", filepath.Join(mnt, "moved")).CombinedOutput(); err != nil {
		t.Fatalf("rm -rf: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Fatalf("left after rm -rf: %v", ents)
	}
}

// compareStored compares the tree at src with what volume v holds at
// p, entry by entry: names, modes, mtimes, contents and link targets.
// It returns how many entries it compared.
func compareStored(t *testing.T, v *cfs.Volume, src, p string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	err := filepath.Walk(src, func(sp string, si os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, sp)
		vp := p
		if rel != "." {
			vp = p + "/" + filepath.ToSlash(rel)
		}
		a, err := v.Stat(ctx, vp)
		if err != nil {
			return err
		}
		if a.Mode&0o7777 != uint32(si.Mode().Perm()) || a.IsDir() != si.IsDir() || a.IsSymlink() != (si.Mode()&os.ModeSymlink != 0) {
			return fmt.Errorf("%s: stored mode %o, want %v", vp, a.Mode, si.Mode())
		}
		switch {
		case si.IsDir():
			want, err := os.ReadDir(sp)
			if err != nil {
				return err
			}
			got, err := v.ReadDir(ctx, vp)
			if err != nil {
				return err
			}
			if len(got) != len(want) {
				return fmt.Errorf("%s: %d stored entries, want %d", vp, len(got), len(want))
			}
			for i := range want {
				if got[i].Name != want[i].Name() {
					return fmt.Errorf("%s: stored entry %q, want %q", vp, got[i].Name, want[i].Name())
				}
			}
		case a.IsSymlink():
			want, _ := os.Readlink(sp)
			if got, err := v.Readlink(ctx, vp); err != nil || got != want {
				return fmt.Errorf("%s: stored target %q (%v), want %q", vp, got, err, want)
			}
		default:
			if !a.Mtime.Equal(si.ModTime()) {
				return fmt.Errorf("%s: stored mtime %v, want %v", vp, a.Mtime, si.ModTime())
			}
			want, err := os.ReadFile(sp)
			if err != nil {
				return err
			}
			h, err := v.Open(ctx, vp, syscall.O_RDONLY)
			if err != nil {
				return err
			}
			got := make([]byte, len(want)+1)
			k, err := h.ReadAt(ctx, got, 0)
			h.Close(ctx)
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: %w", vp, err)
			}
			if !bytes.Equal(got[:k], want) {
				return fmt.Errorf("%s: stored %d bytes differ from the %d of the source", vp, k, len(want))
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("the store: %v", err)
	}
	return n
}

// TestAppend: O_APPEND writes land once at the end, with and without the
// kernel writeback cache (which resolves O_APPEND itself), in the mount
// and in the store.
func TestAppend(t *testing.T) {
	for _, wb := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "writeback cache"}[wb], func(t *testing.T) {
			m := mountWith(t, MountOptions{WritebackCache: wb})
			mnt, offline := m.dir, m.offline
			ctx := context.Background()
			want := bytes.Repeat([]byte("0123456789"), 13108) // 131080 bytes: past two chunks
			p := filepath.Join(mnt, "log")
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			appendOnce := func(data string) {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteString(data); err != nil {
					t.Fatal(err)
				}
				want = append(want, data...)
			}
			for range 4 {
				appendOnce("abcde") // a shell's >>
			}
			// Two writes through one O_APPEND handle, and a new file
			// created with O_APPEND.
			f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"XY", "Z"} {
				if _, err := f.WriteString(s); err != nil {
					t.Fatal(err)
				}
				want = append(want, s...)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			q := filepath.Join(mnt, "new")
			g, err := os.OpenFile(q, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			g.WriteString("one,")
			g.WriteString("two")
			if err := g.Sync(); err != nil {
				t.Fatal(err)
			}
			g.Close()

			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("in the mount: %d bytes, want %d (%v)", len(got), len(want), err)
			}
			if st, err := os.Stat(p); err != nil || st.Size() != int64(len(want)) {
				t.Fatalf("stat in the mount: %v %v", st, err)
			}
			v := offline()
			for name, data := range map[string][]byte{"/log": want, "/new": []byte("one,two")} {
				h, err := v.Open(ctx, name, syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(data)+10)
				n, _ := h.ReadAt(ctx, got, 0)
				h.Close(ctx)
				if !bytes.Equal(got[:n], data) {
					t.Fatalf("stored %s: %d bytes, want %d", name, n, len(data))
				}
			}
		})
	}
}

// slowStore delays every GET and HEAD while slow is set.
type slowStore struct {
	blobstore.Store
	slow atomic.Bool
}

func (s *slowStore) pause() {
	if s.slow.Load() {
		time.Sleep(300 * time.Millisecond)
	}
}

func (s *slowStore) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	s.pause()
	return s.Store.Get(ctx, key, opts)
}

func (s *slowStore) Head(ctx context.Context, key string) (blobstore.ObjectInfo, error) {
	s.pause()
	return s.Store.Head(ctx, key)
}

// TestInterruptedRequestCompletes: a signal to a thread waiting in a
// FUSE call (the kernel then sends INTERRUPT) does not fail the call
// with EINTR: Go programs get SIGURG all the time, and C programs
// installing handlers would see rename(2) or stat(2) fail.
func TestInterruptedRequestCompletes(t *testing.T) {
	slow := &slowStore{}
	mnt := mountWith(t, MountOptions{EntryTimeout: time.Nanosecond, AttrTimeout: time.Nanosecond},
		func(s blobstore.Store) blobstore.Store { slow.Store = s; return slow }).dir
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(mnt, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	f.Sync() // stored, so that the stat below asks the store
	f.Close()
	time.Sleep(100 * time.Millisecond)
	slow.slow.Store(true)
	defer slow.slow.Store(false)

	tids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- syscall.Gettid()
		var st syscall.Stat_t
		// A path the core has not seen: the lookup goes to the (slow) store.
		err := syscall.Stat(filepath.Join(mnt, "never-seen"), &st)
		if errors.Is(err, syscall.ENOENT) {
			err = nil
		}
		done <- err
	}()
	tid := <-tids
	time.Sleep(50 * time.Millisecond)
	for range 3 {
		// SIGURG: what the Go runtime sends for preemption, harmless here.
		syscall.Tgkill(os.Getpid(), tid, syscall.SIGURG)
		time.Sleep(30 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("stat interrupted by a signal: %v", err)
	}
}
