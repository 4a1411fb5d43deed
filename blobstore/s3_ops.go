package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// unsignedPayload makes a body-carrying request skip the SigV4 payload
// hash (see unsignedPayloadOK).
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// payloadOpts are the per-request options of a request with a body.
// A body that cannot be rewound cannot be hashed before sending, so it
// goes unsigned even where payloads are otherwise signed.
func (s *S3) payloadOpts(body io.Reader) []func(*s3.Options) {
	if _, seekable := body.(io.ReadSeeker); s.unsigned || !seekable {
		return []func(*s3.Options){unsignedPayload}
	}
	return nil
}

// Put stores body under key with PutObject. A body that is an
// io.ReadSeeker can be resent, so failed attempts are retried; other
// readers get one attempt.
func (s *S3) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return ObjectInfo{}, &Error{Op: "s3 put", Key: key, Err: err}
	}
	if size < 0 {
		return ObjectInfo{}, &Error{Op: "s3 put", Key: key, Err: fmt.Errorf("negative size %d", size)}
	}
	if body == nil || size == 0 {
		body = bytes.NewReader(nil)
	}
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &full,
		Body:          body,
		ContentLength: aws.Int64(size),
		Metadata:      opts.Metadata,
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		in.IfMatch = aws.String(opts.IfMatch)
	}
	var k *sseCKey
	in.ServerSideEncryption, in.SSEKMSKeyId, k = s.sseWrite()
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(k)
	out, err := s.client.PutObject(ctx, in, s.payloadOpts(body)...)
	if err != nil {
		err = s.refineSSECRefusal(ctx, s.fail("put", key, err, reqWrite, k != nil))
		if info, ok := s.ownWrite(ctx, key, size, opts, err); ok {
			return info, nil
		}
		return ObjectInfo{}, err
	}
	return ObjectInfo{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(out.ETag),
		LastModified: time.Now(),
		Metadata:     opts.Metadata,
	}, nil
}

// ownWrite recognises a conditional write that failed its condition
// only because an earlier attempt of the same call succeeded and its
// answer was lost (the SDK then retries, and the retry finds the object
// it made): the object holds exactly this write's size and metadata.
// Only writes with metadata qualify; coffer's metadata is unique to each
// upload (a freshly wrapped key), so a match is this write.
func (s *S3) ownWrite(ctx context.Context, key string, size int64, opts PutOptions, err error) (ObjectInfo, bool) {
	if !errors.Is(err, ErrPreconditionFailed) || (!opts.IfNoneMatch && opts.IfMatch == "") || len(opts.Metadata) == 0 {
		return ObjectInfo{}, false
	}
	info, herr := s.Head(ctx, key)
	if herr != nil || info.Size != size || !maps.Equal(info.Metadata, opts.Metadata) {
		return ObjectInfo{}, false
	}
	return info, true
}

// Get returns a ranged GetObject body. Reading past the end yields an
// empty body, as on a file.
func (s *S3) Get(ctx context.Context, key string, opts GetOptions) (io.ReadCloser, ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, ObjectInfo{}, &Error{Op: "s3 get", Key: key, Err: err}
	}
	if opts.Offset < 0 {
		return nil, ObjectInfo{}, &Error{Op: "s3 get", Key: key, Err: fmt.Errorf("negative offset %d", opts.Offset)}
	}
	if opts.Length == 0 {
		info, err := s.head(ctx, key, opts.IfMatch)
		if err != nil {
			return nil, ObjectInfo{}, err
		}
		return io.NopCloser(bytes.NewReader(nil)), info, nil
	}
	var rng *string
	switch {
	case opts.Length < 0 && opts.Offset > 0:
		rng = aws.String(fmt.Sprintf("bytes=%d-", opts.Offset))
	case opts.Length > 0:
		rng = aws.String(fmt.Sprintf("bytes=%d-%d", opts.Offset, opts.Offset+opts.Length-1))
	}
	out, err := withReadKeys(s, func(k *sseCKey) (*s3.GetObjectOutput, error) {
		in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &full, Range: rng}
		if opts.IfMatch != "" {
			in.IfMatch = aws.String(opts.IfMatch)
		}
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(k)
		out, err := s.client.GetObject(ctx, in)
		return out, s.fail("get", key, err, reqRead, k != nil)
	})
	if err != nil {
		if isInvalidRange(err) {
			// The range starts at or past the end (S3 also says so for
			// any range of an empty object): an empty read.
			info, herr := s.head(ctx, key, opts.IfMatch)
			if herr != nil {
				return nil, ObjectInfo{}, herr
			}
			if opts.Offset >= info.Size {
				return io.NopCloser(bytes.NewReader(nil)), info, nil
			}
		}
		return nil, ObjectInfo{}, err
	}
	info := ObjectInfo{
		Key:          key,
		Size:         objectSize(out.ContentRange, aws.ToInt64(out.ContentLength)),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		Metadata:     out.Metadata,
	}
	return out.Body, info, nil
}

