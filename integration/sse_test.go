package integration

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestSSECPlainLayout mounts with --encryption none --sse sse-c against
// SeaweedFS (which honours SSE-C) and reads the objects back with the AWS
// SDK: plain names, plain bodies under the customer key, unreadable
// without it.
func TestSSECPlainLayout(t *testing.T) {
	requireFUSE(t)
	srv := server(t, "seaweedfs")
	bucket := srv.newBucket(t)
	st := srv.store(bucket)
	sseKey := pseudoRandom(77, 32)
	keyFile := filepath.Join(t.TempDir(), "sse-c.key")
	if err := os.WriteFile(keyFile, []byte("# coffer test key\n"+base64.StdEncoding.EncodeToString(sseKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st.opts.SSE.Mode = "sse-c"
	st.opts.SSE.CKeys = [][]byte{sseKey}
	v := newVolume(t, st, withModes("--encryption", "none", "--sse", "sse-c", "--sse-c-key-file", keyFile))
	v.mount()
	small := []byte("hello from coffer over SSE-C\n")
	large := pseudoRandom(78, 12<<20+12345) // multipart with 5 MiB parts
	if err := os.MkdirAll(v.path("docs/inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, v.path("docs/hello.txt"), small)
	writeFile(t, v.path("docs/inner/large.bin"), large)
	if err := os.Rename(v.path("docs/hello.txt"), v.path("docs/renamed.txt")); err != nil {
		t.Fatal(err)
	}
	v.remount(true)
	checkFile(t, v.path("docs/renamed.txt"), small)
	checkFile(t, v.path("docs/inner/large.bin"), large)
	v.unmount()

	c := srv.client()
	ctx := context.Background()
	sum := md5.Sum(sseKey)
	withKey := func(key string) *s3.GetObjectInput {
		return &s3.GetObjectInput{
			Bucket:               aws.String(bucket),
			Key:                  aws.String(key),
			SSECustomerAlgorithm: aws.String("AES256"),
			SSECustomerKey:       aws.String(base64.StdEncoding.EncodeToString(sseKey)),
			SSECustomerKeyMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		}
	}
	for key, want := range map[string][]byte{"docs/renamed.txt": small, "docs/inner/large.bin": large} {
		out, err := c.GetObject(ctx, withKey(key))
		if err != nil {
			t.Fatalf("SDK get %s with the SSE-C key: %v", key, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := sameBytes(got, want); err != nil {
			t.Fatalf("SDK get %s: %v", key, err)
		}
		if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err == nil {
			t.Fatalf("SDK get %s without the SSE-C key succeeded", key)
		}
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("docs/hello.txt")}); err == nil {
		t.Fatal("docs/hello.txt still exists after the rename")
	}
	// SeaweedFS keeps SSE-C objects encrypted at rest.
	if srv.dataDir != "" {
		scan := newMarkerScan("hello from coffer over SSE-C")
		if err := scan.dir(srv.dataDir); err != nil {
			t.Fatal(err)
		}
		for _, f := range scan.findings {
			t.Errorf("SSE-C plaintext at rest: %s", f)
		}
	}
}
