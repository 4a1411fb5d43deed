package blobstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Upload defaults, measured with BenchmarkS3UploadGrid on versitygw
// (256 MiB, 8/16/32 MiB parts x 4/8 in flight): on loopback they are
// within noise of each other; 8 in flight suits real S3's latency and
// 8 MiB parts keep the buffer bound at (8+1) x 8 MiB = 72 MiB.
const (
	DefaultPartSize          = 8 << 20
	DefaultUploadConcurrency = 8
	DefaultPartRetries       = 4
	MinPartSize              = 5 << 20 // S3's smallest non-last part
	MaxParts                 = 10000   // S3's part count limit
	// smallPut is the largest body of known size that Upload sends
	// from a buffer of its own size rather than a part buffer.
	smallPut = 1 << 20
)

// Backoff for retried parts: exponential from retryBase, capped at
// retryCap, with jitter.
const (
	retryBase    = 200 * time.Millisecond
	retryCap     = 10 * time.Second
	abortTimeout = time.Minute
)

// UploadOptions configure Upload.
type UploadOptions struct {
	PutOptions
	// PartSize is the size of every part but the last; 0:
	// DefaultPartSize. With a known size it grows as needed to stay
	// within MaxParts.
	PartSize int64
	// Concurrency is the number of parts in flight; 0:
	// DefaultUploadConcurrency.
	Concurrency int
	// Progress, if set, is called with the number of bytes stored so far
	// after each part (and after a single Put); never concurrently.
	Progress func(done int64)
	// Retries is how often a part (or a single Put, or Complete) is
	// retried after ErrTransient or ErrThrottled; 0: DefaultPartRetries,
	// < 0: never.
	Retries int
	// Pool, if set, supplies the part buffers, bounding memory across
	// all uploads that share it; its part size overrides PartSize.
	// Without it each Upload allocates at most Concurrency+1 buffers.
	Pool *PartPool
}

// PartPool hands out part buffers, at most n of them at a time.
type PartPool struct {
	size   int64
	tokens chan struct{}
	free   chan []byte
}

// NewPartPool returns a pool of at most n buffers of partSize bytes,
// allocated on first use (n < 1 counts as 1). Uploads sharing a pool
// cannot deadlock: each holds at most one buffer it is not uploading.
func NewPartPool(partSize int64, n int) *PartPool {
	n = max(n, 1)
	return &PartPool{size: partSize, tokens: make(chan struct{}, n), free: make(chan []byte, n)}
}

// PartSize is the size of the pool's buffers.
func (p *PartPool) PartSize() int64 { return p.size }

