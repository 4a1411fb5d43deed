package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is a kind of fault.
type Kind int

const (
	// Latency delays the request by Fault.Delay, then lets the next
	// matching fault (or the server) answer it.
	Latency Kind = iota + 1
	// Reset reads part of the request body (up to 64 KiB) and resets the
	// connection (TCP RST): the server never sees the request.
	Reset
	// Drop reads the request and closes the connection without an
	// answer: the server never sees it.
	Drop
	// DropResponse forwards the request, then resets the connection
	// instead of passing the response on: the server did it, the client
	// does not know.
	DropResponse
	// Error500 answers 500 InternalError.
	Error500
	// Error503 answers 503 ServiceUnavailable.
	Error503
	// SlowDown answers 503 SlowDown.
	SlowDown
	// Stall reads the request and never answers, until the client gives
	// up or the proxy closes.
	Stall
	// JSONError answers Fault.Status (default 400) with an AWS
	// JSON-protocol error of type Fault.Code, as KMS and the other JSON
	// services send them (X-Amzn-ErrorType and {"__type", "message"}).
	JSONError
)

func (k Kind) String() string {
	switch k {
	case Latency:
		return "latency"
	case Reset:
		return "reset"
	case Drop:
		return "drop"
	case DropResponse:
		return "drop-response"
	case Error500:
		return "500"
	case Error503:
		return "503"
	case SlowDown:
		return "slowdown"
	case Stall:
		return "stall"
	case JSONError:
		return "json-error"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Request is what a fault can match on.
type Request struct {
	Op         string // S3 operation: PutObject, UploadPart, GetObject, ... (Other when unknown)
	Method     string
	Bucket     string
	Key        string
	PartNumber int // UploadPart, UploadPartCopy; else 0
	// Attempt counts the requests with the same operation, bucket, key,
	// upload ID and part number seen so far, this one included (1 for
	// the first), so a fault can hit the first tries of a request only.
	Attempt int
}

// Fault is one fault rule.
type Fault struct {
	Kind Kind
	// Ops limits the fault to these operations; empty: every operation.
	Ops []string
	// Match, if not nil, must also accept the request.
	Match func(Request) bool
	// Share is the fraction of matching requests the fault hits, spread
	// evenly and deterministically (0.25: the 4th, 8th, ...); 0 or 1:
	// every one.
	Share float64
	// Delay is the latency a Latency fault adds.
	Delay time.Duration
	// Status and Code are the HTTP status and error type of a JSONError.
	Status int
	Code   string
}

func (f *Fault) matches(r Request) bool {
	if len(f.Ops) > 0 {
		found := false
		for _, op := range f.Ops {
			found = found || op == r.Op
		}
		if !found {
			return false
		}
	}
	return f.Match == nil || f.Match(r)
}

// rule is a Fault with its own count of matching requests.
type rule struct {
	Fault
	seen int
}

// hit reports whether the next matching request is one the rule's share
// selects.
func (r *rule) hit() bool {
	r.seen++
	if r.Share <= 0 || r.Share >= 1 {
		return true
	}
	return int(float64(r.seen)*r.Share) > int(float64(r.seen-1)*r.Share)
}

// Stats are the proxy's counters, by operation.
type Stats struct {
	Requests map[string]int // requests received
	// Calls counts the requests that are not an AWS SDK retry: the SDK
	// numbers each attempt of one call in its amz-sdk-request header
	// ("attempt=2; max=3"); a request without it counts as a call.
	Calls       map[string]int
	BytesUp     map[string]int64 // request body bytes read from clients
	BytesDown   map[string]int64 // response body bytes written to clients
	Injected    map[Kind]int     // faults applied
	MaxInFlight map[string]int   // the most requests of the operation at once
}

// Proxy is a fault-injecting proxy in front of one S3 endpoint.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	ln     net.Listener
	srv    *http.Server
	closed chan struct{}

	mu       sync.Mutex
	rules    []*rule
	attempts map[string]int
	inflight map[string]int
	stats    Stats
	hold     *holdGate
	idle     chan struct{} // closed when nothing is in flight
}

// New starts a proxy on a free loopback port in front of the S3 endpoint
// target (http://host:port).
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return nil, fmt.Errorf("faultproxy: target %q is not an http://host:port URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{target: u, ln: ln, closed: make(chan struct{}), attempts: map[string]int{}, inflight: map[string]int{}}
	p.resetStatsLocked()
	p.rp = &httputil.ReverseProxy{
		// Rewrite (not Director): no X-Forwarded-* headers added; the
		// Host stays the one the client signed.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	// The server and the reverse proxy complain about the connections
	// the proxy breaks on purpose: keep that out of test output.
	quiet := log.New(io.Discard, "", 0)
	p.rp.ErrorLog = quiet
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute, ErrorLog: quiet}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's endpoint, for the client.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy, ending stalled requests and open connections.
func (p *Proxy) Close() error {
	select {
	case <-p.closed:
		return nil
	default:
	}
	close(p.closed)
	p.srv.Close()
	p.rp.Transport.(*http.Transport).CloseIdleConnections()
	return nil
}

// Set replaces the active faults (none: every request passes). Faults are
// tried in order; any number of Latency faults add up, then the first
// other fault whose share selects the request applies.
func (p *Proxy) Set(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, f := range faults {
		p.rules = append(p.rules, &rule{Fault: f})
	}
}

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Requests:    maps.Clone(p.stats.Requests),
		Calls:       maps.Clone(p.stats.Calls),
		BytesUp:     maps.Clone(p.stats.BytesUp),
		BytesDown:   maps.Clone(p.stats.BytesDown),
		Injected:    maps.Clone(p.stats.Injected),
		MaxInFlight: maps.Clone(p.stats.MaxInFlight),
	}
}

