//go:build s3

package blobstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cofferfs/coffer/blobstore"
)

// SSE tests run on SeaweedFS only: versitygw ignores SSE headers.

// testKey is a fixed 32-byte SSE-C key, distinct per n.
func testKey(n byte) []byte { return bytes.Repeat([]byte{n, 0x5a, n ^ 0xff, 0x17}, 8) }

func ssecOpts(keys ...[]byte) func(*blobstore.Options) {
	return func(o *blobstore.Options) {
		o.SSE = blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: keys}
	}
}

// markedBody is size random bytes with a unique marker at its start and
// middle. Random data is not compressed by the server, so a plain copy
// of the marker shows in its data files.
func markedBody(t testing.TB, size int) ([]byte, []byte) {
	t.Helper()
	var m [16]byte
	if _, err := rand.Read(m[:]); err != nil {
		t.Fatal(err)
	}
	marker := []byte("coffer-marker-" + hex.EncodeToString(m[:]))
	body := make([]byte, size)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	copy(body, marker)
	copy(body[size/2:], marker)
	return body, marker
}

// dataDirHas reports whether any file under dir contains needle.
func dataDirHas(t testing.TB, dir string, needle []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found || !d.Type().IsRegular() {
			return nil // files come and go while the server runs
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, needle) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func readAll(t testing.TB, s blobstore.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(context.Background(), key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func TestSeaweedSSECAtRest(t *testing.T) {
	srv := server(t, "seaweedfs")
	if srv.dataDir == "" {
		t.Fatal("COFFER_TEST_SEAWEEDFS_DATA_DIR not set")
	}
	ctx := context.Background()
	bucket := srv.newBucket(t)
	plain := open(t, bucket, "", srv.options(false))
	enc := open(t, bucket, "", func() blobstore.Options { o := srv.options(false); ssecOpts(testKey(1))(&o); return o }())

	// 1 MiB keeps the bodies out of the filer's inline metadata store.
	const size = 1 << 20
	plainBody, plainMarker := markedBody(t, size)
	encBody, encMarker := markedBody(t, size)
	if _, err := plain.Put(ctx, "plain", bytes.NewReader(plainBody), size, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Put(ctx, "secret", bytes.NewReader(encBody), size, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Multipart too: every part must be encrypted.
	mpBody, mpMarker := markedBody(t, 12<<20)
	if _, err := blobstore.Upload(ctx, enc, "secret-mp", bytes.NewReader(mpBody), int64(len(mpBody)),
		blobstore.UploadOptions{PartSize: 5 << 20, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	if !dataDirHas(t, srv.dataDir, plainMarker) {
		t.Fatal("control: the plain object's marker is not in the data dir, so the scan proves nothing")
	}
	if dataDirHas(t, srv.dataDir, encMarker) {
		t.Error("the SSE-C object's marker is in the data dir in plaintext")
	}
	if dataDirHas(t, srv.dataDir, mpMarker) {
		t.Error("the multipart SSE-C object's marker is in the data dir in plaintext")
	}
	if !bytes.Equal(readAll(t, enc, "secret"), encBody) || !bytes.Equal(readAll(t, enc, "secret-mp"), mpBody) {
		t.Error("SSE-C objects read back wrong")
	}
}

func TestSeaweedSSECKeys(t *testing.T) {
	srv := server(t, "seaweedfs")
	ctx := context.Background()
	bucket := srv.newBucket(t)
	with := func(mod func(*blobstore.Options)) *blobstore.S3 {
		o := srv.options(false)
		if mod != nil {
			mod(&o)
		}
		return open(t, bucket, "", o)
	}
	oldKey, newKey, otherKey := testKey(1), testKey(2), testKey(3)
	old := with(ssecOpts(oldKey))
	body := []byte("written under the old key")
	if _, err := old.Put(ctx, "obj", bytes.NewReader(body), int64(len(body)), blobstore.PutOptions{Metadata: map[string]string{"coffer-v": "1"}}); err != nil {
		t.Fatal(err)
	}

	t.Run("no key", func(t *testing.T) {
		s := with(nil)
		_, err := s.Head(ctx, "obj")
		expectErr(t, "head without key", err, blobstore.ErrSSEKey)
		_, _, err = s.Get(ctx, "obj", blobstore.GetOptions{Length: -1})
		expectErr(t, "get without key", err, blobstore.ErrSSEKey)
	})
	t.Run("wrong key", func(t *testing.T) {
		s := with(ssecOpts(otherKey))
		_, err := s.Head(ctx, "obj")
		expectErr(t, "head with wrong key", err, blobstore.ErrSSEKey)
		_, _, err = s.Get(ctx, "obj", blobstore.GetOptions{Offset: 2, Length: 4})
		expectErr(t, "get with wrong key", err, blobstore.ErrSSEKey)
		_, err = s.Copy(ctx, "obj", "copy", blobstore.CopyOptions{})
		expectErr(t, "copy with wrong key", err, blobstore.ErrSSEKey)
		if strings.Contains(err.Error(), string(otherKey)) {
			t.Error("error shows the key")
		}
	})
	t.Run("old key tried on read", func(t *testing.T) {
		s := with(ssecOpts(newKey, oldKey))
		if got := readAll(t, s, "obj"); !bytes.Equal(got, body) {
			t.Fatalf("read %q", got)
		}
		if h, err := s.Head(ctx, "obj"); err != nil || h.Size != int64(len(body)) {
			t.Fatalf("head: %+v %v", h, err)
		}
	})
	t.Run("copy from old key to new key", func(t *testing.T) {
		s := with(ssecOpts(newKey, oldKey))
		if _, err := s.Copy(ctx, "obj", "copied", blobstore.CopyOptions{}); err != nil {
			t.Fatalf("copy: %v", err)
		}
		onlyNew := with(ssecOpts(newKey))
		if got := readAll(t, onlyNew, "copied"); !bytes.Equal(got, body) {
			t.Fatalf("copy read with the new key: %q", got)
		}
		_, err := with(ssecOpts(oldKey)).Head(ctx, "copied")
		expectErr(t, "copy read with the old key", err, blobstore.ErrSSEKey)
	})
	t.Run("rekey", func(t *testing.T) {
		s := with(ssecOpts(newKey, oldKey))
		done, err := s.RekeySSEC(ctx, "obj")
		if err != nil || !done {
			t.Fatalf("RekeySSEC = %v, %v; want a rewrite", done, err)
		}
		onlyNew := with(ssecOpts(newKey))
		if got := readAll(t, onlyNew, "obj"); !bytes.Equal(got, body) {
			t.Fatalf("after rekey: %q", got)
		}
		if h, err := onlyNew.Head(ctx, "obj"); err != nil || h.Metadata["coffer-v"] != "1" {
			t.Fatalf("rekey lost the metadata: %+v %v", h, err)
		}
		if done, err := s.RekeySSEC(ctx, "obj"); err != nil || done {
			t.Fatalf("second RekeySSEC = %v, %v; want nothing to do", done, err)
		}
	})
}

// A multipart copy (UploadPartCopy) decrypts with the old key and
// encrypts with the new one, like CopyObject.
func TestSeaweedSSECMultipartCopy(t *testing.T) {
	srv := server(t, "seaweedfs")
	ctx := context.Background()
	bucket := srv.newBucket(t)
	o := srv.options(false)
	ssecOpts(testKey(1))(&o)
	old := open(t, bucket, "", o)
	ssecOpts(testKey(2), testKey(1))(&o)
	s := open(t, bucket, "", o)
	blobstore.SetCopyLimits(s, 6<<20, 5<<20)

	body, _ := markedBody(t, 13<<20)
	src, err := blobstore.Upload(ctx, old, "src", bytes.NewReader(body), int64(len(body)), blobstore.UploadOptions{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, "src", "dst", blobstore.CopyOptions{IfMatch: src.ETag, Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatalf("multipart copy: %v", err)
	}
	ssecOpts(testKey(2))(&o)
	if got := readAll(t, open(t, bucket, "", o), "dst"); !bytes.Equal(got, body) {
		t.Fatal("multipart copy read back wrong")
	}
}

func TestSeaweedSSES3AndKMS(t *testing.T) {
	srv := server(t, "seaweedfs")
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		sse   blobstore.SSEConfig
		want  types.ServerSideEncryption
		keyID string
	}{
		{"sse-s3", blobstore.SSEConfig{Mode: blobstore.SSES3}, types.ServerSideEncryptionAes256, ""},
		{"sse-kms", blobstore.SSEConfig{Mode: blobstore.SSEKMS, KMSKeyID: "coffer-test-key"}, types.ServerSideEncryptionAwsKms, "coffer-test-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, bucket := srv.newStore(t, "", func(o *blobstore.Options) { o.SSE = tc.sse })
			body, _ := markedBody(t, 11<<20)
			if _, err := s.Put(ctx, "single", bytes.NewReader(body[:1000]), 1000, blobstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := blobstore.Upload(ctx, s, "multi", bytes.NewReader(body), int64(len(body)), blobstore.UploadOptions{PartSize: 5 << 20}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Copy(ctx, "single", "copy", blobstore.CopyOptions{Metadata: map[string]string{"a": "b"}}); err != nil {
				t.Fatal(err)
			}
			c := srv.admin(t)
			for _, k := range []string{"single", "multi", "copy"} {
				h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(k)})
				if err != nil {
					t.Fatal(err)
				}
				if h.ServerSideEncryption != tc.want {
					t.Errorf("%s: x-amz-server-side-encryption %q, want %q", k, h.ServerSideEncryption, tc.want)
				}
				if tc.keyID != "" && !strings.Contains(aws.ToString(h.SSEKMSKeyId), tc.keyID) {
					t.Errorf("%s: KMS key ID %q, want %q", k, aws.ToString(h.SSEKMSKeyId), tc.keyID)
				}
			}
			if !bytes.Equal(readAll(t, s, "multi"), body) {
				t.Error("multipart object read back wrong")
			}
		})
	}
}

// RekeySSECAll moves every object under a prefix to the newest key and
// skips those already there.
func TestSeaweedRekeyAll(t *testing.T) {
	srv := server(t, "seaweedfs")
	ctx := context.Background()
	bucket := srv.newBucket(t)
	o := srv.options(false)
	ssecOpts(testKey(1))(&o)
	old := open(t, bucket, "v", o)
	ssecOpts(testKey(2))(&o)
	onlyNew := open(t, bucket, "v", o)
	ssecOpts(testKey(2), testKey(1))(&o)
	both := open(t, bucket, "v", o)
	for i, s := range []blobstore.Store{old, old, old, onlyNew, onlyNew} {
		key := fmt.Sprintf("d/%d", i)
		if _, err := s.Put(ctx, key, strings.NewReader(key), int64(len(key)), blobstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	n, err := both.RekeySSECAll(ctx, "", 2, func(key string, rewritten bool) { seen = append(seen, key) })
	if err != nil || n != 3 || len(seen) != 5 {
		t.Fatalf("RekeySSECAll = %d, %v; saw %q", n, err, seen)
	}
	for i := range 5 {
		key := fmt.Sprintf("d/%d", i)
		if got := string(readAll(t, onlyNew, key)); got != key {
			t.Errorf("%s reads %q with the new key", key, got)
		}
	}
	if n, err := both.RekeySSECAll(ctx, "", 2, nil); err != nil || n != 0 {
		t.Fatalf("second RekeySSECAll = %d, %v", n, err)
	}
}
