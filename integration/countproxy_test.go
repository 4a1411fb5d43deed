package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// countProxy is a loopback reverse proxy in front of an S3 server that
// counts, per kind of request, the body bytes clients send and receive:
// what a rotation must not move is object bodies (GetObject, PutObject,
// UploadPart), told apart from the config object's and from listings and
// copy results. Requests keep the Host the client signed, so SigV4
// verifies at the server.
type countProxy struct {
	url string

	mu    sync.Mutex
	up    map[string]int64
	down  map[string]int64
	count map[string]int
}

func newCountProxy(t *testing.T, target string) *countProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countProxy{up: map[string]int64{}, down: map[string]int64{}, count: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := requestKind(r)
		p.mu.Lock()
		p.count[kind]++
		p.mu.Unlock()
		r.Body = &countingBody{ReadCloser: r.Body, add: func(n int) { p.add(p.up, kind, n) }}
		rp.ServeHTTP(&countingResponse{ResponseWriter: w, add: func(n int) { p.add(p.down, kind, n) }}, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *countProxy) add(m map[string]int64, kind string, n int) {
	p.mu.Lock()
	m[kind] += int64(n)
	p.mu.Unlock()
}

// stats returns copies of the counters: requests, bytes up, bytes down.
func (p *countProxy) stats() (count map[string]int, up, down map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	count, up, down = map[string]int{}, map[string]int64{}, map[string]int64{}
	for k, v := range p.count {
		count[k] = v
	}
	for k, v := range p.up {
		up[k] = v
	}
	for k, v := range p.down {
		down[k] = v
	}
	return count, up, down
}

// requestKind classifies a path-style S3 request; requests for the
// volume config get a kind of their own.
func requestKind(r *http.Request) string {
	q := r.URL.Query()
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	object := len(parts) == 2 && parts[1] != ""
	suffix := ""
	if object && strings.HasSuffix(parts[1], "/"+configKey) || object && parts[1] == configKey {
		suffix = " (config)"
	}
	switch {
	case !object && r.Method == http.MethodGet:
		return "List"
	case r.Method == http.MethodHead:
		return "HeadObject" + suffix
	case r.Method == http.MethodGet:
		return "GetObject" + suffix
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" && q.Has("partNumber"):
		return "UploadPartCopy"
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		return "CopyObject"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPut:
		return "PutObject" + suffix
	}
	return r.Method
}

type countingBody struct {
	io.ReadCloser
	add func(int)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.add(n)
	return n, err
}

type countingResponse struct {
	http.ResponseWriter
	add func(int)
}

func (w *countingResponse) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.add(n)
	return n, err
}

func (w *countingResponse) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
