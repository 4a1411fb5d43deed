package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cofferfs/coffer/metrics"
)

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func scrape(t *testing.T, addr string) *metrics.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := metrics.Scrape(ctx, addr)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	return s
}

func requests(s *metrics.Snapshot, op string) float64 {
	for _, o := range s.Requests {
		if o.Op == op {
			return o.Outcomes["ok"]
		}
	}
	return 0
}

// TestMetrics (versitygw): a mount with --metrics-addr serves Prometheus
// metrics; scraped while a 24 MiB file is copied in, the bytes sent and
// the upload requests move, and once it is stored bytes up cover the
// file; reading it back moves bytes down and cache misses; coffer stats
// prints the same figures. A mount without metrics is refused by coffer
// stats, a non-loopback address by mount without its flag.
func TestMetrics(t *testing.T) {
	requireFUSE(t)
	addr := freeAddr(t)
	v := newVolume(t, newS3Store(t, "versitygw"), withMountArgs("--metrics-addr", addr, "--writeback-delay", "0"))
	v.mount()
	before := scrape(t, addr)

	size := 24 << 20
	src := t.TempDir() + "/big"
	writeFile(t, src, pseudoRandom(77, size))
	cp := exec.Command("dd", "if="+src, "of="+v.path("big"), "bs=1M", "conv=fsync", "status=none")
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cp.Wait() }()
	var during *metrics.Snapshot
	for during == nil {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("dd: %v", err)
			}
			during = scrape(t, addr) // the copy ended before a scrape saw it move
			done = nil
		default:
			if s := scrape(t, addr); s.BytesUp > before.BytesUp {
				during = s
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if done != nil {
		if err := <-done; err != nil {
			t.Fatalf("dd: %v", err)
		}
	}
	after := scrape(t, addr)
	if during.BytesUp <= before.BytesUp {
		t.Errorf("bytes up did not move during the copy: %v then %v", before.BytesUp, during.BytesUp)
	}
	if up := after.BytesUp - before.BytesUp; up < float64(size) {
		t.Errorf("bytes up moved by %v after storing %d bytes", up, size)
	}
	parts := requests(after, "multipart_part") - requests(before, "multipart_part")
	if parts < 4 || requests(after, "multipart_complete") < 1 {
		t.Errorf("%v parts and %v completions for a 24 MiB file in 5 MiB parts", parts, requests(after, "multipart_complete"))
	}

	v.remount(true) // cold caches, same metrics address
	cold := scrape(t, addr)
	checkFile(t, v.path("big"), pseudoRandom(77, size))
	read := scrape(t, addr)
	if down := read.BytesDown - cold.BytesDown; down < float64(size) {
		t.Errorf("bytes down moved by %v reading %d bytes", down, size)
	}
	if requests(read, "get") <= requests(cold, "get") || read.CacheMiss["memory"] <= cold.CacheMiss["memory"] {
		t.Errorf("GETs %v -> %v, memory misses %v -> %v", requests(cold, "get"), requests(read, "get"), cold.CacheMiss["memory"], read.CacheMiss["memory"])
	}
	if _, err := os.Stat(v.path("missing")); err == nil {
		t.Fatal("stat of a missing file succeeded")
	}
	if s := scrape(t, addr); s.Errors["ENOENT"] < 1 {
		t.Errorf("ENOENT not counted: %v", s.Errors)
	}

	r := coffer(t, nil, "stats", v.mnt)
	if r.code != 0 {
		t.Fatalf("coffer stats: %v", r)
	}
	for _, want := range []string{"metrics at http://" + addr, "get ", "down 2", "cache (memory):", "upload queue:", "errors:", "ENOENT"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("coffer stats lacks %q:\n%s", want, r.stdout)
		}
	}

	v.mountArgs = v.mountArgs[:len(v.mountArgs)-4]
	v.remount(false)
	if r := coffer(t, nil, "stats", v.mnt); r.code != 1 || !strings.Contains(r.stderr, "serves no metrics") {
		t.Errorf("coffer stats of a mount without metrics: %v", r)
	}
	v.unmount()
	if r := coffer(t, v.store.env, v.args("mount", "--metrics-addr", "0.0.0.0:9", v.mnt)...); r.code != 2 || !strings.Contains(r.stderr, "not loopback") {
		t.Errorf("mount with a non-loopback metrics address: %v", r)
	}
}
