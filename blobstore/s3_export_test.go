package blobstore

import (
	"context"

	"github.com/aws/smithy-go/middleware"
)

// SetCopyLimits lowers the size above which Copy switches to
// UploadPartCopy, and its part size, so tests can reach that path
// without 5 GiB objects.
func SetCopyLimits(s *S3, limit, part int64) { s.copyLimit, s.copyPart = limit, part }

// CopyMultipart copies src to dst with UploadPartCopy whatever its size.
func CopyMultipart(ctx context.Context, s *S3, src, dst string, opts CopyOptions) (ObjectInfo, error) {
	fullSrc, err := s.fullKey(src)
	if err != nil {
		return ObjectInfo{}, err
	}
	fullDst, err := s.fullKey(dst)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := s.headWith(ctx, src, s.writeKey())
	if err != nil {
		return ObjectInfo{}, err
	}
	return s.copyMultipart(ctx, fullSrc, dst, fullDst, info.Size, opts, s.writeKey())
}

// RepeatSSEOnComplete is the middleware that adds the SSE headers of c
// to a CompleteMultipartUpload request.
func RepeatSSEOnComplete(c SSEConfig) func(*middleware.Stack) error {
	return (&S3{sse: c}).repeatSSEOnComplete
}

// SetUnsignedPayload chooses whether bodies skip the SigV4 payload hash.
func SetUnsignedPayload(s *S3, unsigned bool) { s.unsigned = unsigned }
