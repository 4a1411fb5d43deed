package integration

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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
	// 1 MiB bodies: SeaweedFS keeps small ones inline in its filer
	// metadata, where a scan of the data dir would not see them anyway.
	sseMarker := "cofmark" + randomHex(8)
	writeFile(t, v.path("docs/marked.txt"), markedRandom(80, 1<<20, sseMarker))
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
	// SeaweedFS keeps SSE-C objects encrypted at rest; the control is an
	// object put without SSE-C, whose marker the scan must find.
	if srv.dataDir == "" {
		t.Fatal("COFFER_TEST_SEAWEEDFS_DATA_DIR not set: cannot check SSE-C at rest")
	}
	plainMarker := "cofmark" + randomHex(8)
	plainBody := markedRandom(81, 1<<20, plainMarker)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("control"), Body: bytes.NewReader(plainBody)}); err != nil {
		t.Fatal(err)
	}
	scan := newMarkerScan(plainMarker, sseMarker, "hello from coffer over SSE-C")
	if err := scan.dir(srv.dataDir); err != nil {
		t.Fatal(err)
	}
	control := false
	for _, f := range scan.findings {
		if strings.HasSuffix(f, fmt.Sprintf("%q", plainMarker)) {
			control = true
			continue
		}
		t.Errorf("SSE-C plaintext at rest: %s", f)
	}
	if !control {
		t.Error("control: the marker of an object put without SSE-C is not in the data dir, so the scan proves nothing")
	}
}

// markedRandom is n incompressible bytes (SeaweedFS compresses what
// compresses) with marker written every 64 KiB.
func markedRandom(seed uint64, n int, marker string) []byte {
	b := pseudoRandom(seed, n)
	for off := 0; off+len(marker) <= n; off += 64 << 10 {
		copy(b[off:], marker)
	}
	return b
}
