package fs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/cofferfs/coffer/blobstore"
)

// Rename moves oldPath to newPath, replacing a file at newPath (or an
// empty directory when oldPath is a directory).
//
// A file still staged here moves locally (it is uploaded once, under its
// new name: rsync's write-then-rename). A stored file is copied to its
// new key with its attributes resealed for the new path (same ObjectKey)
// and then deleted. A directory is renamed by copying every descendant in
// parallel; the sources are deleted only after every copy succeeded.
func (v *Volume) Rename(ctx context.Context, oldPath, newPath string, flags RenameFlags) error {
	return v.finish("rename", oldPath, v.rename(ctx, oldPath, newPath, flags))
}

func (v *Volume) rename(ctx context.Context, oldp, newp string, flags RenameFlags) error {
	if flags&RenameExchange != 0 {
		return syscall.EINVAL
	}
	if err := v.checkWritable(oldp); err != nil {
		return err
	}
	if err := v.checkWritable(newp); err != nil {
		return err
	}
	if oldp == "/" || newp == "/" {
		return syscall.EBUSY
	}
	if oldp == newp {
		return nil
	}
	if isUnder(newp, oldp) {
		return syscall.EINVAL
	}
	src, err := v.lookup(ctx, oldp)
	if err != nil {
		return err
	}
	if err := v.checkParent(ctx, newp); err != nil {
		return err
	}
	if _, _, err := v.objectKey(newp); err != nil {
		return err
	}
	dst, err := v.lookup(ctx, newp)
	switch {
	case errors.Is(err, syscall.ENOENT):
		dst = nil
	case err != nil:
		return err
	case flags&RenameNoReplace != 0:
		return syscall.EEXIST
	case src.isDir() && !dst.isDir():
		return syscall.ENOTDIR
	case !src.isDir() && dst.isDir():
		return syscall.EISDIR
	case dst.isDir():
		if err := v.checkEmpty(ctx, newp); err != nil {
			return err
		}
	}
	if parentOf(oldp) != parentOf(newp) {
		defer v.keepDir(ctx, v.implicitParent(ctx, oldp))
	}
	if src.isDir() {
		return v.renameDir(ctx, oldp, newp, dst)
	}
	return v.renameFile(ctx, oldp, newp, src, dst)
}

func (v *Volume) checkEmpty(ctx context.Context, p string) error {
	if v.hasLocalFilesUnder(p) {
		return syscall.ENOTEMPTY
	}
	prefix, err := v.dirPrefix(p)
	if err != nil {
		return err
	}
	for _, err := range v.listDir(ctx, prefix) {
		if err != nil {
			return err
		}
		return syscall.ENOTEMPTY
	}
	return nil
}

