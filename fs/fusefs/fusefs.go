package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	direct := os.Geteuid() == 0
	mo := fuse.MountOptions{
		AllowOther:    opts.AllowOther,
		FsName:        opts.FsName,
		Name:          "coffer",
		Debug:         opts.Debug,
		MaxWrite:      opts.MaxWrite,
		MaxReadAhead:  opts.MaxReadAhead,
		MaxBackground: opts.MaxBackground,
		DirectMount:   direct,
		// coffer never moves atime on a read: the mount says so
		// (noatime), as FUSE mounts are nosuid and nodev.
		DirectMountFlags: syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOATIME,
		Logger:           log.New(slogWriter{opts.Logger}, "", 0),
	}
	if !direct {
		mo.Options = append(mo.Options, "noatime") // fusermount3 makes it the mount flag
	}
	if opts.WritebackCache {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	// O_TRUNC arrives with the OPEN, so a SETATTR of the size without a
	// handle is truncate(2) alone (see Setattr).
	mo.ExtraCapabilities |= fuse.CAP_ATOMIC_O_TRUNC
	// We clear setuid and setgid (killPriv), so the kernel may remember
	// that a file has no security.capability instead of asking before
	// every write.
	mo.ExtraCapabilities |= fuse.CAP_HANDLE_KILLPRIV_V2
	// The kernel checks permissions against the modes we report.
	mo.Options = append(mo.Options, "default_permissions")
	if opts.ReadOnly || v.ReadOnly() {
		mo.Options = append(mo.Options, "ro")
	}
	root := &dir{node: node{vol: v, writeback: opts.WritebackCache, attrs: &attrCache{}}}
	bridge := gofs.NewNodeFS(root, &gofs.Options{
		// Mode 0000 is a mode like any other (go-fuse would show 0644).
		NullPermissions: true,
		AttrTimeout:     sec(opts.AttrTimeout),
		EntryTimeout:    sec(opts.EntryTimeout),
		NegativeTimeout: sec(opts.NegativeTimeout),
	})
	// What gofs.Mount does, with killPriv between the kernel and the
	// bridge.
	server, err := fuse.NewServer(&killPriv{RawFileSystem: bridge}, mountpoint, &mo)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
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
	// attrs are the attributes last reported: what fstat of an open
	// directory or special file shows once its name is gone.
	attrs *attrCache
}

type attrCache struct {
	mu sync.Mutex
	a  cfs.Attr
}

func (c *attrCache) get() cfs.Attr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a
}

