package blobstore

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Options configure Open. The zero value opens a local store, or an S3
// store with the AWS SDK's default configuration chain (environment,
// shared profiles, AWS_ENDPOINT_URL_S3, IMDS).
type Options struct {
	// Endpoint overrides the S3 endpoint URL (for S3-compatible servers).
	// Plain http:// endpoints are refused unless loopback or AllowHTTP.
	Endpoint string
	// Region overrides the SDK's region.
	Region string
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint (most S3-compatible servers need it).
	PathStyle bool
	// AllowHTTP permits a plain http:// endpoint that is not loopback.
	AllowHTTP bool
	// AccessKeyID and SecretAccessKey, when both set, are static
	// credentials that replace the SDK's credential chain (tests and
	// explicit configuration); empty: the SDK's chain.
	AccessKeyID     string
	SecretAccessKey string
	// SSE selects server-side encryption on every write (and the SSE-C
	// key on every read). The local backend ignores it.
	SSE SSEConfig
	// Concurrency is the number of requests the store expects to have
	// in flight at once; S3 sizes its HTTP connection pool from it.
	// 0: DefaultConcurrency.
	Concurrency int
	// The S3 retry budget: how long an unreachable or stalled server
	// can make one call wait before it fails (the local backend ignores
	// them). StallTimeout is how long a request may go without the
	// server sending a byte before its connection counts as dead and the
	// attempt fails (0: DefaultStallTimeout); MaxAttempts is the
	// attempts per call (0: DefaultMaxAttempts); MaxBackoff caps the
	// jittered wait between attempts (0: DefaultMaxBackoff). See
	// RetryBudget.
	StallTimeout time.Duration
	MaxAttempts  int
	MaxBackoff   time.Duration
}

// Defaults of the retry budget: 6 attempts of at most 30 s without a
// byte, waits capped at 8 s, about 3.4 minutes in all (RetryBudget).
const (
	DefaultStallTimeout = 30 * time.Second
	DefaultMaxAttempts  = 6
	DefaultMaxBackoff   = 8 * time.Second
)

// RetryBudget is the longest one S3 call can take before it fails when
// every attempt stalls (each for StallTimeout) and every wait between
// attempts is the longest the backoff allows (1 s doubling per attempt
// for throttling, 50 ms doubling otherwise, capped at MaxBackoff). A call
// to a server that answers, even with errors, fails much sooner.
func (o Options) RetryBudget() time.Duration {
	stall, attempts, maxBackoff := o.StallTimeout, o.MaxAttempts, o.MaxBackoff
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	total := time.Duration(attempts) * stall
	for i := range attempts - 1 {
		total += min(time.Second<<i, maxBackoff)
	}
	return total
}

// String describes o without secrets (the secret key and SSE-C keys are
// never shown), so Options can be logged.
func (o Options) String() string {
	secret := ""
	if o.SecretAccessKey != "" {
		secret = "(set)"
	}
	return fmt.Sprintf("endpoint=%q region=%q path-style=%v allow-http=%v access-key-id=%q secret-access-key=%s %v concurrency=%d stall-timeout=%v max-attempts=%d max-backoff=%v",
		o.Endpoint, o.Region, o.PathStyle, o.AllowHTTP, o.AccessKeyID, secret, o.SSE, o.Concurrency, o.StallTimeout, o.MaxAttempts, o.MaxBackoff)
}

// GoString keeps %#v from printing secrets.
func (o Options) GoString() string { return "blobstore.Options{" + o.String() + "}" }

// DefaultConcurrency is the request concurrency when Options.Concurrency
// is 0.
const DefaultConcurrency = 8

// Open opens the store named by rawURL:
//
//	file:///dir or a plain path   the local backend (NewLocal)
//	s3://bucket[/prefix]          the S3 backend (NewS3)
//
// For s3:// the prefix passed on has no leading or trailing slash; keys
// are stored under prefix + "/" + key (or key alone when it is empty).
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case "file":
		l, err := NewLocal(loc.Path)
		if err != nil {
			return nil, err
		}
		return l, nil
	case "s3":
		if err := opts.SSE.Validate(); err != nil {
			return nil, err
		}
		return openS3(ctx, loc.Bucket, loc.Prefix, opts)
	}
	return nil, fmt.Errorf("store URL %q: unsupported scheme %q", rawURL, loc.Scheme)
}

// Location is a parsed store URL.
type Location struct {
	Scheme string // "file" or "s3"
	Path   string // file: the directory
	Bucket string // s3: the bucket
	Prefix string // s3: key prefix without leading or trailing slash
}

// ParseURL parses a store URL as Open accepts it, without opening it.
func ParseURL(rawURL string) (Location, error) {
	if rawURL == "" {
		return Location{}, fmt.Errorf("store URL is empty: give s3://bucket[/prefix], file:///dir or a directory path")
	}
	if !strings.Contains(rawURL, "://") {
		return Location{Scheme: "file", Path: rawURL}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return Location{}, fmt.Errorf("store URL %q: %w", rawURL, err)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Location{}, fmt.Errorf("store URL %q: query, fragment and user info are not supported (use --endpoint, --region and the AWS credential chain)", rawURL)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("store URL %q: file URLs name a local directory: file:///dir", rawURL)
		}
		if u.Path == "" {
			return Location{}, fmt.Errorf("store URL %q: no directory: file:///dir", rawURL)
		}
		return Location{Scheme: "file", Path: u.Path}, nil
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("store URL %q: no bucket: s3://bucket[/prefix]", rawURL)
		}
		prefix := strings.Trim(u.Path, "/")
		if strings.Contains(u.Path, "//") {
			return Location{}, fmt.Errorf("store URL %q: empty path segment in prefix", rawURL)
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	}
	return Location{}, fmt.Errorf("store URL %q: unsupported scheme %q (want s3:// or file://)", rawURL, u.Scheme)
}
