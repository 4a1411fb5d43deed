package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	cfs "github.com/cofferfs/coffer/fs"
)

// MountOptions configure Mount. Zero values take the defaults noted.
type MountOptions struct {
	AllowOther bool
	ReadOnly   bool
	Debug      bool // log every FUSE request
	// AttrTimeout and EntryTimeout are how long the kernel trusts
	// attributes and names (0: 1 s); NegativeTimeout for missing names
	// (0: 1 s).
	AttrTimeout, EntryTimeout, NegativeTimeout time.Duration
	MaxWrite                                   int // bytes per WRITE request (0: 1 MiB)
	MaxReadAhead                               int // kernel read-ahead (0: 1 MiB)
	MaxBackground                              int // pending background requests (0: 64)
	// WritebackCache lets the kernel buffer small writes into large ones
	// (FUSE_WRITEBACK_CACHE); the kernel then keeps size and mtime itself
	// while a file is being written.
	WritebackCache bool
	FsName         string
	Logger         *slog.Logger
}

// Mount mounts v at mountpoint and returns once the mount is ready; the
// caller serves until server.Wait returns (after Unmount). As root it
// mounts directly (mount(2)), otherwise through fusermount3.
func Mount(v *cfs.Volume, mountpoint string, opts MountOptions) (*fuse.Server, error) {
	sec := func(d time.Duration) *time.Duration {
		if d == 0 {
			d = time.Second
		}
		return &d
	}
	if opts.MaxWrite == 0 {
		opts.MaxWrite = 1 << 20
	}
	if opts.MaxReadAhead == 0 {
		opts.MaxReadAhead = 1 << 20
	}
	if opts.MaxBackground == 0 {
		opts.MaxBackground = 64
	}
	if opts.FsName == "" {
		opts.FsName = "coffer"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	mo := fuse.MountOptions{
		AllowOther:    opts.AllowOther,
		FsName:        opts.FsName,
		Name:          "coffer",
		Debug:         opts.Debug,
		MaxWrite:      opts.MaxWrite,
		MaxReadAhead:  opts.MaxReadAhead,
		MaxBackground: opts.MaxBackground,
		DirectMount:   os.Geteuid() == 0,
		Logger:        log.New(slogWriter{opts.Logger}, "", 0),
	}
	if opts.WritebackCache {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	// O_TRUNC arrives with the OPEN, so a SETATTR of the size without a
	// handle is truncate(2) alone (see Setattr).
	mo.ExtraCapabilities |= fuse.CAP_ATOMIC_O_TRUNC
	// The kernel checks permissions against the modes we report.
	mo.Options = append(mo.Options, "default_permissions")
	if opts.ReadOnly || v.ReadOnly() {
		mo.Options = append(mo.Options, "ro")
	}
	root := &dir{node: node{vol: v, writeback: opts.WritebackCache}}
	server, err := gofs.Mount(mountpoint, root, &gofs.Options{
		MountOptions: mo,
		// Mode 0000 is a mode like any other (go-fuse would show 0644).
		NullPermissions: true,
		AttrTimeout:     sec(opts.AttrTimeout),
		EntryTimeout:    sec(opts.EntryTimeout),
		NegativeTimeout: sec(opts.NegativeTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if err := setReadAhead(mountpoint, opts.MaxReadAhead); err != nil {
		opts.Logger.Debug("kernel read-ahead stays at its default", "err", err)
	}
	return server, nil
}

// setReadAhead raises the kernel's read-ahead window of the mount (its
// backing device's read_ahead_kb). The FUSE handshake cannot: the kernel
// offers 128 KiB and takes the smaller of that and what the server asks
// for. Only root may write the setting; others keep 128 KiB.
func setReadAhead(mountpoint string, bytes int) error {
	if bytes <= 128<<10 {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(p, []byte(strconv.Itoa(bytes>>10)), 0)
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("fuse", "msg", string(p))
	return len(p), nil
}

// node is what every inode kind shares: the volume and its own path,
// which go-fuse's tree keeps current across renames.
type node struct {
	gofs.Inode
	vol *cfs.Volume
	// writeback: the kernel writeback cache is on, so the kernel
	// resolves O_APPEND itself and sends appends at explicit offsets.
	writeback bool
}

// openFlags are the flags the core gets for an open or create. With the
// writeback cache the kernel places appends itself and passes O_APPEND
// on (libfuse's examples strip it the same way): honouring it here
// would append every write a second time.
func (n *node) openFlags(flags uint32) int {
	if n.writeback {
		flags &^= syscall.O_APPEND
	}
	return int(flags)
}

func (n *node) path() string { return "/" + n.Path(nil) }

func (n *node) child(name string) string {
	p := n.path()
	if p == "/" {
		return "/" + name
	}
	return p + "/" + name
}

// uninterrupted lets a request run to completion when the kernel
// interrupts it. The kernel interrupts a request whenever the calling
// thread gets a signal, fatal or not (a Go program gets SIGURG for
// preemption all the time); aborting then would fail the call with EINTR
// (rename(2) of a cold path failed so). A fatal signal still ends the
// caller at once: the kernel stops waiting for the reply.
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// callerCtx makes the FUSE caller the owner of what the request creates.
func callerCtx(ctx context.Context) context.Context {
	if c, ok := fuse.FromContext(ctx); ok {
		return cfs.WithCaller(ctx, c.Uid, c.Gid)
	}
	return ctx
}

func errno(err error) syscall.Errno { return cfs.Errno(err) }

func fillAttr(a cfs.Attr, out *fuse.Attr) {
	out.Mode = a.Mode
	out.Size = uint64(a.Size)
	out.Blocks = uint64(a.Blocks())
	out.Blksize = 1 << 17
	out.Uid, out.Gid = a.UID, a.GID
	out.Nlink = 1
	if a.IsDir() {
		out.Nlink = 2
	}
	out.Rdev = a.Rdev
	atime, mtime, ctime := a.StatTimes()
	out.SetTimes(&atime, &mtime, &ctime)
}

// newChild returns the inode of child name with attributes a: the one
// the tree already has when its type still matches, else a new one.
func (n *node) newChild(ctx context.Context, name string, a cfs.Attr) *gofs.Inode {
	if ch := n.GetChild(name); ch != nil && ch.StableAttr().Mode == a.Mode&syscall.S_IFMT {
		return ch
	}
	var ops gofs.InodeEmbedder
	switch {
	case a.IsDir():
		ops = &dir{node: node{vol: n.vol, writeback: n.writeback}}
	case a.IsSymlink():
		ops = &symlink{node: node{vol: n.vol, writeback: n.writeback}}
	default:
		ops = &file{node: node{vol: n.vol, writeback: n.writeback}}
	}
	return n.NewInode(ctx, ops, gofs.StableAttr{Mode: a.Mode & syscall.S_IFMT})
}

func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	if h, ok := fh.(*handle); ok {
		fillAttr(h.h.Stat(), &out.Attr)
		return 0
	}
	a, err := n.vol.Stat(ctx, n.path())
	if err != nil {
		return errno(err)
	}
	fillAttr(a, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	var s cfs.SetAttr
	if m, ok := in.GetMode(); ok {
		s.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		s.UID = &u
	}
	if g, ok := in.GetGID(); ok {
		s.GID = &g
	}
	if sz, ok := in.GetSize(); ok {
		size := int64(sz)
		s.Size = &size
	}
	if mt, ok := in.GetMTime(); ok {
		s.Mtime = &mt
	} else if _, ftruncate := fh.(*handle); ftruncate && s.Size != nil {
		// The kernel leaves the times of ftruncate to the filesystem
		// (update_mtime in fs/fuse/dir.c); Linux moves them even when
		// the size stays. truncate(2) moves them only when it changes,
		// which the core does itself.
		now := time.Now()
		s.Mtime = &now
	}
	a, err := n.vol.SetAttr(ctx, n.path(), s)
	if err != nil {
		return errno(err)
	}
	fillAttr(a, &out.Attr)
	return 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	st, err := n.vol.Statfs(ctx)
	if err != nil {
		return errno(err)
	}
	out.Bsize, out.Frsize = st.Bsize, st.Bsize
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.NameLen = st.NameLen
	return 0
}

// xattrs are not supported in version 1.
func (n *node) Getxattr(context.Context, string, []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}
func (n *node) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.ENOTSUP
}
func (n *node) Removexattr(context.Context, string) syscall.Errno { return syscall.ENOTSUP }
func (n *node) Listxattr(context.Context, []byte) (uint32, syscall.Errno) {
	return 0, 0 // no attributes
}

var (
	_ gofs.NodeGetattrer     = (*node)(nil)
	_ gofs.NodeSetattrer     = (*node)(nil)
	_ gofs.NodeStatfser      = (*node)(nil)
	_ gofs.NodeGetxattrer    = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)
	_ gofs.NodeListxattrer   = (*node)(nil)
)

// dir is a directory inode.
type dir struct{ node }

var (
	_ gofs.NodeLookuper  = (*dir)(nil)
	_ gofs.NodeReaddirer = (*dir)(nil)
	_ gofs.NodeMkdirer   = (*dir)(nil)
	_ gofs.NodeRmdirer   = (*dir)(nil)
	_ gofs.NodeUnlinker  = (*dir)(nil)
	_ gofs.NodeRenamer   = (*dir)(nil)
	_ gofs.NodeCreater   = (*dir)(nil)
	_ gofs.NodeSymlinker = (*dir)(nil)
	_ gofs.NodeLinker    = (*dir)(nil)
	_ gofs.NodeMknoder   = (*dir)(nil)
	_ gofs.NodeFsyncer   = (*dir)(nil)
)

// Fsync of a directory: every namespace change is already in the store
// when the call that made it returns.
func (d *dir) Fsync(context.Context, gofs.FileHandle, uint32) syscall.Errno { return 0 }

func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	a, err := d.vol.Stat(ctx, d.child(name))
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

// Readdir lists with attributes; go-fuse answers READDIRPLUS by looking
// each entry up, which the core serves from the metadata cache the
// listing filled.
func (d *dir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ctx = uninterrupted(ctx)
	ents, err := d.vol.ReadDir(ctx, d.path())
	if err != nil {
		return nil, errno(err)
	}
	out := make([]fuse.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = fuse.DirEntry{Name: e.Name, Mode: e.Attr.Mode}
	}
	return gofs.NewListDirStream(out), 0
}

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	a, err := d.vol.Mkdir(callerCtx(ctx), d.child(name), mode)
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	return errno(d.vol.Rmdir(ctx, d.child(name)))
}

func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	return errno(d.vol.Unlink(ctx, d.child(name)))
}

func (d *dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	np := "/" + newParent.EmbeddedInode().Path(nil)
	if np == "/" {
		np = "/" + newName
	} else {
		np += "/" + newName
	}
	var rf cfs.RenameFlags
	if flags&1 != 0 { // RENAME_NOREPLACE
		rf |= cfs.RenameNoReplace
	}
	if flags&2 != 0 { // RENAME_EXCHANGE
		rf |= cfs.RenameExchange
	}
	return errno(d.vol.Rename(ctx, d.child(name), np, rf))
}

func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	h, a, err := d.vol.Create(callerCtx(ctx), d.child(name), mode, d.openFlags(flags))
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), &handle{h: h}, 0, 0
}

