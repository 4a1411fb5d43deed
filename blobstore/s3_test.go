package blobstore

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Unit tests of the S3 backend that need no S3 server: a recording fake
// on loopback stands in where requests must be inspected. The real
// servers are exercised by the *_s3_test.go files (build tag s3).

// isolateAWSEnv keeps the developer's AWS configuration out of a test.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func staticOpts(endpoint string) Options {
	return Options{Endpoint: endpoint, PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}
}

// TestCheckEndpoint is the one table of the endpoint rule; the command
// line applies the same function to its flags.
func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint  string
		allowHTTP bool
		ok        bool
	}{
		{"https://s3.example.com", false, true},
		{"https://10.0.0.1:9000", false, true},
		{"http://127.0.0.1:7070", false, true},
		{"http://127.1.2.3:7070", false, true},
		{"http://localhost:7070", false, true},
		{"http://LocalHost:7070", false, true},
		{"http://localhost", false, true},
		{"http://[::1]:7070", false, true},
		{"http://s3.example.com", false, false},
		{"http://10.0.0.1:9000", false, false},
		{"http://localhost.example.com", false, false},
		{"http://[::2]:7070", false, false},
		{"http://s3.example.com", true, true},
		{"ftp://s3.example.com", true, false},
		{"ftp://s3.example.com", false, false},
		{"s3.example.com", false, false},
		{"http://", false, false},
		{"", false, false},
	} {
		err := CheckEndpoint(tc.endpoint, tc.allowHTTP)
		if (err == nil) != tc.ok {
			t.Errorf("CheckEndpoint(%q, %v) = %v, want ok=%v", tc.endpoint, tc.allowHTTP, err, tc.ok)
		}
		if err != nil && strings.HasPrefix(tc.endpoint, "http://") && len(tc.endpoint) > len("http://") && !strings.Contains(err.Error(), "--allow-http") {
			t.Errorf("refusal of %q does not name --allow-http: %v", tc.endpoint, err)
		}
	}
}

func TestUnsignedPayloadOK(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"https://s3.amazonaws.com": true,
		"http://127.0.0.1:7070":    true,
		"http://s3.example.com":    false,
	} {
		if got := unsignedPayloadOK(endpoint); got != want {
			t.Errorf("unsignedPayloadOK(%q) = %v", endpoint, got)
		}
	}
}

