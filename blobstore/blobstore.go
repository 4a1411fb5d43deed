package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
)

// Store is the object-store interface every coffer component talks to.
// Keys are relative to the store's prefix (for s3://bucket/prefix, the
// key "a/b" is stored as "prefix/a/b"). Metadata keys are lower-case user
// metadata names without the "x-amz-meta-" prefix.
type Store interface {
	// Put stores body (exactly size bytes) under key. With IfNoneMatch it
	// fails with ErrPreconditionFailed when the key exists; with IfMatch
	// when the current ETag differs, and with ErrNotFound when the key is
	// missing. A conditional Put with metadata whose answer was lost, so
	// that a retry found its own object, succeeds.
	Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// Get returns the bytes [opts.Offset, opts.Offset+opts.Length) of key
	// (Length < 0: to the end). With IfMatch it fails with
	// ErrPreconditionFailed when the object changed.
	Get(ctx context.Context, key string, opts GetOptions) (io.ReadCloser, ObjectInfo, error)
	// Head returns an object's size, ETag and metadata.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// List yields the keys under prefix in lexical order. With a
	// delimiter, keys sharing a prefix up to the delimiter are rolled up
	// into one Entry with IsPrefix set. Pagination is hidden.
	List(ctx context.Context, prefix, delimiter string) iter.Seq2[Entry, error]
	// ListAfter is List from the first key after opts.StartAfter (S3's
	// StartAfter): separate ranges of one prefix can be listed in
	// parallel. Where StartAfter falls below a rolled-up prefix (past
	// the delimiter), whether that prefix comes again is the server's.
	// opts.FirstPage sizes the first listing request (see ListOptions).
	ListAfter(ctx context.Context, prefix, delimiter string, opts ListOptions) iter.Seq2[Entry, error]
	// Copy copies src to dst server-side. With Metadata non-nil, dst gets
	// exactly that metadata (REPLACE directive), else src's. With IfMatch,
	// the copy fails with ErrPreconditionFailed when src's ETag differs.
	// ETags follow the content: a copy that only changes metadata keeps
	// the ETag (S3, versitygw, SeaweedFS and Local alike), so IfMatch
	// detects a changed body, not changed metadata. With
	// IfUnmodifiedSince, the copy fails when src's LastModified is later
	// (whole seconds).
	Copy(ctx context.Context, src, dst string, opts CopyOptions) (ObjectInfo, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// DeleteMany removes keys in batches; missing keys are not errors.
	DeleteMany(ctx context.Context, keys []string) error
	// Multipart starts a multipart upload of key. Most callers use Upload,
	// which drives it in parallel.
	Multipart(ctx context.Context, key string, opts PutOptions) (MultipartUpload, error)
	// Uploads yields the multipart uploads in progress (started, neither
	// completed nor aborted) whose keys start with prefix, in key order.
	// A live writer's upload is listed too: callers that clean up judge
	// by PendingUpload.Initiated.
	Uploads(ctx context.Context, prefix string) iter.Seq2[PendingUpload, error]
	// AbortUpload aborts one listed upload and discards its parts; an
	// upload already gone is not an error. Objects are never touched.
	AbortUpload(ctx context.Context, u PendingUpload) error
	// Close releases connections and other resources.
	Close() error
}

// MultipartUpload is one multipart upload in progress. UploadPart may be
// called concurrently for distinct part numbers.
type MultipartUpload interface {
	// UploadPart uploads part number n (1-based) with a per-part checksum.
	UploadPart(ctx context.Context, n int, body []byte) (Part, error)
	// Complete assembles the parts (in part-number order) into the object.
	Complete(ctx context.Context, parts []Part) (ObjectInfo, error)
	// Abort discards the upload and every part stored so far.
	Abort(ctx context.Context) error
}

// PendingUpload is a multipart upload in progress, as Uploads lists it.
type PendingUpload struct {
	Key       string
	ID        string
	Initiated time.Time
}

// Part identifies an uploaded part for Complete.
type Part struct {
	Number   int
	ETag     string
	Size     int64
	Checksum string // base64 checksum the server confirmed, if any
}

// ObjectInfo describes one stored object. LastModified is the server's
// from Head, Get and List (and Copy, where the server says it); Put and
// Complete on S3 give the client's clock instead, so a condition on
// LastModified must come from a Head.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
	Metadata     map[string]string
}

// Entry is one item of a listing: an object, or (IsPrefix) a common
// prefix ending in the delimiter.
type Entry struct {
	Key          string
	IsPrefix     bool
	Size         int64
	ETag         string
	LastModified time.Time
}

// ListOptions apply to ListAfter.
type ListOptions struct {
	// StartAfter lists from the first key after it ("": from the start).
	StartAfter string
	// FirstPage, when positive, is how many entries the first listing
	// request asks for (S3's MaxKeys; at MaxListPage or beyond, the
	// server's default page); later requests ask for the default page.
	// A caller that stops at a bound it knows asks for about as many
	// entries as lie before it, so the server neither reads nor sends a
	// page of entries the caller drops. Local, which has no pages,
	// ignores it.
	FirstPage int
}

// MaxListPage is the most entries one S3 listing request returns, and
// the page size of S3 and versitygw when MaxKeys is not given.
const MaxListPage = 1000

// PutOptions apply to Put, Multipart and Upload.
type PutOptions struct {
	Metadata    map[string]string
	IfNoneMatch bool   // create only: fail if the key exists
	IfMatch     string // replace only: fail unless the current ETag is this
}

// GetOptions select a byte range and a version. A range starting at or
// past the end of the object (and Length 0) yields an empty body, not an
// error; a range running past the end is cut at the end.
type GetOptions struct {
	Offset  int64
	Length  int64 // < 0: to the end of the object
	IfMatch string
}

// CopyOptions control a server-side copy.
type CopyOptions struct {
	Metadata map[string]string // nil: keep the source's metadata
	IfMatch  string            // x-amz-copy-source-if-match
	// IfUnmodifiedSince (x-amz-copy-source-if-unmodified-since), if not
	// zero: the copy fails with ErrPreconditionFailed when the source's
	// LastModified, in whole seconds (what the HTTP header carries), is
	// after it in whole seconds. It is ignored when IfMatch is set and
	// holds (S3's documented rule, which versitygw and SeaweedFS follow).
	// A change within the same second goes unseen, and on servers whose
	// metadata-only copy keeps LastModified (versitygw) so does every
	// metadata-only change: doc.go has what each server does.
	IfUnmodifiedSince time.Time
}

// Typed errors callers branch on with errors.Is.
var (
	ErrNotFound           = errors.New("object not found")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrAccessDenied       = errors.New("access denied")
	ErrSSEKey             = errors.New("SSE-C key missing or wrong")
	ErrSSECRefused        = errors.New("bucket refuses SSE-C")
	ErrThrottled          = errors.New("throttled")
	ErrTransient          = errors.New("transient failure")
	ErrInvalidKey         = errors.New("invalid key") // empty, over MaxKeyLen bytes, or not UTF-8
)

// Error carries the operation and key of a failure; Err is one of the
// typed errors above where one applies, else the underlying error.
type Error struct {
	Op  string
	Key string
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Op, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
