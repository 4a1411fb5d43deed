package blobstore

import "context"

// openS3 opens the S3 backend for Open.
func openS3(ctx context.Context, bucket, prefix string, opts Options) (Store, error) {
	s, err := NewS3(ctx, bucket, prefix, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}