func (d *dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	a, err := d.vol.Symlink(callerCtx(ctx), target, d.child(name))
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

// Link: hard links are not supported.
func (d *dir) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// Mknod: only regular files, directories and symlinks exist here.
func (d *dir) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// file is a regular file inode.
type file struct{ node }

var (
	_ gofs.NodeOpener   = (*file)(nil)
	_ gofs.NodeReader   = (*file)(nil)
	_ gofs.NodeWriter   = (*file)(nil)
	_ gofs.NodeFsyncer  = (*file)(nil)
	_ gofs.NodeFlusher  = (*file)(nil)
	_ gofs.NodeReleaser = (*file)(nil)
)

func (f *file) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	h, err := f.vol.Open(ctx, f.path(), f.openFlags(flags))
	if err != nil {
		return nil, 0, errno(err)
	}
	return &handle{h: h}, 0, 0
}

func (f *file) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ctx = uninterrupted(ctx)
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	n, err := h.h.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *file) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	h, ok := fh.(*handle)
	if !ok {
		return 0, syscall.EBADF
	}
	n, err := h.h.WriteAt(ctx, data, off)
	if err != nil {
		return uint32(n), errno(err)
	}
	return uint32(n), 0
}

func (f *file) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	h, ok := fh.(*handle)
	if !ok {
		return 0
	}
	return errno(h.h.Fsync(ctx))
}

// Flush runs at every close(2); the upload waits for the last release.
func (f *file) Flush(context.Context, gofs.FileHandle) syscall.Errno { return 0 }

func (f *file) Release(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	ctx = uninterrupted(ctx)
	if h, ok := fh.(*handle); ok {
		return errno(h.h.Close(ctx))
	}
	return 0
}

// handle is an open file of the core.
type handle struct{ h *cfs.Handle }

// symlink is a symbolic link inode.
type symlink struct{ node }

var _ gofs.NodeReadlinker = (*symlink)(nil)

func (s *symlink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ctx = uninterrupted(ctx)
	t, err := s.vol.Readlink(ctx, s.path())
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}
