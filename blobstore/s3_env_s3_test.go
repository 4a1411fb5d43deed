//go:build s3

package blobstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cofferfs/coffer/blobstore"
)

// s3Server is one S3 test server that scripts/with-servers.sh started,
// described by COFFER_TEST_<NAME>_* variables.
type s3Server struct {
	name     string // "versitygw" or "seaweedfs"
	endpoint string
	ak, sk   string // admin identity
	userAK   string // non-admin identity (SeaweedFS)
	userSK   string
	dataDir  string
}

// server returns the named server, skipping the test when it is not
// running (failing instead when COFFER_REQUIRE_SERVERS=1).
func server(t testing.TB, name string) s3Server {
	t.Helper()
	env := func(suffix string) string {
		return os.Getenv("COFFER_TEST_" + strings.ToUpper(name) + "_" + suffix)
	}
	srv := s3Server{
		name:     name,
		endpoint: env("ENDPOINT"),
		ak:       env("ACCESS_KEY"),
		sk:       env("SECRET_KEY"),
		userAK:   env("USER_ACCESS_KEY"),
		userSK:   env("USER_SECRET_KEY"),
		dataDir:  env("DATA_DIR"),
	}
	if srv.endpoint == "" || srv.ak == "" || srv.sk == "" {
		msg := "COFFER_TEST_" + strings.ToUpper(name) + "_ENDPOINT/_ACCESS_KEY/_SECRET_KEY not set: run under scripts/with-servers.sh " + name
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return srv
}

// options are the store options for the admin (or, with user, the
// non-admin) identity.
func (srv s3Server) options(user bool) blobstore.Options {
	o := blobstore.Options{
		Endpoint:        srv.endpoint,
		Region:          "us-east-1",
		PathStyle:       true,
		AccessKeyID:     srv.ak,
		SecretAccessKey: srv.sk,
	}
	if user {
		o.AccessKeyID, o.SecretAccessKey = srv.userAK, srv.userSK
	}
	return o
}

// admin is a raw SDK client with the admin identity, for what the Store
// interface does not do (buckets, policies, listing uploads).
func (srv s3Server) admin(t testing.TB) *s3.Client {
	t.Helper()
	return rawClient(t, srv.options(false))
}

func rawClient(t testing.TB, o blobstore.Options) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(o.Endpoint),
		Region:       o.Region,
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: o.AccessKeyID, SecretAccessKey: o.SecretAccessKey}, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// newBucket creates a fresh bucket and removes it (objects, uploads and
// all) when the test ends.
func (srv s3Server) newBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	bucket := "coffer-test-" + hex.EncodeToString(b[:])
	c := srv.admin(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("%s: create bucket: %v", srv.name, err)
	}
	t.Cleanup(func() { removeBucket(t, c, bucket) })
	return bucket
}

func removeBucket(t testing.TB, c *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket}); err == nil {
		for _, u := range ups.Uploads {
			c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, EncodingType: types.EncodingTypeUrl})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Logf("cleanup %s: %v", bucket, err)
			return
		}
		var keys []string
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if page.EncodingType == types.EncodingTypeUrl {
				key, _ = url.QueryUnescape(key)
			}
			if strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 }) {
				// DeleteObjects' XML body cannot carry it.
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(key)}); err != nil {
					t.Logf("cleanup %s: %q: %v", bucket, key, err)
				}
				continue
			}
			keys = append(keys, key)
		}
		deleteKeys(t, c, bucket, keys)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Logf("cleanup: delete bucket %s: %v", bucket, err)
	}
}

func deleteKeys(t testing.TB, c *s3.Client, bucket string, keys []string) {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		objs := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		keys = keys[n:]
		out, err := c.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			t.Logf("cleanup %s: %v", bucket, err)
			continue
		}
		for _, e := range out.Errors {
			t.Logf("cleanup %s: %q: %s %s", bucket, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
}

// open opens a store on bucket/prefix with opts.
func open(t testing.TB, bucket, prefix string, opts blobstore.Options) *blobstore.S3 {
	t.Helper()
	s, err := blobstore.NewS3(context.Background(), bucket, prefix, opts)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore opens a store on a fresh bucket of srv.
func (srv s3Server) newStore(t testing.TB, prefix string, mod func(*blobstore.Options)) (*blobstore.S3, string) {
	t.Helper()
	bucket := srv.newBucket(t)
	o := srv.options(false)
	if mod != nil {
		mod(&o)
	}
	return open(t, bucket, prefix, o), bucket
}

// expectErr fails unless err wraps want.
func expectErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}
