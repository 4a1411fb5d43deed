package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

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
	o, err := v.begin(ctx, oldPath, newPath)
	if err != nil {
		return v.finish("rename", oldPath, err)
	}
	defer v.end(o)
	err = v.rename(ctx, o, flags)
	return v.finish("rename", o.paths[0], err)
}

// errSamePath is renameChecks' answer for a rename that does nothing.
var errSamePath = errors.New("rename to itself")

func (v *Volume) rename(ctx context.Context, o *op, flags RenameFlags) error {
	var endDir func(moved bool)
	var src, dst *node
	for {
		var err error
		src, dst, err = v.renameChecks(ctx, o.paths[0], o.paths[1], flags)
		if err != nil {
			if endDir != nil {
				endDir(false)
			}
			if errors.Is(err, errSamePath) {
				return nil
			}
			return err
		}
		if !src.isDir() || endDir != nil {
			break
		}
		// A directory: it renames alone, after the operations in progress
		// below it (gate.go); then everything is looked at again.
		if endDir, err = v.dirRename(ctx, o); err != nil {
			return err
		}
	}
	oldp, newp := o.paths[0], o.paths[1]
	moved := false
	if endDir != nil {
		defer func() { endDir(moved) }()
	}
	if parentOf(oldp) != parentOf(newp) {
		defer v.keepDir(ctx, v.implicitParent(ctx, oldp))
	}
	now := time.Now()
	if src.isDir() {
		// Its directories' unstored times move with them: store them first.
		if err := v.flushDirs(ctx, oldp); err != nil {
			return err
		}
		// The stripes keep a background store of either directory's times
		// (flushDir) from rewriting a marker, or caching one, across it.
		unlock := v.lockPaths(oldp, newp)
		err := v.renameDir(ctx, oldp, newp, dst)
		moved = err == nil
		if err == nil {
			// What was pending at newp was the replaced directory's.
			v.dirs.drop(newp)
			v.dirs.drop(oldp)
		}
		unlock()
		if err != nil {
			return err
		}
		v.touchDir(newp, now, false)
	} else if err := v.renameFile(ctx, oldp, newp, src, dst, now); err != nil {
		return err
	}
	v.touchParent(oldp, now)
	v.touchParent(newp, now)
	return nil
}

// renameChecks looks up the source and destination of a rename and
// refuses what rename(2) refuses; dst is nil when newp names nothing.
func (v *Volume) renameChecks(ctx context.Context, oldp, newp string, flags RenameFlags) (src, dst *node, err error) {
	if flags&RenameExchange != 0 {
		return nil, nil, syscall.EINVAL
	}
	if err := v.checkWritable(oldp); err != nil {
		return nil, nil, err
	}
	if err := v.checkWritable(newp); err != nil {
		return nil, nil, err
	}
	if oldp == "/" || newp == "/" {
		return nil, nil, syscall.EBUSY
	}
	if oldp == newp {
		return nil, nil, errSamePath
	}
	if isUnder(newp, oldp) {
		return nil, nil, syscall.EINVAL
	}
	// A rename moves stored objects: held markers are stored first.
	if err := errors.Join(v.storeHeld(ctx, oldp), v.storeHeld(ctx, newp)); err != nil {
		return nil, nil, err
	}
	if src, err = v.lookup(ctx, oldp); err != nil {
		return nil, nil, err
	}
	if err := checkOwn(src); err != nil {
		return nil, nil, err
	}
	if err := v.checkParent(ctx, newp); err != nil {
		return nil, nil, err
	}
	if _, _, err := v.objectKey(newp); err != nil {
		return nil, nil, err
	}
	dst, err = v.lookup(ctx, newp)
	switch {
	case errors.Is(err, syscall.ENOENT):
		dst = nil
	case err != nil:
		return nil, nil, err
	case dst.foreign:
		return nil, nil, checkOwn(dst)
	case flags&RenameNoReplace != 0:
		return nil, nil, syscall.EEXIST
	case src.isDir() && !dst.isDir():
		return nil, nil, syscall.ENOTDIR
	case !src.isDir() && dst.isDir():
		return nil, nil, syscall.EISDIR
	case dst.isDir():
		if err := v.checkEmpty(ctx, newp); err != nil {
			return nil, nil, err
		}
	}
	return src, dst, nil
}

func (v *Volume) checkEmpty(ctx context.Context, p string) error {
	if v.hasLocalFilesUnder(p) || len(v.heldChildren(p)) > 0 {
		return syscall.ENOTEMPTY
	}
	prefix, err := v.dirPrefix(p)
	if err != nil {
		return err
	}
	for _, err := range v.listDir(ctx, prefix, blobstore.ListOptions{}) {
		if err != nil {
			return err
		}
		return syscall.ENOTEMPTY
	}
	return nil
}