// WaitIdle waits until no request is in flight (so the counters include
// the last bytes of every answer the client has seen), or ctx ends.
func (p *Proxy) WaitIdle(ctx context.Context) error {
	p.mu.Lock()
	if len(p.inflight) == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ResetStats zeroes the counters (and the attempt counts).
func (p *Proxy) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetStatsLocked()
}

func (p *Proxy) resetStatsLocked() {
	p.stats = Stats{Requests: map[string]int{}, Calls: map[string]int{}, BytesUp: map[string]int64{}, BytesDown: map[string]int64{},
		Injected: map[Kind]int{}, MaxInFlight: map[string]int{}}
	clear(p.attempts)
}

// Hold makes requests of op wait (at most timeout) until n of them are in
// flight at once, then lets them all go; once. A test uses it to see that
// a client reaches its concurrency even when the server is fast.
func (p *Proxy) Hold(op string, n int, timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = &holdGate{op: op, n: n, open: make(chan struct{})}
	g := p.hold
	time.AfterFunc(timeout, func() { g.release() })
}

type holdGate struct {
	op   string
	n    int
	open chan struct{}
	once sync.Once
}

func (g *holdGate) release() { g.once.Do(func() { close(g.open) }) }

// sdkRetry reports a request the AWS SDK sent again for one call.
func sdkRetry(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("amz-sdk-request"), ";") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(part), "attempt="); ok {
			return n != "1"
		}
	}
	return false
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := classify(r)
	p.mu.Lock()
	id := fmt.Sprint(req.Op, "\x00", req.Bucket, "\x00", req.Key, "\x00", r.URL.Query().Get("uploadId"), "\x00", req.PartNumber)
	p.attempts[id]++
	req.Attempt = p.attempts[id]
	p.stats.Requests[req.Op]++
	if !sdkRetry(r) {
		p.stats.Calls[req.Op]++
	}
	p.inflight[req.Op]++
	p.stats.MaxInFlight[req.Op] = max(p.stats.MaxInFlight[req.Op], p.inflight[req.Op])
	var delay time.Duration
	var fault *rule
	for _, ru := range p.rules {
		if !ru.matches(req) {
			continue
		}
		if ru.Kind == Latency {
			if ru.hit() {
				delay += ru.Delay
				p.stats.Injected[Latency]++
			}
			continue
		}
		if fault == nil && ru.hit() {
			fault = ru
			p.stats.Injected[ru.Kind]++
		}
	}
	var gate *holdGate
	if g := p.hold; g != nil && g.op == req.Op {
		gate = g
		if p.inflight[req.Op] >= g.n {
			g.release()
			p.hold = nil
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight[req.Op]--
		if p.inflight[req.Op] == 0 {
			delete(p.inflight, req.Op)
		}
		if len(p.inflight) == 0 && p.idle != nil {
			close(p.idle)
			p.idle = nil
		}
		p.mu.Unlock()
	}()

	body := &countingReader{r: r.Body, add: func(n int) { p.add(&p.stats.BytesUp, req.Op, n) }}
	r.Body = body
	if gate != nil {
		select {
		case <-gate.open:
		case <-r.Context().Done():
			return
		case <-p.closed:
			resetConn(w)
			return
		}
	}
	if delay > 0 && !p.sleep(r.Context(), delay) {
		resetConn(w) // the client left, or the proxy closes: no answer
		return
	}
	out := &countingWriter{ResponseWriter: w, add: func(n int) { p.add(&p.stats.BytesDown, req.Op, n) }}
	if fault == nil {
		p.rp.ServeHTTP(out, r)
		return
	}
	switch fault.Kind {
	case Reset:
		io.CopyN(io.Discard, body, 64<<10)
		resetConn(w)
	case Drop:
		io.Copy(io.Discard, body)
		closeConn(w)
	case DropResponse:
		p.rp.ServeHTTP(&discardWriter{header: http.Header{}}, r)
		resetConn(w)
	case Error500:
		io.Copy(io.Discard, body)
		writeError(out, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Error503:
		io.Copy(io.Discard, body)
		writeError(out, http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unable to handle request.")
	case SlowDown:
		io.Copy(io.Discard, body)
		writeError(out, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case JSONError:
		io.Copy(io.Discard, body)
		status := fault.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		writeJSONError(out, status, fault.Code, "injected by faultproxy")
	case Stall:
		io.Copy(io.Discard, body)
		select {
		case <-r.Context().Done():
		case <-p.closed:
			resetConn(w) // never an answer, not even an empty one
		}
	default:
		p.rp.ServeHTTP(out, r)
	}
}

func (p *Proxy) add(m *map[string]int64, op string, n int) {
	p.mu.Lock()
	(*m)[op] += int64(n)
	p.mu.Unlock()
}

// sleep waits d unless the client goes away or the proxy closes first.
func (p *Proxy) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-p.closed:
	}
	return false
}

// writeError answers with an S3 error document.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId></Error>`, code, msg)
}