func isInvalidRange(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
		return true
	}
	var st interface{ HTTPStatusCode() int }
	return errors.As(err, &st) && st.HTTPStatusCode() == 416
}

// objectSize is the full object size from a Content-Range
// ("bytes 0-9/123"), or the body length when the response is whole.
func objectSize(contentRange *string, length int64) int64 {
	if contentRange == nil {
		return length
	}
	cr := *contentRange
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return length
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	if err != nil {
		return length
	}
	return n
}

// Head returns key's size, ETag and metadata.
func (s *S3) Head(ctx context.Context, key string) (ObjectInfo, error) {
	return s.head(ctx, key, "")
}

func (s *S3) head(ctx context.Context, key, ifMatch string) (ObjectInfo, error) {
	return withReadKeys(s, func(k *sseCKey) (ObjectInfo, error) {
		return s.headWithMatch(ctx, key, k, ifMatch)
	})
}

// headWith heads key with one given SSE-C key (nil: none).
func (s *S3) headWith(ctx context.Context, key string, k *sseCKey) (ObjectInfo, error) {
	return s.headWithMatch(ctx, key, k, "")
}

func (s *S3) headWithMatch(ctx context.Context, key string, k *sseCKey, ifMatch string) (ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return ObjectInfo{}, &Error{Op: "s3 head", Key: key, Err: err}
	}
	in := &s3.HeadObjectInput{Bucket: &s.bucket, Key: &full}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(k)
	out, err := s.client.HeadObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, s.fail("head", key, err, reqRead, k != nil)
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		Metadata:     out.Metadata,
	}, nil
}

// List pages through ListObjectsV2 and yields entries with the store
// prefix removed, objects and common prefixes merged in key order. Keys
// are requested URL-encoded, so that ones with characters XML 1.0 cannot
// carry (control characters, possible in --encryption none mode) come
// back intact from servers that support it.
func (s *S3) List(ctx context.Context, prefix, delimiter string) iter.Seq2[Entry, error] {
	return s.ListAfter(ctx, prefix, delimiter, ListOptions{})
}

// ListAfter is List from the first key after opts.StartAfter, its first
// request asking for opts.FirstPage entries. It pages by hand: the SDK's
// paginator asks every page for the same MaxKeys.
func (s *S3) ListAfter(ctx context.Context, prefix, delimiter string, opts ListOptions) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		in := &s3.ListObjectsV2Input{
			Bucket:       &s.bucket,
			Prefix:       aws.String(s.prefix + prefix),
			EncodingType: types.EncodingTypeUrl,
		}
		if delimiter != "" {
			in.Delimiter = aws.String(delimiter)
		}
		if opts.StartAfter != "" {
			in.StartAfter = aws.String(s.prefix + opts.StartAfter)
		}
		if opts.FirstPage > 0 && opts.FirstPage < MaxListPage {
			in.MaxKeys = aws.Int32(int32(opts.FirstPage))
		}
		for {
			page, err := s.client.ListObjectsV2(ctx, in)
			if err == nil {
				var entries []Entry
				entries, err = s.pageEntries(page)
				for _, e := range entries {
					if !yield(e, nil) {
						return
					}
				}
			}
			if err == nil && aws.ToBool(page.IsTruncated) {
				next := aws.ToString(page.NextContinuationToken)
				if next == "" || next == aws.ToString(in.ContinuationToken) {
					// A listing that cannot go on is an error, not a
					// directory shown shorter than it is.
					err = fmt.Errorf("listing: truncated page without a new continuation token")
				} else {
					in.ContinuationToken, in.MaxKeys = &next, nil
				}
			}
			if err != nil {
				yield(Entry{}, s.fail("list", prefix, err, reqNoObject, false))
				return
			}
			if !aws.ToBool(page.IsTruncated) {
				return
			}
		}
	}
}

