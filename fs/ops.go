package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// This file holds the namespace operations of a Volume. Paths are
// canonical: "/" or "/a/b" (no trailing slash, no "." or ".." segments).

// Unlink removes a file or symlink.
func (v *Volume) Unlink(ctx context.Context, path string) error {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return v.finish("unlink", path, err)
	}
	defer end()
	return v.finish("unlink", path, v.unlink(ctx, path))
}

func (v *Volume) unlink(ctx context.Context, p string) error {
	if err := v.checkWritable(p); err != nil {
		return err
	}
	// No open of p may register between the v.files check below and
	// the delete (and the cache update that follows it).
	defer v.lockPaths(p)()
	var n *node
	var f *file
	for attempt := 0; ; attempt++ {
		var err error
		if n, err = v.lookup(ctx, p); err != nil {
			return err
		}
		v.mu.Lock()
		f = v.files[p]
		v.mu.Unlock()
		// A file staged here when looked up may have been uploaded and
		// forgotten since: look again to learn its key.
		if n.key != "" || n.bad != nil || f != nil || n.isDir() || attempt == 2 {
			break
		}
	}
	if n.isDir() {
		return syscall.EISDIR
	}
	parent := v.implicitParent(ctx, p)
	if n.link != nil {
		if err := v.unlinkLink(ctx, p, n, f); err != nil {
			return err
		}
		v.meta.removed(p)
		v.keepDir(ctx, parent)
		v.touchParent(p, time.Now())
		return nil
	}
	key := n.key
	if f != nil {
		// Wait for an upload in flight, then make sure none follows.
		f.upMu.Lock()
		// Open handles keep reading what they opened: copy it out before
		// the object goes.
		if err := f.keepContent(ctx); !keptOrLost(err) {
			f.upMu.Unlock()
			return err
		}
		v.mu.Lock()
		key = ""
		if stored := v.dropFileLocked(f, p); stored != nil {
			key = stored.key
		}
		v.mu.Unlock()
		f.upMu.Unlock()
	}
	if key == "" {
		if f == nil {
			return n.unreadable()
		}
	} else if err := v.store.Delete(ctx, key); err != nil {
		return err
	}
	v.dropCached(n)
	v.meta.removed(p)
	v.keepDir(ctx, parent)
	v.touchParent(p, time.Now())
	return nil
}

// implicitParent returns p's parent when it is an implicit directory,
// which would vanish with its last entry: call it before removing p, and
// keepDir after.
func (v *Volume) implicitParent(ctx context.Context, p string) *node {
	dir := parentOf(p)
	if dir == "/" {
		return nil
	}
	n, err := v.lookup(ctx, dir)
	if err != nil || !n.isDir() || n.key != "" {
		return nil
	}
	return n
}

// keepDir gives an implicit directory a marker.
func (v *Volume) keepDir(ctx context.Context, n *node) {
	if n == nil {
		return
	}
	key, long, err := v.objectKey(n.path)
	if err == nil {
		_, err = v.putMarker(ctx, n.path, key+"/", long, n.attr)
	}
	if err != nil {
		v.logEvent(slog.LevelWarn, "could not keep an implicit directory", n.path, "", "err", err)
	}
}

// Mkdir creates a directory (a marker object).
func (v *Volume) Mkdir(ctx context.Context, path string, mode uint32) (Attr, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return Attr{}, v.finish("mkdir", path, err)
	}
	defer end()
	n, err := v.mkdir(ctx, path, mode)
	if err != nil {
		return Attr{}, v.finish("mkdir", path, err)
	}
	return n.attr, nil
}

func (v *Volume) mkdir(ctx context.Context, p string, mode uint32) (*node, error) {
	key, long, err := v.newName(ctx, p)
	if err != nil {
		return nil, err
	}
	attr := v.newAttr(ctx, p, syscall.S_IFDIR|mode&0o7777)
	var n *node
	if v.writer != nil {
		n = &node{path: p, attr: attr, base: attr, key: key + "/", long: long}
		v.holdMarker(n) // stored at Flush (writeonly.go)
	} else if n, err = v.putMarker(ctx, p, key+"/", long, attr); err != nil {
		return nil, err
	}
	v.meta.added(p)
	v.meta.putListing(p, map[string]struct{}{}, nil)
	v.touchParent(p, attr.Mtime)
	return n, nil
}

