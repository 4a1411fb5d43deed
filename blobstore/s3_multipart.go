package blobstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// maxParts is S3's limit on parts per multipart upload.
const maxParts = 10000

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// s3Upload is one multipart upload on S3.
type s3Upload struct {
	s        *S3
	key      string // store key, for errors
	full     string // bucket key
	id       string
	opts     PutOptions
	ckey     *sseCKey // sse-c: the key every part and the completion carry
	checksum bool     // parts carry CRC32C (created with that algorithm)
}

var _ MultipartUpload = (*s3Upload)(nil)

// Multipart starts a multipart upload whose parts carry CRC32C
// checksums. Conditions in opts apply at Complete.
func (s *S3) Multipart(ctx context.Context, key string, opts PutOptions) (MultipartUpload, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, &Error{Op: "s3 multipart", Key: key, Err: err}
	}
	return s.createUpload(ctx, key, full, opts.Metadata, opts, true)
}

func (s *S3) createUpload(ctx context.Context, key, full string, md map[string]string, opts PutOptions, checksum bool) (*s3Upload, error) {
	in := &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &full, Metadata: md}
	if checksum {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	var k *sseCKey
	in.ServerSideEncryption, in.SSEKMSKeyId, k = s.sseWrite()
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(k)
	out, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return nil, s.refineSSECRefusal(ctx, s.fail("multipart create", key, err, reqWrite, k != nil))
	}
	return &s3Upload{s: s, key: key, full: full, id: aws.ToString(out.UploadId), opts: opts, ckey: k, checksum: checksum}, nil
}

// crc32c is the base64 CRC32C of b, as x-amz-checksum-crc32c carries it.
func crc32c(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(b, castagnoli))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// UploadPart uploads part n with its CRC32C, which the server verifies.
func (u *s3Upload) UploadPart(ctx context.Context, n int, body []byte) (Part, error) {
	if n < 1 || n > maxParts {
		return Part{}, &Error{Op: "s3 upload part", Key: u.key, Err: fmt.Errorf("part number %d outside 1..%d", n, maxParts)}
	}
	sum := crc32c(body)
	in := &s3.UploadPartInput{
		Bucket:            &u.s.bucket,
		Key:               &u.full,
		UploadId:          &u.id,
		PartNumber:        aws.Int32(int32(n)),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumCRC32C:    &sum,
	}
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(u.ckey)
	var optFns []func(*s3.Options)
	if u.s.unsigned {
		optFns = append(optFns, unsignedPayload)
	}
	out, err := u.s.client.UploadPart(ctx, in, optFns...)
	if err != nil {
		return Part{}, u.s.fail("upload part "+strconv.Itoa(n), u.key, err, reqWrite, u.ckey != nil)
	}
	if echo := aws.ToString(out.ChecksumCRC32C); echo != "" && echo != sum {
		return Part{}, &Error{Op: "s3 upload part " + strconv.Itoa(n), Key: u.key,
			Err: fmt.Errorf("%w: the server stored a different CRC32C (%s, sent %s)", ErrTransient, echo, sum)}
	}
	return Part{Number: n, ETag: aws.ToString(out.ETag), Size: int64(len(body)), Checksum: sum}, nil
}

// Complete assembles parts into the object, honouring the upload's
// IfNoneMatch / IfMatch.
func (u *s3Upload) Complete(ctx context.Context, parts []Part) (ObjectInfo, error) {
	if len(parts) == 0 {
		return ObjectInfo{}, &Error{Op: "s3 multipart complete", Key: u.key, Err: errors.New("no parts")}
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b Part) int { return a.Number - b.Number })
	var size int64
	cparts := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		if i > 0 && p.Number == parts[i-1].Number {
			return ObjectInfo{}, &Error{Op: "s3 multipart complete", Key: u.key, Err: fmt.Errorf("part %d given twice", p.Number)}
		}
		size += p.Size
		cparts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
		if u.checksum && p.Checksum != "" {
			cparts[i].ChecksumCRC32C = aws.String(p.Checksum)
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &u.s.bucket,
		Key:             &u.full,
		UploadId:        &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: cparts},
	}
	if u.opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if u.opts.IfMatch != "" {
		in.IfMatch = aws.String(u.opts.IfMatch)
	}
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(u.ckey)

	out, err := u.s.client.CompleteMultipartUpload(ctx, in)
	if err != nil && (u.s.sse.Mode == SSES3 || u.s.sse.Mode == SSEKMS) && isStatus(err, 403) {
		// See repeatSSEOnComplete: SeaweedFS checks the bucket policy
		// again here.
		out, err = u.s.client.CompleteMultipartUpload(ctx, in, s3.WithAPIOptions(u.s.repeatSSEOnComplete))
	}
	if err != nil && hasCode(err, "NoSuchUpload") {
		// An earlier attempt may have completed the upload and lost its
		// response; the SDK's retry then finds the upload gone.
		if info, ok := u.completedBefore(ctx, size, len(parts)); ok {
			return info, nil
		}
	}
	if err != nil {
		err = u.s.fail("multipart complete", u.key, err, reqWrite, u.ckey != nil)
		if info, ok := u.s.ownWrite(ctx, u.key, size, u.opts, err); ok && isMultipartETag(info.ETag, len(parts)) {
			return info, nil
		}
		return ObjectInfo{}, err
	}
	return ObjectInfo{
		Key:          u.key,
		Size:         size,
		ETag:         aws.ToString(out.ETag),
		LastModified: time.Now(),
		Metadata:     u.opts.Metadata,
	}, nil
}

