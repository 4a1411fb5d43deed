package integration

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireTool skips (fails under COFFER_REQUIRE_SERVERS=1: scripts/deps.sh
// installs it) a test whose tool is missing.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	msg := name + " is not installed (run scripts/deps.sh)"
	if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// shEnv is sh with extra environment variables (secrets go here, never
// into argv).
func shEnv(t *testing.T, env []string, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v after %v\n%s", name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), tail(out.String(), 4000))
	}
	return out.String()
}

// TestRestic keeps a restic repository in the mount and backs up a tree
// that is itself in the mount: init, backup, a second (incremental)
// backup, check --read-data after a remount, and restore out of the
// mount, compared with the original.
func TestRestic(t *testing.T) {
	requireTool(t, "restic")
	src := goSrc(t, "encoding")
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		env := []string{"RESTIC_PASSWORD=coffer-test-" + randomHex(8), "RESTIC_REPOSITORY=" + v.path("repo"),
			"RESTIC_CACHE_DIR=" + filepath.Join(v.dir, "restic-cache"), "HOME=" + testHome}
		sh(t, "", "cp", "-a", src, v.path("data"))
		start := time.Now()
		shEnv(t, env, "", "restic", "init", "--quiet")
		shEnv(t, env, v.path(), "restic", "backup", "--quiet", "--host", "coffer", "data")
		writeFile(t, v.path("data", "added.txt"), []byte("second snapshot"))
		shEnv(t, env, v.path(), "restic", "backup", "--quiet", "--host", "coffer", "data")
		t.Logf("restic init and two backups: %v", time.Since(start).Round(time.Millisecond))
		v.remount(true)
		start = time.Now()
		shEnv(t, env, "", "restic", "check", "--read-data")
		out := t.TempDir()
		shEnv(t, env, "", "restic", "restore", "latest", "--target", out)
		t.Logf("restic check --read-data and restore: %v", time.Since(start).Round(time.Millisecond))
		checkFile(t, filepath.Join(out, "data", "added.txt"), []byte("second snapshot"))
		if err := os.Remove(filepath.Join(out, "data", "added.txt")); err != nil {
			t.Fatal(err)
		}
		sh(t, "", "diff", "-r", src, filepath.Join(out, "data"))
		if snaps := shEnv(t, env, "", "restic", "snapshots", "--compact"); !strings.Contains(snaps, "2 snapshots") {
			t.Fatalf("restic snapshots:\n%s", snaps)
		}
	})
}

// TestTarPipe streams a tree into the mount with tar c | tar x and back
// out the same way after a remount; contents, modes and mtimes survive.
func TestTarPipe(t *testing.T) {
	src := goSrc(t, "encoding")
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		if err := os.Mkdir(v.path("t"), 0o755); err != nil {
			t.Fatal(err)
		}
		tarPipe(t, filepath.Dir(src), filepath.Base(src), v.path("t"))
		v.remount(true)
		out := t.TempDir()
		tarPipe(t, v.path("t"), filepath.Base(src), out)
		sh(t, "", "diff", "-r", src, filepath.Join(out, filepath.Base(src)))
		sameMeta(t, src, filepath.Join(out, filepath.Base(src)))
	})
}

// tarPipe runs tar -C fromDir -c name | tar -C toDir -x -p.
func tarPipe(t *testing.T, fromDir, name, toDir string) {
	t.Helper()
	c := exec.Command("tar", "-C", fromDir, "-c", name)
	x := exec.Command("tar", "-C", toDir, "-x", "-p")
	pipe, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	x.Stdin = pipe
	var cErr, xErr bytes.Buffer
	c.Stderr, x.Stderr = &cErr, &xErr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	errX := x.Wait()
	errC := c.Wait()
	if errC != nil || errX != nil {
		t.Fatalf("tar c %s/%s | tar x -C %s: %v, %v\n%s%s", fromDir, name, toDir, errC, errX, cErr.String(), xErr.String())
	}
}

