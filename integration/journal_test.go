package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/integration/faultproxy"
)

// syncBuffer is a bytes.Buffer safe for a child's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fgMount is a foreground `coffer mount` the test started (its child).
type fgMount struct {
	t      *testing.T
	v      *volume
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startForeground starts a foreground mount of v (its cache dir and mount
// flags, plus extra) and returns at once: recovery runs before the mount
// appears.
func (v *volume) startForeground(extra ...string) *fgMount {
	v.t.Helper()
	args := v.args("mount", append(append([]string{"--cache-dir", v.cacheDir}, v.mountArgs...), extra...)...)
	m := &fgMount{t: v.t, v: v, stderr: &syncBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(cofferBin, append(args, v.mnt)...)
	m.cmd.Env = cofferEnv(v.store.env)
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	v.t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			m.kill()
		}
		if v.t.Failed() {
			v.t.Logf("foreground mount's stderr:\n%s", tail(m.stderr.String(), 8<<10))
		}
	})
	return m
}

// waitReady waits until the mount is served and coffer says so (it says
// so after its own first requests to the mount) (a hang bound, not a
// measurement).
func (m *fgMount) waitReady() {
	m.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !mounted(m.t, m.v.mnt) || !strings.Contains(m.stderr.String(), "mounted at") {
		select {
		case <-m.done:
			m.t.Fatalf("coffer mount exited before the mount was ready (%v); stderr:\n%s", m.err, m.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("not mounted after 3 minutes; stderr:\n%s", m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill is kill -9 of the mount process; the dead mount is then forced
// off (MNT_FORCE aborts the FUSE connection: a thread of the killed
// process that was inside a request to its own mount, as it is while
// the mount starts, would otherwise wait for the answer forever).
func (m *fgMount) kill() {
	m.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-m.done:
	case <-time.After(2 * time.Second):
		// Stuck (its threads are gone but one): the process cannot act
		// any more, so forcing the mount off changes nothing on disk.
	}
	if mounted(m.t, m.v.mnt) {
		syscall.Unmount(m.v.mnt, syscall.MNT_FORCE|syscall.MNT_DETACH)
	}
	<-m.done
}

// stop sends sig and returns the exit code once the process ended.
func (m *fgMount) stop(sig syscall.Signal) int {
	m.t.Helper()
	m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(5 * time.Minute):
		m.t.Fatalf("coffer mount did not exit after %v; stderr:\n%s", sig, m.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(m.err, &ee) {
		return ee.ExitCode()
	}
	if m.err != nil {
		m.t.Fatal(m.err)
	}
	return 0
}

var recoveredLine = regexp.MustCompile(`msg="recovered (\d+) files"`)

// recovered is the count of the mount's recovery line, -1 if none.
func (m *fgMount) recovered() int {
	match := recoveredLine.FindStringSubmatch(m.stderr.String())
	if match == nil {
		return -1
	}
	n, _ := strconv.Atoi(match[1])
	return n
}

// burstResult records, from the writer's side, which files reached
// close(2) or fsync(2) successfully before the mount died.
type burstResult struct {
	mu      sync.Mutex
	closed  map[string][]byte // relative path -> content: close returned 0
	fsynced map[string][]byte // fsync returned 0 (close may not have)
	small   int               // small files closed
}

func (b *burstResult) done(name string, data []byte, fsync bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fsync {
		b.fsynced[name] = data
	} else {
		b.closed[name] = data
		if strings.HasPrefix(name, "small/") {
			b.small++
		}
	}
}

func (b *burstResult) smallClosed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.small
}

// durable is every file the writer was told is closed or synced.
func (b *burstResult) durable() map[string][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range b.fsynced {
		out[k] = v
	}
	for k, v := range b.closed {
		out[k] = v
	}
	return out
}

// writeBurst writes small files one after another (every 25th fsynced
// before its close) and large ones in parallel (the first fsynced), each
// in 1 MiB writes, until done or the mount dies; it returns at once and
// fills res as closes and fsyncs return.
func writeBurst(dir string, small int, large []int, res *burstResult) *sync.WaitGroup {
	var wg sync.WaitGroup
	write := func(name string, data []byte, fsync bool) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := f.Write(data[off:min(off+1<<20, len(data))]); err != nil {
				f.Close()
				return
			}
		}
		if fsync {
			if f.Sync() != nil {
				f.Close()
				return
			}
			res.done(name, data, true)
		}
		if f.Close() == nil {
			res.done(name, data, false)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range small {
			write(fmt.Sprintf("small/%04d", i), pseudoRandom(uint64(1000+i), 4096+i), i%25 == 0)
		}
	}()
	for i, n := range large {
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(fmt.Sprintf("large-%d", i), pseudoRandom(uint64(i), n), i == 0)
		}()
	}
	return &wg
}

// crashDuringBurst mounts v in the foreground (extra flags), writes a
// burst of 500 small files and 3 large ones into it, and kills the mount
// (kill -9) once killAt small files are closed, while the large ones are
// still being written or waiting for their upload. It returns what the
// writer saw.
func crashDuringBurst(t *testing.T, v *volume, killAt int, extra ...string) *burstResult {
	t.Helper()
	m := v.startForeground(extra...)
	m.waitReady()
	if err := os.Mkdir(v.path("small"), 0o755); err != nil {
		t.Fatal(err)
	}
	res := &burstResult{closed: map[string][]byte{}, fsynced: map[string][]byte{}}
	small, large := 500, []int{24 << 20, 20<<20 + 12345, 16 << 20}
	if soak() {
		small, large = 2000, []int{96 << 20, 64<<20 + 12345, 40 << 20}
		killAt *= 4
	}
	wg := writeBurst(v.mnt, small, large, res)
	deadline := time.Now().Add(3 * time.Minute)
	for res.smallClosed() < killAt {
		if time.Now().After(deadline) {
			t.Fatalf("only %d small files closed after 3 minutes", res.smallClosed())
		}
		time.Sleep(time.Millisecond)
	}
	m.kill()
	wg.Wait()
	v.mounted = false
	return res
}

// checkSurvived remounts v (foreground) and checks every file the writer
// saw closed or fsynced, byte for byte; it returns the mount.
func checkSurvived(t *testing.T, v *volume, res *burstResult) *fgMount {
	t.Helper()
	m := v.startForeground()
	m.waitReady()
	for name, data := range res.durable() {
		got, err := os.ReadFile(v.path(name))
		if err != nil {
			t.Errorf("%s, closed before the kill: %v", name, err)
			continue
		}
		if err := sameBytes(got, data); err != nil {
			t.Errorf("%s, closed before the kill: %v", name, err)
		}
	}
	return m
}

// notStored counts the files of res the store does not hold (right after
// the kill: what recovery has to upload).
func notStored(t *testing.T, v *volume, res *burstResult) int {
	t.Helper()
	ov := v.offline()
	n := 0
	for name := range res.durable() {
		if _, err := ov.Stat(t.Context(), "/"+name); err != nil {
			n++
		}
	}
	return n
}

// TestCrashDuringBurst: kill -9 of the mount during a burst of writes
// (500 small files, 3 large ones of 16-24 MiB), then a remount with the
// same cache dir: every file whose close (or fsync) returned before the
// kill is there, byte for byte, and the recovery line counts at least
// the files the store did not have.
func TestCrashDuringBurst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for round := range rounds() {
			t.Run(fmt.Sprint(round), func(t *testing.T) { crashAndRecover(t, b) })
		}
	})
}

