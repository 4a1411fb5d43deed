package faultproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		method, target string
		copy           bool
		want           Request
	}{
		{"PUT", "/b/k/x?x-id=PutObject", false, Request{Op: "PutObject", Bucket: "b", Key: "k/x"}},
		{"PUT", "/b/k", false, Request{Op: "PutObject", Bucket: "b", Key: "k"}},
		{"PUT", "/b/k%20x", true, Request{Op: "CopyObject", Bucket: "b", Key: "k x"}},
		{"PUT", "/b/k?partNumber=3&uploadId=u", false, Request{Op: "UploadPart", Bucket: "b", Key: "k", PartNumber: 3}},
		{"PUT", "/b/k?partNumber=3&uploadId=u", true, Request{Op: "UploadPartCopy", Bucket: "b", Key: "k", PartNumber: 3}},
		{"POST", "/b/k?uploads", false, Request{Op: "CreateMultipartUpload", Bucket: "b", Key: "k"}},
		{"POST", "/b/k?uploadId=u", false, Request{Op: "CompleteMultipartUpload", Bucket: "b", Key: "k"}},
		{"DELETE", "/b/k?uploadId=u", false, Request{Op: "AbortMultipartUpload", Bucket: "b", Key: "k"}},
		{"DELETE", "/b/k", false, Request{Op: "DeleteObject", Bucket: "b", Key: "k"}},
		{"POST", "/b?delete", false, Request{Op: "DeleteObjects", Bucket: "b"}},
		{"GET", "/b/k", false, Request{Op: "GetObject", Bucket: "b", Key: "k"}},
		{"HEAD", "/b/k", false, Request{Op: "HeadObject", Bucket: "b", Key: "k"}},
		{"GET", "/b?list-type=2&prefix=x", false, Request{Op: "ListObjectsV2", Bucket: "b"}},
		{"GET", "/b?uploads", false, Request{Op: "ListMultipartUploads", Bucket: "b"}},
		{"GET", "/b/k?uploadId=u", false, Request{Op: "ListParts", Bucket: "b", Key: "k"}},
		{"PUT", "/b", false, Request{Op: "PutBucket", Bucket: "b"}},
		{"HEAD", "/b", false, Request{Op: "HeadBucket", Bucket: "b"}},
		{"GET", "/", false, Request{Op: "ListBuckets"}},
		{"PUT", "/b/k?tagging", false, Request{Op: "Other", Bucket: "b", Key: "k"}},
		{"POST", "/#TrentService.Decrypt", false, Request{Op: "Decrypt"}},
		{"POST", "/#TrentService.", false, Request{Op: "Other"}},
	}
	for _, c := range cases {
		target, amzTarget, _ := strings.Cut(c.target, "#")
		r := httptest.NewRequest(c.method, target, nil)
		if c.copy {
			r.Header.Set("X-Amz-Copy-Source", "b/src")
		}
		if amzTarget != "" {
			r.Header.Set("X-Amz-Target", amzTarget)
		}
		got := classify(r)
		c.want.Method = c.method
		if got != c.want {
			t.Errorf("%s %s (copy %v) = %+v, want %+v", c.method, c.target, c.copy, got, c.want)
		}
	}
}

// Share picks requests evenly and the same ones every run.
func TestShare(t *testing.T) {
	for _, c := range []struct {
		share float64
		want  string
	}{
		{0, "xxxxxxxxxxxx"},
		{1, "xxxxxxxxxxxx"},
		{0.5, ".x.x.x.x.x.x"},
		{0.25, "...x...x...x"},
		{1.0 / 3, "..x..x..x..x"},
		{0.75, ".xxx.xxx.xxx"},
	} {
		r := &rule{Fault: Fault{Share: c.share}}
		var got strings.Builder
		for range len(c.want) {
			if r.hit() {
				got.WriteByte('x')
			} else {
				got.WriteByte('.')
			}
		}
		if got.String() != c.want {
			t.Errorf("share %v: %s, want %s", c.share, got.String(), c.want)
		}
	}
}

