package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// run runs a coffer command on this volume's store, keys and modes.
func (v *volume) run(cmd string, extra ...string) result {
	v.t.Helper()
	return coffer(v.t, v.store.env, v.args(cmd, extra...)...)
}

// mustRun runs a command that must succeed.
func (v *volume) mustRun(cmd string, extra ...string) result {
	v.t.Helper()
	r := v.run(cmd, extra...)
	if r.code != 0 {
		v.t.Fatalf("coffer %s %q: %v", cmd, extra, r)
	}
	return r
}

// makeTree writes a tree with what cp -a must keep: nested and empty
// directories, a read-only directory, files from 0 bytes to several
// chunks, odd modes (setuid, read-only), relative, absolute and dangling
// symlinks, names with spaces, UTF-8 and 200 bytes, old mtimes with
// nanoseconds and, as root, other owners.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	long := strings.Repeat("n", 200)
	for _, d := range []string{"a/b/c", "empty", "ro", "sp ace/ünï", long} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]int{"zero": 0, "one": 1, "a/chunk": 65536, "a/b/multi": 200_003, "a/b/c/big": 1<<20 + 17, "sp ace/ünï/f": 33, long + "/" + long: 5, "ro/inside": 7}
	i := uint64(0)
	for name, n := range files {
		i++
		writeFile(t, filepath.Join(dir, name), pseudoRandom(100+i, n))
	}
	for name, mode := range map[string]os.FileMode{"one": 0o600, "a/chunk": 0o755 | os.ModeSetuid, "zero": 0o444} {
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"a/rel": "chunk", "abs": "/etc/hostname", "dangling": "no/such/target"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		for _, name := range []string{"one", "a/b", "a/rel"} {
			if err := os.Lchown(filepath.Join(dir, name), 1234, 5678); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := time.Date(2019, 3, 4, 5, 6, 7, 891011121, time.UTC)
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		old = old.Add(time.Hour + 3)
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
}

// sameTree fails unless a and b hold the same entries with the same
// bytes (diff -r, which follows no symlink with --no-dereference),
// symlink targets, modes, mtimes and, as root, owners.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	sh(t, "", "diff", "-r", "--no-dereference", a, b)
	n := 0
	err := filepath.Walk(a, func(p string, fa os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		fb, err := os.Lstat(filepath.Join(b, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if rel != "." && fa.Mode() != fb.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, fb.Mode(), fa.Mode())
		}
		if rel != "." && !fa.ModTime().Equal(fb.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, fb.ModTime(), fa.ModTime())
		}
		sa, sb := fa.Sys().(*syscall.Stat_t), fb.Sys().(*syscall.Stat_t)
		if os.Geteuid() == 0 && (sa.Uid != sb.Uid || sa.Gid != sb.Gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, sb.Uid, sb.Gid, sa.Uid, sa.Gid)
		}
		if fa.Mode()&os.ModeSymlink != 0 {
			ta, _ := os.Readlink(p)
			tb, _ := os.Readlink(filepath.Join(b, rel))
			if ta != tb {
				t.Errorf("%s: link to %q, want %q", rel, tb, ta)
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("compared only %d entries", n)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestOfflineCommands: put a tree into a volume without FUSE, list it,
// cat a file, get the tree back byte-identical with its attributes, get
// and put single files, remove a file and a tree; and the errors: a
// missing path, a wrong key, a directory without -r (each exit 1 with
// the path named), a usage error (exit 2).
func TestOfflineCommands(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			v := newVolume(t, b.newStore(t))
			src := filepath.Join(t.TempDir(), "tree")
			makeTree(t, src)
			v.mustRun("put", src, "/")

			ls := v.mustRun("ls", "-l", "-R", "/tree").stdout
			for _, want := range []string{"/tree/a/b:", "multi", "-rwsr-xr-x", "rel -> chunk", "dangling -> no/such/target", "dr-xr-xr-x", "ünï"} {
				if !strings.Contains(ls, want) {
					t.Errorf("ls -l -R lacks %q:\n%s", want, ls)
				}
			}
			if got := v.mustRun("ls", "/tree/a").stdout; got != "b\nchunk\nrel\n" {
				t.Errorf("ls /tree/a = %q", got)
			}
			checkCat := func(p string) {
				t.Helper()
				want, err := os.ReadFile(filepath.Join(src, strings.TrimPrefix(p, "/tree/")))
				if err != nil {
					t.Fatal(err)
				}
				if got := v.mustRun("cat", p).stdout; got != string(want) {
					t.Errorf("cat %s: %d bytes, want %d (or content differs)", p, len(got), len(want))
				}
			}
			checkCat("/tree/a/b/c/big")
			checkCat("/tree/sp ace/ünï/f")

			out := filepath.Join(t.TempDir(), "out")
			v.mustRun("get", "/tree", out)
			sameTree(t, src, out)

			// Into an existing directory, and single files.
			into := t.TempDir()
			v.mustRun("get", "tree/a/b/multi", into)
			checkFile(t, filepath.Join(into, "multi"), pseudoRandomOf(t, filepath.Join(src, "a/b/multi")))
			v.mustRun("put", filepath.Join(src, "a/b/multi"), "/tree/empty")
			v.mustRun("put", filepath.Join(src, "one"), "/tree/empty/renamed")
			if got := v.mustRun("ls", "/tree/empty").stdout; got != "multi\nrenamed\n" {
				t.Errorf("ls after put into a directory = %q", got)
			}

			// Errors: each names the path, the others still happen.
			r := v.run("cat", "/tree/nope", "/tree/one")
			if r.code != 1 || !strings.Contains(r.stderr, "/tree/nope: no such file or directory") || r.stdout != string(pseudoRandomOf(t, filepath.Join(src, "one"))) {
				t.Errorf("cat of a missing path: %v", r)
			}
			if r := v.run("get", "/nope", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "/nope: no such file or directory") {
				t.Errorf("get of a missing path: %v", r)
			}
			if r := v.run("ls", "/nope"); r.code != 1 || !strings.Contains(r.stderr, "/nope: no such file or directory") {
				t.Errorf("ls of a missing path: %v", r)
			}
			if r := v.run("rm", "/tree/a"); r.code != 1 || !strings.Contains(r.stderr, "/tree/a: is a directory (use -r") {
				t.Errorf("rm of a directory without -r: %v", r)
			}
			if r := v.run("cat", "/tree/a"); r.code != 1 || !strings.Contains(r.stderr, "/tree/a: is a directory") {
				t.Errorf("cat of a directory: %v", r)
			}
			if r := v.run("get", "/tree"); r.code != 2 {
				t.Errorf("get without DEST: %v, want exit 2", r)
			}
			wrong := filepath.Join(t.TempDir(), "wrong.key")
			if r := coffer(t, nil, "keygen", "--out", wrong); r.code != 0 {
				t.Fatal(r)
			}
			args := append([]string{"ls", "--store", v.store.url}, v.store.args...)
			if r := coffer(t, v.store.env, append(args, "--key-file", wrong, "/")...); r.code != 1 || !strings.Contains(r.stderr, "wrong key") {
				t.Errorf("ls with a wrong key: %v", r)
			}

			v.mustRun("rm", "/tree/one", "/tree/a/rel")
			v.mustRun("rm", "-r", "/tree/a")
			if got := v.mustRun("ls", "/tree").stdout; strings.Contains(got, "one\n") || strings.Contains(got, "a\n") || !strings.Contains(got, "zero\n") {
				t.Errorf("ls after rm = %q", got)
			}
			if r := v.run("ls", "/tree/a/b"); r.code != 1 {
				t.Errorf("ls of a removed tree: %v", r)
			}
		})
	}
}

