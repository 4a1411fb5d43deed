//go:build s3

package blobstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/integration/faultproxy"
)

// newProxy starts a fault proxy (integration/faultproxy) in front of
// srv, closed when the test ends.
func newProxy(t testing.TB, srv s3Server) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(srv.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
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
	// Faults by part number and attempt, so a run is deterministic
	// whatever order the parts arrive in.
	part := func(pred func(n, attempt int) bool) func(faultproxy.Request) bool {
		return func(r faultproxy.Request) bool { return pred(r.PartNumber, r.Attempt) }
	}
	up := []string{"UploadPart"}
	proxy := newProxy(t, srv)
	proxy.Set(
		faultproxy.Fault{Kind: faultproxy.Error500, Ops: up, Match: part(func(n, a int) bool { return n == 17 && a <= 7 })},
		faultproxy.Fault{Kind: faultproxy.Error500, Ops: up, Match: part(func(n, a int) bool { return n%5 == 0 && a == 1 })},
		faultproxy.Fault{Kind: faultproxy.Reset, Ops: up, Match: part(func(n, a int) bool { return n%7 == 3 && a == 1 })},
		faultproxy.Fault{Kind: faultproxy.Error500, Ops: up, Match: part(func(n, a int) bool { return n%13 == 0 && a == 1 })},
		faultproxy.Fault{Kind: faultproxy.Reset, Ops: up, Match: part(func(n, a int) bool { return n%13 == 0 && a == 2 })},
		// The first completion is done, its answer lost.
		faultproxy.Fault{Kind: faultproxy.DropResponse, Ops: []string{"CompleteMultipartUpload"}, Match: func(r faultproxy.Request) bool { return r.Attempt == 1 }},
	)
	// Parts wait until the configured number is in flight (at most 5 s),
	// so a fast run still shows whether the uploader reaches it.
	proxy.Hold("UploadPart", concurrency, 5*time.Second)
	proxyURL := proxy.URL()
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
	proxy.WaitIdle(ctx)
	st := proxy.Stats()
	t.Logf("1 GiB in %v (%.0f MB/s) through faults %v, completions %d, max %d parts in flight, heap peak %d MiB over a %d MiB base",
		elapsed.Round(time.Millisecond), size/elapsed.Seconds()/1e6, st.Injected, st.Requests["CompleteMultipartUpload"], st.MaxInFlight["UploadPart"], (peak-base)>>20, base>>20)

	if st.Injected[faultproxy.Error500] == 0 || st.Injected[faultproxy.Reset] == 0 || st.Requests["CompleteMultipartUpload"] < 2 {
		t.Errorf("faults not injected: %v, %d completions", st.Injected, st.Requests["CompleteMultipartUpload"])
	}
	if got := st.MaxInFlight["UploadPart"]; got != concurrency {
		t.Errorf("%d UploadPart requests in flight at most, want %d", got, concurrency)
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
	proxy := newProxy(t, srv)
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Error500, Ops: []string{"UploadPart"},
		Match: func(r faultproxy.Request) bool { return r.PartNumber == 3 }})
	proxyURL := proxy.URL()
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

// proxiedStore opens a store on a fresh bucket of srv through a fault
// proxy, with a retry budget small enough for tests, and one without the
// proxy.
func proxiedStore(t *testing.T, srv s3Server, stall time.Duration, attempts int) (*faultproxy.Proxy, *blobstore.S3, *blobstore.S3, string) {
	t.Helper()
	proxy := newProxy(t, srv)
	bucket := srv.newBucket(t)
	o := srv.options(false)
	direct := open(t, bucket, "", o)
	o.Endpoint = proxy.URL()
	o.StallTimeout, o.MaxAttempts, o.MaxBackoff = stall, attempts, 20*time.Millisecond
	return proxy, open(t, bucket, "", o), direct, bucket
}

// The store's retries get every kind of call through each kind of fault
// hitting its first attempt, with the right data. A conditional write
// whose first attempt succeeded and lost its answer succeeds (the retry's
// 412 is recognised as the call's own write).
func TestRetriesRecoverFromEachFault(t *testing.T) {
	forServers(t, testRetriesRecover)
}

