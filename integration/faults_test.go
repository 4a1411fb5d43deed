package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/integration/faultproxy"
)

// Mount-level fault injection (DESIGN.md §5, §7): a fault proxy between
// the mount and versitygw. The tests keep to seconds; make soak runs the
// workload at larger sizes (COFFER_SOAK=1).

// soak reports a make soak run.
func soak() bool { return os.Getenv("COFFER_SOAK") == "1" }

// writeSynced writes data to path, fsyncs and closes it.
func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// faultWorkload runs, through a mount whose store misbehaves, a mix of
// cold reads of seed (stored before), large and small writes, renames of
// a file and of a directory, and an fsync; it returns what the volume
// must hold afterwards (relative path -> content).
func faultWorkload(t *testing.T, v *volume, seed map[string][]byte) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for name, data := range seed {
		checkFile(t, v.path(name), data)
		want[name] = data
	}
	large := []int{12<<20 + 777, 6 << 20}
	small := 20
	if soak() {
		large, small = []int{96<<20 + 777, 40 << 20, 12 << 20}, 300
	}
	for i, n := range large {
		name := fmt.Sprintf("large-%d", i)
		data := pseudoRandom(uint64(100+i), n)
		if i == 0 {
			if err := writeSynced(v.path(name), data, 0o644); err != nil {
				t.Fatalf("fsync of %s: %v", name, err)
			}
		} else {
			writeFile(t, v.path(name), data)
		}
		want[name] = data
	}
	if err := os.Mkdir(v.path("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range small {
		name := fmt.Sprintf("dir/s%03d", i)
		data := pseudoRandom(uint64(200+i), 1000+i*97)
		writeFile(t, v.path(name), data)
		want[name] = data
	}
	// A staged file renamed, a stored one renamed, and a directory.
	if err := os.Rename(v.path("large-1"), v.path("large-1-renamed")); err != nil {
		t.Fatal(err)
	}
	want["large-1-renamed"] = want["large-1"]
	delete(want, "large-1")
	for name, data := range seed {
		if err := os.Rename(v.path(name), v.path(name+"-moved")); err != nil {
			t.Fatalf("rename of stored %s: %v", name, err)
		}
		want[name+"-moved"] = data
		delete(want, name)
		break
	}
	if err := os.Rename(v.path("dir"), v.path("dir-moved")); err != nil {
		t.Fatalf("rename of a directory: %v", err)
	}
	for name, data := range want {
		if rest, ok := strings.CutPrefix(name, "dir/"); ok {
			want["dir-moved/"+rest] = data
			delete(want, name)
		}
	}
	for name, data := range want {
		checkFile(t, v.path(name), data)
	}
	return want
}

// checkVolume mounts v with a fresh cache dir and compares its files
// with want, byte for byte, and the tree with want's names.
func checkVolume(t *testing.T, v *volume, want map[string][]byte) {
	t.Helper()
	v.cacheDir = filepath.Join(v.dir, "cache-"+randomHex(4))
	v.mount()
	var got []string
	filepath.Walk(v.mnt, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(v.mnt, p)
			got = append(got, rel)
		}
		return nil
	})
	var names []string
	for name, data := range want {
		names = append(names, name)
		checkFile(t, v.path(name), data)
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("files after the faults:\n%v\nwant:\n%v", got, names)
	}
	v.unmount()
}

// TestFaultsAtMountLevel: under each fault between the mount and the
// store (latency, connection resets, dropped requests and answers, 500,
// 503, SlowDown, stalls), a mix of cold reads, large and small writes,
// renames and an fsync completes with the right data, unmount stores
// everything, and a fresh mount after the faults stop finds every byte.
func TestFaultsAtMountLevel(t *testing.T) {
	requireFUSE(t)
	cases := []struct {
		name  string
		fault faultproxy.Fault
	}{
		{"latency", faultproxy.Fault{Kind: faultproxy.Latency, Delay: 20 * time.Millisecond}},
		{"reset", faultproxy.Fault{Kind: faultproxy.Reset, Share: 0.1}},
		{"drop", faultproxy.Fault{Kind: faultproxy.Drop, Share: 0.1}},
		{"drop-response", faultproxy.Fault{Kind: faultproxy.DropResponse, Share: 0.1}},
		{"500", faultproxy.Fault{Kind: faultproxy.Error500, Share: 0.2}},
		{"503", faultproxy.Fault{Kind: faultproxy.Error503, Share: 0.2}},
		{"slowdown", faultproxy.Fault{Kind: faultproxy.SlowDown, Share: 0.1}},
		{"stall", faultproxy.Fault{Kind: faultproxy.Stall, Share: 0.05}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store, proxy := proxiedStore(t)
			// A 12 s budget: a stalled request is given up after 1 s.
			v := newVolume(t, store, withMountArgs("--retry-budget", "12s"))
			seed := map[string][]byte{"seed-big": pseudoRandom(1, 3<<20+5), "seed-small": pseudoRandom(2, 5000)}
			v.mount()
			for name, data := range seed {
				writeFile(t, v.path(name), data)
			}
			v.unmount()

			proxy.Set(c.fault)
			proxy.ResetStats()
			v.cacheDir = filepath.Join(v.dir, "cache-faults")
			v.mount()
			want := faultWorkload(t, v, seed)
			v.unmount()
			st := proxy.Stats()
			proxy.Set()
			if c.fault.Kind != faultproxy.Latency && st.Injected[c.fault.Kind] == 0 {
				t.Fatalf("no %v fault was injected: %v", c.fault.Kind, st.Requests)
			}
			t.Logf("%d faults injected in %d requests", st.Injected[c.fault.Kind], total(st.Requests))
			checkVolume(t, v, want)
		})
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestFsyncRetryBudgetAtMountLevel: with the store unreachable (every
// request dropped), fsync fails (EIO) once the retry budget is spent, and
// an fsync once the store is back succeeds; one whose store comes back
// within the budget succeeds without an error.
func TestFsyncRetryBudgetAtMountLevel(t *testing.T) {
	requireFUSE(t)
	store, proxy := proxiedStore(t)
	v := newVolume(t, store, withMountArgs("--retry-budget", "2s"))
	v.mount()
	f, err := os.OpenFile(v.path("f"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("written while the store is down")); err != nil {
		t.Fatal(err)
	}
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Drop})
	if err := f.Sync(); errnoOf(err) != syscall.EIO {
		t.Fatalf("fsync with the store down past the budget = %v, want EIO", err)
	}
	if proxy.Stats().Injected[faultproxy.Drop] < 2 {
		t.Fatal("fsync failed without retrying")
	}
	proxy.Set()
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync with the store back: %v", err)
	}
	f.Close()
	v.unmount()

	// A long budget; the store comes back after more dropped requests
	// than one upload's own retries make (5 PUTs of 6 attempts each): the
	// upload is retried until it is.
	v.mountArgs = append(v.mountArgs, "--retry-budget", "30s")
	v.mount()
	g, err := os.OpenFile(v.path("g"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Write([]byte("the store came back")); err != nil {
		t.Fatal(err)
	}
	proxy.ResetStats()
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Drop})
	done := make(chan error, 1)
	go func() { done <- g.Sync() }()
	deadline := time.Now().Add(time.Minute)
	for proxy.Stats().Injected[faultproxy.Drop] < 40 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	proxy.Set()
	if err := <-done; err != nil {
		t.Fatalf("fsync with the store back within the budget: %v", err)
	}
	g.Close()
	v.unmount()
	checkVolume(t, v, map[string][]byte{"f": []byte("written while the store is down"), "g": []byte("the store came back")})
}

