package blobstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
)

// Tuning of the S3 client. Retries cover 5xx, throttling and dropped
// connections; a failed dial is retried only a few times with short
// waits so that a wrong or unreachable endpoint fails within seconds.
const (
	s3DialAttempts    = 3
	s3DialTimeout     = 5 * time.Second
	s3DefaultRegion   = "us-east-1"
	maxCopyObjectSize = 5 << 30 // CopyObject's limit; larger copies use UploadPartCopy
	copyPartSize      = 512 << 20
)

// S3 is the S3 backend: a Store over one bucket and key prefix, on
// aws-sdk-go-v2, applying the configured server-side encryption to every
// request that needs it. It is safe for concurrent use.
//
// How it is built, file by file:
//   - s3.go: configuration (the SDK chain plus Options), the HTTP client
//     (one HTTP/1.1 connection per request in flight), endpoint rules.
//   - s3_ops.go: the object operations. Bodies go UNSIGNED-PAYLOAD over
//     TLS and loopback (the SigV4 payload hash costs a SHA-256 pass);
//     parts carry their own CRC32C either way.
//   - s3_multipart.go: multipart uploads and UploadPartCopy.
//   - s3_sse.go: SSE headers per operation, SSE-C key fallback and
//     rotation, the bucket's SSE-C block.
//   - s3_errors.go: SDK errors to the typed errors, with hints.
//   - s3_retry.go: the per-operation budget on failed dials.
//
// Server differences it absorbs (tested against versitygw and SeaweedFS):
// CopyObject between directory markers, SeaweedFS's unchecked SSE-C copy
// source key, UploadPartCopy missing for SSE-C sources, and SeaweedFS's
// bucket-policy check on CompleteMultipartUpload.
type S3 struct {
	client    *s3.Client
	http      aws.HTTPClient
	bucket    string
	prefix    string // "" or "dir/" : prepended to every key
	sse       SSEConfig
	ckeys     []sseCKey // sse-c: newest first
	endpoint  string    // for error messages
	unsigned  bool      // payloads of PutObject/UploadPart go UNSIGNED-PAYLOAD
	copyLimit int64     // above this size Copy uses UploadPartCopy
	copyPart  int64     // part size of a multipart copy
}

var _ Store = (*S3)(nil)

// NewS3 opens bucket (keys under prefix, which has no leading or trailing
// slash) with the AWS SDK's configuration chain (environment, shared
// profiles, AWS_ENDPOINT_URL_S3, IMDS) overridden by opts. It does no
// I/O beyond what the SDK's configuration loading does: a wrong
// endpoint, bucket or credential shows on the first request, with an
// error that says which.
func NewS3(ctx context.Context, bucket, prefix string, opts Options) (*S3, error) {
	if bucket == "" {
		return nil, errors.New("s3: no bucket given: use s3://bucket[/prefix]")
	}
	if err := opts.SSE.Validate(); err != nil {
		return nil, err
	}
	if opts.Endpoint != "" {
		if err := CheckEndpoint(opts.Endpoint, opts.AllowHTTP); err != nil {
			return nil, err
		}
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	stall, attempts, maxBackoff := opts.StallTimeout, opts.MaxAttempts, opts.MaxBackoff
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}

	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = s3DialTimeout }).
		WithTransportOptions(func(tr *http.Transport) {
			// Reads and uploads can both run at full concurrency.
			tr.MaxIdleConns = 2*conc + 4
			tr.MaxIdleConnsPerHost = 2*conc + 4
			tr.MaxConnsPerHost = 0
			// One HTTP/1.1 connection per request in flight: parallel
			// parts multiplexed on one HTTP/2 connection would share its
			// flow-control window (AWS S3 speaks HTTP/1.1 anyway).
			tr.ForceAttemptHTTP2 = false
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			if tr.TLSClientConfig != nil {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
		}).
		// No byte for this long: the connection is dead. This bounds
		// every attempt, stalled reads and stalled uploads alike (the
		// transport reads the response while it sends the body).
		WithReadTimeout(stall)

	loadOpts := []func(*config.LoadOptions) error{
		// The SDK otherwise prints its warnings (such as the IMDSv1
		// fallback) straight to stderr, breaking one-line errors.
		config.WithLogger(sdkLogger{}),
		config.WithHTTPClient(httpClient),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = maxBackoff
				// The client-side retry quota would turn a burst of
				// failed parts into hard failures; attempts stay bounded
				// per request instead.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.AccessKeyID != "" || opts.SecretAccessKey != "" {
		if opts.AccessKeyID == "" || opts.SecretAccessKey == "" {
			return nil, errors.New("s3: static credentials need both an access key ID and a secret key")
		}
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading AWS configuration: %w", err)
	}
	// The SDK may have replaced the client (AWS_CA_BUNDLE); freeze what it
	// made so the per-service defaults no longer rebuild it and Close can
	// release its connections.
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		cfg.HTTPClient = bc.Freeze()
	}

	var endpointErr error
	s := &S3{
		http:      cfg.HTTPClient,
		bucket:    bucket,
		sse:       opts.SSE,
		copyLimit: maxCopyObjectSize,
		copyPart:  copyPartSize,
	}
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		s.prefix = prefix + "/"
	}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = o.UsePathStyle || opts.PathStyle
		if o.BaseEndpoint != nil {
			// An endpoint from AWS_ENDPOINT_URL_S3 gets the same check.
			endpointErr = CheckEndpoint(*o.BaseEndpoint, opts.AllowHTTP)
			s.endpoint = *o.BaseEndpoint
			if o.Region == "" {
				o.Region = s3DefaultRegion
			}
		}
		o.APIOptions = append(o.APIOptions, addDialBudget)
	})
	if endpointErr != nil {
		return nil, endpointErr
	}
	if s.client.Options().Region == "" {
		return nil, errors.New("s3: no AWS region configured: pass --region or set AWS_REGION (or a region in the AWS profile)")
	}
	if s.endpoint == "" {
		s.endpoint = "https://s3." + s.client.Options().Region + ".amazonaws.com"
	}
	s.unsigned = unsignedPayloadOK(s.endpoint)
	for _, k := range opts.SSE.CKeys {
		s.ckeys = append(s.ckeys, newSSECKey(k))
	}
	return s, nil
}

