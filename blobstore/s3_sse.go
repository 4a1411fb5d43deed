package blobstore

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"
)

// sseCKey is one SSE-C key as its request headers carry it. String never
// shows the key.
type sseCKey struct {
	key string // base64 of the 32 key bytes
	md5 string // base64 of MD5(key), computed here as S3 requires
}

const sseCAlgorithm = "AES256"

func newSSECKey(k []byte) sseCKey {
	sum := md5.Sum(k)
	return sseCKey{
		key: base64.StdEncoding.EncodeToString(k),
		md5: base64.StdEncoding.EncodeToString(sum[:]),
	}
}

func (sseCKey) String() string   { return "[SSE-C key]" }
func (sseCKey) GoString() string { return "[SSE-C key]" }

// writeKey is the SSE-C key that encrypts new objects, nil outside sse-c.
func (s *S3) writeKey() *sseCKey {
	if s.sse.Mode != SSEC {
		return nil
	}
	return &s.ckeys[0]
}

// readKeys are the SSE-C keys to try on a read, newest first; one nil
// entry outside sse-c.
func (s *S3) readKeys() []*sseCKey {
	if s.sse.Mode != SSEC {
		return []*sseCKey{nil}
	}
	keys := make([]*sseCKey, len(s.ckeys))
	for i := range s.ckeys {
		keys[i] = &s.ckeys[i]
	}
	return keys
}

// withReadKeys runs read with each SSE-C key in turn while the server
// says the key is wrong, so objects written before a key rotation stay
// readable.
func withReadKeys[T any](s *S3, read func(k *sseCKey) (T, error)) (T, error) {
	var v T
	var err error
	for _, k := range s.readKeys() {
		v, err = read(k)
		if !errors.Is(err, ErrSSEKey) || k == nil {
			return v, err
		}
	}
	return v, err
}

// sseWrite returns the headers a write of a new object carries:
// x-amz-server-side-encryption (sse-s3, sse-kms), the KMS key ID, or the
// SSE-C key.
func (s *S3) sseWrite() (types.ServerSideEncryption, *string, *sseCKey) {
	switch s.sse.Mode {
	case SSES3:
		return types.ServerSideEncryptionAes256, nil, nil
	case SSEKMS:
		var id *string
		if s.sse.KMSKeyID != "" {
			id = aws.String(s.sse.KMSKeyID)
		}
		return types.ServerSideEncryptionAwsKms, id, nil
	case SSEC:
		return "", nil, s.writeKey()
	}
	return "", nil, nil
}

func ssecHeaders(k *sseCKey) (alg, key, md5 *string) {
	if k == nil {
		return nil, nil, nil
	}
	return aws.String(sseCAlgorithm), aws.String(k.key), aws.String(k.md5)
}

// repeatSSEOnComplete adds x-amz-server-side-encryption (and the KMS key
// ID) to a CompleteMultipartUpload request. AWS documents these headers
// on CreateMultipartUpload only and evaluates bucket policies there, so
// coffer completes without them first; SeaweedFS evaluates the policy
// again at completion and accepts the request when it repeats them, so a
// completion refused with 403 is retried once with this.
func (s *S3) repeatSSEOnComplete(stack *middleware.Stack) error {
	sse, kmsID, _ := s.sseWrite()
	return stack.Build.Add(middleware.BuildMiddlewareFunc("CofferRepeatSSE",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				req.Header.Set("X-Amz-Server-Side-Encryption", string(sse))
				if kmsID != nil {
					req.Header.Set("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", *kmsID)
				}
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
}

// bucketBlocksSSEC reports whether the bucket's default-encryption
// configuration lists SSE-C in BlockedEncryptionTypes. Errors (no
// permission, a server without the API) read as "not known to block".
func (s *S3) bucketBlocksSSEC(ctx context.Context) bool {
	out, err := s.client.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: &s.bucket})
	if err != nil || out.ServerSideEncryptionConfiguration == nil {
		return false
	}
	for _, r := range out.ServerSideEncryptionConfiguration.Rules {
		if r.BlockedEncryptionTypes == nil {
			continue
		}
		for _, t := range r.BlockedEncryptionTypes.EncryptionType {
			if t == types.EncryptionTypeSseC {
				return true
			}
		}
	}
	return false
}

// refineSSECRefusal turns an access-denied SSE-C write into
// ErrSSECRefused when the bucket's configuration says it blocks SSE-C.
func (s *S3) refineSSECRefusal(ctx context.Context, err error) error {
	var e *Error
	if s.sse.Mode != SSEC || !errors.As(err, &e) || errors.Is(err, ErrSSECRefused) ||
		!(errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrSSEKey)) {
		return err
	}
	if !s.bucketBlocksSSEC(ctx) {
		return err
	}
	var f *s3Failure
	cause := e.Err
	if errors.As(e.Err, &f) {
		cause = f.cause
	}
	return &Error{Op: e.Op, Key: e.Key, Err: &s3Failure{kind: ErrSSECRefused, hint: hintSSECRefused, cause: cause}}
}

// RekeySSEC re-encrypts key under the newest SSE-C key when only an
// older one opens it, with a server-side copy of the object onto itself
// (conditional on its ETag, metadata kept); `coffer rotate --sse-c` runs
// it over every object. It reports whether the object was rewritten.
func (s *S3) RekeySSEC(ctx context.Context, key string) (bool, error) {
	if s.sse.Mode != SSEC {
		return false, &Error{Op: "s3 rekey", Key: key, Err: errors.New("the store is not in sse-c mode")}
	}
	info, err := s.headWith(ctx, key, &s.ckeys[0])
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, ErrSSEKey) {
		return false, err
	}
	for i := 1; i < len(s.ckeys); i++ {
		old := &s.ckeys[i]
		info, err = s.headWith(ctx, key, old)
		if errors.Is(err, ErrSSEKey) {
			continue
		}
		if err != nil {
			return false, err
		}
		md := info.Metadata
		if md == nil {
			md = map[string]string{} // copying onto itself needs the REPLACE directive
		}
		_, err = s.copyWith(ctx, key, key, info.Size, CopyOptions{Metadata: md, IfMatch: info.ETag}, old)
		return err == nil, err
	}
	return false, err
}

// RekeySSECAll runs RekeySSEC over every object under prefix, with up to
// concurrency copies at once (0: DefaultConcurrency), calling progress
// (if set, never concurrently) after each object. It returns how many
// objects were rewritten; on error it stops, and a rerun resumes (objects
// already under the newest key are skipped with a HEAD).
func (s *S3) RekeySSECAll(ctx context.Context, prefix string, concurrency int, progress func(key string, rewritten bool)) (int, error) {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	var mu sync.Mutex
	rewritten := 0
	for e, err := range s.List(gctx, prefix, "") {
		if err != nil {
			g.Wait()
			return rewritten, err
		}
		g.Go(func() error {
			done, err := s.RekeySSEC(gctx, e.Key)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if done {
				rewritten++
			}
			if progress != nil {
				progress(e.Key, done)
			}
			return nil
		})
	}
	err := g.Wait()
	return rewritten, err
}