func (c *attrCache) set(a cfs.Attr) {
	c.mu.Lock()
	c.a = a
	c.mu.Unlock()
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

// path is the node's canonical path; ok is false for an orphan, a node
// whose name was unlinked or replaced while the kernel still holds it
// (go-fuse's Path would answer with what is left of it: "" or a tail).
func (n *node) path() (p string, ok bool) {
	var segs []string
	root := n.Root()
	for in := &n.Inode; in != root; {
		name, parent := in.Parent()
		if parent == nil {
			return "", false
		}
		segs = append(segs, name)
		in = parent
	}
	slices.Reverse(segs)
	return "/" + strings.Join(segs, "/"), true
}

// child is the path of entry name of directory n; an orphaned directory
// has none (ENOENT).
func (n *node) child(name string) (string, syscall.Errno) {
	p, ok := n.path()
	switch {
	case !ok:
		return "", syscall.ENOENT
	case p == "/":
		return "/" + name, 0
	}
	return p + "/" + name, 0
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

// report fills out with a and remembers a as the node's attributes.
func (n *node) report(a cfs.Attr, out *fuse.Attr) {
	n.attrs.set(a)
	fillAttr(a, out)
}

func fillAttr(a cfs.Attr, out *fuse.Attr) {
	out.Mode = a.Mode
	out.Size = uint64(a.Size)
	out.Blocks = uint64(a.Blocks())
	out.Blksize = 1 << 17
	out.Uid, out.Gid = a.UID, a.GID
	out.Nlink = a.Nlink()
	out.Rdev = a.Rdev
	atime, mtime, ctime := a.StatTimes()
	out.SetTimes(&atime, &mtime, &ctime)
}

// newChild returns the inode of child name with attributes a: the one
// the tree already has when its type still matches, else a new one.
func (n *node) newChild(ctx context.Context, name string, a cfs.Attr) *gofs.Inode {
	if ch := n.GetChild(name); ch != nil && ch.StableAttr().Mode == a.Mode&syscall.S_IFMT {
		if cn, ok := ch.Operations().(interface{ base() *node }); ok {
			cn.base().attrs.set(a)
		}
		return ch
	}
	base := func() node { return node{vol: n.vol, writeback: n.writeback, attrs: &attrCache{a: a}} }
	var ops gofs.InodeEmbedder
	switch {
	case a.IsDir():
		ops = &dir{node: base()}
	case a.IsSymlink():
		ops = &symlink{node: base()}
	case a.IsSpecial():
		ops = &special{node: base()}
	default:
		ops = &file{node: base()}
	}
	// A hard-linked file's number comes from its inode ID (a.Ino), so
	// go-fuse finds the inode another name of it already has.
	return n.NewInode(ctx, ops, gofs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino})
}

func (n *node) base() *node { return n }

// orphaned is what fstat shows of an orphan: its last attributes, with
// no link left.
func (n *node) orphaned() cfs.Attr {
	a := n.attrs.get()
	a.Unlinked = true
	return a
}

func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	if h, ok := fh.(*handle); ok {
		// go-fuse passes the first open handle when the kernel gives
		// none (fstat), so an open file is stat'ed by its handle.
		n.report(h.h.Stat(), &out.Attr)
		return 0
	}
	p, ok := n.path()
	if !ok {
		fillAttr(n.orphaned(), &out.Attr)
		return 0
	}
	a, err := n.vol.Stat(ctx, p)
	if err != nil {
		return errno(err)
	}
	n.report(a, &out.Attr)
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
	if at, ok := in.GetATime(); ok {
		s.Atime = &at
	}
	h, _ := fh.(*handle)
	if mt, ok := in.GetMTime(); ok {
		s.Mtime = &mt
	} else if h != nil && s.Size != nil {
		// The kernel leaves the times of ftruncate to the filesystem
		// (update_mtime in fs/fuse/dir.c); Linux moves them even when
		// the size stays. truncate(2) moves them only when it changes,
		// which the core does itself.
		now := time.Now()
		s.Mtime = &now
	}
	p, named := n.path()
	if h == nil && !named {
		// fchmod, fchown, futimens of an open file or directory whose
		// name is gone: the kernel gives no handle.
		if f, ok := n.Operations().(*file); ok {
			h = f.anyHandle()
		}
		if h == nil {
			a := n.orphaned()
			n.attrs.set(applyInMemory(a, s))
			fillAttr(n.orphaned(), &out.Attr)
			return 0
		}
	}
	var a cfs.Attr
	var err error
	if h != nil {
		a, err = h.h.SetAttr(ctx, s)
	} else {
		a, err = n.vol.SetAttr(ctx, p, s)
	}
	if err != nil {
		return errno(err)
	}
	n.report(a, &out.Attr)
	return 0
}