// pageEntries decodes one listing page into entries relative to the
// store prefix, objects and common prefixes merged in key order.
func (s *S3) pageEntries(page *s3.ListObjectsV2Output) ([]Entry, error) {
	decode := func(k *string) (string, error) {
		if page.EncodingType != types.EncodingTypeUrl {
			return aws.ToString(k), nil // the server ignored the request
		}
		return url.QueryUnescape(aws.ToString(k))
	}
	entries := make([]Entry, 0, len(page.Contents)+len(page.CommonPrefixes))
	for _, o := range page.Contents {
		k, err := decode(o.Key)
		if err != nil {
			return nil, fmt.Errorf("listing: undecodable key %q: %w", aws.ToString(o.Key), err)
		}
		entries = append(entries, Entry{Key: k, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), LastModified: aws.ToTime(o.LastModified)})
	}
	for _, p := range page.CommonPrefixes {
		k, err := decode(p.Prefix)
		if err != nil {
			return nil, fmt.Errorf("listing: undecodable prefix %q: %w", aws.ToString(p.Prefix), err)
		}
		entries = append(entries, Entry{Key: k, IsPrefix: true})
	}
	slices.SortStableFunc(entries, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	out := entries[:0]
	for _, e := range entries {
		rel, ok := strings.CutPrefix(e.Key, s.prefix)
		if !ok || rel == "" {
			continue // the prefix's own marker, or a key outside it
		}
		e.Key = rel
		out = append(out, e)
	}
	return out, nil
}

// Copy copies src to dst server-side: CopyObject, or UploadPartCopy for
// sources above 5 GiB. In sse-c mode the copy is written under the
// newest SSE-C key, and the source is first opened with a HEAD to learn
// which key opens it: the copy then names that key and is conditional on
// the ETag the HEAD saw. (SeaweedFS answers a copy with a wrong source key
// with a 500, or, for larger objects, copies undecryptable bytes.)
func (s *S3) Copy(ctx context.Context, src, dst string, opts CopyOptions) (ObjectInfo, error) {
	info, err := s.copy(ctx, src, dst, opts)
	if err == nil || opts.IfUnmodifiedSince.IsZero() || opts.IfMatch != "" || !errors.Is(err, ErrPreconditionFailed) {
		return info, err
	}
	// versitygw compares x-amz-copy-source-if-unmodified-since with the
	// source's mtime to the nanosecond, so a time taken from the
	// object's own LastModified (whole seconds) always fails. Check the
	// condition in whole seconds against a HEAD, then copy on the ETag
	// that HEAD saw (the body cannot change unseen; metadata can, as it
	// can on that server anyway).
	h, herr := s.head(ctx, src, "")
	if herr != nil || h.LastModified.Truncate(time.Second).After(opts.IfUnmodifiedSince.Truncate(time.Second)) {
		return ObjectInfo{}, err
	}
	o := opts
	o.IfMatch, o.IfUnmodifiedSince = h.ETag, time.Time{}
	return s.copy(ctx, src, dst, o)
}

