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

// This file is the upload pipeline (DESIGN.md §5): how a file staged
// here becomes a stored object. A closed file flows through it in one
// direction:
//
//	handOffLocked       the last close of a changed file arms its upload (WritebackDelay)
//	scheduleLocked      one armed timer (v.clock) per waiting file
//	upload              with upMu held: takes the job (file.uploadJobLocked), then
//	storeStaged         seals the metadata and encrypts the body while uploading it
//	                    (putBody): one PUT or a parallel multipart upload (put), at
//	                    most UploadConcurrency at once (upSem)
//	storedLocked        the new version is the file's (file.go), and
//	uploadedLocked      it leaves the pipeline: forgotten, or waiting again if it changed;
//	uploadFailedLocked  or the failure is kept for fsync and Flush, and retried (retryDelay)
//
// The rest of fs uses the pipeline only through handOffLocked (Close),
// uploadNow (fsync, Flush), upload (a rename, which moves what is
// stored, uploads first), Flush and putBody (symlinks). The states it
// moves a file through are tabled at type file.
//
// The upload journal (crash safety, DESIGN.md §5) hooks in where a file
// enters and leaves the pipeline: a closed file enters only in
// handOffLocked, and leaves in uploadedLocked once stored, or in
// forgetLocked when it is unlinked or replaced first (dropFileLocked).

// handOffLocked is where a closed file enters the pipeline: the last
// Close of a changed file (v.mu and f.mu held) arms its upload for the
// writeback delay, so that what follows a close within it (rsync's
// utimes, chmod and rename of its temporary file) costs no upload of its
// own. The upload journal records the file here, before close returns.
func (v *Volume) handOffLocked(f *file) {
	f.scheduleLocked(v.opts.WritebackDelay)
}

// scheduleLocked (re)arms the upload timer (f.mu held).
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

// upload stores the staged content as a new object version: a fresh
// ObjectKey, the body encrypted on the fly, If-Match on the version it
// replaces (If-None-Match for O_EXCL creates). Nothing to upload is no
// error.
func (f *file) upload(ctx context.Context) error {
	v := f.v
	f.upMu.Lock()
	defer f.upMu.Unlock()
	f.mu.Lock()
	job, ok := f.uploadJobLocked()
	f.mu.Unlock()
	if !ok {
		return nil
	}

	n, err := v.storeStaged(ctx, job)

	v.mu.Lock()
	defer v.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		v.uploadFailedLocked(ctx, f, job, err)
		return err
	}
	f.storedLocked(job, n)
	v.uploadedLocked(f)
	return nil
}

// storeStaged stores the staged content of job as the object of its
// path, at most UploadConcurrency uploads at once, and returns the new
// version.
func (v *Volume) storeStaged(ctx context.Context, job uploadJob) (*node, error) {
	select {
	case v.upSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-v.upSem }()
	p, attr := job.path, job.attr
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
	size := job.st.Size()
	info, err := v.putBody(ctx, key, okey, job.st.NewReader(), size, meta, job.opts)
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
	return v.rewrapStale(ctx, key, okey, meta, info), nil
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

// uploadedLocked is where a stored upload leaves the pipeline (v.mu and
// f.mu held, after storedLocked): a closed file that changed meanwhile
// waits for the writeback delay again, a clean one is forgotten. The
// upload journal drops a file's record here once it is clean.
func (v *Volume) uploadedLocked(f *file) {
	f.uploadErr, f.retries = nil, 0
	if f.refs > 0 {
		return
	}
	if f.dirty {
		f.scheduleLocked(v.opts.WritebackDelay)
	} else {
		v.forgetLocked(f)
	}
}

// uploadFailedLocked records a failed upload of f (v.mu and f.mu held)
// for fsync and Flush to report, and retries it in the background while
// the file is closed: 1 s after the first failure, twice as late after
// each one more, at most a minute. An upload refused because the object
// changed in the store since the version f replaces is not retried: the
// local version is kept until unmount.
func (v *Volume) uploadFailedLocked(ctx context.Context, f *file, job uploadJob, err error) {
	f.uploadErr = err
	switch {
	case errors.Is(err, blobstore.ErrPreconditionFailed):
		v.logEvent(slog.LevelError, "not uploading: the object changed in the store since this version was opened; the local version is kept until unmount",
			job.path, "", "err", err)
	case ctx.Err() == nil && !v.closed && f.refs == 0:
		f.retries++
		delay := retryDelay(f.retries)
		v.logEvent(slog.LevelWarn, "upload failed, retrying", job.path, "", "in", delay, "err", err)
		f.scheduleLocked(delay)
	}
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
	if err := v.flushDirs(ctx, ""); err != nil {
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
