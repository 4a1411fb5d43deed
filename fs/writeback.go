package fs

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
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
// enters and leaves the pipeline: a closed file is journalled by every
// close(2) (Handle.Flush) and enters the pipeline in handOffLocked; it
// leaves once stored (uploadedLocked, then doneLocked), or in
// forgetLocked when it is unlinked or replaced first (dropFileLocked).
// An upload of a journalled file journals its upload tag first, so a
// later run recognises the object if the upload finishes and the process
// dies before the record is done.
//
// Conflicts: every upload is conditional on the version it replaces
// (If-Match on its ETag; If-None-Match for a file created here).
// Refused, it goes to settleConflict: the object found is this upload
// (a tag of it), or the version it replaced was deleted (the file is
// created again), or another mount changed the file, and then this
// version is stored beside it as NAME.conflict-YYYYMMDD-HHMMSS (UTC, the
// volume's clock; -2, -3, ... when taken) with the same attributes, a
// warning names both, and the file moves to that name.

// handOffLocked is where a closed file enters the pipeline: the last
// Close of a changed file (v.mu and f.mu held) arms its upload for the
// writeback delay, so that what follows a close within it (rsync's
// utimes, chmod and rename of its temporary file) costs no upload of its
// own. Its close(2) journalled it already (Handle.Flush); a Close without
// Flush (the core's own callers) journals it here.
func (v *Volume) handOffLocked(f *file) {
	if err := f.recordLocked(); err != nil {
		v.journalFailed(f.path, err)
	}
	if f.stream != nil {
		// Streamed: most of it is stored already; what follows the
		// close is a metadata copy of a stored file (stream.go).
		f.scheduleLocked(0)
		return
	}
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
		f.mu.Lock()
		reopened := f.kept != nil && f.refs > 0
		f.mu.Unlock()
		if reopened {
			// Opened and changed again since its close: storing now would
			// store the unfinished change. Its next close arms the upload
			// again (handOffLocked); the closed version stays journalled.
			return
		}
		f.upload(v.ctx)
	})
}

// upload stores the staged content as a new object version: a fresh
// ObjectKey, the body encrypted on the fly, If-Match on the version it
// replaces (If-None-Match for O_EXCL creates). Nothing to upload is no
// error.
func (f *file) upload(ctx context.Context) error {
	v := f.v
	if err := f.lockUpload(ctx); err != nil {
		return err
	}
	defer f.unlockUpload()
	f.mu.Lock()
	if !f.dirty || f.removed || f.st == nil {
		f.mu.Unlock()
		return nil
	}
	if f.stream != nil && !f.streamFitsLocked() {
		f.abortStreamLocked()
	}
	if err := f.upKeyLocked(); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.jid != 0 {
		// The record must name the tag this upload stores under.
		if err := f.recordLocked(); err != nil {
			v.journalFailed(f.path, err)
		}
	}
	job, ok := f.uploadJobLocked()
	f.mu.Unlock()
	if !ok {
		return nil
	}

	var n *node
	var err error
	if job.stream != nil {
		n, err = v.finishStream(ctx, job)
		f.mu.Lock()
		if f.stream == job.stream {
			f.stream = nil // finished, or failed: a retry uploads from staging
		}
		f.mu.Unlock()
	} else {
		n, err = v.storeStaged(ctx, job)
	}
	if isConflict(err) {
		n, err = v.settleConflict(ctx, job, err)
	}

	if err == nil && n.path != job.path {
		// Stored as a conflict copy: the file is that copy from now on.
		v.mu.Lock()
		if v.files[job.path] == f {
			v.repathLocked(f, job.path, n.path)
		} else {
			f.mu.Lock()
			f.path = n.path
			f.mu.Unlock()
		}
		v.mu.Unlock()
		job.path = n.path
	}
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
	if !f.dirty {
		f.doneLocked() // still open: the staging file stays, the record goes
	}
	return nil
}

