package blobstore

import (
	"context"
	"errors"
)

// openS3 is a placeholder until the S3 backend lands: engineer 3
// replaces this file with one that calls NewS3.
func openS3(ctx context.Context, bucket, prefix string, opts Options) (Store, error) {
	return nil, &Error{Op: "open", Key: "s3://" + bucket, Err: errors.New("S3 backend not built yet")}
}
