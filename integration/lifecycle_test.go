package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitMounted polls until dir is a mount point.
func waitMounted(t *testing.T, dir string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !mounted(t, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after %v", dir, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestForegroundSignal runs coffer mount in the foreground, writes, and
// stops it with SIGTERM: it uploads what is pending, unmounts and exits 0.
func TestForegroundSignal(t *testing.T) {
	requireFUSE(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			v := newVolume(t, newLocalStore(t))
			cmd := exec.Command(cofferBin, v.args("mount", "--cache-dir", v.cacheDir, "--writeback-delay", "1h", v.mnt)...)
			cmd.Env = cofferEnv(nil)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill()
					cmd.Wait()
					syscall.Unmount(v.mnt, syscall.MNT_DETACH)
				}
			})
			waitMounted(t, v.mnt, 20*time.Second)
			// With a one-hour writeback delay, only the exit flush uploads it.
			data := pseudoRandom(5, 3<<20)
			writeFile(t, v.path("pending"), data)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("coffer mount exited with %v; stderr:\n%s", err, stderr.String())
				}
			case <-time.After(time.Minute):
				t.Fatalf("coffer mount did not exit after %v; stderr:\n%s", sig, stderr.String())
			}
			if mounted(t, v.mnt) {
				t.Fatal("still mounted after exit")
			}
			if strings.Contains(stderr.String(), "goroutine ") {
				t.Fatalf("stack trace on stderr:\n%s", stderr.String())
			}
			v.mount()
			checkFile(t, v.path("pending"), data)
		})
	}
}

// TestReadOnly mounts read-only: reads work, every change is EROFS.
func TestReadOnly(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t))
	v.mount()
	writeFile(t, v.path("file"), []byte("kept"))
	v.unmount()
	v.mount("--read-only")
	checkFile(t, v.path("file"), []byte("kept"))
	for what, err := range map[string]error{
		"create": os.WriteFile(v.path("new"), nil, 0o644),
		"write":  os.WriteFile(v.path("file"), []byte("changed"), 0o644),
		"mkdir":  os.Mkdir(v.path("dir"), 0o755),
		"remove": os.Remove(v.path("file")),
		"chmod":  os.Chmod(v.path("file"), 0o600),
	} {
		if errnoOf(err) != syscall.EROFS {
			t.Errorf("%s on a read-only mount: %v, want EROFS", what, err)
		}
	}
	checkFile(t, v.path("file"), []byte("kept"))
}

// TestUnmountBusy: unmounting while a file is open fails with one line
// saying what to do, and the mount keeps working.
func TestUnmountBusy(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t))
	v.mount()
	f := openFile(t, v.path("held"), os.O_WRONLY|os.O_CREATE)
	r := coffer(t, nil, "unmount", v.mnt)
	if r.code != 1 || !strings.Contains(r.stderr, "busy") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("unmount of a busy mount: %v", r)
	}
	writeAt(t, f, []byte("still here"), 0)
	closeFile(t, f)
	v.remount(true)
	checkFile(t, v.path("held"), []byte("still here"))
}

// TestDemo runs scripts/demo.sh in a scratch copy of the repository
// layout: it creates ./demo/key (0600) and ./demo/store once, mounts at
// ./demo/mnt in the foreground, and Ctrl-C (SIGINT) ends it cleanly.
func TestDemo(t *testing.T) {
	requireFUSE(t)
	repo := t.TempDir()
	for _, d := range []string{"scripts", "bin"} {
		if err := os.Mkdir(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script, err := os.ReadFile("../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "scripts/demo.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(cofferBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "bin/coffer"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(repo, "demo", "mnt")
	for round := range 2 {
		cmd := exec.Command(filepath.Join(repo, "scripts/demo.sh"))
		cmd.Env = cofferEnv(nil)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
				syscall.Unmount(mnt, syscall.MNT_DETACH)
			}
		})
		var out strings.Builder
		go io.Copy(&out, bufio.NewReader(stdout))
		waitMounted(t, mnt, 30*time.Second)
		if round == 0 {
			writeFile(t, filepath.Join(mnt, "hello.txt"), []byte("demo secret content"))
		} else {
			checkFile(t, filepath.Join(mnt, "hello.txt"), []byte("demo secret content"))
		}
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: demo exited with %v\nstdout:\n%s\nstderr:\n%s", round, err, out.String(), stderr.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("round %d: demo still running a minute after Ctrl-C\nstderr:\n%s", round, stderr.String())
		}
		for _, want := range []string{"Ctrl-C", "demo/mnt", "demo/store"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("round %d: demo output lacks %q:\n%s", round, want, out.String())
			}
		}
	}
	fi, err := os.Stat(filepath.Join(repo, "demo", "key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo/key: %v, mode %v", err, fi.Mode())
	}
	scan := newMarkerScan("demo secret content", "hello.txt")
	if err := scan.dir(filepath.Join(repo, "demo", "store")); err != nil {
		t.Fatal(err)
	}
	if err := scan.dirMaybeEmpty(filepath.Join(repo, "demo", "cache")); err != nil {
		t.Fatal(err)
	}
	for _, f := range scan.findings {
		t.Errorf("plaintext in the demo store or cache: %s", f)
	}
}

// mountPid reads the pid file coffer keeps for a mountpoint.
func mountPid(t *testing.T, mnt string) int {
	t.Helper()
	sum := sha256.Sum256([]byte(mnt))
	data, err := os.ReadFile(filepath.Join(testHome, "run", "coffer", hex.EncodeToString(sum[:16])+".pid"))
	if err != nil {
		t.Fatalf("pid file of %s: %v", mnt, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestKilledMount: after the mount process is killed, mount refuses the
// dead mountpoint with advice, coffer unmount clears it, and uploaded
// files are all there on the next mount.
func TestKilledMount(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t))
	v.mount()
	f := openFile(t, v.path("uploaded"), os.O_WRONLY|os.O_CREATE)
	writeAt(t, f, []byte("safe"), 0)
	if err := f.Sync(); err != nil { // uploads now
		t.Fatal(err)
	}
	closeFile(t, f)
	pid := mountPid(t, v.mnt)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(20 * time.Millisecond)
	}
	args := v.args("mount", "--cache-dir", v.cacheDir, v.mnt)
	r := coffer(t, nil, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "coffer unmount") {
		t.Fatalf("mount on a dead mountpoint: %v", r)
	}
	v.unmount()
	v.mount()
	checkFile(t, v.path("uploaded"), []byte("safe"))
}

// TestSignalRightAfterMount sends SIGINT the moment the mount appears: the
// signal must not be lost between mounting and waiting for it.
func TestSignalRightAfterMount(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t))
	for i := range 5 {
		cmd := exec.Command(cofferBin, v.args("mount", "--cache-dir", v.cacheDir, v.mnt)...)
		cmd.Env = cofferEnv(nil)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for !mounted(t, v.mnt) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: exit %v; stderr:\n%s", i, err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			syscall.Unmount(v.mnt, syscall.MNT_DETACH)
			t.Fatalf("round %d: SIGINT right after the mount appeared was lost; stderr:\n%s", i, stderr.String())
		}
	}
}