func TestNewS3Config(t *testing.T) {
	ctx := context.Background()
	t.Run("endpoint without region defaults to us-east-1", func(t *testing.T) {
		isolateAWSEnv(t)
		s, err := NewS3(ctx, "b", "p", staticOpts("http://127.0.0.1:1"))
		if err != nil {
			t.Fatal(err)
		}
		if r := s.client.Options().Region; r != "us-east-1" {
			t.Errorf("region %q", r)
		}
	})
	t.Run("no endpoint and no region is an error", func(t *testing.T) {
		isolateAWSEnv(t)
		_, err := NewS3(ctx, "b", "", Options{AccessKeyID: "AK", SecretAccessKey: "SK"})
		if err == nil || !strings.Contains(err.Error(), "--region") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("AWS_ENDPOINT_URL_S3 over plain http is refused", func(t *testing.T) {
		isolateAWSEnv(t)
		t.Setenv("AWS_ENDPOINT_URL_S3", "http://s3.example.com:9000")
		_, err := NewS3(ctx, "b", "", Options{Region: "eu-west-1", AccessKeyID: "AK", SecretAccessKey: "SK"})
		if err == nil || !strings.Contains(err.Error(), "--allow-http") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("explicit plain http needs AllowHTTP", func(t *testing.T) {
		isolateAWSEnv(t)
		o := staticOpts("http://s3.example.com")
		if _, err := NewS3(ctx, "b", "", o); err == nil {
			t.Error("accepted")
		}
		o.AllowHTTP = true
		if _, err := NewS3(ctx, "b", "", o); err != nil {
			t.Error(err)
		}
	})
	t.Run("half static credentials", func(t *testing.T) {
		isolateAWSEnv(t)
		o := staticOpts("https://s3.example.com")
		o.SecretAccessKey = ""
		if _, err := NewS3(ctx, "b", "", o); err == nil {
			t.Error("accepted")
		}
	})
}

func TestCopySource(t *testing.T) {
	s := &S3{bucket: "bkt"}
	for in, want := range map[string]string{
		"a/b.c":        "bkt/a/b.c",
		"with space+":  "bkt/with%20space%2B",
		"q?x=1&y#z":    "bkt/q%3Fx%3D1%26y%23z",
		"ä~_-":         "bkt/%C3%A4~_-",
		"per%cent/dir": "bkt/per%25cent/dir",
	} {
		if got := s.copySource(in); got != want {
			t.Errorf("copySource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestObjectSize(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		cr   *string
		len  int64
		want int64
	}{
		{nil, 42, 42},
		{str("bytes 0-9/123"), 10, 123},
		{str("bytes 5-5/6"), 1, 6},
		{str("bytes */77"), 0, 77},
		{str("garbage"), 3, 3},
	} {
		if got := objectSize(tc.cr, tc.len); got != tc.want {
			t.Errorf("objectSize(%v, %d) = %d, want %d", tc.cr, tc.len, got, tc.want)
		}
	}
}

func TestChecksumsAndKeyMD5(t *testing.T) {
	// RFC 3720 B.4 check value of CRC32C over "123456789": 0xE3069283.
	if got := crc32c([]byte("123456789")); got != "4waSgw==" {
		t.Errorf("crc32c = %s", got)
	}
	// MD5 of 32 zero bytes is 70bc8f4b72a86921468bf8e8441dce51.
	k := newSSECKey(make([]byte, 32))
	if k.md5 != "cLyPS3KoaSFGi/joRB3OUQ==" || k.key != "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" {
		t.Errorf("SSE-C headers %q %q", k.key, k.md5)
	}
}

// Neither the store nor its keys print key material, whatever the verb.
func TestS3NeverPrintsKeys(t *testing.T) {
	isolateAWSEnv(t)
	key := bytes.Repeat([]byte("K"), 32)
	o := staticOpts("http://127.0.0.1:1")
	o.SSE = SSEConfig{Mode: SSEC, CKeys: [][]byte{key}}
	s, err := NewS3(context.Background(), "b", "", o)
	if err != nil {
		t.Fatal(err)
	}
	b64 := newSSECKey(key).key
	for _, out := range []string{
		fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%s", s),
		fmt.Sprintf("%v", s.ckeys), fmt.Sprintf("%+v", s.ckeys), fmt.Sprintf("%#v", s.ckeys),
	} {
		if strings.Contains(out, string(key)) || strings.Contains(out, b64) || strings.Contains(out, "SK") {
			t.Errorf("printed key material: %s", out)
		}
	}
}

// apiError builds the error the SDK returns for an HTTP error response.
func apiError(status int, code, msg string) error {
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: resp, Err: &smithy.GenericAPIError{Code: code, Message: msg}},
		RequestID:     "req",
	}}
}

func TestClassify(t *testing.T) {
	s := &S3{bucket: "bkt", endpoint: "https://s3.example.com"}
	dial := &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}}
	for _, tc := range []struct {
		name string
		err  error
		kind reqKind
		ssec bool
		want error // nil: none of the typed errors
	}{
		{"no such key", apiError(404, "NoSuchKey", "gone"), reqRead, false, ErrNotFound},
		{"head 404", apiError(404, "NotFound", ""), reqRead, false, ErrNotFound},
		{"no such upload", apiError(404, "NoSuchUpload", ""), reqWrite, false, ErrNotFound},
		{"no such bucket", apiError(404, "NoSuchBucket", ""), reqRead, false, nil},
		{"412", apiError(412, "PreconditionFailed", ""), reqWrite, false, ErrPreconditionFailed},
		{"409 conditional conflict", apiError(409, "ConditionalRequestConflict", ""), reqWrite, false, ErrPreconditionFailed},
		{"access denied", apiError(403, "AccessDenied", "Access Denied"), reqWrite, false, ErrAccessDenied},
		{"bad key id", apiError(403, "InvalidAccessKeyId", ""), reqRead, false, ErrAccessDenied},
		{"bad signature", apiError(403, "SignatureDoesNotMatch", ""), reqRead, false, ErrAccessDenied},
		{"wrong SSE-C key on read", apiError(403, "Forbidden", ""), reqRead, true, ErrSSEKey},
		{"wrong SSE-C key on copy", apiError(403, "AccessDenied", ""), reqCopy, true, ErrSSEKey},
		{"SSE-C object read without key (HEAD)", apiError(400, "BadRequest", ""), reqRead, false, ErrSSEKey},
		{"SSE-C object read without key (GET)", apiError(400, "InvalidRequest", "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."), reqRead, false, ErrSSEKey},
		{"customer key MD5 mismatch", apiError(400, "InvalidArgument", "The provided customer encryption key MD5 does not match the key."), reqCopy, true, ErrSSEKey},
		{"SSE-C blocked by message", apiError(403, "AccessDenied", "Requests specifying Server Side Encryption with Customer provided keys are blocked for this bucket"), reqWrite, true, ErrSSECRefused},
		{"SSE-C write denied", apiError(403, "AccessDenied", "Access Denied"), reqWrite, true, ErrAccessDenied},
		{"slow down", apiError(503, "SlowDown", ""), reqWrite, false, ErrThrottled},
		{"429", apiError(429, "TooManyRequests", ""), reqWrite, false, ErrThrottled},
		{"500", apiError(500, "InternalError", ""), reqWrite, false, ErrTransient},
		{"501", apiError(501, "NotImplemented", ""), reqCopy, false, nil},
		{"key too long", apiError(400, "KeyTooLongError", ""), reqWrite, false, ErrInvalidKey},
		{"dial", dial, reqRead, false, ErrTransient},
		{"canceled", context.Canceled, reqRead, false, nil},
	} {
		got := s.classify(tc.err, tc.kind, tc.ssec)
		if !errors.Is(got, tc.err) && tc.err != context.Canceled {
			t.Errorf("%s: classified error %v lost its cause", tc.name, got)
		}
		for _, typed := range []error{ErrNotFound, ErrPreconditionFailed, ErrAccessDenied, ErrSSEKey, ErrSSECRefused, ErrThrottled, ErrTransient, ErrInvalidKey} {
			if is := errors.Is(got, typed); is != (typed == tc.want) {
				t.Errorf("%s: errors.Is(%v, %v) = %v", tc.name, got, typed, is)
			}
		}
	}
	if got := s.classify(dial, reqRead, false); !strings.Contains(got.Error(), "cannot connect to https://s3.example.com") {
		t.Errorf("dial error says %v", got)
	}
}

// An endpoint that refuses connections fails with an error saying so
// after s3DialAttempts dials, not after the SDK's full schedule of
// DefaultMaxAttempts with up to DefaultMaxBackoff between them. The test counts
// the dials and takes the retryer's waits out, so nothing in it depends
// on time.
func TestUnreachableEndpointFailsFast(t *testing.T) {
	isolateAWSEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s, err := NewS3(context.Background(), "b", "", staticOpts("http://"+addr))
	if err != nil {
		t.Fatal(err)
	}
	// The client as NewS3 configured it (retryer, dial budget), but with a
	// transport that counts dials and a retryer that does not wait.
	var dials atomic.Int32
	o := s.client.Options()
	o.HTTPClient = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, address)
		},
	}}
	r, ok := o.Retryer.(aws.RetryerV2)
	if !ok {
		t.Fatalf("the S3 client's retryer %T is not an aws.RetryerV2", o.Retryer)
	}
	o.Retryer = noBackoff{r}
	s.client = s3.New(o)

	_, err = s.Head(context.Background(), "k")
	if !errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "cannot connect") {
		t.Errorf("got %v", err)
	}
	if n := dials.Load(); n != s3DialAttempts {
		t.Errorf("%d dials, want s3DialAttempts = %d (the retryer allows %d attempts)", n, s3DialAttempts, DefaultMaxAttempts)
	}
	if strings.Contains(err.Error(), fmt.Sprintf("attempts, %d", DefaultMaxAttempts)) {
		t.Errorf("dial was retried to the full attempt count: %v", err)
	}
}