// Get waits for a free buffer.
func (p *PartPool) Get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	select {
	case b := <-p.free:
		return b, nil
	case p.tokens <- struct{}{}:
		return make([]byte, p.size), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Put returns a buffer obtained from Get.
func (p *PartPool) Put(b []byte) { p.free <- b[:cap(b)] }

// Upload stores size bytes of r under key (size < 0: until EOF). Up to
// one part's worth it is a single Put; above, a multipart upload with
// Concurrency parts in flight, each retried with backoff on transient
// failures. On failure the multipart upload is aborted, so no parts are
// left behind. Memory: at most Concurrency+1 buffers of PartSize.
func Upload(ctx context.Context, s Store, key string, r io.Reader, size int64, opts UploadOptions) (ObjectInfo, error) {
	u := newUploader(s, key, size, opts)
	if size > 0 && (size+u.partSize-1)/u.partSize > MaxParts {
		return ObjectInfo{}, &Error{Op: "upload", Key: key, Err: fmt.Errorf("%d bytes need more than %d parts of the pool's %d bytes", size, MaxParts, u.partSize)}
	}
	if size >= 0 && size <= min(smallPut, u.partSize) {
		// A small body of known size takes no part buffer: thousands of
		// small files would each wait for, and clear, a part-sized
		// buffer of the shared pool (8 MiB for a 4 KiB file).
		body := make([]byte, size)
		if _, _, err := u.readPart(r, body); err != nil {
			return ObjectInfo{}, err
		}
		return u.single(ctx, body)
	}
	first, err := u.next(ctx, r)
	if err != nil {
		return ObjectInfo{}, err
	}
	if !first.last && size < 0 {
		// Unknown size and a full buffer: peek one byte before choosing,
		// so that input of exactly one part is still a single Put. (A
		// second buffer could deadlock uploads sharing a small pool.)
		var peek [1]byte
		n, err := io.ReadFull(r, peek[:])
		switch {
		case err == io.EOF:
			first.last = true
		case err != nil:
			u.pool.Put(first.buf)
			return ObjectInfo{}, &Error{Op: "upload", Key: key, Err: err}
		default:
			r = io.MultiReader(bytes.NewReader(peek[:n]), r)
		}
	}
	if first.last {
		defer u.pool.Put(first.buf)
		return u.single(ctx, first.buf[:first.n])
	}
	queue := []filled{first}
	return u.multipart(ctx, r, queue)
}

// filled is a part buffer holding n bytes of input; last: no more follow.
type filled struct {
	buf  []byte
	n    int
	last bool
}

// next reads the next part into a buffer from the pool.
func (u *uploader) next(ctx context.Context, r io.Reader) (filled, error) {
	buf, err := u.pool.Get(ctx)
	if err != nil {
		return filled{}, &Error{Op: "upload", Key: u.key, Err: err}
	}
	n, last, err := u.readPart(r, buf)
	if err != nil {
		u.pool.Put(buf)
		return filled{}, err
	}
	return filled{buf, n, last}, nil
}

type uploader struct {
	s           Store
	key         string
	size        int64
	opts        PutOptions
	partSize    int64
	concurrency int
	retries     int
	pool        *PartPool
	read        int64 // bytes read from r so far

	progressMu sync.Mutex
	done       int64
	progress   func(int64)
}

func newUploader(s Store, key string, size int64, opts UploadOptions) *uploader {
	u := &uploader{s: s, key: key, size: size, opts: opts.PutOptions, partSize: opts.PartSize,
		concurrency: opts.Concurrency, retries: opts.Retries, progress: opts.Progress, pool: opts.Pool}
	if u.partSize <= 0 {
		u.partSize = DefaultPartSize
	}
	if size > 0 && (size+u.partSize-1)/u.partSize > MaxParts {
		const mib = 1 << 20
		u.partSize = ((size+MaxParts-1)/MaxParts + mib - 1) / mib * mib
	}
	if u.concurrency <= 0 {
		u.concurrency = DefaultUploadConcurrency
	}
	switch {
	case u.retries == 0:
		u.retries = DefaultPartRetries
	case u.retries < 0:
		u.retries = 0
	}
	if u.pool != nil {
		u.partSize = u.pool.PartSize()
	} else {
		u.pool = NewPartPool(u.partSize, u.concurrency+1)
	}
	return u
}

// readPart fills buf with the next part; last reports that the input is
// exhausted (known size reached, or EOF).
func (u *uploader) readPart(r io.Reader, buf []byte) (n int, last bool, err error) {
	want := int64(len(buf))
	if u.size >= 0 {
		want = min(want, u.size-u.read)
	}
	n, err = io.ReadFull(r, buf[:want])
	u.read += int64(n)
	switch {
	case u.size >= 0 && err == nil:
		return n, u.read == u.size, nil
	case u.size >= 0:
		return 0, false, &Error{Op: "upload", Key: u.key, Err: fmt.Errorf("input ended after %d of %d bytes: %w", u.read, u.size, io.ErrUnexpectedEOF)}
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, true, nil
	case err != nil:
		return 0, false, &Error{Op: "upload", Key: u.key, Err: err}
	}
	// Unknown size and a full buffer: more may follow. A full last part
	// simply becomes a multipart upload's only data part plus an empty
	// tail, which readPart reports as (0, true).
	return n, false, nil
}

func (u *uploader) addProgress(n int64) {
	if u.progress == nil {
		return
	}
	u.progressMu.Lock()
	defer u.progressMu.Unlock()
	u.done += n
	u.progress(u.done)
}

func (u *uploader) single(ctx context.Context, body []byte) (ObjectInfo, error) {
	var info ObjectInfo
	err := u.retry(ctx, func() error {
		var err error
		info, err = u.s.Put(ctx, u.key, bytes.NewReader(body), int64(len(body)), u.opts)
		return err
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	u.addProgress(int64(len(body)))
	return info, nil
}

// multipart uploads the queued parts and the rest of r as parts.
func (u *uploader) multipart(ctx context.Context, r io.Reader, queue []filled) (ObjectInfo, error) {
	defer func() {
		for _, f := range queue {
			u.pool.Put(f.buf)
		}
	}()
	mpu, err := u.s.Multipart(ctx, u.key, u.opts)
	if err != nil {
		return ObjectInfo{}, err
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		parts []Part
		sem   = make(chan struct{}, u.concurrency)
	)
	fail := func(err error) { cancel(err) }
	// A failed read of the input stops new parts but lets those in flight
	// finish: a part request cancelled mid-body can still be running on
	// the server when the abort arrives, and some servers (versitygw) then
	// keep the upload listed after the abort.
	var readErr error
	launch := func(num int, body []byte) {
		defer wg.Done()
		defer func() { <-sem }()
		defer u.pool.Put(body)
		var p Part
		err := u.retry(pctx, func() error {
			var err error
			p, err = mpu.UploadPart(pctx, num, body)
			return err
		})
		if err != nil {
			fail(err)
			return
		}
		mu.Lock()
		parts = append(parts, p)
		mu.Unlock()
		u.addProgress(int64(len(body)))
	}
	for num := 1; ; num++ {
		if len(queue) == 0 {
			f, err := u.next(pctx, r)
			if err != nil {
				readErr = err
				break
			}
			if f.n == 0 && f.last {
				u.pool.Put(f.buf)
				break
			}
			queue = append(queue, f)
		}
		if num > MaxParts {
			fail(&Error{Op: "upload", Key: u.key, Err: fmt.Errorf("more than %d parts of %d bytes: raise the part size", MaxParts, u.partSize)})
			break
		}
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		f := queue[0]
		queue = queue[1:]
		wg.Add(1)
		go launch(num, f.buf[:f.n])
		if f.last {
			break
		}
	}
	wg.Wait()
	err = context.Cause(pctx)
	if err == nil {
		err = readErr
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			err = &Error{Op: "upload", Key: u.key, Err: err}
		}
		return ObjectInfo{}, u.abort(ctx, mpu, err)
	}
	slices.SortFunc(parts, func(a, b Part) int { return cmp.Compare(a.Number, b.Number) })
	var info ObjectInfo
	err = u.retry(ctx, func() error {
		var err error
		info, err = mpu.Complete(ctx, parts)
		return err
	})
	if err != nil {
		return ObjectInfo{}, u.abort(ctx, mpu, err)
	}
	return info, nil
}

// abort discards the upload even when ctx is already cancelled.
func (u *uploader) abort(ctx context.Context, mpu MultipartUpload, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := mpu.Abort(actx); err != nil {
		return fmt.Errorf("%w (and aborting the upload failed: %v)", cause, err)
	}
	return cause
}

// retryable reports failures worth another try.
func retryable(err error) bool {
	return errors.Is(err, ErrTransient) || errors.Is(err, ErrThrottled)
}

// retry runs op, retrying retryable failures with exponential backoff
// and jitter.
func (u *uploader) retry(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || !retryable(err) || attempt >= u.retries {
			return err
		}
		d := min(retryBase<<attempt, retryCap)
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}