// newAttr is the attributes of an entry p created now with mode (type
// and permissions) by the caller of ctx. In a setgid directory it takes
// the directory's group, and a directory the setgid bit too (as Linux's
// inode_init_owner; the kernel leaves that to FUSE filesystems, and has
// already stripped a setgid bit the caller may not set).
func (v *Volume) newAttr(ctx context.Context, p string, mode uint32) Attr {
	uid, gid := v.owner(ctx)
	if dir, err := v.lookup(ctx, parentOf(p)); err == nil && dir.attr.Mode&syscall.S_ISGID != 0 {
		gid = dir.attr.GID
		if mode&syscall.S_IFMT == syscall.S_IFDIR {
			mode |= syscall.S_ISGID
		}
	}
	now := time.Now()
	return Attr{Mode: mode, UID: uid, GID: gid, Atime: now, Mtime: now, Ctime: now}
}

// Mknod creates a fifo, socket, character or block device (rdev: its
// device number), or an empty regular file: an object with an empty
// body whose sealed attributes hold the type and rdev. Opening a special
// file is the kernel's business; coffer only keeps it.
func (v *Volume) Mknod(ctx context.Context, path string, mode, rdev uint32) (Attr, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return Attr{}, v.finish("mknod", path, err)
	}
	defer end()
	n, err := v.mknod(ctx, path, mode, rdev)
	if err != nil {
		return Attr{}, v.finish("mknod", path, err)
	}
	return n.attr, nil
}

func (v *Volume) mknod(ctx context.Context, p string, mode, rdev uint32) (*node, error) {
	typ := mode & syscall.S_IFMT
	if typ == 0 {
		typ = syscall.S_IFREG
	}
	if typ != syscall.S_IFREG && !isSpecialType(typ) {
		return nil, syscall.EINVAL
	}
	key, long, err := v.newName(ctx, p)
	if err != nil {
		return nil, err
	}
	okey, err := v.lay.newObjectKey()
	if err != nil {
		return nil, err
	}
	attr := v.newAttr(ctx, p, typ|mode&0o7777)
	if typ == syscall.S_IFCHR || typ == syscall.S_IFBLK {
		attr.Rdev = rdev
	}
	meta, err := v.lay.sealMeta(p, okey, toCipherAttr(attr), long)
	if err != nil {
		return nil, err
	}
	info, err := v.putBody(ctx, key, okey, bytes.NewReader(nil), 0, meta, blobstore.PutOptions{IfNoneMatch: true})
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		return nil, syscall.EEXIST // made by another client meanwhile
	}
	if err != nil {
		return nil, err
	}
	n := &node{path: p, attr: attr, base: attr, key: key, etag: info.ETag, objSize: info.Size, okey: okey, long: long}
	v.meta.put(n)
	v.meta.added(p)
	v.touchParent(p, attr.Mtime)
	return n, nil
}

// putMarker writes the marker of directory p: an empty body with the
// directory's (sealed) attributes.
func (v *Volume) putMarker(ctx context.Context, p, marker, long string, attr Attr) (*node, error) {
	okey, err := v.lay.newObjectKey()
	if err != nil {
		return nil, err
	}
	meta, err := v.lay.sealMeta(p, okey, toCipherAttr(attr), long)
	if err != nil {
		return nil, err
	}
	// A writer only creates (writeonly.go): its marker must be new.
	info, err := v.store.Put(ctx, marker, bytes.NewReader(nil), 0, blobstore.PutOptions{Metadata: meta, IfNoneMatch: v.writer != nil})
	if v.writer != nil && errors.Is(err, blobstore.ErrPreconditionFailed) {
		return nil, withErrno(syscall.EEXIST, err)
	}
	if err != nil {
		return nil, err
	}
	n := &node{path: p, attr: attr, base: attr, key: marker, etag: info.ETag, okey: okey, long: long}
	v.meta.put(n)
	return n, nil
}