// renameFile moves a file, symlink or special file; its ctime moves to
// now.
func (v *Volume) renameFile(ctx context.Context, oldp, newp string, src, dst *node, now time.Time) error {
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
	// The new name may be hashed, its full encoding then sealed along:
	// refuse now (E2BIG) what could not be stored under it, before anything
	// moves. A staged file would otherwise take the name and fail its
	// upload for ever.
	attr := src.attr
	if f != nil {
		attr = f.snapshot().attr
	}
	if err := v.metaFits(newp, attr); err != nil {
		return err
	}
	v.mu.Lock()
	victim := v.files[newp]
	v.mu.Unlock()
	if victim == f || linkSurvives(dst) {
		victim = nil // a link's inode lives on under its other names
	}
	if victim != nil {
		// Wait for an upload of the file this rename replaces that is in
		// flight, and make sure none follows (as unlink does): landing
		// after the rename, it would overwrite what the rename put there,
		// or, when this file is still staged, be found by this file's
		// upload and taken for another mount's version (a conflict copy of
		// this mount's own file: git writes packed-refs twice through
		// packed-refs.lock, and TestGitClone met it under load).
		//
		// Lock order: the victim's upMu, then the renamed file's (below).
		// Two renames crossing (a to b while b to a) would take them in
		// opposite orders; through FUSE they never run at once, since the
		// kernel holds the parents' locks (lock_rename) for the whole
		// rename, and the core's other callers rename one file at a time.
		if !victim.upMu.TryLock() {
			if v.upWait != nil {
				v.upWait()
			}
			victim.upMu.Lock()
		}
		defer victim.upMu.Unlock()
		if n := victim.snapshot(); n.key != "" && n.path == newp {
			// Stored meanwhile: that object is what goes. (Stored as a
			// conflict copy instead, it moved away and stays: the other
			// mount's version is what this rename meets at newp.)
			dst = n
		}
		// Handles open on the file this rename replaces keep reading what
		// they opened (see unlink).
		if err := victim.keepContent(ctx); !keptOrLost(err) {
			return err
		}
	}
	if f != nil {
		f.mu.Lock()
		storedDirty := f.node != nil && f.dirty && !f.removed
		// A closed file whose stream has its body stored already (all but
		// the completion) finishes under the old name and is copied, as
		// a stored file is (stream.go says why), rather than uploaded
		// again under the new one.
		streamed := f.node == nil && f.stream != nil && f.refs == 0 && !f.removed
		f.mu.Unlock()
		if storedDirty || streamed {
			// Its stored version is about to be copied: bring it up to date.
			if err := v.retrying(ctx, f.upload); err != nil {
				return err
			}
			f.mu.Lock()
			if f.path != oldp {
				// Stored as a conflict copy: that is what moves; the other
				// mount's version stays at oldp.
				oldp = f.path
			}
			f.mu.Unlock()
		}
		f.upMu.Lock()
		defer f.upMu.Unlock()
		f.mu.Lock()
		local := f.node == nil
		f.mu.Unlock()
		if local {
			switch {
			case dst != nil && dst.link != nil:
				// A hard link it replaces: that name leaves its inode.
				if err := v.store.Delete(ctx, dst.link.key); err != nil {
					return err
				}
				v.dropReplacedLink(ctx, dst, v.fileAt(newp, f), now)
			case dst != nil && dst.key != "" && !dst.isDir():
				// The entry it replaces goes now: were it left for the
				// upload to overwrite, an unlink or rename of this file
				// before its upload would bring it back.
				if err := v.store.Delete(ctx, dst.key); err != nil {
					return err
				}
				v.dropCached(dst)
			}
			v.moveLocal(f, oldp, newp, now)
			v.meta.removed(oldp)
			v.meta.invalidate(newp)
			v.meta.added(newp)
			return nil
		}
	}
	if ln := src; f != nil && f.node != nil && f.node.link != nil || src.link != nil {
		if f != nil && f.node != nil {
			ln = f.node
		}
		return v.renameLink(ctx, f, oldp, newp, ln, dst, now)
	}
	for attempt := 0; ; attempt++ {
		n := src
		attr := src.attr
		if f != nil {
			fs := f.snapshot()
			n, attr = f.node, fs.attr
		}
		attr.touch(now)
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
		if dst != nil && dst.link != nil {
			v.dropReplacedLink(ctx, dst, v.fileAt(newp, f), now)
		} else if dst != nil && dst.key != n.key {
			v.dropCached(dst)
		}
		if f != nil {
			v.moveLocal(f, oldp, newp, now)
			v.mu.Lock()
			f.mu.Lock()
			f.node, f.rd, f.replaces = nn, nil, nn.etag
			f.attr.Ctime, f.attr.Changes = nn.attr.Ctime, nn.attr.Changes
			// Closed and uploaded while this rename waited for it (its
			// writeback timer fired), it was forgotten, and moveLocal put
			// it back: forget it again, or it would stand for newp here
			// for ever, over whatever the store holds.
			v.forgetLocked(f)
			f.mu.Unlock()
			v.mu.Unlock()
		} else {
			v.dropLocal(newp)
		}
		v.meta.removed(oldp)
		v.meta.put(nn)
		v.meta.added(newp)
		return nil
	}
}

// moveLocal moves the state of an open or staged file to newp (its
// ctime moves to now); a file open at newp is replaced (its handles keep
// what they have). f is journalled under newp before the replaced file's
// record goes, so a crash in between keeps both versions rather than
// neither.
func (v *Volume) moveLocal(f *file, oldp, newp string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	other := v.files[newp]
	v.repathLocked(f, oldp, newp)
	f.mu.Lock()
	f.abortStreamLocked() // its upload is bound to the old key
	if f.node == nil {
		// Never stored: what it replaced at newp was deleted, so its
		// first upload creates (If-None-Match).
		f.excl = true
		f.replaces = ""
		f.attr.touch(now)
		f.seq++
	}
	f.rejournalLocked()
	f.mu.Unlock()
	if other != nil && other != f {
		v.dropFileLocked(other, newp)
	}
}

// repathLocked moves f, open or staged at oldp, to newp: its entry in
// v.files and its path (v.mu held, not f.mu).
func (v *Volume) repathLocked(f *file, oldp, newp string) {
	if v.files[oldp] == f {
		delete(v.files, oldp)
	}
	v.files[newp] = f
	f.mu.Lock()
	f.path = newp
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
