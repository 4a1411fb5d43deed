package fusefs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cfs "github.com/cofferfs/coffer/fs"
)

// TestMountPerf measures small files, cold `ls -l` and a large file
// through a real mount of a local store, or of versitygw when run under
// scripts/with-servers.sh versitygw. It runs only with COFFER_PERF=1
// (COFFER_PERF_FILES and COFFER_PERF_MB size it).
func TestMountPerf(t *testing.T) {
	if os.Getenv("COFFER_PERF") != "1" {
		t.Skip("set COFFER_PERF=1")
	}
	needFUSE(t)
	files := envInt("COFFER_PERF_FILES", 2000)
	mb := envInt("COFFER_PERF_MB", 256)
	ctx := context.Background()
	dir := t.TempDir()
	url := filepath.Join(dir, "store")
	bo := blobstore.Options{Concurrency: 64}
	if ep := os.Getenv("COFFER_TEST_VERSITYGW_ENDPOINT"); ep != "" {
		// versitygw's POSIX backend: a bucket is a directory.
		bucket := fmt.Sprintf("perf%d", time.Now().UnixNano())
		if err := os.Mkdir(filepath.Join(os.Getenv("COFFER_TEST_VERSITYGW_DATA_DIR"), bucket), 0o755); err != nil {
			t.Fatal(err)
		}
		url = "s3://" + bucket
		bo.Endpoint, bo.Region, bo.PathStyle = ep, "us-east-1", true
		bo.AccessKeyID = os.Getenv("COFFER_TEST_VERSITYGW_ACCESS_KEY")
		bo.SecretAccessKey = os.Getenv("COFFER_TEST_VERSITYGW_SECRET_KEY")
	}
	t.Logf("store %s", url)
	store, err := blobstore.Open(ctx, url, bo)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := cipher.NewSymKey(bytes.Repeat([]byte{5}, 32))
	kr, _ := cipher.NewKeyring()
	cfg, _ := cipher.NewConfig(cfs.EncryptionClient, "", "", kr, root)
	if err := cfs.InitVolume(ctx, store, cfg, kr); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	mount := func() func() {
		v, err := cfs.OpenVolume(ctx, cfs.Options{Store: store, Roots: []*cipher.RootKey{root}, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := Mount(v, mnt, MountOptions{WritebackCache: os.Getenv("COFFER_PERF_WBC") == "1", MaxReadAhead: envInt("COFFER_PERF_RA", 0)})
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			start := time.Now()
			srv.Unmount()
			srv.Wait()
			if err := v.Close(ctx); err != nil {
				t.Error(err)
			}
			t.Logf("unmount+flush %v", time.Since(start))
		}
	}
	umount := mount()
	os.Mkdir(filepath.Join(mnt, "small"), 0o755)
	payload := bytes.Repeat([]byte("x"), 4096)
	stopProfile := startProfile(t, "COFFER_PERF_CREATE_CPUPROFILE")
	start := time.Now()
	for i := range files {
		if err := os.WriteFile(filepath.Join(mnt, "small", fmt.Sprintf("f%05d", i)), payload, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d small files created: %v (before upload)", files, time.Since(start))
	stopFlushProfile := startProfile(t, "COFFER_PERF_FLUSH_CPUPROFILE")
	umount()
	stopFlushProfile()
	t.Logf("%d small files created and stored: %v", files, time.Since(start))
	stopProfile()

	umount = mount()
	start = time.Now()
	out, err := exec.Command("ls", "-l", filepath.Join(mnt, "small")).Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold ls -l of %d files: %v (%d lines)", files, time.Since(start), bytes.Count(out, []byte("\n")))
	start = time.Now()
	exec.Command("ls", "-l", filepath.Join(mnt, "small")).Output()
	t.Logf("warm ls -l: %v", time.Since(start))
	umount()
	umount = mount()
	start = time.Now()
	for i := range files {
		if _, err := os.ReadFile(filepath.Join(mnt, "small", fmt.Sprintf("f%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cold read of %d files: %v", files, time.Since(start))

	big := filepath.Join(mnt, "big")
	stopProfile = startProfile(t, "COFFER_PERF_WRITE_CPUPROFILE")
	start = time.Now()
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+big, "bs=1M", "count="+strconv.Itoa(mb), "conv=fsync").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	d := time.Since(start)
	stopProfile()
	t.Logf("write %d MiB until stored (fsync): %v, %.0f MB/s", mb, d, float64(mb<<20)/d.Seconds()/1e6)
	start = time.Now()
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+big+"4k", "bs=4k", "count=16384").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Logf("write 64 MiB in 4 KiB writes (until close): %v", time.Since(start))
	umount()
	if os.Getenv("COFFER_PERF_NOREAD") == "1" {
		return
	}
	umount = mount()
	defer umount()
	stopProfile = startProfile(t, "COFFER_PERF_READ_CPUPROFILE")
	defer stopProfile()
	var rss0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &rss0)
	start = time.Now()
	if out, err := exec.Command("dd", "if="+big, "of=/dev/null", "bs=1M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	d = time.Since(start)
	stopProfile() // the read alone
	var rss syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &rss)
	cpu := time.Duration(rss.Utime.Nano() + rss.Stime.Nano() - rss0.Utime.Nano() - rss0.Stime.Nano())
	t.Logf("peak RSS of the test process: %d MiB before the read, %d MiB after; CPU of the mount during the read: %v", rss0.Maxrss>>10, rss.Maxrss>>10, cpu)
	t.Logf("cold read %d MiB: %v, %.0f MB/s", mb, d, float64(mb<<20)/d.Seconds()/1e6)
	viaMount := float64(mb<<20) / d.Seconds() / 1e6

	// The same bytes with one raw GetObject (the SDK, no mount): the
	// largest object is the big file's ciphertext.
	var key string
	var size int64
	for e, err := range store.List(ctx, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		if e.Size > size {
			key, size = e.Key, e.Size
		}
	}
	start = time.Now()
	rc, _, err := store.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != size {
		t.Fatalf("raw get: %d of %d bytes, %v", n, size, err)
	}
	raw := float64(size) / time.Since(start).Seconds() / 1e6
	t.Logf("raw GetObject of the same object: %.0f MB/s; mount/raw = %.0f%%", raw, 100*viaMount/raw)
}

// startProfile writes a CPU profile to the file the environment variable
// env names, if set, until the function it returns is called (again: a
// no-op).
func startProfile(t *testing.T, env string) func() {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
