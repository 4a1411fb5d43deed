package blobstore

import (
	"context"
	"errors"
	"iter"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Uploads lists the store's multipart uploads in progress with
// ListMultipartUploads (pages hidden), keys relative to the store prefix.
func (s *S3) Uploads(ctx context.Context, prefix string) iter.Seq2[PendingUpload, error] {
	return func(yield func(PendingUpload, error) bool) {
		in := &s3.ListMultipartUploadsInput{
			Bucket:       &s.bucket,
			Prefix:       aws.String(s.prefix + prefix),
			EncodingType: types.EncodingTypeUrl,
		}
		for {
			page, err := s.client.ListMultipartUploads(ctx, in)
			if err != nil {
				yield(PendingUpload{}, s.fail("list uploads", prefix, err, reqNoObject, false))
				return
			}
			ups := make([]PendingUpload, 0, len(page.Uploads))
			for _, u := range page.Uploads {
				k := aws.ToString(u.Key)
				if page.EncodingType == types.EncodingTypeUrl {
					if k, err = url.QueryUnescape(k); err != nil {
						yield(PendingUpload{}, &Error{Op: "s3 list uploads", Key: prefix, Err: err})
						return
					}
				}
				rel, ok := strings.CutPrefix(k, s.prefix)
				if !ok || rel == "" {
					continue
				}
				ups = append(ups, PendingUpload{Key: rel, ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
			}
			slices.SortStableFunc(ups, func(a, b PendingUpload) int { return strings.Compare(a.Key, b.Key) })
			for _, u := range ups {
				if !yield(u, nil) {
					return
				}
			}
			if !aws.ToBool(page.IsTruncated) || (page.NextKeyMarker == nil && page.NextUploadIdMarker == nil) {
				return
			}
			in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
		}
	}
}

// AbortUpload aborts a listed upload; one already gone is not an error.
func (s *S3) AbortUpload(ctx context.Context, u PendingUpload) error {
	full, err := s.fullKey(u.Key)
	if err != nil {
		return &Error{Op: "s3 multipart abort", Key: u.Key, Err: err}
	}
	_, err = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &full, UploadId: &u.ID})
	if err = s.fail("multipart abort", u.Key, err, reqWrite, false); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}