func (v *Volume) renameFile(ctx context.Context, oldp, newp string, src, dst *node) error {
	// No open of either path may register between the v.files checks
	// below and the copy and delete (see unlink).
	defer v.lockPaths(oldp, newp)()
	v.mu.Lock()
	f := v.files[oldp]
	v.mu.Unlock()
	if f == nil && src.key == "" {
		// Staged here when looked up, uploaded and forgotten since (or
		// listed but unreadable): what is stored now is what moves.
		if src.bad != nil {
			return src.unreadable()
		}
		n, err := v.lookup(ctx, oldp)
		if err != nil {
			return err
		}
		if n.key == "" || n.isDir() {
			return n.unreadable()
		}
		src = n
	}
	v.mu.Lock()
	victim := v.files[newp]
	v.mu.Unlock()
	if victim != nil && victim != f {
		// Handles open on the file this rename replaces keep reading what
		// they opened (see unlink).
		if err := victim.keepContent(ctx); !keptOrLost(err) {
			return err
		}
	}
	if f != nil {
		f.mu.Lock()
		storedDirty := f.node != nil && f.dirty && !f.removed
		f.mu.Unlock()
		if storedDirty {
			// Its stored version is about to be copied: bring it up to date.
			if err := f.upload(ctx); err != nil {
				return err
			}
		}
		f.upMu.Lock()
		defer f.upMu.Unlock()
		f.mu.Lock()
		local := f.node == nil
		f.mu.Unlock()
		if local {
			v.moveLocal(f, oldp, newp, dst)
			v.meta.removed(oldp)
			v.meta.invalidate(newp)
			v.meta.added(newp)
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		n := src
		attr := src.attr
		if f != nil {
			fs := f.snapshot()
			n, attr = f.node, fs.attr
		}
		key, long, err := v.objectKey(newp)
		if err != nil {
			return err
		}
		nn, err := v.copyObject(ctx, n, key, newp, long, attr)
		if errors.Is(err, blobstore.ErrPreconditionFailed) && attempt < 3 && f == nil {
			v.meta.invalidate(oldp)
			if src, err = v.lookup(ctx, oldp); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if n.key != key {
			if err := v.store.Delete(ctx, n.key); err != nil {
				return err
			}
		}
		if dst != nil && dst.key != n.key {
			v.dropCached(dst)
		}
		if f != nil {
			v.moveLocal(f, oldp, newp, nil)
			f.mu.Lock()
			f.node, f.rd, f.replaces = nn, nil, nn.etag
			f.mu.Unlock()
		} else {
			v.dropLocal(newp)
		}
		v.meta.removed(oldp)
		v.meta.put(nn)
		v.meta.added(newp)
		return nil
	}
}

// moveLocal moves the state of an open or staged file to newp; a file
// open at newp is replaced (its handles keep what they have).
func (v *Volume) moveLocal(f *file, oldp, newp string, dst *node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if other := v.files[newp]; other != nil && other != f {
		v.dropFileLocked(other, newp)
	}
	if v.files[oldp] == f {
		delete(v.files, oldp)
	}
	v.files[newp] = f
	f.mu.Lock()
	f.path = newp
	if f.node == nil {
		// Its first upload replaces whatever is stored at newp.
		f.excl = false
		f.replaces = ""
		if dst != nil && dst.key != "" && !dst.isDir() {
			f.replaces = dst.etag
		}
		f.rejournalLocked()
	}
	f.mu.Unlock()
}

// dropLocal forgets a file open at p that a rename replaced.
func (v *Volume) dropLocal(p string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if other := v.files[p]; other != nil {
		v.dropFileLocked(other, p)
	}
}

// moved is one object of a directory rename.
type moved struct {
	oldKey, newKey string
	oldPath        string
	newPath        string
	marker         bool
	info           blobstore.ObjectInfo
	node           *node
}

func (v *Volume) renameDir(ctx context.Context, oldp, newp string, dst *node) error {
	// Files staged below oldp are uploaded first, so the store holds the
	// whole tree.
	v.mu.Lock()
	var local []*file
	for p, f := range v.files {
		if isUnder(p, oldp) {
			local = append(local, f)
		}
	}
	v.mu.Unlock()
	for _, f := range local {
		f.mu.Lock()
		dirty := f.dirty && !f.removed
		f.mu.Unlock()
		if dirty {
			if err := f.upload(ctx); err != nil {
				if Errno(err) == syscall.EIO {
					return v.failEIO("rename: uploading a file staged below the directory", f.path, "", err)
				}
				return err
			}
		}
	}
	oldPrefix, err := v.dirPrefix(oldp)
	if err != nil {
		return err
	}
	var items []*moved
	for e, err := range v.store.List(ctx, oldPrefix, "") {
		if err != nil {
			return err
		}
		if !e.IsPrefix {
			items = append(items, &moved{oldKey: e.Key, marker: strings.HasSuffix(e.Key, "/")})
		}
	}
	if err := fanOut(ctx, v.opts.ListConcurrency, len(items), func(ctx context.Context, i int) error {
		m := items[i]
		info, err := v.store.Head(ctx, m.oldKey)
		m.info = info
		return err
	}); err != nil {
		return err
	}
	// Decode every key's path below oldp (hashed segments take their
	// name from their own metadata or their directory's marker).
	byKey := make(map[string]*moved, len(items))
	for _, m := range items {
		byKey[m.oldKey] = m
	}
	decoded := map[string]string{"": oldp} // relative encrypted path -> plaintext path
	var decode func(rel string) (string, error)
	decode = func(rel string) (string, error) {
		if p, ok := decoded[rel]; ok {
			return p, nil
		}
		parentRel, seg := "", rel
		if i := strings.LastIndexByte(rel, '/'); i >= 0 {
			parentRel, seg = rel[:i], rel[i+1:]
		}
		parent, err := decode(parentRel)
		if err != nil {
			return "", err
		}
		long := ""
		if v.lay.hashed(seg) {
			m := byKey[oldPrefix+rel]
			if m == nil {
				m = byKey[oldPrefix+rel+"/"]
			}
			if m == nil {
				return "", fmt.Errorf("long name without metadata: %w", syscall.EIO)
			}
			long = v.lay.longName(m.info.Metadata)
		}
		name, err := v.lay.name(parent, seg, long)
		if err != nil {
			return "", err
		}
		p := joinPath(parent, name)
		decoded[rel] = p
		return p, nil
	}
	for _, m := range items {
		rel := strings.TrimSuffix(m.oldKey[len(oldPrefix):], "/")
		if m.oldPath, err = decode(rel); err != nil {
			return v.failEIO("rename: an entry does not decode; nothing was moved", "", m.oldKey, err)
		}
		m.newPath = newp + strings.TrimPrefix(m.oldPath, oldp)
		key, _, err := v.objectKey(m.newPath)
		if err != nil {
			return err
		}
		m.newKey = key
		if m.marker {
			m.newKey += "/"
		}
	}
	// Copy everything, resealed for its new path.
	var copiedMu sync.Mutex
	var copied []string
	// A failed copy starts no more, but the copies in flight run on under
	// ctx (not the fan-out's, which the failure cancels): each one either
	// fails or is listed in copied, so the cleanup below misses none.
	err = fanOut(ctx, v.opts.ListConcurrency, len(items), func(_ context.Context, i int) error {
		m := items[i]
		var n *node
		var err error
		_, long, kerr := v.objectKey(m.oldPath)
		if kerr != nil {
			return kerr
		}
		if m.marker {
			n, err = v.dirNode(m.oldPath, m.oldKey, long, m.info)
		} else {
			n, err = v.fileNode(m.oldPath, m.oldKey, long, m.info)
		}
		if err != nil {
			return err
		}
		_, newLong, err := v.objectKey(m.newPath)
		if err != nil {
			return err
		}
		nn, err := v.copyObject(ctx, n, m.newKey, m.newPath, newLong, n.attr)
		if err != nil {
			return err
		}
		m.node = nn
		copiedMu.Lock()
		copied = append(copied, m.newKey)
		copiedMu.Unlock()
		return nil
	})
	if err != nil {
		if derr := v.store.DeleteMany(context.WithoutCancel(ctx), copied); derr != nil {
			v.log.Warn("rename failed; removing its partial copies failed too", "err", v.errText(derr, copied))
		}
		return err
	}
	old := make([]string, 0, len(items))
	for _, m := range items {
		if m.oldKey != m.newKey {
			old = append(old, m.oldKey)
		}
	}
	if err := v.store.DeleteMany(ctx, old); err != nil {
		return err
	}
	if dst != nil && dst.key != "" && dst.key != oldPrefix {
		if _, ok := byKey[oldPrefix]; !ok {
			// oldp was implicit: the empty directory it replaced goes.
			if err := v.store.Delete(ctx, dst.key); err != nil {
				return err
			}
		}
	}
	// Open files follow.
	v.mu.Lock()
	for p, f := range v.files {
		if !isUnder(p, oldp) {
			continue
		}
		np := newp + strings.TrimPrefix(p, oldp)
		delete(v.files, p)
		v.files[np] = f
		f.mu.Lock()
		f.path = np
		if f.node != nil {
			if m := byKey[f.node.key]; m != nil && m.node != nil {
				f.node, f.rd, f.replaces = m.node, nil, m.node.etag
			}
		}
		f.mu.Unlock()
	}
	v.mu.Unlock()
	v.meta.dropTree(oldp)
	v.meta.dropTree(newp)
	v.meta.removed(oldp)
	v.meta.invalidate(newp)
	v.meta.added(newp)
	return nil
}
