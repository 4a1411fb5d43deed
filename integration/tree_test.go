package integration

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDirectories covers mkdir -p, nested renames of files and
// directories, rename over a file, rmdir of a non-empty directory, the
// same name in two directories, and the NAME_MAX limit.
func TestDirectories(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		want := map[string]string{} // relative path -> content ("/" suffix: directory)

		if err := os.MkdirAll(v.path("a/b/c/d"), 0o755); err != nil {
			t.Fatalf("mkdir -p: %v", err)
		}
		for _, p := range []string{"a/top", "a/b/mid", "a/b/c/deep", "a/b/c/d/deepest"} {
			writeFile(t, v.path(p), []byte("content of "+p))
		}
		// Nested file rename into another directory.
		if err := os.MkdirAll(v.path("x/y"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(v.path("a/b/c/deep"), v.path("x/y/moved")); err != nil {
			t.Fatalf("rename file: %v", err)
		}
		want["x/y/moved"] = "content of a/b/c/deep"
		// A file renamed while still staged (not yet uploaded).
		writeFile(t, v.path("x/fresh"), []byte("fresh"))
		if err := os.Rename(v.path("x/fresh"), v.path("x/y/fresh2")); err != nil {
			t.Fatalf("rename staged file: %v", err)
		}
		want["x/y/fresh2"] = "fresh"
		// Directory rename with its whole subtree.
		if err := os.Rename(v.path("a/b"), v.path("x/b2")); err != nil {
			t.Fatalf("rename directory: %v", err)
		}
		want["x/b2/mid"] = "content of a/b/mid"
		want["x/b2/c/d/deepest"] = "content of a/b/c/d/deepest"
		want["a/top"] = "content of a/top"
		if _, err := os.Stat(v.path("a/b")); !os.IsNotExist(err) {
			t.Fatalf("a/b still exists after rename: %v", err)
		}
		// Rename over an existing file replaces it.
		writeFile(t, v.path("x/victim"), []byte("old"))
		writeFile(t, v.path("x/winner"), []byte("new"))
		if err := os.Rename(v.path("x/winner"), v.path("x/victim")); err != nil {
			t.Fatalf("rename over a file: %v", err)
		}
		want["x/victim"] = "new"
		// rmdir: non-empty refused, empty removed.
		if err := syscall.Rmdir(v.path("x/b2")); err != syscall.ENOTEMPTY {
			t.Fatalf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
		}
		if err := os.Mkdir(v.path("empty"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Rmdir(v.path("empty")); err != nil {
			t.Fatalf("rmdir of an empty directory: %v", err)
		}
		if err := os.Mkdir(v.path("kept-empty"), 0o755); err != nil {
			t.Fatal(err)
		}
		want["kept-empty/"] = ""
		// The same name in two directories, different contents.
		writeFile(t, v.path("a/same"), []byte("in a"))
		writeFile(t, v.path("x/same"), []byte("in x"))
		want["a/same"] = "in a"
		want["x/same"] = "in x"
		// NAME_MAX: 255 bytes work (file and directory), 256 do not.
		long := strings.Repeat("n", 255)
		writeFile(t, v.path(long), []byte("long name"))
		want[long] = "long name"
		longDir := strings.Repeat("d", 255)
		if err := os.Mkdir(v.path("x", longDir), 0o755); err != nil {
			t.Fatalf("mkdir with a 255-byte name: %v", err)
		}
		writeFile(t, v.path("x", longDir, long), []byte("twice long"))
		want["x/"+longDir+"/"+long] = "twice long"
		if err := os.WriteFile(v.path(strings.Repeat("n", 256)), nil, 0o644); errnoOf(err) != syscall.ENAMETOOLONG {
			t.Fatalf("256-byte name: %v, want ENAMETOOLONG", err)
		}
		// The reserved .coffer name is not exposed.
		if _, err := os.Stat(v.path(".coffer")); !os.IsNotExist(err) {
			t.Fatalf(".coffer is visible in the mount: %v", err)
		}

		checkTree(t, v.mnt, want)
		v.remount(true)
		checkTree(t, v.mnt, want)
		// Encrypted names: a name's ciphertext depends on its directory.
		segments := map[string]string{}
		st := v.store.open(t)
		for e, err := range st.List(context.Background(), "", "") {
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Key, ".coffer/") {
				continue
			}
			seg := filepath.Base(strings.TrimSuffix(e.Key, "/"))
			if other, dup := segments[seg]; dup {
				t.Fatalf("objects %q and %q end in the same encrypted name", other, e.Key)
			}
			segments[seg] = e.Key
		}
		if len(segments) < len(want) {
			t.Fatalf("store lists %d objects, want at least %d", len(segments), len(want))
		}
	})
}

// checkTree fails unless the tree under root is exactly want (paths
// relative to root; a "/" suffix marks a directory that must exist).
func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." {
				got[rel+"/"] = ""
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got[rel] = string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("walking the mount: %v", err)
	}
	for p, content := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s is missing (have %v)", p, keys(got))
			continue
		}
		if g != content {
			t.Errorf("%s holds %q, want %q", p, g, content)
		}
	}
	for p := range got {
		if _, ok := want[p]; ok || strings.HasSuffix(p, "/") {
			continue
		}
		t.Errorf("unexpected file %s", p)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestSymlinks covers relative and absolute links, a 4 KiB target, and
// their survival across a remount.
func TestSymlinks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		if err := os.Mkdir(v.path("dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, v.path("dir/target"), []byte("pointed at"))
		long := strings.Repeat("t/", 2047) + "x" // 4095 bytes: PATH_MAX without the NUL
		links := map[string]string{
			"rel":      "dir/target",
			"dir/up":   "../dir/target",
			"abs":      "/etc/hostname",
			"dangling": "no/such/file",
			"long":     long,
		}
		for name, target := range links {
			if err := os.Symlink(target, v.path(name)); err != nil {
				t.Fatalf("symlink %s -> %d bytes: %v", name, len(target), err)
			}
		}
		check := func() {
			for name, target := range links {
				got, err := os.Readlink(v.path(name))
				if err != nil || got != target {
					t.Fatalf("readlink %s = %d bytes, %v; want %d bytes", name, len(got), err, len(target))
				}
				fi, err := os.Lstat(v.path(name))
				if err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Fatalf("lstat %s: %v, mode %v", name, err, fi.Mode())
				}
			}
			checkFile(t, v.path("rel"), []byte("pointed at"))
			checkFile(t, v.path("dir/up"), []byte("pointed at"))
		}
		check()
		v.remount(true)
		check()
	})
}