func testRetriesRecover(t *testing.T, srv s3Server) {
	proxy, s, direct, bucket := proxiedStore(t, srv, 300*time.Millisecond, 0)
	first := func(r faultproxy.Request) bool { return r.Attempt == 1 }
	faults := []faultproxy.Fault{
		{Kind: faultproxy.Reset, Match: first},
		{Kind: faultproxy.Drop, Match: first},
		{Kind: faultproxy.DropResponse, Match: first},
		{Kind: faultproxy.Error500, Match: first},
		{Kind: faultproxy.Error503, Match: first},
		{Kind: faultproxy.SlowDown, Match: first},
		{Kind: faultproxy.Stall, Match: first},
		{Kind: faultproxy.Latency, Delay: 20 * time.Millisecond},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, f := range faults {
		t.Run(f.Kind.String(), func(t *testing.T) {
			proxy.ResetStats()
			proxy.Set(f)
			defer proxy.Set()
			k := f.Kind.String() + "/"
			small := bytes.Repeat([]byte("small object "), 1000)
			check := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s through %v faults: %v", what, f.Kind, err)
				}
			}
			_, err := s.Put(ctx, k+"a", bytes.NewReader(small), int64(len(small)), blobstore.PutOptions{Metadata: map[string]string{"x": "1"}, IfNoneMatch: true})
			check("put", err)
			info, err := s.Head(ctx, k+"a")
			check("head", err)
			if info.Size != int64(len(small)) || info.Metadata["x"] != "1" {
				t.Fatalf("head: %+v", info)
			}
			rc, _, err := s.Get(ctx, k+"a", blobstore.GetOptions{Offset: 7, Length: 100, IfMatch: info.ETag})
			check("ranged get", err)
			got, err := io.ReadAll(rc)
			rc.Close()
			check("ranged get body", err)
			if !bytes.Equal(got, small[7:107]) {
				t.Fatal("ranged get returned other bytes")
			}
			_, err = s.Copy(ctx, k+"a", k+"b", blobstore.CopyOptions{Metadata: map[string]string{"x": "2"}, IfMatch: info.ETag})
			check("copy", err)
			const bigSize = 11 << 20
			sum := sha256.New()
			_, err = blobstore.Upload(ctx, s, k+"big", io.TeeReader(newPattern(3, bigSize), sum), bigSize, blobstore.UploadOptions{
				PartSize: 5 << 20, Concurrency: 3, PutOptions: blobstore.PutOptions{IfNoneMatch: true, Metadata: map[string]string{"u": "1"}}})
			check("multipart upload", err)
			var keys []string
			for e, err := range s.List(ctx, k, "") {
				check("list", err)
				keys = append(keys, e.Key)
			}
			if want := []string{k + "a", k + "b", k + "big"}; !slices.Equal(keys, want) {
				t.Fatalf("list: %v, want %v", keys, want)
			}
			rc, _, err = direct.Get(ctx, k+"big", blobstore.GetOptions{Length: -1})
			check("get of the upload", err)
			h := sha256.New()
			io.Copy(h, rc)
			rc.Close()
			if !bytes.Equal(h.Sum(nil), sum.Sum(nil)) {
				t.Fatal("uploaded object differs")
			}
			check("delete", s.Delete(ctx, k+"a"))
			check("delete many", s.DeleteMany(ctx, []string{k + "b", k + "big"}))
			for e, err := range direct.List(ctx, k, "") {
				t.Fatalf("left after the deletes: %v %v", e.Key, err)
			}
			proxy.WaitIdle(ctx)
			st := proxy.Stats()
			if st.Injected[f.Kind] < 8 {
				t.Fatalf("only %d %v faults injected: %v", st.Injected[f.Kind], f.Kind, st.Requests)
			}
			// A lost CreateMultipartUpload answer leaves the upload the
			// server made (the retry makes another): nothing else may.
			ups, err := srv.admin(t).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
			if err != nil {
				t.Fatal(err)
			}
			orphans := 0
			if f.Kind == faultproxy.DropResponse {
				orphans = 1
			}
			if len(ups.Uploads) != orphans {
				t.Fatalf("%d multipart uploads left, want %d", len(ups.Uploads), orphans)
			}
			for _, u := range ups.Uploads {
				srv.admin(t).AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
			}
			t.Logf("%v: %d injected over %v", f.Kind, st.Injected[f.Kind], st.Requests)
		})
	}
}

// Every store call ends when the server stops answering: each attempt
// after StallTimeout without a byte, the call after MaxAttempts, with an
// error that says so.
func TestStalledCallsEnd(t *testing.T) {
	const attempts = 2
	proxy, s, _, _ := proxiedStore(t, server(t, "versitygw"), 300*time.Millisecond, attempts)
	proxy.Set(faultproxy.Fault{Kind: faultproxy.Stall})
	ctx := context.Background()
	calls := []struct {
		op   string
		call func() error
	}{
		{"PutObject", func() error {
			_, err := s.Put(ctx, "k", bytes.NewReader([]byte("x")), 1, blobstore.PutOptions{})
			return err
		}},
		{"GetObject", func() error {
			_, _, err := s.Get(ctx, "k", blobstore.GetOptions{Length: -1})
			return err
		}},
		{"HeadObject", func() error { _, err := s.Head(ctx, "k"); return err }},
		{"ListObjectsV2", func() error {
			for _, err := range s.List(ctx, "", "") {
				return err
			}
			return nil
		}},
		{"CopyObject", func() error { _, err := s.Copy(ctx, "k", "k2", blobstore.CopyOptions{}); return err }},
		{"DeleteObject", func() error { return s.Delete(ctx, "k") }},
		{"CreateMultipartUpload", func() error { _, err := s.Multipart(ctx, "m", blobstore.PutOptions{}); return err }},
	}
	for _, c := range calls {
		t.Run(c.op, func(t *testing.T) {
			proxy.ResetStats()
			done := make(chan error, 1)
			go func() { done <- c.call() }()
			select {
			case err := <-done:
				if !errors.Is(err, blobstore.ErrTransient) || !strings.Contains(err.Error(), "stall timeout") {
					t.Fatalf("stalled %s: %v", c.op, err)
				}
				t.Logf("%s: %v", c.op, err)
			case <-time.After(30 * time.Second): // its budget is under a second
				t.Fatalf("%s still waiting after 30 s", c.op)
			}
			if n := proxy.Stats().Requests[c.op]; n != attempts {
				t.Fatalf("%d attempts of %s, want %d", n, c.op, attempts)
			}
		})
	}
}