// rounds is how often the crash tests run: once, several times in make
// soak.
func rounds() int {
	if soak() {
		return 5
	}
	return 1
}

func crashAndRecover(t *testing.T, b backend) {
	v := newVolume(t, b.newStore(t))
	res := crashDuringBurst(t, v, 300, "--writeback-delay", "2s")
	missing := notStored(t, v, res)
	closed := len(res.durable())
	m := checkSurvived(t, v, res)
	n := m.recovered()
	t.Logf("%d files closed or fsynced before the kill, %d of them not in the store; recovered %d", closed, missing, n)
	if missing == 0 {
		t.Fatal("every file was stored before the kill: the test kills too late to test recovery")
	}
	// A close whose answer the kill cut off may be recovered too
	// (one per writer at most).
	if n < missing || n > closed+4 {
		t.Fatalf("recovery line says %d files; want between %d (not stored) and %d (closed)", n, missing, closed+4)
	}
	if m.stop(syscall.SIGTERM) != 0 {
		t.Fatalf("unmount after recovery failed:\n%s", m.stderr.String())
	}
}

// TestCrashDuringRecovery: the mount is killed during a burst, and the
// next mount is killed again while it recovers (versitygw: its uploads
// slowed by latency through a fault proxy, killed after 40 of them; local
// store: killed once its first recovered files are in the store); the
// third mount still finds every file closed before the first kill, byte
// for byte, and stores no conflict copy (it recognises what the second
// run stored).
func TestCrashDuringRecovery(t *testing.T) {
	requireFUSE(t)
	for round := range rounds() {
		t.Run(fmt.Sprintf("versitygw/%d", round), func(t *testing.T) {
			store, proxy := proxiedStore(t)
			crashDuringRecovery(t, store, func(v *volume) func() bool {
				proxy.Set(faultproxy.Fault{Kind: faultproxy.Latency, Delay: 150 * time.Millisecond,
					Ops: []string{"PutObject", "UploadPart", "CompleteMultipartUpload", "HeadObject"}})
				proxy.ResetStats()
				return func() bool { return proxy.Stats().Requests["PutObject"] >= 40 }
			}, proxy.Set)
		})
		t.Run(fmt.Sprintf("local/%d", round), func(t *testing.T) {
			store := newLocalStore(t)
			crashDuringRecovery(t, store, func(v *volume) func() bool {
				before := countFiles(store.dataDir)
				return func() bool { return countFiles(store.dataDir) >= before+5 }
			}, func(...faultproxy.Fault) {})
		})
	}
}

