package fs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Flush uploads every file waiting for its writeback delay now and waits
// until every pending upload finished, calling progress (if not nil) with
// the number still pending. It returns the errors of uploads that failed.
func (v *Volume) Flush(ctx context.Context, progress func(pending int)) error {
	var errs []error
	for {
		v.mu.Lock()
		var todo []*file
		for _, f := range v.files {
			f.mu.Lock()
			if f.dirty && !f.removed {
				todo = append(todo, f)
			}
			f.mu.Unlock()
		}
		v.mu.Unlock()
		if progress != nil {
			progress(len(todo))
		}
		if len(todo) == 0 {
			break
		}
		var emu sync.Mutex
		fanOut(ctx, v.opts.UploadConcurrency, len(todo), func(ctx context.Context, i int) error {
			if err := todo[i].uploadNow(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
			return nil // every file gets its upload
		})
		if len(errs) > 0 || ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// scheduleLocked (re)arms the upload timer.
func (f *file) scheduleLocked(delay time.Duration) {
	if f.timer != nil {
		f.timer.Stop()
	}
	if delay < 0 {
		delay = 0
	}
	f.timer = f.v.clock.AfterFunc(delay, func() {
		v := f.v
		v.mu.Lock()
		if v.closed {
			v.mu.Unlock()
			return
		}
		v.bg.Add(1)
		v.mu.Unlock()
		defer v.bg.Done()
		f.upload(v.ctx)
	})
}

// retryDelay is how long a closed file waits for its next upload after
// failures failed uploads in a row: 1 s, doubling up to a minute.
func retryDelay(failures int) time.Duration {
	return min(time.Second<<min(max(failures-1, 0), 6), time.Minute)
}

// clock arms the timers of delayed uploads; tests replace it to fire
// them by hand.
type clock interface {
	AfterFunc(d time.Duration, fn func()) timer
}

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, fn func()) timer { return time.AfterFunc(d, fn) }

// uploadNow uploads pending changes at once and returns the result (or
// the last failure when there is nothing left to upload).
func (f *file) uploadNow(ctx context.Context) error {
	f.mu.Lock()
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	dirty := f.dirty && !f.removed
	err := f.uploadErr
	f.mu.Unlock()
	if !dirty {
		if err != nil {
			f.mu.Lock()
			f.uploadErr = nil
			f.mu.Unlock()
		}
		return f.v.finish("fsync", f.path, err)
	}
	return f.v.finish("upload", f.path, f.upload(ctx))
}

// upload stores the staged content as a new object version: a fresh
// ObjectKey, the body encrypted on the fly, If-Match on the version it
// replaces (If-None-Match for O_EXCL creates).
func (f *file) upload(ctx context.Context) error {
	v := f.v
	f.upMu.Lock()
	defer f.upMu.Unlock()
	f.mu.Lock()
	if !f.dirty || f.removed || f.st == nil {
		f.mu.Unlock()
		return nil
	}
	p, attr, seq, st := f.path, f.attr, f.seq, f.st
	opts := blobstore.PutOptions{IfNoneMatch: f.excl, IfMatch: f.replaces}
	f.mu.Unlock()

	n, err := v.uploadStaged(ctx, p, attr, st, opts)

	v.mu.Lock()
	defer v.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.uploadErr = err
		if errors.Is(err, blobstore.ErrPreconditionFailed) {
			v.logEvent(slog.LevelError, "not uploading: the object changed in the store since this version was opened; the local version is kept until unmount",
				p, "", "err", err)
		} else if ctx.Err() == nil && !v.closed && f.refs == 0 {
			f.retries++
			delay := retryDelay(f.retries)
			v.logEvent(slog.LevelWarn, "upload failed, retrying", p, "", "in", delay, "err", err)
			f.scheduleLocked(delay)
		}
		return err
	}
	if f.node != nil {
		v.dropCached(f.node)
	}
	f.node, f.rd = n, nil
	f.excl, f.replaces = false, n.etag
	f.uploadErr, f.retries = nil, 0
	if f.seq == seq {
		f.dirty = false
	}
	if f.path == p && !f.removed {
		s := *n
		s.attr = f.attr
		s.attr.Size = n.attr.Size
		v.meta.put(&s)
	}
	if f.refs == 0 {
		if f.dirty {
			f.scheduleLocked(v.opts.WritebackDelay)
		} else {
			v.forgetLocked(f)
		}
	}
	return nil
}

// uploadStaged uploads st as the object of path p.
func (v *Volume) uploadStaged(ctx context.Context, p string, attr Attr, st stagingFile, opts blobstore.PutOptions) (*node, error) {
	select {
	case v.upSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-v.upSem }()
	key, long, err := v.objectKey(p)
	if err != nil {
		return nil, err
	}
	okey, err := v.lay.newObjectKey()
	if err != nil {
		return nil, err
	}
	meta, err := v.lay.sealMeta(p, okey, toCipherAttr(attr), long)
	if err != nil {
		return nil, err
	}
	size := st.Size()
	info, err := v.putBody(ctx, key, okey, st.NewReader(), size, meta, opts)
	if err != nil {
		return nil, err
	}
	attr.Size = size
	return &node{path: p, attr: attr, key: key, etag: info.ETag, objSize: info.Size, okey: okey, long: long}, nil
}

// putBody encrypts a plaintext body of size bytes into key.
func (v *Volume) putBody(ctx context.Context, key string, okey *cipher.ObjectKey, plain io.Reader, size int64, meta map[string]string, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	opts.Metadata = meta
	objSize := v.lay.objectSize(size)
	body := plain
	if v.client {
		pr, pw := io.Pipe()
		go func() {
			enc := v.lay.encrypter(okey, pw)
			_, err := io.Copy(enc, plain)
			if err == nil {
				err = enc.Close()
			}
			pw.CloseWithError(err)
		}()
		defer pr.Close()
		body = pr
	}
	info, err := v.put(ctx, key, body, objSize, opts)
	if err != nil {
		return info, err
	}
	if info.Size == 0 && objSize != 0 {
		info.Size = objSize
	}
	return info, nil
}

// put stores a body: one PUT, or a parallel multipart upload above the
// part size.
func (v *Volume) put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	return blobstore.Upload(ctx, v.store, key, body, size, blobstore.UploadOptions{
		PutOptions:  opts,
		Concurrency: v.opts.UploadConcurrency,
		Pool:        v.pool,
	})
}