// applyInMemory changes the remembered attributes of an orphan with no
// handle in the core (a fifo or directory): they last as long as the
// kernel holds the node.
func applyInMemory(a cfs.Attr, s cfs.SetAttr) cfs.Attr {
	if s.Mode != nil {
		a.Mode = a.Mode&syscall.S_IFMT | *s.Mode&0o7777
	}
	if s.UID != nil {
		a.UID = *s.UID
	}
	if s.GID != nil {
		a.GID = *s.GID
	}
	if s.Atime != nil {
		a.Atime = *s.Atime
	}
	if s.Mtime != nil {
		a.Mtime = *s.Mtime
	}
	a.Ctime = time.Now()
	return a
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

// Extended attributes: the core keeps user.* (fs/xattr.go). A size of 0
// asks for the length; a buffer too small is ERANGE.
func (n *node) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	var value []byte
	var err error
	if p, ok := n.path(); ok {
		value, err = n.vol.Getxattr(ctx, p, name)
	} else {
		value, err = cfs.XattrValue(n.orphanAttr(), name)
	}
	if err != nil {
		return 0, errno(err)
	}
	if len(dest) == 0 {
		return uint32(len(value)), 0
	}
	if len(dest) < len(value) {
		return uint32(len(value)), syscall.ERANGE
	}
	return uint32(copy(dest, value)), 0
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	var names []string
	if p, ok := n.path(); ok {
		var err error
		if names, err = n.vol.Listxattr(ctx, p); err != nil {
			return 0, errno(err)
		}
	} else {
		names = cfs.XattrNames(n.orphanAttr())
	}
	size := 0
	for _, name := range names {
		size += len(name) + 1
	}
	if len(dest) == 0 {
		return uint32(size), 0
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, name := range names {
		off += copy(dest[off:], name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

func (n *node) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	if p, ok := n.path(); ok {
		return errno(n.vol.Setxattr(ctx, p, name, data, int(flags)))
	}
	if h := n.orphanHandle(); h != nil {
		return errno(h.h.Setxattr(ctx, name, data, int(flags)))
	}
	return syscall.ENOENT
}

func (n *node) Removexattr(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	if p, ok := n.path(); ok {
		return errno(n.vol.Removexattr(ctx, p, name))
	}
	if h := n.orphanHandle(); h != nil {
		return errno(h.h.Removexattr(ctx, name))
	}
	return syscall.ENOENT
}

// orphanHandle is an open handle of an orphaned regular file.
func (n *node) orphanHandle() *handle {
	if f, ok := n.Operations().(*file); ok {
		return f.anyHandle()
	}
	return nil
}

// orphanAttr is what an orphan has: its open file's, else the last seen.
func (n *node) orphanAttr() cfs.Attr {
	if h := n.orphanHandle(); h != nil {
		return h.h.Stat()
	}
	return n.orphaned()
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
// when the call that made it returns, but for a write-only session's
// held directory markers (Volume.SyncDir).
func (d *dir) Fsync(ctx context.Context, _ gofs.FileHandle, _ uint32) syscall.Errno {
	p, ok := d.path()
	if !ok {
		return syscall.ENOENT
	}
	return errno(d.vol.SyncDir(uninterrupted(ctx), p))
}

func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return nil, e
	}
	a, err := d.vol.Stat(ctx, cp)
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

// dirPath is the directory's path; an orphaned directory is empty and
// takes no new entries.
func (d *dir) dirPath() (string, syscall.Errno) {
	p, ok := d.path()
	if !ok {
		return "", syscall.ENOENT
	}
	return p, 0
}

// Readdir lists with attributes; go-fuse answers READDIRPLUS by looking
// each entry up, which the core serves from the metadata cache the
// listing filled.
func (d *dir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ctx = uninterrupted(ctx)
	p, e := d.dirPath()
	if e != 0 {
		return gofs.NewListDirStream(nil), 0
	}
	ents, err := d.vol.ReadDir(ctx, p)
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
	cp, e := d.child(name)
	if e != 0 {
		return nil, e
	}
	a, err := d.vol.Mkdir(callerCtx(ctx), cp, mode)
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return e
	}
	return errno(d.vol.Rmdir(ctx, cp))
}

func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return e
	}
	return errno(d.vol.Unlink(ctx, cp))
}

func (d *dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	op, e := d.child(name)
	if e != 0 {
		return e
	}
	np := "/" + newName
	if pd, ok := newParent.(interface{ base() *node }); ok {
		pp, named := pd.base().path()
		if !named {
			return syscall.ENOENT
		}
		if pp != "/" {
			np = pp + "/" + newName
		}
	}
	var rf cfs.RenameFlags
	if flags&1 != 0 { // RENAME_NOREPLACE
		rf |= cfs.RenameNoReplace
	}
	if flags&2 != 0 { // RENAME_EXCHANGE
		rf |= cfs.RenameExchange
	}
	return errno(d.vol.Rename(ctx, op, np, rf))
}