// lockUpload takes f.upMu once no directory rename above f's path is in
// progress (holdUploadsBelow), and counts the upload as running; while
// it waits for a rename, it holds nothing.
func (f *file) lockUpload(ctx context.Context) error {
	v := f.v
	for {
		f.upMu.Lock()
		v.mu.Lock()
		f.mu.Lock()
		p := f.path
		f.mu.Unlock()
		done := v.renameAboveLocked(p)
		if done == nil {
			v.uploading[f] = struct{}{}
			v.mu.Unlock()
			return nil
		}
		v.mu.Unlock()
		f.upMu.Unlock()
		if err := v.awaitRename(ctx, done); err != nil {
			return err
		}
	}
}

// unlockUpload ends an upload lockUpload began.
func (f *file) unlockUpload() {
	v := f.v
	v.mu.Lock()
	delete(v.uploading, f)
	v.uploadEnded.Broadcast()
	v.mu.Unlock()
	f.upMu.Unlock()
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
	if job.link != nil {
		return v.storeInode(ctx, job)
	}
	p, attr := job.path, job.attr
	key, long, err := v.objectKey(p)
	if err != nil {
		return nil, err
	}
	okey := job.up.okey
	meta, err := v.lay.sealMeta(p, okey, toCipherAttr(attr), long)
	if err != nil {
		return nil, err
	}
	if okey == nil {
		meta[metaUploadTag] = hex.EncodeToString(job.up.tag[:])
	}
	size := job.st.Size()
	info, err := v.putBody(ctx, key, okey, job.st.NewReader(), size, meta, job.opts)
	if err != nil {
		return nil, err
	}
	attr.Size = size
	return &node{path: p, attr: attr, base: attr, key: key, etag: info.ETag, objSize: info.Size, okey: okey, long: long}, nil
}

