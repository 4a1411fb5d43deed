package blobstore_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in   string
		want blobstore.Location
		err  string
	}{
		{"/var/lib/coffer", blobstore.Location{Scheme: "file", Path: "/var/lib/coffer"}, ""},
		{"relative/dir", blobstore.Location{Scheme: "file", Path: "relative/dir"}, ""},
		{"file:///srv/store", blobstore.Location{Scheme: "file", Path: "/srv/store"}, ""},
		{"file://localhost/srv/store", blobstore.Location{Scheme: "file", Path: "/srv/store"}, ""},
		{"s3://bucket", blobstore.Location{Scheme: "s3", Bucket: "bucket"}, ""},
		{"s3://bucket/", blobstore.Location{Scheme: "s3", Bucket: "bucket"}, ""},
		{"s3://bucket/a/b/", blobstore.Location{Scheme: "s3", Bucket: "bucket", Prefix: "a/b"}, ""},
		{"s3://my.bucket-1//x", blobstore.Location{}, "empty path segment"},
		{"", blobstore.Location{}, "empty"},
		{"s3://", blobstore.Location{}, "no bucket"},
		{"s3:///prefix", blobstore.Location{}, "no bucket"},
		{"s3://b/p?versionId=1", blobstore.Location{}, "query"},
		{"s3://user:pw@b/p", blobstore.Location{}, "user info"},
		{"gs://bucket", blobstore.Location{}, "unsupported scheme"},
		{"file://host/dir", blobstore.Location{}, "local directory"},
		{"file://", blobstore.Location{}, "no directory"},
	}
	for _, c := range cases {
		got, err := blobstore.ParseURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURL(%q) = %+v, %v; want error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestOpenLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{"file://" + filepath.Join(dir, "a"), filepath.Join(dir, "b")} {
		st, err := blobstore.Open(ctx, u, blobstore.Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := st.(*blobstore.Local); !ok {
			t.Errorf("Open(%q) returned %T", u, st)
		}
		if _, err := st.Put(ctx, "k", strings.NewReader("v"), 1, blobstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		rc, _, err := st.Get(ctx, "k", blobstore.GetOptions{Length: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "v" {
			t.Errorf("read %q", b)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"", "gs://b", "s3://"} {
		if st, err := blobstore.Open(ctx, u, blobstore.Options{}); err == nil {
			st.Close()
			t.Errorf("Open(%q) succeeded", u)
		}
	}
	_, err := blobstore.Open(ctx, "s3://b", blobstore.Options{SSE: blobstore.SSEConfig{Mode: blobstore.SSEC}})
	if err == nil || !strings.Contains(err.Error(), "sse-c-key-file") {
		t.Errorf("Open with sse-c and no key: %v", err)
	}
	var e *blobstore.Error
	if _, err := blobstore.Open(ctx, filepath.Join(t.TempDir(), "f", "\x00"), blobstore.Options{}); err == nil || !errors.As(err, &e) {
		t.Errorf("Open of an impossible path: %v", err)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://b/p", "file:///x", "/x", "s3://b//p", "%", "s3://b/p?x", "file://h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := blobstore.ParseURL(s)
		if err != nil {
			return
		}
		switch loc.Scheme {
		case "file":
			if loc.Path == "" {
				t.Fatalf("%q: empty path", s)
			}
		case "s3":
			if loc.Bucket == "" || strings.HasPrefix(loc.Prefix, "/") || strings.HasSuffix(loc.Prefix, "/") {
				t.Fatalf("%q: bad s3 location %+v", s, loc)
			}
		default:
			t.Fatalf("%q: scheme %q", s, loc.Scheme)
		}
	})
}

// RetryBudget adds the stall timeout of every attempt and the longest
// backoff between them.
func TestRetryBudget(t *testing.T) {
	for _, c := range []struct {
		o    blobstore.Options
		want time.Duration
	}{
		{blobstore.Options{}, 6*30*time.Second + (1+2+4+8+8)*time.Second},
		{blobstore.Options{StallTimeout: time.Second, MaxAttempts: 3, MaxBackoff: 100 * time.Millisecond}, 3*time.Second + 200*time.Millisecond},
		{blobstore.Options{StallTimeout: 30 * time.Second, MaxAttempts: 1}, 30 * time.Second},
	} {
		if got := c.o.RetryBudget(); got != c.want {
			t.Errorf("%v: RetryBudget = %v, want %v", c.o, got, c.want)
		}
	}
}
