package fs

import (
	"context"
	"encoding/hex"
	"errors"
	"io"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// This file is streaming writeback (DESIGN.md §5): a file written
// sequentially from its start past the stream threshold starts its
// multipart upload while it is being written, so that by its fsync or
// last close most of it is stored already.
//
//	wroteLocked      every write: tracks the sequentially written prefix (seqEnd);
//	                 starts the stream past the threshold, or aborts it when a
//	                 write lands below what the stream has read (fed)
//	stream.pump      reads [fed, seqEnd-streamHoldback) back from the staging file,
//	                 evicts each MiB read from the page cache (staging.File.Evict:
//	                 it stays on disk) and encrypts it into the upload (blobstore.Upload of unknown
//	                 size: parts in parallel from the shared part pool, per-part
//	                 checksum and retries)
//	finishStream     the upload (file.upload, upMu held: no writes) feeds the rest,
//	                 seals the final chunk and completes under the condition of
//	                 the version it replaces; then a metadata copy onto itself
//	                 reseals the attributes as they are now (mtime moved since
//	                 the start, where they were sealed)
//
// The staging file stays the source of truth until the upload is stored:
// a stream that is aborted (a write below fed, a gap, a truncate, a
// rename, an unlink, a changed condition, a failed upload) leaves nothing
// behind but an aborted multipart upload, and the file uploads from
// staging as any other. Crash safety is the journal's, unchanged: a
// multipart upload is invisible until completed, so a kill mid-stream
// leaves no object, and recovery uploads the journalled staging file. A
// completion whose metadata copy did not happen before a crash is found
// by its upload tag (the stream's ObjectKey file ID), and settleConflict
// reseals its attributes.
//
// Rename or attribute changes after close (rsync's write-temp, utimens,
// chmod, rename): the last close completes the stream at once (no
// writeback delay for a streamed file), the attribute changes after it
// are the ordinary metadata copies of a stored file, and a rename of the
// closed file finishes the stream first (rename.go: it does not race the
// completion) and copies the object server-side. The alternative, holding
// the completion for the writeback delay, cannot save the copy: S3 fixes
// an upload's key and metadata at CreateMultipartUpload, so a rename
// within the delay aborts the stream and uploads the body again from
// staging; it only coalesces the metadata copies (about 10 ms each
// here). Measured on versitygw, 1 GiB, rsync's close/utimens/chmod/rename
// until stored, alternating, load 16-22 (2026-12-02): finish and copy
// 37.8, 64.3, 46.0 s; hold 30.0, 49.8, 59.4 s: no clear winner on a
// server whose copy rereads the object (versitygw's CopyObject of 1 GiB
// took 8-20 s there), while holding costs every plain close (cp, dd
// without fsync) the writeback delay and every rename a second upload
// over the network, where a real store copies server-side. So the
// stream finishes and copies; the price is that rename(2) waits for the
// completion and the copy.

// Stream geometry.
const (
	// streamHoldback is how far behind the written prefix the stream
	// reads, so that a writer rewriting its last bytes does not abort it.
	streamHoldback = 1 << 20
	// streamRead is the size of one read from staging.
	streamRead = 1 << 20
)

// errStreamAborted ends a stream that is no longer wanted.
var errStreamAborted = errors.New("streaming upload aborted")

// stream is the multipart upload of a file being written.
type stream struct {
	key, path, long string
	okey            *cipher.ObjectKey
	tag             uploadTag
	attr            Attr // as sealed into the upload's metadata
	opts            blobstore.PutOptions

	wake   chan struct{} // more was written
	finish chan struct{} // closed: feed the rest and complete
	cancel context.CancelFunc
	pw     *io.PipeWriter
	done   chan struct{} // closed once the upload ended; then info, err
	info   blobstore.ObjectInfo
	err    error

	fed     int64 // plaintext bytes claimed by the pump (f.mu)
	aborted bool  // (f.mu)
}

// streamThreshold is the written prefix at which a file starts streaming
// (< 0: never).
func (v *Volume) streamThreshold() int64 {
	if v.opts.StreamThreshold != 0 {
		return v.opts.StreamThreshold
	}
	return 2 * v.pool.PartSize()
}

// wroteLocked records a write of n bytes at off (f.mu held) for the
// stream: it starts, advances or aborts it.
func (f *file) wroteLocked(off int64, n int) {
	end := off + int64(n)
	if s := f.stream; s != nil && off < s.fed {
		f.abortStreamLocked() // a range already read for the upload changed
	}
	switch {
	case off <= f.seqEnd:
		f.seqEnd = max(f.seqEnd, end)
	default:
		f.noStream = true // a gap: not sequential
		f.abortStreamLocked()
	}
	if f.noStream || f.removed || f.linkLocked() != nil { // a hard link's content goes to its inode (storeInode)
		return
	}
	if f.stream == nil {
		if t := f.v.streamThreshold(); t < 0 || f.seqEnd < t {
			return
		}
		if err := f.startStreamLocked(); err != nil {
			f.noStream = true
			f.v.log.Debug("not streaming", "err", err)
			return
		}
	}
	if f.seqEnd-streamHoldback-f.stream.fed >= streamRead {
		select {
		case f.stream.wake <- struct{}{}:
		default:
		}
	}
}

// truncatedLocked: a truncate ends streaming of this version; a
// truncate to 0 starts over.
func (f *file) truncatedLocked(size int64) {
	f.abortStreamLocked()
	f.seqEnd = 0
	f.noStream = size != 0
}

// startStreamLocked starts the multipart upload of f (f.mu held).
func (f *file) startStreamLocked() error {
	v := f.v
	key, long, err := v.objectKey(f.path)
	if err != nil {
		return err
	}
	// The stream's key and tag, which the journal records from now on
	// (upKeyLocked); unused if the stream does not start, they serve the
	// upload from staging.
	if err := f.newUpKeyLocked(); err != nil {
		return err
	}
	okey, tag := f.up.okey, f.up.tag
	meta, err := v.lay.sealMeta(f.path, okey, toCipherAttr(f.attr), long)
	if err != nil {
		return err
	}
	if okey == nil {
		meta[metaUploadTag] = hex.EncodeToString(tag[:])
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return errors.New("volume closed")
	}
	v.bg.Add(1)
	v.mu.Unlock()

	ctx, cancel := context.WithCancel(v.ctx)
	pr, pw := io.Pipe()
	s := &stream{
		key: key, path: f.path, long: long, okey: okey, tag: tag, attr: f.attr,
		opts: blobstore.PutOptions{Metadata: meta, IfNoneMatch: f.excl, IfMatch: f.replaces},
		wake: make(chan struct{}, 1), finish: make(chan struct{}),
		cancel: cancel, pw: pw, done: make(chan struct{}),
	}
	f.stream = s
	go func() {
		defer v.bg.Done()
		defer cancel()
		s.info, s.err = v.put(ctx, key, pr, -1, s.opts)
		if s.err == nil {
			s.info.Size = max(s.info.Size, 0)
		}
		pr.CloseWithError(errStreamAborted)
		close(s.done)
	}()
	go f.pump(ctx, s)
	return nil
}

// pump feeds what the writer wrote into the upload until it is told to
// finish (then it feeds the rest and closes the body) or is aborted.
func (f *file) pump(ctx context.Context, s *stream) {
	enc := f.v.lay.encrypter(s.okey, s.pw)
	buf := make([]byte, streamRead)
	final := false
	for {
		select {
		case <-s.wake:
		case <-s.finish:
			final = true
		case <-ctx.Done():
			s.pw.CloseWithError(ctx.Err())
			return
		}
		f.mu.Lock()
		if s.aborted {
			f.mu.Unlock()
			return
		}
		st := f.st
		from, to := s.fed, f.seqEnd-streamHoldback
		if final {
			to = st.Size()
		}
		if to > from {
			s.fed = to
		}
		f.mu.Unlock()
		for off := from; off < to; {
			n, err := st.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
			if err == io.EOF && n > 0 {
				err = nil
			}
			if err == nil {
				_, err = enc.Write(buf[:n])
			}
			if err != nil {
				s.pw.CloseWithError(err)
				return
			}
			// Read into the upload: out of the page cache with it (it
			// stays on disk, the source of truth until stored).
			if err := st.Evict(off, off+int64(n)); err != nil {
				f.v.log.Debug("staging: page cache kept", "err", err)
			}
			off += int64(n)
		}
		if final {
			err := enc.Close()
			s.pw.CloseWithError(err) // nil: EOF, the upload completes
			return
		}
	}
}

// abortStreamLocked ends f's stream without completing it (f.mu held):
// the multipart upload is aborted in the background, and the file
// uploads from staging under a fresh key.
func (f *file) abortStreamLocked() {
	s := f.stream
	if s == nil {
		return
	}
	f.stream = nil
	s.aborted = true
	// The body ends in an error: the upload lets the parts in flight
	// finish and aborts (cancelling them could leave the upload listed on
	// a server still writing a part). The pump wakes to see aborted.
	s.pw.CloseWithError(errStreamAborted)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	f.up = upKey{}
}

// streamFits reports whether f's stream can store f as it is now (f.mu
// held): same path, same condition.
func (f *file) streamFitsLocked() bool {
	s := f.stream
	return s != nil && s.path == f.path && s.opts.IfNoneMatch == f.excl && s.opts.IfMatch == f.replaces
}

// finishStream completes job's stream and returns the stored version,
// its attributes resealed as job has them.
func (v *Volume) finishStream(ctx context.Context, job uploadJob) (*node, error) {
	s := job.stream
	close(s.finish)
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		s.pw.CloseWithError(ctx.Err())
		<-s.done
		return nil, ctx.Err()
	}
	if s.err != nil {
		return nil, s.err
	}
	size := job.st.Size()
	sa := s.attr
	sa.Size = size
	n := &node{path: s.path, attr: sa, base: sa, key: s.key, etag: s.info.ETag,
		objSize: v.lay.objectSize(size), okey: s.okey, long: s.long}
	if s.info.Size != 0 {
		n.objSize = s.info.Size
	}
	a := job.attr
	a.Size = size
	if sameSealed(sa, a) {
		// The upload's DEK was wrapped when it started: a rotation that
		// the config refresh saw meanwhile needs the same rewrap as any
		// upload (copyObject below reseals under the current generation).
		info := v.rewrapStale(ctx, s.key, s.okey, s.opts.Metadata, blobstore.ObjectInfo{ETag: n.etag, Size: n.objSize})
		n.etag = info.ETag
		return n, nil
	}
	return v.copyObject(ctx, n, s.key, job.path, s.long, a)
}

// sameSealed reports whether a and b seal to the same attributes.
func sameSealed(a, b Attr) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.Rdev == b.Rdev &&
		a.Changes == b.Changes && a.Xattrs == b.Xattrs &&
		a.Mtime.Equal(b.Mtime) && a.Atime.Equal(b.Atime) && a.Ctime.Equal(b.Ctime)
}