// Rmdir removes an empty directory (ENOTEMPTY otherwise).
func (v *Volume) Rmdir(ctx context.Context, path string) error {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return v.finish("rmdir", path, err)
	}
	defer end()
	return v.finish("rmdir", path, v.rmdir(ctx, path))
}

func (v *Volume) rmdir(ctx context.Context, p string) error {
	if p == "/" {
		return syscall.EBUSY
	}
	if err := v.checkWritable(p); err != nil {
		return err
	}
	// No background store of its times (flushDir) may write its marker
	// back once it is gone.
	defer v.lockPaths(p)()
	n, err := v.lookup(ctx, p)
	if err != nil {
		return err
	}
	if !n.isDir() {
		return syscall.ENOTDIR
	}
	if err := checkOwn(n); err != nil {
		return err
	}
	if err := v.checkEmpty(ctx, p); err != nil {
		return err
	}
	parent := v.implicitParent(ctx, p)
	if v.dropHeld(p) {
		// Held (writeonly.go): no marker was stored.
	} else if n.key != "" {
		if err := v.store.Delete(ctx, n.key); err != nil {
			return err
		}
	}
	v.meta.removed(p)
	v.meta.dropTree(p)
	v.meta.putAbsent(p)
	v.dirs.drop(p)
	v.keepDir(ctx, parent)
	v.touchParent(p, time.Now())
	return nil
}

// newName checks that p may be created (writable volume, existing parent,
// no entry at p) and returns its object key and long-name encoding.
func (v *Volume) newName(ctx context.Context, p string) (key, long string, err error) {
	if err := v.checkWritable(p); err != nil {
		return "", "", err
	}
	if err := v.checkParent(ctx, p); err != nil {
		return "", "", err
	}
	if _, err := v.lookup(ctx, p); err == nil {
		return "", "", syscall.EEXIST
	} else if !errors.Is(err, syscall.ENOENT) {
		return "", "", err
	}
	return v.objectKey(p)
}

func (v *Volume) hasLocalFilesUnder(p string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for fp := range v.files {
		if isUnder(fp, p) {
			return true
		}
	}
	return false
}

// Symlink creates path as a symbolic link to target. The target is the
// link's body (an envelope in client mode).
func (v *Volume) Symlink(ctx context.Context, target, path string) (Attr, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return Attr{}, v.finish("symlink", path, err)
	}
	defer end()
	n, err := v.symlink(ctx, target, path)
	if err != nil {
		return Attr{}, v.finish("symlink", path, err)
	}
	return n.attr, nil
}

func (v *Volume) symlink(ctx context.Context, target, p string) (*node, error) {
	if len(target) > 4096 || target == "" {
		return nil, syscall.ENAMETOOLONG
	}
	key, long, err := v.newName(ctx, p)
	if err != nil {
		return nil, err
	}
	okey, err := v.lay.newObjectKey()
	if err != nil {
		return nil, err
	}
	attr := v.newAttr(ctx, p, syscall.S_IFLNK|0o777)
	attr.Size = int64(len(target))
	meta, err := v.lay.sealMeta(p, okey, toCipherAttr(attr), long)
	if err != nil {
		return nil, err
	}
	info, err := v.putBody(ctx, key, okey, strings.NewReader(target), int64(len(target)), meta, blobstore.PutOptions{})
	if err != nil {
		return nil, err
	}
	n := &node{path: p, attr: attr, base: attr, key: key, etag: info.ETag, objSize: info.Size, okey: okey, long: long, target: target}
	v.meta.put(n)
	v.meta.added(p)
	v.touchParent(p, attr.Mtime)
	return n, nil
}

// Readlink returns the target of a symbolic link.
func (v *Volume) Readlink(ctx context.Context, path string) (string, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return "", v.finish("readlink", path, err)
	}
	defer end()
	t, err := v.readlink(ctx, path)
	return t, v.finish("readlink", path, err)
}