// putBody encrypts a plaintext body of size bytes into key. A body of at
// most one chunk (a small file, a symlink) is sealed in memory, in the
// uploading goroutine; a bigger one is encrypted on the fly by a
// goroutine of its own through a pipe, one chunk at a time. Measured on
// 2000 files of 4 KiB: the pipe, its goroutine and the encrypter's two
// chunk buffers (128 KiB allocated and cleared per file) cost about a
// tenth of the mount's CPU (a CPU profile of the bench's small-file phase).
func (v *Volume) putBody(ctx context.Context, key string, okey *cipher.ObjectKey, plain io.Reader, size int64, meta map[string]string, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	opts.Metadata = meta
	objSize := v.lay.objectSize(size)
	body := plain
	switch {
	case size <= cipher.ChunkSize:
		b := make([]byte, size)
		if _, err := io.ReadFull(plain, b); err != nil {
			return blobstore.ObjectInfo{}, err
		}
		body = bytes.NewReader(v.lay.sealSmall(okey, b))
	case v.client:
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
		Retries:     v.opts.uploadRetries,
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
// each one more, at most a minute. The file stays journalled meanwhile.
func (v *Volume) uploadFailedLocked(ctx context.Context, f *file, job uploadJob, err error) {
	f.uploadErr = err
	switch {
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
// the last failure when there is nothing left to upload). A store that
// fails transiently is retried for the retry budget (retrying).
func (f *file) uploadNow(ctx context.Context) error {
	f.mu.Lock()
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	dirty := f.dirty && !f.removed
	err := f.uploadErr
	p := f.path
	f.mu.Unlock()
	if !dirty {
		if err != nil {
			f.mu.Lock()
			f.uploadErr = nil
			f.mu.Unlock()
		}
		return f.v.finish("fsync", p, err)
	}
	err = f.v.retrying(ctx, f.upload)
	f.mu.Lock()
	p = f.path // a conflict copy moved it
	f.mu.Unlock()
	return f.v.finish("upload", p, err)
}

// retrying calls upload until it succeeds, fails for good, or the store
// has failed transiently (unreachable, stalled, 5xx, throttled) for
// longer than the retry budget: then the last failure is returned,
// marked errBudgetSpent. Each call is bounded by what is left of the
// budget, so no caller waits much longer than it.
func (v *Volume) retrying(ctx context.Context, upload func(context.Context) error) error {
	budget := v.opts.RetryBudget
	deadline := time.Now().Add(budget)
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithDeadline(ctx, deadline)
		err := upload(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !retryable(err) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		wait := min(100*time.Millisecond<<min(attempt-1, 6), 5*time.Second)
		if time.Until(deadline) < wait {
			return withErrno(syscall.EIO, &budgetSpentError{err: err, budget: budget})
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

// retryable reports a store failure that may pass: the store unreachable,
// stalled, failing with 5xx, or throttling.
func retryable(err error) bool {
	return errors.Is(err, blobstore.ErrTransient) || errors.Is(err, blobstore.ErrThrottled)
}

// budgetSpentError is an upload that failed because the store kept
// failing for the whole retry budget.
type budgetSpentError struct {
	err    error
	budget time.Duration
}

func (e *budgetSpentError) Error() string {
	return fmt.Sprintf("the store kept failing for the retry budget (%v): %v", e.budget, e.err)
}

func (e *budgetSpentError) Unwrap() error { return e.err }

// errNotTried is the failure of an upload Flush did not start because the
// store had already failed another for the whole retry budget.
var errNotTried = errors.New("not tried: the store kept failing for the retry budget")

// FlushError is what Flush returns when uploads failed: every file not
// stored, by path, with its error. They stay journalled (and staged) for
// a retry, or for the next mount of the cache dir.
type FlushError struct {
	Failed []FailedUpload
}

// FailedUpload is one file Flush could not store.
type FailedUpload struct {
	Path string
	Err  error
}

func (e *FlushError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d file(s) not uploaded", len(e.Failed))
	for i, f := range e.Failed {
		if i == 8 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-i)
			break
		}
		fmt.Fprintf(&b, "; %v", f.Err)
	}
	return b.String()
}

func (e *FlushError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// Flush uploads every file waiting for its writeback delay now and waits
// until every pending upload finished, calling progress (if not nil) with
// the number still pending. It returns a *FlushError naming the files
// whose upload failed (once the store has failed one upload for the
// whole retry budget, the others are not tried), or ctx's error.
func (v *Volume) Flush(ctx context.Context, progress func(pending int)) error {
	var failed []FailedUpload
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
		spent := false
		fanOut(ctx, v.opts.UploadConcurrency, len(todo), func(ctx context.Context, i int) error {
			f := todo[i]
			emu.Lock()
			skip := spent
			emu.Unlock()
			var err error
			if skip {
				err = errNotTried
			} else {
				err = f.uploadNow(ctx)
			}
			if err != nil {
				f.mu.Lock()
				p := f.path
				f.mu.Unlock()
				var be *budgetSpentError
				emu.Lock()
				spent = spent || errors.As(err, &be)
				failed = append(failed, FailedUpload{Path: p, Err: err})
				emu.Unlock()
			}
			return nil // every file gets its upload (or its failure)
		})
		if len(failed) > 0 || ctx.Err() != nil {
			break
		}
	}
	heldErr := v.storeHeld(ctx, "")                      // a writer's held markers (writeonly.go)
	dirErr := errors.Join(heldErr, v.flushDirs(ctx, "")) // directory times (dirtimes.go)
	v.flushIndexes(ctx)                                  // directory indexes (dirindex.go): best effort
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		slices.SortFunc(failed, func(a, b FailedUpload) int { return strings.Compare(a.Path, b.Path) })
		if dirErr != nil {
			return errors.Join(&FlushError{Failed: failed}, dirErr)
		}
		return &FlushError{Failed: failed}
	}
	return dirErr
}