// TestAttributes checks that chmod, chown and utimens survive a remount.
func TestAttributes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		writeFile(t, v.path("file"), []byte("attrs"))
		if err := os.Mkdir(v.path("dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		mtime := time.Date(2001, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
		type attrs struct {
			mode     os.FileMode
			uid, gid int
		}
		want := map[string]attrs{
			"file": {0o640, 1234, 5678},
			"dir":  {0o710, 4321, 8765},
		}
		canChown := os.Geteuid() == 0
		for name, a := range want {
			if err := os.Chmod(v.path(name), a.mode); err != nil {
				t.Fatalf("chmod %s: %v", name, err)
			}
			if canChown {
				if err := os.Chown(v.path(name), a.uid, a.gid); err != nil {
					t.Fatalf("chown %s: %v", name, err)
				}
			}
			if err := os.Chtimes(v.path(name), mtime, mtime); err != nil {
				t.Fatalf("utimens %s: %v", name, err)
			}
		}
		check := func(when string) {
			for name, a := range want {
				fi, err := os.Stat(v.path(name))
				if err != nil {
					t.Fatalf("%s: stat %s: %v", when, name, err)
				}
				if fi.Mode().Perm() != a.mode {
					t.Errorf("%s: %s mode %v, want %v", when, name, fi.Mode().Perm(), a.mode)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if canChown && (int(st.Uid) != a.uid || int(st.Gid) != a.gid) {
					t.Errorf("%s: %s owner %d:%d, want %d:%d", when, name, st.Uid, st.Gid, a.uid, a.gid)
				}
				if !fi.ModTime().Equal(mtime) {
					t.Errorf("%s: %s mtime %v, want %v", when, name, fi.ModTime(), mtime)
				}
			}
			checkFile(t, v.path("file"), []byte("attrs"))
			if t.Failed() {
				t.FailNow()
			}
		}
		check("mounted")
		v.remount(true)
		check("after remount")
	})
}