// writeJSONError answers with an AWS JSON-protocol error (KMS and others).
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, msg)
}

// resetConn aborts the client's connection with a TCP RST.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// closeConn closes the client's connection without an answer (FIN).
func closeConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	conn.Close()
}

// classify names the S3 operation of a path-style request, or the
// operation of an AWS JSON-protocol request (KMS: X-Amz-Target
// "TrentService.Decrypt" is Decrypt).
func classify(r *http.Request) Request {
	req := Request{Method: r.Method, Op: "Other"}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		if i := strings.LastIndexByte(target, '.'); i >= 0 && i+1 < len(target) {
			req.Op = target[i+1:]
		}
		return req
	}
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	bucket, key, hasKey := strings.Cut(path, "/")
	req.Bucket, _ = url.PathUnescape(bucket)
	req.Key, _ = url.PathUnescape(key)
	hasKey = hasKey && key != ""
	q := r.URL.Query()
	// The SDK names most operations in an x-id parameter.
	xid := q.Get("x-id")
	q.Del("x-id")
	copySrc := r.Header.Get("X-Amz-Copy-Source") != ""
	if n, err := strconv.Atoi(q.Get("partNumber")); err == nil {
		req.PartNumber = n
	}
	switch {
	case xid != "":
		req.Op = xid
	case bucket == "":
		if r.Method == http.MethodGet {
			req.Op = "ListBuckets"
		}
	case !hasKey:
		switch r.Method {
		case http.MethodGet:
			switch {
			case q.Has("uploads"):
				req.Op = "ListMultipartUploads"
			case q.Get("list-type") == "2":
				req.Op = "ListObjectsV2"
			case len(q) == 0:
				req.Op = "ListObjects"
			default:
				req.Op = "GetBucket"
			}
		case http.MethodHead:
			req.Op = "HeadBucket"
		case http.MethodPut:
			req.Op = "PutBucket"
		case http.MethodDelete:
			req.Op = "DeleteBucket"
		case http.MethodPost:
			if q.Has("delete") {
				req.Op = "DeleteObjects"
			}
		}
	default:
		switch r.Method {
		case http.MethodGet:
			if q.Has("uploadId") {
				req.Op = "ListParts"
			} else {
				req.Op = "GetObject"
			}
		case http.MethodHead:
			req.Op = "HeadObject"
		case http.MethodPut:
			switch {
			case q.Has("partNumber") && copySrc:
				req.Op = "UploadPartCopy"
			case q.Has("partNumber"):
				req.Op = "UploadPart"
			case copySrc:
				req.Op = "CopyObject"
			case len(q) == 0:
				req.Op = "PutObject"
			}
		case http.MethodPost:
			switch {
			case q.Has("uploads"):
				req.Op = "CreateMultipartUpload"
			case q.Has("uploadId"):
				req.Op = "CompleteMultipartUpload"
			}
		case http.MethodDelete:
			if q.Has("uploadId") {
				req.Op = "AbortMultipartUpload"
			} else {
				req.Op = "DeleteObject"
			}
		}
	}
	return req
}

type countingReader struct {
	r   io.ReadCloser
	add func(int)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.add(n)
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

type countingWriter struct {
	http.ResponseWriter
	add func(int)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	if n > 0 {
		c.add(n)
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// discardWriter swallows a response.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
