package integration

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goSrc returns $(go env GOROOT)/src/<sub>, a tree of real files.
func goSrc(t *testing.T, sub string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "src", sub)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return dir
}

// sh runs a command and fails the test with its output if it fails.
func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=coffer", "GIT_AUTHOR_EMAIL=coffer@example.com",
		"GIT_COMMITTER_NAME=coffer", "GIT_COMMITTER_EMAIL=coffer@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+testHome)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v after %v\n%s", name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), tail(out.String(), 4000))
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestCopyTree copies $(go env GOROOT)/src/crypto into the mount with
// cp -a, compares it with diff -r, and copies it back out after a
// remount, checking modes and mtimes as well.
func TestCopyTree(t *testing.T) {
	src := goSrc(t, "crypto")
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		start := time.Now()
		sh(t, "", "cp", "-a", src, v.path())
		sh(t, "", "diff", "-r", src, v.path("crypto"))
		t.Logf("cp -a and diff -r of %s: %v", src, time.Since(start).Round(time.Millisecond))
		v.remount(true)
		out := filepath.Join(t.TempDir(), "out")
		start = time.Now()
		sh(t, "", "cp", "-a", v.path("crypto"), out)
		t.Logf("cp -a back after remount: %v", time.Since(start).Round(time.Millisecond))
		sh(t, "", "diff", "-r", src, out)
		sameMeta(t, src, out)
	})
}

// sameMeta fails unless every entry under a has the permission bits and
// mtime of the same entry under b.
func sameMeta(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		fa, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fb, err := os.Lstat(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if fa.Mode() != fb.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, fb.Mode(), fa.Mode())
		}
		if !d.IsDir() && !fa.ModTime().Equal(fb.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, fb.ModTime(), fa.ModTime())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("compared only %d entries", n)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestRsync copies a tree in with rsync -a (temporary file, then rename)
// and back out, and compares.
func TestRsync(t *testing.T) {
	src := goSrc(t, "encoding")
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		sh(t, "", "rsync", "-a", src+"/", v.path("enc")+"/")
		// A second run finds nothing to transfer.
		if out := sh(t, "", "rsync", "-ai", src+"/", v.path("enc")+"/"); strings.TrimSpace(out) != "" {
			t.Fatalf("second rsync transferred again:\n%s", tail(out, 2000))
		}
		v.remount(true)
		out := filepath.Join(t.TempDir(), "enc")
		sh(t, "", "rsync", "-a", v.path("enc")+"/", out+"/")
		sh(t, "", "diff", "-r", src, out)
		sameMeta(t, src, out)
	})
}

// TestGit makes a repository inside the mount, commits twice, and checks
// it with git fsck and git status after a remount.
func TestGit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		repo := v.path("repo")
		if err := os.Mkdir(repo, 0o755); err != nil {
			t.Fatal(err)
		}
		sh(t, repo, "git", "init", "-q", "-b", "main")
		writeFile(t, filepath.Join(repo, "README"), []byte("first\n"))
		sh(t, repo, "git", "add", "README")
		sh(t, repo, "git", "commit", "-q", "-m", "first")
		if err := os.MkdirAll(filepath.Join(repo, "src/pkg"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(repo, "src/pkg/code.go"), pseudoRandom(9, 100_000))
		writeFile(t, filepath.Join(repo, "README"), []byte("second\n"))
		sh(t, repo, "git", "add", "-A")
		sh(t, repo, "git", "commit", "-q", "-m", "second")
		v.remount(true)
		sh(t, repo, "git", "fsck", "--full", "--strict")
		if out := sh(t, repo, "git", "status", "--porcelain"); strings.TrimSpace(out) != "" {
			t.Fatalf("git status after remount:\n%s", out)
		}
		if out := sh(t, repo, "git", "log", "--format=%s"); out != "second\nfirst\n" {
			t.Fatalf("git log: %q", out)
		}
		checkFile(t, filepath.Join(repo, "src/pkg/code.go"), pseudoRandom(9, 100_000))
	})
}

// TestDD writes with dd (1 MiB blocks, fsync), patches in place with
// conv=notrunc, and reads back after a remount.
func TestDD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		tmp := t.TempDir()
		data := pseudoRandom(11, 12<<20)
		patch := pseudoRandom(12, 3*4096)
		writeFile(t, filepath.Join(tmp, "in"), data)
		writeFile(t, filepath.Join(tmp, "patch"), patch)
		sh(t, "", "dd", "if="+filepath.Join(tmp, "in"), "of="+v.path("dd.bin"), "bs=1M", "conv=fsync", "status=none")
		sh(t, "", "dd", "if="+filepath.Join(tmp, "patch"), "of="+v.path("dd.bin"), "bs=4096", "seek=100", "conv=notrunc,fsync", "status=none")
		copy(data[100*4096:], patch)
		v.remount(true)
		sh(t, "", "dd", "if="+v.path("dd.bin"), "of="+filepath.Join(tmp, "out"), "bs=256k", "status=none")
		checkFile(t, filepath.Join(tmp, "out"), data)
		// fsync on a read-write descriptor reports success only once stored.
		f := openFile(t, v.path("synced"), os.O_WRONLY|os.O_CREATE)
		writeAt(t, f, []byte("durable"), 0)
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		closeFile(t, f)
		var st syscall.Statfs_t
		if err := syscall.Statfs(v.path(), &st); err != nil || st.Namelen != 255 {
			t.Fatalf("statfs: %v, namelen %d, want 255", err, st.Namelen)
		}
	})
}
