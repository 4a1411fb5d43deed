//go:build s3

package blobstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cofferfs/coffer/blobstore"
)

// faultProxy is a loopback reverse proxy in front of an S3 server that
// counts requests, fails chosen UploadPart attempts (a 500, or a connection reset part way
// through the body), can drop the response of the first completion, and
// measures how many UploadPart requests are in flight at once. Failures
// are chosen by part number and attempt, so a run is deterministic
// whatever order the parts arrive in.
type faultProxy struct {
	proxy *httputil.ReverseProxy
	// plan returns what to do with attempt (1-based) of part n.
	plan func(n, attempt int) fault
	// dropFirstComplete forwards the first CompleteMultipartUpload but
	// resets the connection instead of returning its response.
	dropFirstComplete bool

	// holdUntil, when > 0, holds UploadPart requests (for at most 5 s)
	// until that many are in flight at once, so a fast run still shows
	// whether the uploader reaches its concurrency.
	holdUntil int

	mu          sync.Mutex
	wake        *sync.Cond
	attempts    map[int]int
	inflight    int
	maxInflight int
	injected    map[fault]int
	completes   int
	requests    int // every request, of any kind
}

type fault int

const (
	pass fault = iota
	fail500
	reset
)

func newFaultProxy(t testing.TB, target string, plan func(n, attempt int) fault) (*faultProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{proxy: httputil.NewSingleHostReverseProxy(u), plan: plan,
		attempts: map[int]int{}, injected: map[fault]int{}}
	p.wake = sync.NewCond(&p.mu)
	p.proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	p.proxy.ErrorLog = nil
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	p.mu.Unlock()
	q := r.URL.Query()
	if r.Method == http.MethodPost && q.Has("uploadId") {
		p.mu.Lock()
		p.completes++
		drop := p.dropFirstComplete && p.completes == 1
		p.mu.Unlock()
		if drop {
			rec := httptest.NewRecorder()
			p.proxy.ServeHTTP(rec, r)
			resetConn(w)
			return
		}
	}
	if r.Method != http.MethodPut || !q.Has("partNumber") || r.Header.Get("X-Amz-Copy-Source") != "" {
		p.proxy.ServeHTTP(w, r)
		return
	}
	n, _ := strconv.Atoi(q.Get("partNumber"))
	p.mu.Lock()
	p.attempts[n]++
	f := p.plan(n, p.attempts[n])
	p.injected[f]++
	p.inflight++
	p.maxInflight = max(p.maxInflight, p.inflight)
	if p.holdUntil > 0 {
		if p.inflight >= p.holdUntil {
			p.holdUntil = 0
			p.wake.Broadcast()
		} else {
			timer := time.AfterFunc(5*time.Second, func() {
				p.mu.Lock()
				p.holdUntil = 0
				p.wake.Broadcast()
				p.mu.Unlock()
			})
			for p.holdUntil > 0 {
				p.wake.Wait()
			}
			timer.Stop()
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	switch f {
	case fail500:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
	case reset:
		io.CopyN(io.Discard, r.Body, 1<<20)
		resetConn(w)
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

// resetConn aborts the client's connection with a TCP RST.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// patternReader yields n deterministic pseudo-random bytes without
// holding them.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(seed byte, n int64) *patternReader {
	var s [32]byte
	s[0] = seed
	return &patternReader{rng: rand.NewChaCha8(s), n: n}
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.n {
		b = b[:r.n]
	}
	n, _ := r.rng.Read(b)
	r.n -= int64(n)
	return n, nil
}

// heapSampler records the peak HeapInuse while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// A 1 GiB upload through a proxy that fails one attempt in several with
// a 500 or a connection reset, one part seven times over (past the SDK's
// attempts, so the upload driver's own retry is needed), and drops the
// first completion's response: the object arrives intact, no multipart
// upload is left, the configured number of parts was in flight, and the
// heap stayed within (Concurrency+1) x PartSize plus a fixed slack.
func TestUploadSurvivesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB upload")
	}
	srv := server(t, "versitygw")
	const (
		size        = 1 << 30
		partSize    = 8 << 20
		concurrency = 8
		slack       = 24 << 20 // SDK, HTTP and proxy buffers, the test's own state
	)
	plan := func(n, attempt int) fault {
		switch {
		case n == 17 && attempt <= 7:
			return fail500
		case n%5 == 0 && attempt == 1:
			return fail500
		case n%7 == 3 && attempt == 1:
			return reset
		case n%13 == 0 && attempt <= 2:
			return []fault{fail500, reset}[attempt-1]
		}
		return pass
	}
	proxy, proxyURL := newFaultProxy(t, srv.endpoint, plan)
	proxy.dropFirstComplete = true
	proxy.holdUntil = concurrency
	bucket := srv.newBucket(t)
	o := srv.options(false)
	direct := open(t, bucket, "", o)
	o.Endpoint = proxyURL
	o.Concurrency = concurrency
	s := open(t, bucket, "", o)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src := newPattern(1, size)
	sum := sha256.New()
	// The bound is on what the upload holds, not on garbage the
	// collector has yet to reclaim: a lower GOGC keeps the latter small.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	base := heapInuse()
	heap := sampleHeap()
	start := time.Now()
	info, err := blobstore.Upload(ctx, s, "big", io.TeeReader(src, sum), size, blobstore.UploadOptions{
		PartSize: partSize, Concurrency: concurrency,
	})
	elapsed := time.Since(start)
	peak := heap.Stop()
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	t.Logf("1 GiB in %v (%.0f MB/s) through faults %v, completions %d, max %d parts in flight, heap peak %d MiB over a %d MiB base",
		elapsed.Round(time.Millisecond), size/elapsed.Seconds()/1e6, proxy.injected, proxy.completes, proxy.maxInflight, (peak-base)>>20, base>>20)

	if proxy.injected[fail500] == 0 || proxy.injected[reset] == 0 || proxy.completes < 2 {
		t.Errorf("faults not injected: %v, %d completions", proxy.injected, proxy.completes)
	}
	if proxy.maxInflight != concurrency {
		t.Errorf("%d UploadPart requests in flight at most, want %d", proxy.maxInflight, concurrency)
	}
	if bound := uint64((concurrency+1)*partSize + slack); peak > base+bound {
		t.Errorf("heap peaked %d MiB above its base, bound %d MiB", (peak-base)>>20, bound>>20)
	}
	if info.Size != size {
		t.Errorf("upload reports %d bytes", info.Size)
	}

	ups, err := srv.admin(t).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left", len(ups.Uploads))
	}
	rc, gi, err := direct.Get(ctx, "big", blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := sha256.New()
	if n, err := io.Copy(got, rc); err != nil || n != size || gi.Size != size {
		t.Fatalf("read back %d bytes (size %d): %v", n, gi.Size, err)
	}
	if string(got.Sum(nil)) != string(sum.Sum(nil)) {
		t.Fatal("object differs from what was uploaded")
	}
}

// An upload whose part keeps failing is aborted: Upload returns the
// error and no multipart upload (or object) is left.
func TestUploadAbortsOnFinalFailure(t *testing.T) {
	srv := server(t, "versitygw")
	plan := func(n, attempt int) fault {
		if n == 3 {
			return fail500
		}
		return pass
	}
	_, proxyURL := newFaultProxy(t, srv.endpoint, plan)
	bucket := srv.newBucket(t)
	o := srv.options(false)
	o.Endpoint = proxyURL
	s := open(t, bucket, "", o)
	ctx := context.Background()
	_, err := blobstore.Upload(ctx, s, "doomed", newPattern(2, 40<<20), 40<<20, blobstore.UploadOptions{
		PartSize: 5 << 20, Concurrency: 4, Retries: 1,
	})
	expectErr(t, "upload with a failing part", err, blobstore.ErrTransient)
	ups, lerr := srv.admin(t).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after the failure", len(ups.Uploads))
	}
	if _, err := s.Head(ctx, "doomed"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("failed upload left an object: %v", err)
	}
}