// TestGitClone clones a repository from local disk into the mount (git
// falls back from hard links, which coffer does not support, to copies),
// commits in the clone, runs git gc, and checks it with git fsck after a
// remount.
func TestGitClone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		origin := filepath.Join(t.TempDir(), "origin")
		if err := os.Mkdir(origin, 0o755); err != nil {
			t.Fatal(err)
		}
		sh(t, origin, "git", "init", "-q", "-b", "main")
		for i := range 3 {
			writeFile(t, filepath.Join(origin, "file"), pseudoRandom(uint64(30+i), 50_000))
			writeFile(t, filepath.Join(origin, "notes.txt"), []byte(strings.Repeat("commit\n", i+1)))
			sh(t, origin, "git", "add", "-A")
			sh(t, origin, "git", "commit", "-q", "-m", "commit "+string(rune('a'+i)))
		}
		sh(t, origin, "git", "gc", "-q") // a pack file, as a real repository has

		v := newVolume(t, b.newStore(t))
		v.mount()
		sh(t, "", "git", "clone", "-q", origin, v.path("clone"))
		clone := v.path("clone")
		sh(t, clone, "git", "fsck", "--full", "--strict")
		writeFile(t, filepath.Join(clone, "local.txt"), []byte("made in the mount\n"))
		sh(t, clone, "git", "add", "local.txt")
		sh(t, clone, "git", "commit", "-q", "-m", "in the mount")
		// gc repacks: new pack and index files renamed into place, the
		// loose objects and old packs removed.
		sh(t, clone, "git", "gc", "-q", "--prune=now")
		v.remount(true)
		sh(t, clone, "git", "fsck", "--full", "--strict")
		if out := sh(t, clone, "git", "count-objects", "-v"); !strings.Contains(out, "count: 0\n") {
			t.Errorf("loose objects left after git gc:\n%s", out)
		}
		if out := sh(t, clone, "git", "status", "--porcelain"); strings.TrimSpace(out) != "" {
			t.Fatalf("git status after remount:\n%s", out)
		}
		if out := sh(t, clone, "git", "log", "--format=%s"); out != "in the mount\ncommit c\ncommit b\ncommit a\n" {
			t.Fatalf("git log: %q", out)
		}
		checkFile(t, filepath.Join(clone, "file"), pseudoRandom(32, 50_000))
		// And back out: a clone of the clone in the mount is whole too.
		back := filepath.Join(t.TempDir(), "back")
		sh(t, "", "git", "clone", "-q", clone, back)
		sh(t, back, "git", "fsck", "--full", "--strict")
	})
}

// TestMakeDemoFromClone runs `make demo` in a fresh clone of this
// repository's committed HEAD (what a new user gets): it builds coffer,
// makes ./demo/key and ./demo/store, and mounts at ./demo/mnt until
// `bin/coffer unmount ./demo/mnt`, after which make exits 0.
func TestMakeDemoFromClone(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "make")
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout (%v): nothing to clone", err)
	}
	repo := filepath.Join(t.TempDir(), "coffer")
	sh(t, "", "git", "clone", "-q", strings.TrimSpace(string(top)), repo)
	mnt := filepath.Join(repo, "demo", "mnt")
	cmd := exec.Command("make", "demo")
	cmd.Dir = repo
	// make needs go on PATH and a HOME for the build cache; coffer gets
	// the test's HOME and no store or key from the environment.
	cmd.Env = cofferEnv([]string{"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOTOOLCHAIN=local"})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&out, bufio.NewReader(stdout)); close(copied) }()
	done := make(chan error, 1)
	go func() { <-copied; done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	deadline := time.Now().Add(3 * time.Minute) // includes building coffer
	for !mounted(t, mnt) {
		select {
		case err := <-done:
			t.Fatalf("make demo exited (%v) without mounting\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("make demo did not mount %s in 3 minutes\nstderr:\n%s", mnt, stderr.String())
		}
	}
	writeFile(t, filepath.Join(mnt, "hello.txt"), []byte("demo from a clone"))
	checkFile(t, filepath.Join(mnt, "hello.txt"), []byte("demo from a clone"))
	r := coffer(t, nil, "unmount", mnt)
	if r.code != 0 {
		t.Fatalf("unmount of the demo: %v", r)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("make demo exited with %v after unmount\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("make demo still running a minute after unmount\nstderr:\n%s", stderr.String())
	}
	for _, want := range []string{"demo/mnt", "Ctrl-C"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("make demo output lacks %q:\n%s", want, out.String())
		}
	}
	if fi, err := os.Stat(filepath.Join(repo, "demo", "key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo/key: %v, mode %v", err, fi.Mode())
	}
	scan := newMarkerScan("demo from a clone", "hello.txt")
	if err := scan.dir(filepath.Join(repo, "demo", "store")); err != nil {
		t.Fatal(err)
	}
	for _, f := range scan.findings {
		t.Errorf("plaintext in the demo store: %s", f)
	}
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}