func (v *Volume) readlink(ctx context.Context, p string) (string, error) {
	n, err := v.lookup(ctx, p)
	if err != nil {
		return "", err
	}
	if !n.attr.IsSymlink() {
		return "", syscall.EINVAL
	}
	if n.target != "" {
		return n.target, nil
	}
	if n.key == "" {
		return "", n.unreadable()
	}
	r := v.newReader(n)
	buf := make([]byte, n.attr.Size)
	if _, err := r.ReadAt(ctx, buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	c := *n
	c.target = string(buf)
	v.meta.put(&c)
	return c.target, nil
}

// SetAttr changes mode, owner, times or size of path, and moves its
// ctime. On a stored file or directory marker, attribute changes are a
// conditional metadata-only copy onto itself that keeps the file ID; on
// a staged file they change what its upload will carry.
func (v *Volume) SetAttr(ctx context.Context, path string, s SetAttr) (Attr, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return Attr{}, v.finish("setattr", path, err)
	}
	defer end()
	a, err := v.setAttr(ctx, path, s)
	return a, v.finish("setattr", path, err)
}

func (v *Volume) setAttr(ctx context.Context, p string, s SetAttr) (Attr, error) {
	if err := v.checkWritable(p); err != nil {
		return Attr{}, err
	}
	if s.Size != nil {
		f, err := v.acquire(ctx, p)
		if err != nil {
			return Attr{}, err
		}
		h := &Handle{f: f, writable: true}
		err = f.truncate(ctx, *s.Size, false)
		h.Close(ctx)
		if err != nil {
			return Attr{}, err
		}
		if s.Mode == nil && s.UID == nil && s.GID == nil && s.Atime == nil && s.Mtime == nil {
			n, err := v.lookup(ctx, p)
			if err != nil {
				return Attr{}, err
			}
			return n.attr, nil
		}
	}
	return v.changeAttr(ctx, p, func(a Attr) (Attr, error) { return applySetAttr(a, s), nil })
}

// changeAttr applies change to the attributes of p and moves its ctime:
// on a staged file in what its upload carries, on a stored object or
// marker by a conditional metadata copy (retried on a race). An error
// from change is returned with nothing changed.
func (v *Volume) changeAttr(ctx context.Context, p string, change func(Attr) (Attr, error)) (Attr, error) {
	if err := v.checkWritable(p); err != nil {
		return Attr{}, err
	}
	now := time.Now()
	apply := func(a Attr) (Attr, error) {
		b, err := change(a)
		if err != nil {
			return Attr{}, err
		}
		b.touch(now)
		return b, nil
	}
	if p == "/" {
		// The root has no object to keep attributes in: its changes last
		// as long as the mount.
		a, err := apply(v.rootNode().attr)
		if err != nil {
			return Attr{}, err
		}
		v.mu.Lock()
		v.rootAttr = a
		v.mu.Unlock()
		v.dirs.drop("/")
		return v.rootNode().attr, nil
	}
	// One metadata rewrite of p at a time (a background store of its
	// directory times included): the cache must end with the last one.
	defer v.lockPaths(p)()
	if err := v.waitRenameAbove(ctx, p); err != nil {
		return Attr{}, err
	}
	if n := v.heldDir(p); n != nil { // a writer's, not stored yet (writeonly.go)
		gen := v.dirs.current(p)
		a, err := apply(v.dirs.overlay(n).attr)
		if err != nil {
			return Attr{}, err
		}
		v.setHeld(p, a)
		v.dirs.stored(p, gen)
		return a, nil
	}
	var f *file
	if n, err := v.lookup(ctx, p); err == nil {
		f = v.fileOf(p, n) // a hard link's file may be open through another name
	} else {
		v.mu.Lock()
		f = v.files[p]
		v.mu.Unlock()
	}
	if f != nil {
		if a, done, err := f.changeAttr(ctx, apply); done {
			return a, err
		}
	}
	for attempt := 0; ; attempt++ {
		gen := v.dirs.current(p)
		var n *node
		var err error
		if attempt == 0 {
			n, err = v.lookup(ctx, p)
		} else if n, err = v.probe(ctx, p); err == nil { // what the store holds now
			n = v.dirs.overlay(n)
		}
		if err != nil {
			return Attr{}, err
		}
		if err := checkOwn(n); err != nil {
			return Attr{}, err
		}
		a, err := apply(n.attr)
		if err != nil {
			return Attr{}, err
		}
		nn, err := v.rewriteMeta(ctx, n, p, a)
		if errors.Is(err, blobstore.ErrPreconditionFailed) && attempt < 3 {
			v.meta.invalidate(p)
			continue
		}
		if err != nil {
			return Attr{}, err
		}
		v.meta.put(nn)
		v.dirs.stored(p, gen)
		if f != nil {
			f.mu.Lock()
			switch {
			case f.node != nil && f.node.link != nil && nn.link != nil:
				f.adoptInodeLocked(nn, f.node.link)
			case !f.dirty:
				f.node, f.attr, f.replaces, f.rd = nn, nn.attr, nn.etag, nil
			}
			f.mu.Unlock()
		}
		return nn.attr, nil
	}
}

