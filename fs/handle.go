package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"time"
)

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

// SetAttr changes the attributes of the open file (fchmod, ftruncate,
// futimens), found by its handle: a file unlinked or replaced while open
// has no path, and its changes live only as long as its handles.
func (h *Handle) SetAttr(ctx context.Context, s SetAttr) (Attr, error) {
	f := h.f
	f.mu.Lock()
	removed, p := f.removed, f.path
	f.mu.Unlock()
	if !removed {
		return f.v.SetAttr(ctx, p, s)
	}
	if s.Size != nil {
		if err := f.truncate(ctx, *s.Size, false); err != nil {
			return Attr{}, err
		}
	}
	return h.changeRemoved(func(a Attr) (Attr, error) { return applySetAttr(a, s), nil })
}

// Setxattr and Removexattr change an extended attribute of the open file
// (fsetxattr, fremovexattr); see SetAttr.
func (h *Handle) Setxattr(ctx context.Context, name string, value []byte, flags int) error {
	return h.changeXattr(ctx, func(a Attr) (Attr, error) { return setXattr(a, name, value, flags) })
}

func (h *Handle) Removexattr(ctx context.Context, name string) error {
	return h.changeXattr(ctx, func(a Attr) (Attr, error) { return removeXattr(a, name) })
}

func (h *Handle) changeXattr(ctx context.Context, change func(Attr) (Attr, error)) error {
	f := h.f
	f.mu.Lock()
	removed, p := f.removed, f.path
	f.mu.Unlock()
	if !removed {
		_, err := f.v.changeAttr(ctx, p, change)
		return f.v.finish("setxattr", p, err)
	}
	_, err := h.changeRemoved(change)
	return err
}

// changeRemoved changes the attributes of a removed file in memory.
func (h *Handle) changeRemoved(change func(Attr) (Attr, error)) (Attr, error) {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := change(f.attr)
	if err != nil {
		return Attr{}, err
	}
	a.touch(time.Now())
	f.attr = a
	if f.st != nil {
		a.Size = f.st.Size()
	} else if f.node != nil {
		a.Size = f.node.attr.Size
	}
	return a, nil
}

// Create creates (or with O_TRUNC truncates) a regular file and opens it
// for writing. With O_EXCL an existing path is EEXIST, and the upload is
// a conditional create. mode holds permission bits.
func (v *Volume) Create(ctx context.Context, path string, mode uint32, flags int) (*Handle, Attr, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return nil, Attr{}, v.finish("create", path, err)
	}
	defer end()
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
	// Its first upload is a conditional create (If-None-Match), O_EXCL or
	// not: the lookup above may be stale, and if another mount created
	// the path meanwhile, neither version is lost (conflicts, writeback.go).
	f := &file{
		v: v, path: p, dirty: true, excl: true,
		attr: v.newAttr(ctx, p, syscall.S_IFREG|mode&0o7777),
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
	v.touchParent(p, f.attr.Mtime)
	return &Handle{f: f, writable: true, append: flags&syscall.O_APPEND != 0}, nil
}

// Open opens an existing file; flags are open(2) flags (O_RDONLY,
// O_WRONLY, O_RDWR, O_TRUNC, O_APPEND). Opening a stored file for writing
// copies its content into staging at the first change, not at open.
func (v *Volume) Open(ctx context.Context, path string, flags int) (*Handle, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return nil, v.finish("open", path, err)
	}
	defer end()
	h, err := v.open(ctx, path, flags)
	return h, v.finish("open", path, err)
}