func (s *S3) copy(ctx context.Context, src, dst string, opts CopyOptions) (ObjectInfo, error) {
	if s.sse.Mode != SSEC {
		return s.copyWith(ctx, src, dst, -1, opts, nil)
	}
	for attempt := 0; ; attempt++ {
		var srcKey *sseCKey
		hinfo, err := withReadKeys(s, func(k *sseCKey) (ObjectInfo, error) {
			srcKey = k
			return s.headWithMatch(ctx, src, k, opts.IfMatch)
		})
		if err != nil {
			return ObjectInfo{}, err
		}
		o := opts
		if o.IfMatch == "" {
			// The copy must be of the version the HEAD opened. A
			// condition on LastModified is checked against the HEAD then
			// (the server would ignore it beside IfMatch).
			if t := o.IfUnmodifiedSince; !t.IsZero() && hinfo.LastModified.Truncate(time.Second).After(t.Truncate(time.Second)) {
				return ObjectInfo{}, &Error{Op: "s3 copy", Key: src, Err: fmt.Errorf("%w: the source was modified at %v", ErrPreconditionFailed, hinfo.LastModified)}
			}
			o.IfMatch, o.IfUnmodifiedSince = hinfo.ETag, time.Time{}
		}
		info, err := s.copyWith(ctx, src, dst, hinfo.Size, o, srcKey)
		if errors.Is(err, ErrPreconditionFailed) && opts.IfMatch == "" && attempt < 2 {
			continue // the source changed between the HEAD and the copy
		}
		return info, s.refineSSECRefusal(ctx, err)
	}
}

// copyWith copies with srcKey opening an SSE-C source. size is the
// source size when known, else -1.
func (s *S3) copyWith(ctx context.Context, src, dst string, size int64, opts CopyOptions, srcKey *sseCKey) (ObjectInfo, error) {
	fullSrc, err := s.fullKey(src)
	if err != nil {
		return ObjectInfo{}, &Error{Op: "s3 copy", Key: src, Err: err}
	}
	fullDst, err := s.fullKey(dst)
	if err != nil {
		return ObjectInfo{}, &Error{Op: "s3 copy", Key: dst, Err: err}
	}
	if size > s.copyLimit {
		info, err := s.copyMultipart(ctx, fullSrc, dst, fullDst, size, opts, srcKey)
		if !hasCode(err, "NotImplemented") {
			return info, err
		}
		// A server without UploadPartCopy for this source (SeaweedFS
		// with an SSE-C source) has no CopyObject size limit either.
	}
	in := &s3.CopyObjectInput{
		Bucket:     &s.bucket,
		Key:        &fullDst,
		CopySource: aws.String(s.copySource(fullSrc)),
	}
	if opts.Metadata != nil {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.Metadata = opts.Metadata
	}
	if opts.IfMatch != "" {
		in.CopySourceIfMatch = aws.String(opts.IfMatch)
	}
	if !opts.IfUnmodifiedSince.IsZero() {
		in.CopySourceIfUnmodifiedSince = aws.Time(opts.IfUnmodifiedSince)
	}
	var dstKey *sseCKey
	in.ServerSideEncryption, in.SSEKMSKeyId, dstKey = s.sseWrite()
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = ssecHeaders(dstKey)
	in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = ssecHeaders(srcKey)
	out, err := s.client.CopyObject(ctx, in)
	if err != nil {
		if size < 0 && isCopyTooLarge(err) {
			info, herr := s.headWithMatch(ctx, src, srcKey, opts.IfMatch)
			if herr != nil {
				return ObjectInfo{}, herr
			}
			return s.copyMultipart(ctx, fullSrc, dst, fullDst, info.Size, opts, srcKey)
		}
		if isMarkerCopyRefusal(src, dst, err) {
			if info, ok, err := s.copyMarker(ctx, src, dst, opts, srcKey); ok {
				return info, err
			}
		}
		return ObjectInfo{}, s.fail("copy", dst, err, reqCopy, srcKey != nil || dstKey != nil)
	}
	// CopyObject does not say the size: 0 when the caller did not know it.
	info := ObjectInfo{Key: dst, Size: max(size, 0), Metadata: opts.Metadata}
	if r := out.CopyObjectResult; r != nil {
		info.ETag = aws.ToString(r.ETag)
		info.LastModified = aws.ToTime(r.LastModified)
	}
	return info, nil
}

// isMarkerCopyRefusal recognises a server that stores directory markers
// ("dir/") as directories and cannot copy them: versitygw refuses with
// DirectoryObjectContainsData, SeaweedFS answers NoSuchKey.
func isMarkerCopyRefusal(src, dst string, err error) bool {
	return strings.HasSuffix(src, "/") && strings.HasSuffix(dst, "/") &&
		(hasCode(err, "DirectoryObjectContainsData") || isStatus(err, 404))
}