// TestNoRequestWaitsForever: with every request to the store stalled,
// each operation that needs the store ends with an error within the
// retry budget (here bounded at a minute, a hang bound), and works again
// once the store answers.
func TestNoRequestWaitsForever(t *testing.T) {
	requireFUSE(t)
	store, proxy := proxiedStore(t)
	v := newVolume(t, store, withMountArgs("--retry-budget", "2s", "--metadata-ttl", "0"))
	v.mount()
	if err := os.Mkdir(v.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, v.path("d/stored"), []byte("stored"))
	v.remount(true) // cold caches: everything below needs the store
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Stall})
	ops := []struct {
		name string
		op   func() error
	}{
		{"stat", func() error { _, err := os.Stat(v.path("d/stored")); return err }},
		{"read", func() error { _, err := os.ReadFile(v.path("d/stored")); return err }},
		{"readdir", func() error { _, err := os.ReadDir(v.path("d")); return err }},
		{"mkdir", func() error { return os.Mkdir(v.path("new-dir"), 0o755) }},
		{"create and fsync", func() error { return writeSynced(v.path("new-file"), []byte("x"), 0o644) }},
		{"rename", func() error { return os.Rename(v.path("d/stored"), v.path("d/renamed")) }},
		{"unlink", func() error { return os.Remove(v.path("d/stored")) }},
	}
	for _, o := range ops {
		done := make(chan error, 1)
		go func() { done <- o.op() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s with every request stalled succeeded", o.name)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s with every request stalled has waited a minute", o.name)
		}
	}
	proxy.Set()
	checkFile(t, v.path("d/stored"), []byte("stored"))
	if err := writeSynced(v.path("after"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUnmountReportsFailedUploads: when the final uploads fail (the store
// unreachable past the retry budget), coffer unmount exits 1 naming the
// files, and so does a foreground mount stopped with Ctrl-C; the files
// stay journalled, and the next mount with the same cache dir uploads
// them once the store is back.
func TestUnmountReportsFailedUploads(t *testing.T) {
	requireFUSE(t)
	store, proxy := proxiedStore(t)
	v := newVolume(t, store, withMountArgs("--retry-budget", "1s", "--writeback-delay", "1h"))
	v.mount()
	writeFile(t, v.path("pending-one"), []byte("one"))
	writeFile(t, v.path("pending-two"), []byte("two"))
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Drop})
	r := coffer(t, nil, "unmount", v.mnt)
	v.mounted = false
	if r.code != 1 || !strings.Contains(r.stderr, "/pending-one") || !strings.Contains(r.stderr, "/pending-two") || !strings.Contains(r.stderr, v.cacheDir) {
		t.Fatalf("unmount with failed uploads: %v; want exit 1 naming both files and the cache dir", r)
	}
	for _, l := range logLines(t, v) {
		if strings.Contains(l, "pending-") {
			t.Fatalf("the log file names a file: %s", l)
		}
	}

	proxy.Set()
	m := v.startForeground()
	m.waitReady()
	checkFile(t, v.path("pending-one"), []byte("one"))
	writeFile(t, v.path("pending-three"), []byte("three"))
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Drop})
	if code := m.stop(syscall.SIGINT); code != 1 || !strings.Contains(m.stderr.String(), "/pending-three") {
		t.Fatalf("Ctrl-C with failed uploads: exit %d; want 1 naming the file; stderr:\n%s", code, m.stderr.String())
	}
	proxy.Set()
	v.mount()
	v.unmount()
	checkVolume(t, v, map[string][]byte{"pending-one": []byte("one"), "pending-two": []byte("two"), "pending-three": []byte("three")})
}

// logLines are the lines of the daemon logs of v's cache dirs.
func logLines(t *testing.T, v *volume) []string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(v.dir, "cache*", "coffer.log"))
	var out []string
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Split(string(data), "\n")...)
	}
	return out
}