// noBackoff is a retryer with its waits taken out.
type noBackoff struct{ aws.RetryerV2 }

func (noBackoff) RetryDelay(int, error) (time.Duration, error) { return 0, nil }

// fakeS3 answers just enough of the S3 API to record the headers each
// operation sends. fail, when set, decides a response status for a
// request before it is handled normally. ListObjectsV2 requests are
// answered with listPages in turn (each a ListBucketResult's inner XML).
type fakeS3 struct {
	mu        sync.Mutex
	reqs      []fakeReq
	fail      func(op string, n int) int
	listPages []string
}

type fakeReq struct {
	op     string
	header http.Header
	body   []byte
	proto  string
	query  url.Values
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	op := r.Method
	switch {
	case r.Method == "POST" && q.Has("uploads"):
		op = "CreateMultipartUpload"
	case r.Method == "POST" && q.Has("uploadId"):
		op = "CompleteMultipartUpload"
	case r.Method == "PUT" && q.Has("partNumber") && r.Header.Get("X-Amz-Copy-Source") != "":
		op = "UploadPartCopy"
	case r.Method == "PUT" && q.Has("partNumber"):
		op = "UploadPart"
	case r.Method == "PUT" && r.Header.Get("X-Amz-Copy-Source") != "":
		op = "CopyObject"
	case r.Method == "PUT":
		op = "PutObject"
	case r.Method == "GET" && q.Get("list-type") == "2":
		op = "ListObjectsV2"
	case r.Method == "GET" && q.Has("encryption"):
		op = "GetBucketEncryption"
	case r.Method == "GET":
		op = "GetObject"
	case r.Method == "HEAD":
		op = "HeadObject"
	case r.Method == "DELETE" && q.Has("uploadId"):
		op = "AbortMultipartUpload"
	case r.Method == "POST" && q.Has("delete"):
		op = "DeleteObjects"
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeReq{op, r.Header.Clone(), body, r.Proto, q})
	n := 0
	for _, q := range f.reqs {
		if q.op == op {
			n++
		}
	}
	fail := f.fail
	pages := f.listPages
	f.mu.Unlock()
	if fail != nil {
		if st := fail(op, n); st != 0 {
			w.WriteHeader(st)
			fmt.Fprintf(w, "<Error><Code>Fake%d</Code><Message>injected</Message></Error>", st)
			return
		}
	}
	w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	switch op {
	case "ListObjectsV2":
		page := "<IsTruncated>false</IsTruncated>"
		if n <= len(pages) {
			page = pages[n-1]
		}
		fmt.Fprintf(w, "<ListBucketResult><Name>b</Name>%s</ListBucketResult>", page)
	case "CreateMultipartUpload":
		fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>up1</UploadId></InitiateMultipartUploadResult>`)
	case "CompleteMultipartUpload":
		fmt.Fprint(w, `<CompleteMultipartUploadResult><ETag>"abc-1"</ETag></CompleteMultipartUploadResult>`)
	case "CopyObject":
		fmt.Fprint(w, `<CopyObjectResult><ETag>"abc"</ETag></CopyObjectResult>`)
	case "UploadPartCopy":
		fmt.Fprint(w, `<CopyPartResult><ETag>"part"</ETag></CopyPartResult>`)
	case "DeleteObjects":
		fmt.Fprint(w, `<DeleteResult></DeleteResult>`)
	case "GetBucketEncryption":
		fmt.Fprint(w, `<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>`+
			`<BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType></BlockedEncryptionTypes></Rule></ServerSideEncryptionConfiguration>`)
	case "HeadObject":
		w.Header().Set("Content-Length", "4")
	case "GetObject":
		w.Header().Set("Content-Length", "4")
		fmt.Fprint(w, "body")
	}
}

// requests returns the recorded requests of op, in order.
func (f *fakeS3) requests(op string) []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []fakeReq
	for _, r := range f.reqs {
		if r.op == op {
			rs = append(rs, r)
		}
	}
	return rs
}

// bodies returns the recorded request bodies of op.
func (f *fakeS3) bodies(op string) [][]byte {
	var bs [][]byte
	for _, r := range f.requests(op) {
		bs = append(bs, r.body)
	}
	return bs
}

// headers returns the recorded request headers of op.
func (f *fakeS3) headers(op string) []http.Header {
	var hs []http.Header
	for _, r := range f.requests(op) {
		hs = append(hs, r.header)
	}
	return hs
}

// truncatedPage is a truncated listing page of one key whose next page
// is token's.
func truncatedPage(token string) string {
	return "<IsTruncated>true</IsTruncated><NextContinuationToken>" + token + "</NextContinuationToken><Contents><Key>vol/d/b</Key></Contents>"
}

func newFake(t *testing.T, sse SSEConfig) (*fakeS3, *S3) {
	t.Helper()
	isolateAWSEnv(t)
	f := &fakeS3{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	o := staticOpts(srv.URL)
	o.SSE = sse
	s, err := NewS3(context.Background(), "b", "", o)
	if err != nil {
		t.Fatal(err)
	}
	return f, s
}

// exercise runs every operation that carries SSE headers.
func exercise(t *testing.T, s *S3) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", strings.NewReader("body"), 4, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(ctx, "k", GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := s.Copy(ctx, "k", "k2", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	mpu, err := s.Multipart(ctx, "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := mpu.UploadPart(ctx, 1, []byte("part"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mpu.Complete(ctx, []Part{p}); err != nil {
		t.Fatal(err)
	}
}

// Each SSE mode puts its headers on exactly the requests AWS documents
// them for (S3 rejects x-amz-server-side-encryption on GET and HEAD).
func TestSSEHeaders(t *testing.T) {
	const (
		sse    = "X-Amz-Server-Side-Encryption"
		kmsID  = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
		cAlg   = "X-Amz-Server-Side-Encryption-Customer-Algorithm"
		cKey   = "X-Amz-Server-Side-Encryption-Customer-Key"
		cMD5   = "X-Amz-Server-Side-Encryption-Customer-Key-Md5"
		srcKey = "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key"
	)
	key := bytes.Repeat([]byte{7}, 32)
	k := newSSECKey(key)
	type want map[string]string // header -> value ("" = absent)
	for _, tc := range []struct {
		name string
		cfg  SSEConfig
		ops  map[string]want
	}{
		{"none", SSEConfig{}, map[string]want{
			"PutObject": {sse: "", cKey: ""}, "CreateMultipartUpload": {sse: ""}, "CopyObject": {sse: ""},
		}},
		{"sse-s3", SSEConfig{Mode: SSES3}, map[string]want{
			"PutObject": {sse: "AES256"}, "CreateMultipartUpload": {sse: "AES256"}, "CopyObject": {sse: "AES256"},
			"UploadPart": {sse: ""}, "GetObject": {sse: ""}, "HeadObject": {sse: ""}, "CompleteMultipartUpload": {sse: ""},
		}},
		{"sse-kms", SSEConfig{Mode: SSEKMS, KMSKeyID: "kid"}, map[string]want{
			"PutObject": {sse: "aws:kms", kmsID: "kid"}, "CreateMultipartUpload": {sse: "aws:kms", kmsID: "kid"},
			"CopyObject": {sse: "aws:kms", kmsID: "kid"}, "GetObject": {sse: "", kmsID: ""},
		}},
		{"sse-c", SSEConfig{Mode: SSEC, CKeys: [][]byte{key}}, map[string]want{
			"PutObject":               {cAlg: "AES256", cKey: k.key, cMD5: k.md5, sse: ""},
			"GetObject":               {cKey: k.key, cMD5: k.md5},
			"HeadObject":              {cKey: k.key, cMD5: k.md5},
			"CreateMultipartUpload":   {cKey: k.key, cMD5: k.md5},
			"UploadPart":              {cKey: k.key, cMD5: k.md5},
			"CompleteMultipartUpload": {cKey: k.key, cMD5: k.md5},
			"CopyObject":              {cKey: k.key, cMD5: k.md5, srcKey: k.key},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s := newFake(t, tc.cfg)
			exercise(t, s)
			for op, hdrs := range tc.ops {
				reqs := f.headers(op)
				if len(reqs) == 0 {
					t.Errorf("no %s request", op)
				}
				for _, h := range reqs {
					for name, v := range hdrs {
						if got := h.Get(name); got != v {
							t.Errorf("%s: %s = %q, want %q", op, name, got, v)
						}
					}
				}
			}
			for _, h := range f.headers("UploadPart") {
				if h.Get("X-Amz-Checksum-Crc32c") != crc32c([]byte("part")) {
					t.Errorf("UploadPart without its CRC32C: %v", h)
				}
			}
		})
	}
}

// In sse-s3 mode a completion refused with 403 is retried once with the
// SSE header repeated (SeaweedFS's policy check); other modes and other
// failures are not.
func TestCompleteRepeatsSSEAfter403(t *testing.T) {
	f, s := newFake(t, SSEConfig{Mode: SSES3})
	f.fail = func(op string, n int) int {
		if op == "CompleteMultipartUpload" && n == 1 {
			return 403
		}
		return 0
	}
	ctx := context.Background()
	mpu, err := s.Multipart(ctx, "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := mpu.UploadPart(ctx, 1, []byte("part"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mpu.Complete(ctx, []Part{p}); err != nil {
		t.Fatal(err)
	}
	hs := f.headers("CompleteMultipartUpload")
	if len(hs) != 2 || hs[0].Get("X-Amz-Server-Side-Encryption") != "" || hs[1].Get("X-Amz-Server-Side-Encryption") != "AES256" {
		t.Fatalf("completions: %d, headers %v", len(hs), hs)
	}
}

// 5xx answers are retried by the SDK with backoff; the request then
// succeeds.
func TestRetriesServerErrors(t *testing.T) {
	f, s := newFake(t, SSEConfig{})
	f.fail = func(op string, n int) int {
		if op == "UploadPart" && n <= 2 {
			return 500
		}
		return 0
	}
	ctx := context.Background()
	mpu, err := s.Multipart(ctx, "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mpu.UploadPart(ctx, 1, []byte("part")); err != nil {
		t.Fatalf("part after two 500s: %v", err)
	}
	if n := len(f.headers("UploadPart")); n != 3 {
		t.Errorf("%d UploadPart attempts, want 3", n)
	}
	f.fail = func(op string, n int) int {
		if op == "HeadObject" {
			return 500
		}
		return 0
	}
	_, err = s.Head(ctx, "k")
	if !errors.Is(err, ErrTransient) {
		t.Errorf("head after persistent 500s: %v", err)
	}
	if n := len(f.headers("HeadObject")); n != DefaultMaxAttempts {
		t.Errorf("%d HEAD attempts, want %d", n, DefaultMaxAttempts)
	}
}

// ListAfter's first request asks for FirstPage keys after StartAfter;
// the next ones go on from the continuation token with the server's
// page size, and every entry comes out once, in order. A truncated page
// without a token is an error, never a listing cut short.
func TestListAfterFirstPage(t *testing.T) {
	f, s := newFake(t, SSEConfig{})
	s.prefix = "vol/"
	f.listPages = []string{
		truncatedPage("tok1"),
		"<IsTruncated>false</IsTruncated><Contents><Key>vol/d/c</Key><ETag>\"e\"</ETag><Size>1</Size></Contents><CommonPrefixes><Prefix>vol/d/c2/</Prefix></CommonPrefixes>",
	}
	var got []string
	for e, err := range s.ListAfter(context.Background(), "d/", "/", ListOptions{StartAfter: "d/a", FirstPage: 5}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Key)
	}
	if want := []string{"d/b", "d/c", "d/c2/"}; !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	qs := f.requests("ListObjectsV2")
	if len(qs) != 2 {
		t.Fatalf("%d listing requests, want 2", len(qs))
	}
	q1, q2 := qs[0].query, qs[1].query
	if q1.Get("max-keys") != "5" || q1.Get("start-after") != "vol/d/a" || q1.Has("continuation-token") {
		t.Errorf("first request %v: want max-keys 5 after vol/d/a", q1)
	}
	if q2.Has("max-keys") || q2.Get("continuation-token") != "tok1" {
		t.Errorf("second request %v: want the token and the server's page size", q2)
	}

	reset := func(pages ...string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reqs, f.listPages, f.fail = nil, pages, nil
	}
	// No FirstPage, or one of a page or more: the server's page size.
	for _, first := range []int{0, MaxListPage, MaxListPage + 1} {
		reset()
		for _, err := range s.ListAfter(context.Background(), "d/", "/", ListOptions{FirstPage: first}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if qs := f.requests("ListObjectsV2"); len(qs) != 1 {
			t.Errorf("first page %d: %d listing requests, want 1", first, len(qs))
		} else if qs[0].query.Has("max-keys") {
			t.Errorf("first page %d: asked for max-keys %s, want the server's page", first, qs[0].query.Get("max-keys"))
		}
	}

	for _, pages := range [][]string{
		{"<IsTruncated>true</IsTruncated><Contents><Key>vol/d/b</Key></Contents>"},
		{truncatedPage("tok1"), truncatedPage("tok1")},
	} {
		reset(pages...)
		var err error
		for _, err = range s.ListAfter(context.Background(), "d/", "/", ListOptions{}) {
		}
		if err == nil || !strings.Contains(err.Error(), "continuation token") {
			t.Errorf("pages %q: %v, want an error about the continuation token", pages, err)
		}
	}

	// A request after the first page refused: the entries listed so
	// far, then the error, and no request more.
	reset(truncatedPage("tok1"), truncatedPage("tok2"))
	f.mu.Lock()
	f.fail = func(op string, n int) int {
		if op == "ListObjectsV2" && n == 2 {
			return http.StatusForbidden
		}
		return 0
	}
	f.mu.Unlock()
	var keys []string
	var lerr error
	for e, err := range s.ListAfter(context.Background(), "d/", "/", ListOptions{FirstPage: 1}) {
		if err != nil {
			lerr = err
			continue
		}
		keys = append(keys, e.Key)
	}
	if !slices.Equal(keys, []string{"d/b"}) || lerr == nil || len(f.requests("ListObjectsV2")) != 2 {
		t.Errorf("second page refused: listed %q, error %v, %d requests; want d/b, an error, 2 requests", keys, lerr, len(f.requests("ListObjectsV2")))
	}
}

// DeleteMany sends batches of at most 1000 keys, each key once, under
// the store prefix.
func TestDeleteManyBatches(t *testing.T) {
	f, s := newFake(t, SSEConfig{})
	s.prefix = "vol/"
	keys := make([]string, 2500)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%04d", i)
	}
	if err := s.DeleteMany(context.Background(), keys); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var sizes []int
	for _, b := range f.bodies("DeleteObjects") {
		n := strings.Count(string(b), "<Key>")
		sizes = append(sizes, n)
		for _, part := range strings.Split(string(b), "<Key>")[1:] {
			seen[part[:strings.Index(part, "</Key>")]] = true
		}
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" || len(seen) != 2500 || !seen["vol/k2499"] {
		t.Fatalf("batches %v, %d distinct keys", sizes, len(seen))
	}
	if err := s.DeleteMany(context.Background(), nil); err != nil || len(f.bodies("DeleteObjects")) != 3 {
		t.Fatalf("DeleteMany(nil) = %v, or sent a request", err)
	}
}

// An SSE-C write refused with a bare 403 on a bucket whose default
// encryption blocks SSE-C is reported as ErrSSECRefused, naming the
// setting.
func TestSSECRefusedNamesTheSetting(t *testing.T) {
	f, s := newFake(t, SSEConfig{Mode: SSEC, CKeys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	f.fail = func(op string, n int) int {
		if op == "PutObject" || op == "CreateMultipartUpload" {
			return 403
		}
		return 0
	}
	ctx := context.Background()
	_, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{})
	if !errors.Is(err, ErrSSECRefused) || !strings.Contains(err.Error(), "BlockedEncryptionTypes") {
		t.Errorf("put: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "k" {
		t.Errorf("put error %#v does not name its key", err)
	}
	_, err = s.Multipart(ctx, "k", PutOptions{})
	if !errors.Is(err, ErrSSECRefused) {
		t.Errorf("multipart: %v", err)
	}
}

// A CopyObject refused as too large falls back to UploadPartCopy: the
// source size from a HEAD, ranged parts conditional on the same ETag,
// the source's metadata unless replaced, then a completion.
func TestCopyFallsBackToPartCopy(t *testing.T) {
	f, s := newFake(t, SSEConfig{})
	s.copyLimit, s.copyPart = 2, 2 // the fake's objects are 4 bytes
	f.fail = func(op string, n int) int {
		if op == "CopyObject" {
			return 400 // with the fake's body: code Fake400
		}
		return 0
	}
	// The fake's 400 is not S3's "copy source is larger" refusal: no
	// fallback.
	if _, err := s.Copy(context.Background(), "src", "dst", CopyOptions{IfMatch: `"e"`}); err == nil {
		t.Fatal("copy succeeded against a 400")
	}
	f.fail = func(op string, n int) int { return 0 }
	tooLarge := &fakeTooLarge{fakeS3: f}
	srv := httptest.NewServer(tooLarge)
	t.Cleanup(srv.Close)
	o := staticOpts(srv.URL)
	s2, err := NewS3(context.Background(), "b", "", o)
	if err != nil {
		t.Fatal(err)
	}
	s2.copyLimit, s2.copyPart = 2, 2
	info, err := s2.Copy(context.Background(), "src", "dst", CopyOptions{IfMatch: `"e"`})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if info.ETag != `"abc-1"` {
		t.Errorf("copy ETag %q", info.ETag)
	}
	parts := f.headers("UploadPartCopy")
	if len(parts) != 2 {
		t.Fatalf("%d part copies, want 2", len(parts))
	}
	ranges := map[string]bool{}
	for _, h := range parts {
		ranges[h.Get("X-Amz-Copy-Source-Range")] = true
		if h.Get("X-Amz-Copy-Source-If-Match") != `"e"` {
			t.Errorf("part copy without the source condition: %v", h)
		}
	}
	if !ranges["bytes=0-1"] || !ranges["bytes=2-3"] {
		t.Errorf("ranges %v", ranges)
	}
	if len(f.headers("CompleteMultipartUpload")) == 0 {
		t.Error("no completion")
	}
}

// fakeTooLarge answers CopyObject as S3 does for a source over 5 GiB.
type fakeTooLarge struct{ *fakeS3 }

func (f *fakeTooLarge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "PUT" && r.Header.Get("X-Amz-Copy-Source") != "" && !r.URL.Query().Has("partNumber") {
		w.WriteHeader(400)
		fmt.Fprint(w, `<Error><Code>InvalidRequest</Code><Message>The specified copy source is larger than the maximum allowable size for a copy source: 5368709120</Message></Error>`)
		return
	}
	f.fakeS3.ServeHTTP(w, r)
}

// Put streams a reader that cannot seek (one attempt, no payload hash).
func TestPutUnseekableBody(t *testing.T) {
	f, s := newFake(t, SSEConfig{})
	body := io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd"))
	if _, err := s.Put(context.Background(), "k", body, 4, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if b := f.bodies("PutObject"); len(b) != 1 || string(b[0]) != "abcd" {
		t.Fatalf("server got %q", b)
	}
}

// Payloads go unsigned (with the part's CRC32C) over TLS and loopback,
// signed elsewhere; TLS uses the AWS_CA_BUNDLE and HTTP/1.1.
func TestPayloadSigning(t *testing.T) {
	ctx := context.Background()
	upload := func(t *testing.T, s *S3) {
		mpu, err := s.Multipart(ctx, "m", PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mpu.UploadPart(ctx, 1, []byte("part")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "k", strings.NewReader("body"), 4, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const sha = "X-Amz-Content-Sha256"
	t.Run("loopback", func(t *testing.T) {
		f, s := newFake(t, SSEConfig{})
		upload(t, s)
		for _, op := range []string{"UploadPart", "PutObject"} {
			if h := f.headers(op)[0]; h.Get(sha) != "UNSIGNED-PAYLOAD" {
				t.Errorf("%s: %s = %q", op, sha, h.Get(sha))
			}
		}
	})
	t.Run("signed", func(t *testing.T) {
		f, s := newFake(t, SSEConfig{})
		s.unsigned = false // as for a plain-http endpoint off loopback
		upload(t, s)
		for _, op := range []string{"UploadPart", "PutObject"} {
			if h := f.headers(op)[0]; len(h.Get(sha)) != 64 {
				t.Errorf("%s: %s = %q, want a SHA-256", op, sha, h.Get(sha))
			}
		}
	})
	t.Run("tls", func(t *testing.T) {
		isolateAWSEnv(t)
		f := &fakeS3{}
		srv := httptest.NewUnstartedServer(f)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		bundle := t.TempDir() + "/ca.pem"
		if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", bundle)
		s, err := NewS3(ctx, "b", "", staticOpts(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		upload(t, s)
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.reqs {
			if r.proto != "HTTP/1.1" {
				t.Errorf("%s over %s", r.op, r.proto)
			}
			if (r.op == "UploadPart" || r.op == "PutObject") && r.header.Get(sha) != "UNSIGNED-PAYLOAD" {
				t.Errorf("%s over TLS: %s = %q", r.op, sha, r.header.Get(sha))
			}
		}
	})
}

// Without credentials the first request says so and what to set.
func TestNoCredentials(t *testing.T) {
	isolateAWSEnv(t)
	_, s := newFake(t, SSEConfig{})
	s2, err := NewS3(context.Background(), "b", "", Options{Endpoint: s.endpoint, Region: "us-east-1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s2.Head(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "no usable AWS credentials: set AWS_ACCESS_KEY_ID") {
		t.Errorf("got %v", err)
	}
}
