package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// file is the shared state of a file open (or staged, waiting for its
// upload) on this volume. Lock order: a path stripe (v.lockPaths),
// then f.upMu, then v.mu, then f.mu.
type file struct {
	v *Volume

	// upMu excludes uploads (Lock) from changes to the content (RLock),
	// so an upload reads one consistent version of the staging file.
	upMu sync.RWMutex

	mu        sync.Mutex
	path      string
	attr      Attr        // mode, owner, mtime; Size is the stored one when not staged
	node      *node       // the stored version (nil: never stored)
	st        stagingFile // the content, once it is staged
	rd        *reader     // reads of node's version
	refs      int         // open handles
	dirty     bool        // staged changes not yet uploaded
	seq       uint64      // bumped by every change
	excl      bool        // the next upload is a conditional create
	replaces  string      // ETag of the object the next upload replaces, when known
	removed   bool        // unlinked while open: never uploaded
	uploadErr error       // last upload failure, reported to fsync
	timer     timer
	retries   int // failed uploads in a row
}

// snapshot is the file's current node.
func (f *file) snapshot() *node {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n node
	if f.node != nil {
		n = *f.node
	}
	n.path = f.path
	n.attr = f.attr
	if f.st != nil {
		n.attr.Size = f.st.Size()
	} else if f.node != nil {
		n.attr.Size = f.node.attr.Size
	}
	return &n
}