func pseudoRandomOf(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGetOfMountedTree: a tree written through a real mount (cp -a) and
// read back with coffer get after unmounting is byte-identical to the
// source, with modes, mtimes, symlinks and owners.
func TestGetOfMountedTree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		src := filepath.Join(t.TempDir(), "tree")
		makeTree(t, src)
		v.mount()
		sh(t, "", "cp", "-a", src, v.path())
		v.unmount()
		out := filepath.Join(t.TempDir(), "out")
		v.mustRun("get", "/tree", out)
		sameTree(t, src, out)
		if r := v.mustRun("fsck", "--deep"); !strings.Contains(r.stdout, "no problems found") {
			t.Errorf("fsck of the tree: %v", r)
		}
	})
}

// TestOfflineLinksSpecialsXattrs: coffer put and coffer get keep what cp
// -a keeps beyond makeTree's files: hard links within the tree (one
// inode, every name, in the volume and back on disk), a fifo, a socket,
// as root a character device with its number, and user.* extended
// attributes of files and directories. The device's number is also
// checked through a mount, where the kernel reads what put stored.
func TestOfflineLinksSpecialsXattrs(t *testing.T) {
	v := newVolume(t, newLocalStore(t))
	src := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := pseudoRandom(71, 100_000)
	writeFile(t, filepath.Join(src, "a"), data)
	for _, name := range []string{"b", "sub/c"} {
		if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(src, "single"), []byte("one name"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o640))
	must(unix.Mknod(filepath.Join(src, "sock"), unix.S_IFSOCK|0o600, 0))
	// A major above 255 and a minor above 255 (as NVMe partitions have)
	// take every part of the kernel's 32-bit encoding.
	dev := unix.Mkdev(259, 300_000)
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(src, "dev"), unix.S_IFCHR|0o620, int(dev)))
		must(os.Chmod(filepath.Join(src, "dev"), 0o620)) // past the umask
	}
	xattrs := map[string]map[string]string{"a": {"user.one": "1", "user.two": "zwei"}, "sub": {"user.dir": "on a directory"}, "single": {"user.empty": ""}}
	for name, xs := range xattrs {
		for k, val := range xs {
			must(unix.Lsetxattr(filepath.Join(src, name), k, []byte(val), 0))
		}
	}
	v.mustRun("put", src, "/")

	ls := v.mustRun("ls", "-l", "/tree").stdout
	for _, want := range []string{"prw-r-----", "srw-------"} {
		if !strings.Contains(ls, want) {
			t.Errorf("ls -l /tree lacks %q:\n%s", want, ls)
		}
	}
	if !regexp.MustCompile(`(?m)^-\S+\s+3\s.* a$`).MatchString(ls) {
		t.Errorf("ls -l /tree: a should have 3 links:\n%s", ls)
	}

	out := filepath.Join(t.TempDir(), "out")
	v.mustRun("get", "/tree", out)
	checkFile(t, filepath.Join(out, "a"), data)
	fa, err := os.Stat(filepath.Join(out, "a"))
	must(err)
	for _, name := range []string{"b", "sub/c"} {
		fi, err := os.Stat(filepath.Join(out, name))
		must(err)
		if !os.SameFile(fa, fi) {
			t.Errorf("got %s: not a hard link to a", name)
		}
	}
	if n := fa.Sys().(*syscall.Stat_t).Nlink; n != 3 {
		t.Errorf("got a: %d links, want 3", n)
	}
	if fi, err := os.Stat(filepath.Join(out, "single")); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Errorf("got single: %v, want one link", err)
	}
	types := map[string]os.FileMode{"fifo": os.ModeNamedPipe | 0o640, "sock": os.ModeSocket | 0o600}
	if os.Geteuid() == 0 {
		types["dev"] = os.ModeDevice | os.ModeCharDevice | 0o620
	}
	for name, want := range types {
		fi, err := os.Lstat(filepath.Join(out, name))
		if err != nil {
			t.Errorf("got %s: %v", name, err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("got %s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	if os.Geteuid() == 0 {
		fi, err := os.Lstat(filepath.Join(out, "dev"))
		must(err)
		if r := fi.Sys().(*syscall.Stat_t).Rdev; r != dev {
			t.Errorf("got dev: device %d:%d, want 259:300000", unix.Major(r), unix.Minor(r))
		}
	}
	for name, xs := range xattrs {
		for k, want := range xs {
			buf := make([]byte, 256)
			n, err := unix.Lgetxattr(filepath.Join(out, name), k, buf)
			if err != nil || string(buf[:n]) != want {
				t.Errorf("got %s: %s = %q, %v; want %q", name, k, buf[:max(n, 0)], err, want)
			}
		}
	}

	// Through a mount, the kernel reads the same links, types and number.
	requireFUSE(t)
	v.mount()
	defer v.unmount()
	st := func(name string) *syscall.Stat_t {
		t.Helper()
		fi, err := os.Lstat(v.path("tree", name))
		must(err)
		return fi.Sys().(*syscall.Stat_t)
	}
	if a, c := st("a"), st("sub/c"); a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("mounted: a ino %d nlink %d, sub/c ino %d; want one inode with 3 links", a.Ino, a.Nlink, c.Ino)
	}
	if os.Geteuid() == 0 {
		if r := st("dev").Rdev; r != dev {
			t.Errorf("mounted: dev is device %d:%d, want 259:300000", unix.Major(r), unix.Minor(r))
		}
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(v.path("tree", "a"), "user.two", buf); err != nil || string(buf[:n]) != "zwei" {
		t.Errorf("mounted: a user.two = %q, %v", buf[:max(n, 0)], err)
	}
}