// changeAttr changes the attributes of a staged or open file; done is
// false when the file is clean and stored and the metadata copy met a
// newer object (the caller re-reads and retries).
func (f *file) changeAttr(ctx context.Context, apply func(Attr) (Attr, error)) (Attr, bool, error) {
	f.upMu.Lock()
	defer f.upMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed {
		return Attr{}, true, syscall.ENOENT
	}
	if f.dirty || f.node == nil {
		a, err := apply(f.attr)
		if err != nil {
			return Attr{}, true, err
		}
		if a.Xattrs != f.attr.Xattrs {
			// Sealed only at the upload: refuse now what would not fit.
			if err := f.v.metaFits(f.path, a); err != nil {
				return Attr{}, true, err
			}
		}
		f.attr = a
		f.seq++
		f.dirty = true
		f.rejournalLocked()
		if f.st != nil {
			a.Size = f.st.Size()
		} else if f.node != nil {
			a.Size = f.node.attr.Size
		}
		return a, true, nil
	}
	a, err := apply(f.attr)
	if err != nil {
		return Attr{}, true, err
	}
	a.Size = f.node.attr.Size
	nn, err := f.v.rewriteMeta(ctx, f.node, f.path, a)
	if err != nil {
		if errors.Is(err, blobstore.ErrPreconditionFailed) {
			return Attr{}, false, nil // let the caller re-read and retry
		}
		return Attr{}, true, err
	}
	if f.node.link != nil {
		f.adoptInodeLocked(nn, f.node.link)
		nn = f.node
	} else {
		f.node, f.attr, f.replaces = nn, nn.attr, nn.etag
		f.rd = nil
	}
	f.v.meta.put(nn)
	return nn.attr, true, nil
}

// metaFits checks that attributes a of p fit the metadata budget
// (ErrMetadataTooBig, E2BIG) before anything relies on sealing them.
func (v *Volume) metaFits(p string, a Attr) error {
	_, long, err := v.objectKey(p)
	if err != nil {
		return err
	}
	okey, err := v.lay.newObjectKey()
	if err != nil {
		return err
	}
	_, err = v.lay.sealMeta(p, okey, toCipherAttr(a), long)
	return err
}

func applySetAttr(a Attr, s SetAttr) Attr {
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
	return a
}

// rewriteMeta stores node n (at its own key) as path p with attributes
// a: a metadata-only copy onto itself, conditional on its ETag. An
// implicit directory gets a marker instead.
func (v *Volume) rewriteMeta(ctx context.Context, n *node, p string, a Attr) (*node, error) {
	if n.key == "" {
		if !n.isDir() {
			return nil, n.unreadable()
		}
		key, long, err := v.objectKey(p)
		if err != nil {
			return nil, err
		}
		return v.putMarker(ctx, p, key+"/", long, a)
	}
	return v.copyObject(ctx, n, n.key, p, n.long, a)
}

// copyObject copies n to key dst as path p with attributes a (whose
// change counter the caller moved, Attr.touch), resealing the metadata
// under the same ObjectKey (file ID and DEK unchanged). The copy is
// guarded: by If-Match on n's ETag against a changed body, and by
// metaGuard, just before it, against changed metadata (which the ETag
// does not show). A guard that fails is
// ErrPreconditionFailed, as a failed If-Match: the caller re-reads the
// object and applies its change to what it finds.
func (v *Volume) copyObject(ctx context.Context, n *node, dst, p, long string, a Attr) (*node, error) {
	return v.copyObjectAs(ctx, n, dst, p, long, a, func() (map[string]string, error) {
		return v.lay.sealMeta(p, n.okey, toCipherAttr(a), long)
	})
}