func (v *Volume) open(ctx context.Context, p string, flags int) (*Handle, error) {
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	// Linux truncates with O_TRUNC whatever the access mode (the kernel
	// checked write permission).
	trunc := flags&syscall.O_TRUNC != 0
	if writable || trunc {
		if err := v.checkWritable(p); err != nil {
			return nil, err
		}
	}
	f, err := v.acquire(ctx, p)
	if err != nil {
		return nil, err
	}
	if !writable && !trunc {
		f.mu.Lock()
		n, staged := f.node, f.st != nil
		f.mu.Unlock()
		if !staged {
			v.opened(ctx, p, n) // directory read-ahead (dirahead.go)
		}
	}
	h := &Handle{f: f, writable: writable, append: flags&syscall.O_APPEND != 0}
	if trunc {
		if err := f.truncate(ctx, 0, true); err != nil {
			h.Close(ctx)
			return nil, err
		}
	}
	return h, nil
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
	case n.attr.IsSpecial():
		return nil, syscall.EINVAL // the kernel opens those itself
	case n.key == "":
		return nil, n.unreadable()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.files[p]
	if f == nil && n.link != nil {
		f = v.fileOfInodeLocked(n.link.link.Inode) // open through another name
	}
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
	rv, err := h.ReadView(ctx, p, off)
	if rv == nil {
		return 0, err
	}
	n := rv.copyTo(p)
	rv.Release()
	return n, err
}

// ReadView reads like ReadAt, but returns the bytes as a view: of p, or
// of the file's read-ahead buffers without a copy. The caller must
// Release it. It is nil when the error is not io.EOF.
func (h *Handle) ReadView(ctx context.Context, p []byte, off int64) (*ReadView, error) {
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
			return nil, f.v.stagingFailed(f, err)
		}
		return &ReadView{Slices: [][]byte{p[:n]}}, err
	}
	rv, err := rd.view(ctx, int64(len(p)), off)
	if e := Errno(err); e == syscall.ENOENT || e == syscall.ESTALE {
		// An unlink or rename over the file while this read was in
		// flight gave the handles a private copy, then removed the
		// object: read the copy.
		f.mu.Lock()
		st = f.st
		f.mu.Unlock()
		if st != nil {
			return h.ReadView(ctx, p, off)
		}
	}
	if err != nil {
		if Errno(err) == syscall.EIO {
			err = f.v.failEIO("read", rd.n.path, rd.n.key, err)
		}
		return nil, err
	}
	if rv.Len() < len(p) {
		return rv, io.EOF
	}
	return rv, nil
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
	if err := f.keepJournalled(-1); err != nil {
		return 0, f.v.stagingFailed(f, err)
	}
	if h.append {
		off = f.st.Size()
	}
	if limit := f.v.maxFileSize(); off+int64(len(p)) > limit {
		if off >= limit {
			return 0, withErrno(syscall.EFBIG, fmt.Errorf("a write at %d: the largest file the volume stores is %d bytes", off, limit))
		}
		p = p[:limit-off]
	}
	n, err := f.st.WriteAt(p, off)
	f.changedAt(off, n)
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

// Fsync uploads the file now if it has changes and returns the upload's
// error, or the error of a failed upload since the last fsync.
func (h *Handle) Fsync(ctx context.Context) error {
	return h.f.uploadNow(ctx)
}

// Flush is one close(2) of the file (FUSE FLUSH, which close waits for;
// the release that ends the handle, Close, comes later and nobody waits
// for it): staged changes not yet stored are journalled now, so that
// their upload survives the death of the process from the moment close
// returns. It never waits for the upload.
func (h *Handle) Flush(ctx context.Context) error {
	if h.closed || !h.writable {
		return nil
	}
	f := h.f
	f.mu.Lock()
	err := f.recordLocked()
	p := f.path
	f.mu.Unlock()
	if err != nil {
		return f.v.finish("close", p, f.v.journalFailed(p, err))
	}
	return nil
}

// journalFailed reports a record the journal could not write: ENOSPC on
// a full disk, else EIO (logged). The file is still staged and uploaded
// as usual; only a crash before its upload would lose it.
func (v *Volume) journalFailed(p string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		v.logEvent(slog.LevelWarn, "upload journal cannot grow: reporting ENOSPC; the file is uploaded as usual, but a crash before that would lose it", p, "", "err", err)
		return withErrno(syscall.ENOSPC, err)
	}
	return v.failEIO("upload journal failed; the file is uploaded as usual, but a crash before that would lose it", p, "", err)
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
		v.handOffLocked(f)
		return nil
	}
	v.forgetLocked(f)
	return nil
}