func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return nil, nil, 0, e
	}
	h, a, err := d.vol.Create(callerCtx(ctx), cp, mode, d.openFlags(flags))
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	fillAttr(a, &out.Attr)
	ch := d.newChild(ctx, name, a)
	fh := &handle{h: h}
	if f, ok := ch.Operations().(*file); ok {
		f.opened(fh)
	}
	return ch, fh, 0, 0
}

func (d *dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return nil, e
	}
	a, err := d.vol.Symlink(callerCtx(ctx), target, cp)
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

// Link makes name a hard link to target and returns target's own inode,
// so the kernel shares one inode (and its nlink) between the names.
func (d *dir) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return nil, e
	}
	tn, ok := target.(interface{ base() *node })
	if !ok {
		return nil, syscall.EPERM
	}
	op, named := tn.base().path()
	if !named {
		return nil, syscall.ENOENT
	}
	a, err := d.vol.Link(callerCtx(ctx), op, cp)
	if err != nil {
		return nil, errno(err)
	}
	tn.base().report(a, &out.Attr)
	return target.EmbeddedInode(), 0
}

// Mknod makes a fifo, socket or device node (mkfifo, mknod, bind of a
// unix socket), or an empty regular file.
func (d *dir) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	cp, e := d.child(name)
	if e != 0 {
		return nil, e
	}
	a, err := d.vol.Mknod(callerCtx(ctx), cp, mode, rdev)
	if err != nil {
		return nil, errno(err)
	}
	fillAttr(a, &out.Attr)
	return d.newChild(ctx, name, a), 0
}

// file is a regular file inode. It knows its open handles, so that a
// SETATTR of an orphan (fchmod of an unlinked file), which the kernel
// sends without one, still reaches the file.
type file struct {
	node
	mu      sync.Mutex
	handles map[*handle]struct{}
}

func (f *file) opened(h *handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handles == nil {
		f.handles = map[*handle]struct{}{}
	}
	f.handles[h] = struct{}{}
}

func (f *file) anyHandle() *handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	for h := range f.handles {
		return h
	}
	return nil
}

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
	p, ok := f.path()
	if !ok {
		return nil, 0, syscall.ENOENT
	}
	h, err := f.vol.Open(ctx, p, f.openFlags(flags))
	if err != nil {
		return nil, 0, errno(err)
	}
	fh := &handle{h: h}
	f.opened(fh)
	return fh, 0, 0
}

func (f *file) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ctx = uninterrupted(ctx)
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	rv, err := h.h.ReadView(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	if rv.Len() == 0 {
		// go-fuse writes an empty reply without calling Done.
		rv.Release()
		return fuse.ReadResultData(nil), 0
	}
	return readResult{rv}, 0
}

// readResult replies to a READ with the slices of a view, written to the
// kernel with one writev and no copy in between (go-fuse's withSlice);
// go-fuse calls Done once the reply is written, or dropped.
type readResult struct{ rv *cfs.ReadView }

var _ fuse.ReadResult = readResult{}

func (r readResult) Slices() ([][]byte, fuse.Status) { return r.rv.Slices, fuse.OK }
func (r readResult) Size() int                       { return r.rv.Len() }
func (r readResult) Done()                           { r.rv.Release() }

// Bytes is for go-fuse's paths that need one buffer.
func (r readResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:0]
	for _, b := range r.rv.Slices {
		buf = append(buf, b...)
	}
	return buf, fuse.OK
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

// Flush runs at every close(2), which waits for it (the release after it
// is not waited for): staged changes are journalled here, so a closed
// file survives the death of the mount; the upload waits for the last
// release.
func (f *file) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	ctx = uninterrupted(ctx)
	if h, ok := fh.(*handle); ok {
		return errno(h.h.Flush(ctx))
	}
	return 0
}

func (f *file) Release(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	ctx = uninterrupted(ctx)
	if h, ok := fh.(*handle); ok {
		f.mu.Lock()
		delete(f.handles, h)
		f.mu.Unlock()
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
	p, ok := s.path()
	if !ok {
		return nil, syscall.ENOENT
	}
	t, err := s.vol.Readlink(ctx, p)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}

// special is a fifo, socket or device inode: attributes only; the
// kernel opens it without asking.
type special struct{ node }