// CheckEndpoint accepts https:// endpoints, and http:// ones only on a
// loopback host or when allowHTTP is set: over plain HTTP on a network,
// SSE-C keys and object data would travel in the clear. NewS3 applies it
// to every endpoint it is given or finds; the command line applies it to
// its flags first, so the user learns which flag to reach for before any
// configuration is loaded.
func CheckEndpoint(endpoint string, allowHTTP bool) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("s3: endpoint %q is not an http(s) URL: give e.g. https://s3.example.com", endpoint)
	}
	if u.Scheme == "https" || allowHTTP || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("s3: refusing plain http:// endpoint %s: requests, data and SSE-C keys would cross the network unencrypted; use https://, or pass --allow-http if this network is trusted", u.Host)
}

// isLoopback reports a host name or address that stays on this machine.
// Host names compare case-insensitively (DNS does).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unsignedPayloadOK reports whether request bodies may skip the SigV4
// payload hash: over TLS the channel protects them (the SDK's own
// default), and on loopback no one sits between client and server. It
// saves a SHA-256 pass over every byte uploaded; parts still carry their
// own CRC32C checksum.
func unsignedPayloadOK(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	return u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))
}

// Close releases idle connections.
func (s *S3) Close() error {
	if c, ok := s.http.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// String names the store without any key material.
func (s *S3) String() string {
	return fmt.Sprintf("s3://%s/%s (%s, %s)", s.bucket, strings.TrimSuffix(s.prefix, "/"), s.endpoint, s.sse)
}

// GoString keeps %#v from printing SSE-C keys.
func (s *S3) GoString() string { return "blobstore.S3{" + s.String() + "}" }

// fullKey maps a store key to the bucket key, rejecting keys S3 cannot
// hold.
func (s *S3) fullKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if !utf8.ValidString(key) {
		return "", fmt.Errorf("%w: S3 keys must be valid UTF-8", ErrInvalidKey)
	}
	full := s.prefix + key
	if len(full) > MaxKeyLen {
		return "", fmt.Errorf("%w: %d bytes with the prefix, S3 allows %d", ErrInvalidKey, len(full), MaxKeyLen)
	}
	return full, nil
}

// copySource is the x-amz-copy-source value for a bucket key: every byte
// outside the unreserved set percent-encoded, '/' kept.
func (s *S3) copySource(full string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString(s.bucket)
	b.WriteByte('/')
	for i := 0; i < len(full); i++ {
		c := full[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// sdkLogger sends the SDK's own log lines to slog at debug level.
type sdkLogger struct{}

func (sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	slog.Debug("aws sdk: "+fmt.Sprintf(format, v...), "class", string(c))
}