// copyObjectAs is copyObject with the metadata that seal returns (adopt
// seals a writer's object as the full key's).
func (v *Volume) copyObjectAs(ctx context.Context, n *node, dst, p, long string, a Attr, seal func() (map[string]string, error)) (*node, error) {
	if err := v.metaGuard(ctx, n); err != nil {
		return nil, err
	}
	if n.link != nil {
		if dst != n.key {
			return nil, errors.New("a link's inode is never copied elsewhere")
		}
		c, err := v.copyInode(ctx, n, a, n.link.links)
		if err != nil {
			return nil, err
		}
		c.path = p
		return c, nil
	}
	meta, err := seal()
	if err != nil {
		return nil, err
	}
	var info blobstore.ObjectInfo
	if n.isDir() {
		// A marker's body is empty: write it afresh (some servers, such
		// as versitygw, refuse to copy onto a directory object).
		po := blobstore.PutOptions{Metadata: meta}
		if dst == n.key {
			po.IfMatch = n.etag
		}
		info, err = v.store.Put(ctx, dst, bytes.NewReader(nil), 0, po)
	} else {
		info, err = v.store.Copy(ctx, n.key, dst, blobstore.CopyOptions{Metadata: meta, IfMatch: n.etag})
	}
	if err != nil {
		return nil, err
	}
	c := *n
	c.path, c.attr, c.base, c.key, c.long = p, a, a, dst, long
	c.etag = info.ETag
	if info.Size != 0 {
		c.objSize = info.Size
	}
	return &c, nil
}

// metaGuard checks, with a HEAD just before a metadata-only copy of n,
// that the object still holds the version n was read from: the same
// ETag, and the same sealed attributes with the same change counter. A
// metadata copy keeps the ETag on every server (blobstore/doc.go), and
// If-Unmodified-Since sees nothing on versitygw and only whole seconds
// elsewhere, so without this a chmod here would silently undo another
// mount's chmod, chown or utimens made after n was read. What it leaves
// is the round trip between the HEAD and the copy.
func (v *Volume) metaGuard(ctx context.Context, n *node) error {
	info, err := v.store.Head(ctx, n.key)
	if err != nil {
		return err
	}
	fail := func(what string) error {
		return &blobstore.Error{Op: "metadata guard", Key: n.key, Err: fmt.Errorf("%w: %s changed since it was read", blobstore.ErrPreconditionFailed, what)}
	}
	if info.ETag != n.etag {
		return fail("the object")
	}
	var cur *node
	switch {
	case n.link != nil:
		cur, err = v.inodeNode(n.path, n.long, n.link, info)
	case n.isDir():
		cur, err = v.dirNode(n.path, n.key, n.long, info)
	default:
		cur, err = v.fileNode(n.path, n.key, n.long, info)
	}
	if err != nil {
		return err
	}
	if n.base.Mode == 0 {
		return nil // not read from the store: the ETag is all there is to check
	}
	if a, b := cur.attr, n.base; a.Changes != b.Changes || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID ||
		a.Rdev != b.Rdev || a.Xattrs != b.Xattrs || !v.sameMtime(a.Mtime, b.Mtime) {
		return fail("its attributes")
	}
	return nil
}

// sameMtime compares mtimes as the layout stores them: to the nanosecond
// in client mode, to the second in none mode's s3fs metadata.
func (v *Volume) sameMtime(a, b time.Time) bool {
	if v.client {
		return a.Equal(b)
	}
	return a.Unix() == b.Unix()
}

// Statfs reports filesystem statistics. An object store has no capacity
// to speak of, so the block counts are large constants.
func (v *Volume) Statfs(ctx context.Context) (StatfsInfo, error) {
	const big = 1 << 40
	return StatfsInfo{Bsize: 4096, Blocks: big, Bfree: big, Bavail: big, Files: big, Ffree: big, NameLen: cipher.NameMax}, nil
}

// Truncate sets the size of a regular file.
func (v *Volume) Truncate(ctx context.Context, path string, size int64) error {
	_, err := v.SetAttr(ctx, path, SetAttr{Size: &size})
	return err
}