// countFiles counts the regular files below dir.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// crashDuringRecovery: a burst killed with everything pending, then a
// mount killed as soon as slow(v) (called before it starts) says its
// recovery has stored some files, then a third mount that must find
// everything; clear ends whatever slow set up.
func crashDuringRecovery(t *testing.T, store *storeRef, slow func(*volume) func() bool, clear func(...faultproxy.Fault)) {
	v := newVolume(t, store)
	res := crashDuringBurst(t, v, 300, "--writeback-delay", "1h")

	going := slow(v)
	m := v.startForeground()
	deadline := time.Now().Add(2 * time.Minute)
	for !going() {
		if time.Now().After(deadline) {
			t.Fatalf("recovery did not get going; stderr:\n%s", m.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if mounted(t, v.mnt) {
		t.Fatal("the second mount was ready before the kill: the kill did not land in its recovery")
	}
	m.kill()
	clear()

	third := checkSurvived(t, v, res)
	n := third.recovered()
	t.Logf("%d files closed before the first kill; the third mount recovered %d", len(res.durable()), n)
	if n < 1 {
		t.Fatalf("the third mount recovered %d files: the second kill came after its recovery; stderr:\n%s", n, third.stderr.String())
	}
	for _, dir := range []string{v.mnt, v.path("small")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.Contains(e.Name(), ".conflict-") {
				t.Errorf("conflict copy %s: recovery did not recognise its own upload", e.Name())
			}
		}
	}
	if third.stop(syscall.SIGTERM) != 0 {
		t.Fatalf("unmount failed:\n%s", third.stderr.String())
	}
}

// proxiedStore is a fresh versitygw bucket that coffer reaches through a
// fault proxy (direct access, storeRef.open, bypasses it).
func proxiedStore(t *testing.T) (*storeRef, *faultproxy.Proxy) {
	t.Helper()
	srv := server(t, "versitygw")
	ref := srv.store(srv.newBucket(t))
	p, err := faultproxy.New(srv.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ref.args = []string{"--endpoint", p.URL(), "--path-style", "--region", "us-east-1"}
	return ref, p
}

// TestCloseJournalsWhileStillOpen: close(2) journals the file, even while
// another descriptor keeps it open (no release yet): killed then, the
// mount loses nothing that close returned for.
func TestCloseJournalsWhileStillOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		m := v.startForeground("--writeback-delay", "1h")
		m.waitReady()
		f, err := os.OpenFile(v.path("f"), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		data := pseudoRandom(7, 200<<10)
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil { // a FLUSH; the dup holds the file open
			t.Fatal(err)
		}
		m.kill()
		syscall.Close(fd)
		v.mounted = false
		m = v.startForeground()
		m.waitReady()
		checkFile(t, v.path("f"), data)
		if n := m.recovered(); n != 1 {
			t.Fatalf("recovered %d files, want 1", n)
		}
		m.stop(syscall.SIGTERM)
	})
}
