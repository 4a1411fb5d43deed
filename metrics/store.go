package metrics

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

// store is a blobstore.Store that counts and times every request of the
// store it wraps, and the body bytes that cross it.
type store struct {
	next blobstore.Store
	m    *Metrics
}

var _ blobstore.Store = (*store)(nil)

// Store returns s wrapped so that every request is counted by operation
// and outcome and timed, and body bytes are counted up and down.
func (m *Metrics) Store(s blobstore.Store) blobstore.Store {
	return &store{next: s, m: m}
}

// outcome is the label of a request's result: the typed error of
// blobstore it carries, else "error".
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, blobstore.ErrNotFound):
		return "not_found"
	case errors.Is(err, blobstore.ErrPreconditionFailed):
		return "precondition_failed"
	case errors.Is(err, blobstore.ErrAccessDenied), errors.Is(err, blobstore.ErrSSEKey), errors.Is(err, blobstore.ErrSSECRefused):
		return "denied"
	case errors.Is(err, blobstore.ErrThrottled):
		return "throttled"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

// observe records one finished request of op that started at start.
func (m *Metrics) observe(op string, start time.Time, err error) {
	m.requests.WithLabelValues(op, outcome(err)).Inc()
	m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (s *store) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	start := time.Now()
	body = countBody(body, s.m.bytesUp.Add)
	info, err := s.next.Put(ctx, key, body, size, opts)
	s.m.observe("put", start, err)
	return info, err
}

// Get is timed to its response (the body then streams); the body's bytes
// are counted as they are read.
func (s *store) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	start := time.Now()
	rc, info, err := s.next.Get(ctx, key, opts)
	s.m.observe("get", start, err)
	if err != nil {
		return rc, info, err
	}
	return &countingReadCloser{ReadCloser: rc, add: s.m.bytesDown.Add}, info, nil
}

func (s *store) Head(ctx context.Context, key string) (blobstore.ObjectInfo, error) {
	start := time.Now()
	info, err := s.next.Head(ctx, key)
	s.m.observe("head", start, err)
	return info, err
}

// List counts one request per listing (its pages are hidden).
func (s *store) List(ctx context.Context, prefix, delimiter string) iter.Seq2[blobstore.Entry, error] {
	return s.ListAfter(ctx, prefix, delimiter, blobstore.ListOptions{})
}

// ListAfter counts as List does.
func (s *store) ListAfter(ctx context.Context, prefix, delimiter string, opts blobstore.ListOptions) iter.Seq2[blobstore.Entry, error] {
	return func(yield func(blobstore.Entry, error) bool) {
		start := time.Now()
		var lerr error
		for e, err := range s.next.ListAfter(ctx, prefix, delimiter, opts) {
			if err != nil {
				lerr = err
			}
			if !yield(e, err) {
				break
			}
		}
		s.m.observe("list", start, lerr)
	}
}

func (s *store) Copy(ctx context.Context, src, dst string, opts blobstore.CopyOptions) (blobstore.ObjectInfo, error) {
	start := time.Now()
	info, err := s.next.Copy(ctx, src, dst, opts)
	s.m.observe("copy", start, err)
	return info, err
}

func (s *store) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.next.Delete(ctx, key)
	s.m.observe("delete", start, err)
	return err
}

func (s *store) DeleteMany(ctx context.Context, keys []string) error {
	start := time.Now()
	err := s.next.DeleteMany(ctx, keys)
	s.m.observe("delete_many", start, err)
	return err
}

func (s *store) Multipart(ctx context.Context, key string, opts blobstore.PutOptions) (blobstore.MultipartUpload, error) {
	start := time.Now()
	u, err := s.next.Multipart(ctx, key, opts)
	s.m.observe("multipart_create", start, err)
	if err != nil {
		return u, err
	}
	return &upload{next: u, m: s.m}, nil
}

func (s *store) Uploads(ctx context.Context, prefix string) iter.Seq2[blobstore.PendingUpload, error] {
	return func(yield func(blobstore.PendingUpload, error) bool) {
		start := time.Now()
		var lerr error
		for u, err := range s.next.Uploads(ctx, prefix) {
			if err != nil {
				lerr = err
			}
			if !yield(u, err) {
				break
			}
		}
		s.m.observe("list_uploads", start, lerr)
	}
}

func (s *store) AbortUpload(ctx context.Context, u blobstore.PendingUpload) error {
	start := time.Now()
	err := s.next.AbortUpload(ctx, u)
	s.m.observe("multipart_abort", start, err)
	return err
}

func (s *store) Close() error { return s.next.Close() }

// upload counts the requests of one multipart upload.
type upload struct {
	next blobstore.MultipartUpload
	m    *Metrics
}

func (u *upload) UploadPart(ctx context.Context, n int, body []byte) (blobstore.Part, error) {
	start := time.Now()
	p, err := u.next.UploadPart(ctx, n, body)
	u.m.observe("multipart_part", start, err)
	if err == nil {
		u.m.bytesUp.Add(float64(len(body)))
	}
	return p, err
}

func (u *upload) Complete(ctx context.Context, parts []blobstore.Part) (blobstore.ObjectInfo, error) {
	start := time.Now()
	info, err := u.next.Complete(ctx, parts)
	u.m.observe("multipart_complete", start, err)
	return info, err
}

func (u *upload) Abort(ctx context.Context) error {
	start := time.Now()
	err := u.next.Abort(ctx)
	u.m.observe("multipart_abort", start, err)
	return err
}

type countingReader struct {
	r   io.Reader
	add func(float64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(float64(n))
	}
	return n, err
}

// countBody counts what is read from body, keeping it an io.ReadSeeker
// when it is one (the S3 backend resends and signs only those).
func countBody(body io.Reader, add func(float64)) io.Reader {
	switch b := body.(type) {
	case nil:
		return nil
	case io.ReadSeeker:
		return &countingReadSeeker{ReadSeeker: b, add: add}
	}
	return &countingReader{r: body, add: add}
}

type countingReadSeeker struct {
	io.ReadSeeker
	add func(float64)
}

func (c *countingReadSeeker) Read(p []byte) (int, error) {
	n, err := c.ReadSeeker.Read(p)
	if n > 0 {
		c.add(float64(n))
	}
	return n, err
}

type countingReadCloser struct {
	io.ReadCloser
	add func(float64)
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.add(float64(n))
	}
	return n, err
}