// versitygw returns the versitygw endpoint and credentials that
// scripts/with-servers.sh exported.
func versitygw(t *testing.T) (endpoint, ak, sk string) {
	t.Helper()
	endpoint = os.Getenv("COFFER_TEST_VERSITYGW_ENDPOINT")
	ak, sk = os.Getenv("COFFER_TEST_VERSITYGW_ACCESS_KEY"), os.Getenv("COFFER_TEST_VERSITYGW_SECRET_KEY")
	if endpoint == "" || ak == "" || sk == "" {
		msg := "COFFER_TEST_VERSITYGW_* not set: run under scripts/with-servers.sh versitygw"
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return endpoint, ak, sk
}

// client is a raw SDK client through endpoint with retries off, so each
// fault shows as it is.
func client(endpoint, ak, sk string, timeout time.Duration) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, nil
		}),
		RetryMaxAttempts:           1,
		HTTPClient:                 &http.Client{Timeout: timeout},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Through the proxy, signed requests verify at versitygw (the Host the
// client signed is kept), bodies arrive intact both ways, and each fault
// kind shows to a client without retries as it should; the counters
// follow.
func TestFaultsAgainstVersitygw(t *testing.T) {
	endpoint, ak, sk := versitygw(t)
	p, err := New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := client(p.URL(), ak, sk, 5*time.Second)
	direct := client(endpoint, ak, sk, 30*time.Second)
	ctx := context.Background()
	var rb [6]byte
	rand.Read(rb[:])
	bucket := "faultproxy-" + hex.EncodeToString(rb[:])
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket through the proxy (signature must verify): %v", err)
	}
	defer func() {
		out, _ := direct.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
		for _, o := range out.Contents {
			direct.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key})
		}
		direct.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
	}()
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	put := func(key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
		return err
	}
	get := func(key string) ([]byte, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	exists := func(key string) bool {
		_, err := direct.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(key)})
		return err == nil
	}

	if err := put("plain"); err != nil {
		t.Fatal(err)
	}
	if got, err := get("plain"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get through the proxy: %d bytes, %v", len(got), err)
	}
	p.WaitIdle(ctx)
	st := p.Stats()
	if st.Requests["PutObject"] != 1 || st.Requests["GetObject"] != 1 || st.BytesUp["PutObject"] != int64(len(body)) || st.BytesDown["GetObject"] != int64(len(body)) {
		t.Fatalf("counters after one put and one get: %+v", st)
	}

	apiCode := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	cases := []struct {
		kind    Kind
		check   func(t *testing.T, err error)
		reached bool // the server got the request
	}{
		{Error500, func(t *testing.T, err error) {
			if apiCode(err) != "InternalError" {
				t.Fatalf("got %v", err)
			}
		}, false},
		{Error503, func(t *testing.T, err error) {
			if apiCode(err) != "ServiceUnavailable" {
				t.Fatalf("got %v", err)
			}
		}, false},
		{SlowDown, func(t *testing.T, err error) {
			if apiCode(err) != "SlowDown" {
				t.Fatalf("got %v", err)
			}
		}, false},
		{Reset, func(t *testing.T, err error) {
			if err == nil || apiCode(err) != "" {
				t.Fatalf("got %v", err)
			}
		}, false},
		{Drop, func(t *testing.T, err error) {
			if err == nil || apiCode(err) != "" {
				t.Fatalf("got %v", err)
			}
		}, false},
		{DropResponse, func(t *testing.T, err error) {
			if err == nil || apiCode(err) != "" {
				t.Fatalf("got %v", err)
			}
		}, true},
		{Stall, func(t *testing.T, err error) {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got %v, want the client's timeout", err)
			}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.kind.String(), func(t *testing.T) {
			p.ResetStats()
			p.Set(Fault{Kind: c.kind, Ops: []string{"PutObject"}})
			key := "k-" + c.kind.String()
			var err error
			if c.kind == Stall {
				// A client that gives up sooner.
				short := client(p.URL(), ak, sk, 300*time.Millisecond)
				_, err = short.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
			} else {
				err = put(key)
			}
			c.check(t, err)
			if got := exists(key); got != c.reached {
				t.Fatalf("object stored: %v, want %v", got, c.reached)
			}
			// Other operations pass.
			if _, err := get("plain"); err != nil {
				t.Fatalf("get while PutObject faults: %v", err)
			}
			p.WaitIdle(ctx)
			st := p.Stats()
			if st.Injected[c.kind] != 1 || st.Requests["PutObject"] != 1 || st.Requests["GetObject"] != 1 {
				t.Fatalf("counters: %+v", st)
			}
			p.Set()
			if err := put(key); err != nil {
				t.Fatalf("after the fault is cleared: %v", err)
			}
		})
	}

	t.Run("latency", func(t *testing.T) {
		p.Set(Fault{Kind: Latency, Delay: 300 * time.Millisecond, Ops: []string{"GetObject"}})
		start := time.Now()
		if _, err := get("plain"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("get took %v through 300 ms of latency", d)
		}
		p.Set()
	})

	t.Run("attempt and share", func(t *testing.T) {
		p.ResetStats()
		p.Set(Fault{Kind: Error500, Ops: []string{"HeadObject"}, Match: func(r Request) bool { return r.Attempt <= 2 }})
		for k := 1; k <= 3; k++ {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("plain")})
			if (err != nil) != (k <= 2) {
				t.Fatalf("head attempt %d: %v", k, err)
			}
		}
		p.Set(Fault{Kind: Error503, Ops: []string{"HeadObject"}, Share: 0.5})
		var failed []bool
		for range 4 {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("plain")})
			failed = append(failed, err != nil)
		}
		if want := []bool{false, true, false, true}; !equal(failed, want) {
			t.Fatalf("half the heads failed as %v, want %v", failed, want)
		}
		p.Set()
	})

	t.Run("calls exclude SDK retries", func(t *testing.T) {
		retrying := s3.New(s3.Options{
			BaseEndpoint: aws.String(p.URL()), Region: "us-east-1", UsePathStyle: true,
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, nil
			}),
			RetryMaxAttempts: 3,
		})
		p.ResetStats()
		// The second request fails and the SDK sends it again.
		p.Set(Fault{Kind: Error500, Ops: []string{"HeadObject"}, Share: 0.5})
		for range 2 {
			if _, err := retrying.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("plain")}); err != nil {
				t.Fatal(err)
			}
		}
		p.Set()
		if st := p.Stats(); st.Requests["HeadObject"] != 3 || st.Calls["HeadObject"] != 2 {
			t.Fatalf("two heads, one retried: %d requests, %d calls; want 3 and 2", st.Requests["HeadObject"], st.Calls["HeadObject"])
		}
	})
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A stalled request is released when the proxy closes.
func TestCloseReleasesStall(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	p, err := New(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Kind: Stall})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(p.URL() + "/b/k")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for p.Stats().Injected[Stall] == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Close()
	if err := <-done; err == nil {
		t.Fatal("a stalled request got an answer")
	}
}