// copyMarker copies an empty directory marker the way such servers
// allow: a HEAD of the source (with its condition and SSE-C key), then a
// PUT of an empty object with the source's or the given metadata. ok is
// false when the source is not an empty object after all.
func (s *S3) copyMarker(ctx context.Context, src, dst string, opts CopyOptions, srcKey *sseCKey) (ObjectInfo, bool, error) {
	info, err := s.headWithMatch(ctx, src, srcKey, opts.IfMatch)
	if err != nil {
		return ObjectInfo{}, !errors.Is(err, ErrNotFound), err
	}
	if info.Size != 0 {
		return ObjectInfo{}, false, nil
	}
	if opts.IfMatch != "" && info.ETag != opts.IfMatch {
		// SeaweedFS ignores If-Match on a directory's HEAD.
		return ObjectInfo{}, true, &Error{Op: "s3 copy", Key: src, Err: fmt.Errorf("%w: the source's ETag is %s", ErrPreconditionFailed, info.ETag)}
	}
	if t := opts.IfUnmodifiedSince; !t.IsZero() && info.LastModified.Truncate(time.Second).After(t.Truncate(time.Second)) {
		return ObjectInfo{}, true, &Error{Op: "s3 copy", Key: src, Err: fmt.Errorf("%w: the source was modified at %v", ErrPreconditionFailed, info.LastModified)}
	}
	md := opts.Metadata
	if md == nil {
		md = info.Metadata
	}
	out, err := s.Put(ctx, dst, bytes.NewReader(nil), 0, PutOptions{Metadata: md})
	return out, true, err
}

// isCopyTooLarge recognises S3's refusal of a CopyObject source above
// 5 GiB ("The specified copy source is larger than the maximum allowable
// size for a copy source").
func isCopyTooLarge(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	m := strings.ToLower(apiErr.ErrorMessage())
	return apiErr.ErrorCode() == "EntityTooLarge" ||
		(apiErr.ErrorCode() == "InvalidRequest" && strings.Contains(m, "copy source is larger"))
}

// Delete removes key; a missing key is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	full, err := s.fullKey(key)
	if err != nil {
		return &Error{Op: "s3 delete", Key: key, Err: err}
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &full})
	if err = s.fail("delete", key, err, reqWrite, false); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// deleteBatch is DeleteObjects' limit of keys per request.
const deleteBatch = 1000

// DeleteMany removes keys with DeleteObjects, 1000 per request. Keys
// that an XML request body cannot carry intact (control characters;
// XML also turns CR into LF) are deleted one by one instead.
func (s *S3) DeleteMany(ctx context.Context, keys []string) error {
	batchable := make([]string, 0, len(keys))
	for _, key := range keys {
		if xmlSafe(key) {
			batchable = append(batchable, key)
		} else if err := s.Delete(ctx, key); err != nil {
			return err
		}
	}
	for start := 0; start < len(batchable); start += deleteBatch {
		batch := batchable[start:min(start+deleteBatch, len(batchable))]
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, key := range batch {
			full, err := s.fullKey(key)
			if err != nil {
				return &Error{Op: "s3 delete", Key: key, Err: err}
			}
			objs[i] = types.ObjectIdentifier{Key: aws.String(full)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.fail("delete", batch[0], err, reqWrite, false)
		}
		for _, e := range out.Errors {
			code := aws.ToString(e.Code)
			if code == "NoSuchKey" {
				continue
			}
			key := strings.TrimPrefix(aws.ToString(e.Key), s.prefix)
			return &Error{Op: "s3 delete", Key: key, Err: deleteError(code, aws.ToString(e.Message))}
		}
	}
	return nil
}

// xmlSafe reports whether key survives an XML 1.0 document unchanged:
// no control characters but tab and newline.
func xmlSafe(key string) bool {
	for _, r := range key {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// deleteError types one DeleteObjects per-key failure.
func deleteError(code, msg string) error {
	err := fmt.Errorf("DeleteObjects: %s: %s", code, msg)
	switch code {
	case "AccessDenied":
		return &s3Failure{kind: ErrAccessDenied, cause: err}
	case "SlowDown":
		return &s3Failure{kind: ErrThrottled, cause: err}
	case "InternalError", "ServiceUnavailable":
		return &s3Failure{kind: ErrTransient, cause: err}
	}
	return err
}