// stagedMeta is what a staging file records (sealed) about its file, so
// that a later upload journal can recover it: the canonical path, the
// attributes, and the ETag of the version it replaces.
type stagedMeta struct {
	Path     string `json:"path"`
	Mode     uint32 `json:"mode"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	MtimeNs  int64  `json:"mtime_ns"`
	Replaces string `json:"replaces,omitempty"`
	Excl     bool   `json:"excl,omitempty"`
}

// journalLocked encodes the file's staged metadata (f.mu held, or f not
// yet shared).
func (f *file) journalLocked() []byte {
	b, _ := json.Marshal(stagedMeta{
		Path: f.path, Mode: f.attr.Mode, UID: f.attr.UID, GID: f.attr.GID,
		MtimeNs: f.attr.Mtime.UnixNano(), Replaces: f.replaces, Excl: f.excl,
	})
	return b
}

// rejournalLocked records a changed path or attributes in the staging
// file (f.mu held); failures only cost recoverability.
func (f *file) rejournalLocked() {
	if f.st == nil {
		return
	}
	if err := f.st.SetMeta(f.journalLocked()); err != nil {
		f.v.log.Warn("recording staged metadata", "err", err)
	}
}

// Handle is an open file. Handles of one path share its state.
type Handle struct {
	f        *file
	writable bool
	append   bool
	closed   bool
}

// Path is the file's current path (it follows renames).
func (h *Handle) Path() string {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	return h.f.path
}

// Stat returns the file's current attributes.
func (h *Handle) Stat() Attr { return h.f.snapshot().attr }

// Create creates (or with O_TRUNC truncates) a regular file and opens it
// for writing. With O_EXCL an existing path is EEXIST, and the upload is
// a conditional create. mode holds permission bits.
func (v *Volume) Create(ctx context.Context, path string, mode uint32, flags int) (*Handle, Attr, error) {
	h, err := v.create(ctx, path, mode, flags)
	if err != nil {
		return nil, Attr{}, v.finish("create", path, err)
	}
	return h, h.Stat(), nil
}

func (v *Volume) create(ctx context.Context, p string, mode uint32, flags int) (*Handle, error) {
	if err := v.checkWritable(p); err != nil {
		return nil, err
	}
	if err := v.checkParent(ctx, p); err != nil {
		return nil, err
	}
	n, err := v.lookup(ctx, p)
	switch {
	case err == nil && flags&syscall.O_EXCL != 0:
		return nil, syscall.EEXIST
	case err == nil && n.isDir():
		return nil, syscall.EISDIR
	case err == nil:
		return v.open(ctx, p, flags) // O_CREAT on an existing file opens it
	case !errors.Is(err, syscall.ENOENT):
		return nil, err
	}
	if _, _, err := v.objectKey(p); err != nil {
		return nil, err
	}
	uid, gid := v.owner(ctx)
	f := &file{
		v: v, path: p, dirty: true, excl: flags&syscall.O_EXCL != 0,
		attr: Attr{Mode: syscall.S_IFREG | mode&0o7777, UID: uid, GID: gid, Mtime: time.Now()},
	}
	st, err := v.local.newStaging(f.journalLocked())
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	f.st = st
	v.mu.Lock()
	if other := v.files[p]; other != nil {
		v.mu.Unlock()
		st.Remove()
		if flags&syscall.O_EXCL != 0 {
			return nil, syscall.EEXIST
		}
		return v.open(ctx, p, flags)
	}
	v.files[p] = f
	f.refs = 1
	v.mu.Unlock()
	v.meta.invalidate(p)
	v.meta.added(p)
	return &Handle{f: f, writable: true, append: flags&syscall.O_APPEND != 0}, nil
}

// checkParent checks that p's parent is a directory.
func (v *Volume) checkParent(ctx context.Context, p string) error {
	if p == "/" {
		return syscall.EEXIST
	}
	n, err := v.lookup(ctx, parentOf(p))
	if err != nil {
		return err
	}
	if !n.isDir() {
		return syscall.ENOTDIR
	}
	return nil
}

// Open opens an existing file; flags are open(2) flags (O_RDONLY,
// O_WRONLY, O_RDWR, O_TRUNC, O_APPEND). Opening a stored file for writing
// copies its content into staging at the first change, not at open.
func (v *Volume) Open(ctx context.Context, path string, flags int) (*Handle, error) {
	h, err := v.open(ctx, path, flags)
	return h, v.finish("open", path, err)
}

func (v *Volume) open(ctx context.Context, p string, flags int) (*Handle, error) {
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if writable {
		if err := v.checkWritable(p); err != nil {
			return nil, err
		}
	}
	f, err := v.acquire(ctx, p)
	if err != nil {
		return nil, err
	}
	h := &Handle{f: f, writable: writable, append: flags&syscall.O_APPEND != 0}
	if writable && flags&syscall.O_TRUNC != 0 {
		if err := f.truncate(ctx, 0); err != nil {
			h.Close(ctx)
			return nil, err
		}
	}
	return h, nil
}

// pathStripes is the number of path locks of a Volume.
const pathStripes = 64

// lockPaths locks the path stripes of ps (in stripe order, each once)
// and returns the unlock. It makes an open's lookup and registration in
// v.files atomic with respect to an unlink or rename of the same path,
// which checks v.files and then deletes or replaces the object: without
// it an open could register a version whose object had just gone, with
// no private copy (keepContent), and its reads fail. Holders: acquire
// (p), unlink (p), renameFile (old and new). None of them calls another
// holder, nor takes a stripe while holding v.mu, f.upMu or f.mu.
func (v *Volume) lockPaths(ps ...string) func() {
	idx := make([]int, 0, len(ps))
	for _, p := range ps {
		h := fnv.New32a()
		h.Write([]byte(p))
		i := int(h.Sum32() % pathStripes)
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		if !v.paths[i].TryLock() {
			if v.pathWait != nil {
				v.pathWait()
			}
			v.paths[i].Lock()
		}
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			v.paths[i].Unlock()
		}
	}
}

// acquire returns the shared state of regular file p with one more
// reference.
func (v *Volume) acquire(ctx context.Context, p string) (*file, error) {
	defer v.lockPaths(p)()
	v.mu.Lock()
	if f := v.files[p]; f != nil {
		f.mu.Lock()
		f.refs++
		f.mu.Unlock()
		v.mu.Unlock()
		return f, nil
	}
	v.mu.Unlock()
	n, err := v.lookup(ctx, p)
	if err != nil {
		return nil, err
	}
	switch {
	case n.isDir():
		return nil, syscall.EISDIR
	case n.attr.IsSymlink():
		return nil, syscall.ELOOP
	case n.key == "":
		return nil, n.unreadable()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.files[p]
	if f == nil {
		f = &file{v: v, path: p, node: n, attr: n.attr, replaces: n.etag}
		v.files[p] = f
	}
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
	return f, nil
}

// ReadAt reads plaintext at off; at the end of the file it returns fewer
// bytes and io.EOF.
func (h *Handle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	f := h.f
	f.mu.Lock()
	st := f.st
	var rd *reader
	if st == nil {
		rd = f.readerLocked()
	}
	f.mu.Unlock()
	if st != nil {
		n, err := st.ReadAt(p, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return n, f.v.stagingFailed(f, err)
		}
		return n, err
	}
	n, err := rd.ReadAt(ctx, p, off)
	if e := Errno(err); e == syscall.ENOENT || e == syscall.ESTALE {
		// An unlink or rename over the file while this read was in
		// flight gave the handles a private copy, then removed the
		// object: read the copy.
		f.mu.Lock()
		st = f.st
		f.mu.Unlock()
		if st != nil {
			return h.ReadAt(ctx, p, off)
		}
	}
	if err != nil && !errors.Is(err, io.EOF) && Errno(err) == syscall.EIO {
		err = f.v.failEIO("read", rd.n.path, rd.n.key, err)
	}
	return n, err
}

// stagingFailed reports a staging file that failed to read or
// authenticate (EIO, logged), or to grow on a full disk (ENOSPC, which
// tells the user what to do).
func (v *Volume) stagingFailed(f *file, err error) error {
	f.mu.Lock()
	p := f.path
	f.mu.Unlock()
	if errors.Is(err, syscall.ENOSPC) {
		v.logEvent(slog.LevelWarn, "staging file cannot grow: reporting ENOSPC", p, "", "err", err)
		return withErrno(syscall.ENOSPC, err)
	}
	return v.failEIO("staging file failed", p, "", err)
}

func (f *file) readerLocked() *reader {
	if f.rd == nil {
		f.rd = f.v.newReader(f.node)
	}
	return f.rd
}

// WriteAt writes p at off (at the end with O_APPEND).
func (h *Handle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if !h.writable {
		return 0, syscall.EBADF
	}
	f := h.f
	f.upMu.RLock()
	defer f.upMu.RUnlock()
	if err := f.stage(ctx); err != nil {
		return 0, f.failedWrite(err)
	}
	if h.append {
		off = f.st.Size()
	}
	n, err := f.st.WriteAt(p, off)
	f.changed()
	if err != nil {
		return n, f.v.stagingFailed(f, err)
	}
	return n, nil
}

// failedWrite logs the cause of a write that ends in EIO.
func (f *file) failedWrite(err error) error {
	if err == nil || Errno(err) != syscall.EIO {
		return err
	}
	f.mu.Lock()
	p := f.path
	f.mu.Unlock()
	return f.v.failEIO("write", p, "", err)
}

func (f *file) changed() {
	f.mu.Lock()
	f.dirty = true
	f.seq++
	f.attr.Mtime = time.Now()
	f.mu.Unlock()
}

// truncate sets the size (the caller holds a reference).
func (f *file) truncate(ctx context.Context, size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	f.upMu.RLock()
	defer f.upMu.RUnlock()
	if err := f.stageFor(ctx, size); err != nil {
		return err
	}
	if err := f.st.Truncate(size); err != nil {
		return f.v.stagingFailed(f, err)
	}
	f.changed()
	return nil
}

// stage makes sure the content is in a staging file, copying the stored
// version in.
func (f *file) stage(ctx context.Context) error { return f.stageFor(ctx, -1) }

// stageFor stages the first keep bytes of the stored version (all when
// keep < 0).
func (f *file) stageFor(ctx context.Context, keep int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st != nil {
		return nil
	}
	st, err := f.v.local.newStaging(f.journalLocked())
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if f.node != nil {
		size := f.node.attr.Size
		if keep >= 0 && keep < size {
			size = keep
		}
		if err := f.readerLocked().copyTo(ctx, st, size); err != nil {
			st.Remove()
			return err
		}
	}
	f.st = st
	f.rd = nil
	return nil
}

// keepContent gives the handles open on f, whose stored object is about
// to be deleted or replaced (unlink, rename over it), a private copy of
// the version they opened: its plaintext is pulled into a sealed staging
// file, every chunk authenticated on the way, and they read (and write)
// that from then on. All handles of f share the copy; a file that is not
// open, or already staged, needs none. The caller then deletes or
// replaces the object at once: nothing is deferred.
func (f *file) keepContent(ctx context.Context) error {
	f.mu.Lock()
	need := f.refs > 0 && f.st == nil && f.node != nil && !f.removed
	f.mu.Unlock()
	if !need {
		return nil
	}
	return f.stage(ctx)
}

// keptOrLost reports whether an unlink or rename may go on after
// keepContent returned err: when it succeeded, or when the version the
// handles opened is unreadable anyway (gone, replaced by another client,
// failed authentication). Other failures (store unreachable, local disk,
// interrupted) fail the operation, which changed nothing and can be
// retried.
func keptOrLost(err error) bool {
	if err == nil || errors.Is(err, cipher.ErrAuth) || errors.Is(err, cipher.ErrInvalidSize) {
		return true
	}
	switch Errno(err) {
	case syscall.ENOENT, syscall.ESTALE:
		return true
	}
	return false
}

// Fsync uploads the file now if it has changes and returns the upload's
// error, or the error of a failed upload since the last fsync.
func (h *Handle) Fsync(ctx context.Context) error {
	return h.f.uploadNow(ctx)
}

// Close releases the handle; the last close of a changed file schedules
// its upload after the writeback delay. It never waits for the upload.
func (h *Handle) Close(ctx context.Context) error {
	if h.closed {
		return nil
	}
	h.closed = true
	f, v := h.f, h.f.v
	v.mu.Lock()
	defer v.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs--
	if f.refs > 0 {
		return nil
	}
	if f.dirty && !f.removed {
		f.scheduleLocked(v.opts.WritebackDelay)
		return nil
	}
	v.forgetLocked(f)
	return nil
}

// forgetLocked drops a file that is closed and clean (v.mu and f.mu held).
func (v *Volume) forgetLocked(f *file) {
	if f.refs > 0 || (f.dirty && !f.removed) {
		return
	}
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if v.files[f.path] == f {
		delete(v.files, f.path)
	}
	if f.st != nil {
		if err := f.st.Remove(); err != nil {
			v.log.Warn("removing a staging file", "err", err)
		}
		f.st = nil
	}
	if f.node != nil && !f.removed {
		n := *f.node
		n.path, n.attr = f.path, f.attr
		n.attr.Size = f.node.attr.Size
		v.meta.put(&n)
	}
}

// dropFileLocked takes f off path p because its object was deleted or
// replaced (unlink, rename over it): it is never uploaded, its handles
// keep what they have, and its last close forgets it. It returns the
// stored version f had (nil: none). v.mu held, not f.mu.
func (v *Volume) dropFileLocked(f *file, p string) (stored *node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = true
	if v.files[p] == f {
		delete(v.files, p)
	}
	if f.refs == 0 {
		v.forgetLocked(f)
	}
	return f.node
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

// timer is an armed upload; Stop disarms it (*time.Timer).
type timer interface{ Stop() bool }

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