// completedBefore reports the object a lost completion response left:
// same size, and a multipart ETag over the same number of parts.
func (u *s3Upload) completedBefore(ctx context.Context, size int64, nparts int) (ObjectInfo, bool) {
	info, err := u.s.headWith(ctx, u.key, u.ckey)
	if err != nil || info.Size != size || !isMultipartETag(info.ETag, nparts) {
		return ObjectInfo{}, false
	}
	return info, true
}

// isMultipartETag reports an ETag of a multipart object of nparts parts.
func isMultipartETag(etag string, nparts int) bool {
	return strings.HasSuffix(strings.Trim(etag, `"`), "-"+strconv.Itoa(nparts))
}

// Abort discards the upload and its parts; an upload already gone is
// not an error.
func (u *s3Upload) Abort(ctx context.Context) error {
	_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &u.s.bucket, Key: &u.full, UploadId: &u.id,
	})
	if err = u.s.fail("multipart abort", u.key, err, reqWrite, false); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// copyMultipart copies a source above CopyObject's limit with
// UploadPartCopy, every part conditional on opts.IfMatch and carrying
// both sides' SSE-C headers; on failure the upload is aborted.
func (s *S3) copyMultipart(ctx context.Context, fullSrc, dst, fullDst string, size int64, opts CopyOptions, srcKey *sseCKey) (ObjectInfo, error) {
	md := opts.Metadata
	if md == nil {
		src := strings.TrimPrefix(fullSrc, s.prefix)
		info, err := s.headWithMatch(ctx, src, srcKey, opts.IfMatch)
		if err != nil {
			return ObjectInfo{}, err
		}
		md = info.Metadata
	}
	partSize := max(s.copyPart, (size+maxParts-1)/maxParts)
	nparts := int((size + partSize - 1) / partSize)
	u, err := s.createUpload(ctx, dst, fullDst, md, PutOptions{Metadata: md}, false)
	if err != nil {
		return ObjectInfo{}, err
	}
	parts := make([]Part, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultConcurrency)
	for i := range nparts {
		g.Go(func() error {
			first := int64(i) * partSize
			last := min(first+partSize, size) - 1
			in := &s3.UploadPartCopyInput{
				Bucket:          &s.bucket,
				Key:             &fullDst,
				UploadId:        &u.id,
				PartNumber:      aws.Int32(int32(i + 1)),
				CopySource:      aws.String(s.copySource(fullSrc)),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
			}
			if opts.IfMatch != "" {
				in.CopySourceIfMatch = aws.String(opts.IfMatch)
			}
			if !opts.IfUnmodifiedSince.IsZero() {
				in.CopySourceIfUnmodifiedSince = aws.Time(opts.IfUnmodifiedSince)
			}
			in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(u.ckey)
			in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = ssecHeaders(srcKey)
			out, err := s.client.UploadPartCopy(gctx, in)
			if err != nil {
				return s.fail("copy part "+strconv.Itoa(i+1), dst, err, reqCopy, srcKey != nil || u.ckey != nil)
			}
			etag := ""
			if out.CopyPartResult != nil {
				etag = aws.ToString(out.CopyPartResult.ETag)
			}
			parts[i] = Part{Number: i + 1, ETag: etag, Size: last - first + 1}
			return nil
		})
	}
	err = g.Wait()
	var info ObjectInfo
	if err == nil {
		info, err = u.Complete(ctx, parts)
	}
	if err != nil {
		// The copy failed for good: drop the parts (best effort, the
		// caller's context may be what ended it).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = u.Abort(actx)
		return ObjectInfo{}, err
	}
	info.Key = dst
	info.Metadata = md
	return info, nil
}

func isStatus(err error, status int) bool {
	var st interface{ HTTPStatusCode() int }
	return errors.As(err, &st) && st.HTTPStatusCode() == status
}

func hasCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}
