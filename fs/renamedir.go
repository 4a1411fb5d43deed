package fs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// renameDir renames directory oldp to newp (replacing dst, an empty
// directory, when not nil): every object below it is copied to its new
// key, resealed for its new path, and the sources are deleted only once
// every copy succeeded. A failure before that changes nothing (the
// copies made are removed).
func (v *Volume) renameDir(ctx context.Context, oldp, newp string, dst *node) error {
	if err := v.uploadBelow(ctx, oldp); err != nil {
		return err
	}
	defer v.holdUploadsBelow(oldp)()
	d, err := v.listTree(ctx, oldp, newp)
	if err != nil {
		return err
	}
	if err := d.headAll(ctx); err != nil {
		return err
	}
	if err := d.decodePaths(); err != nil {
		return err
	}
	if err := d.copyAll(ctx); err != nil {
		return err
	}
	if v.renameStep != nil {
		v.renameStep()
	}
	if err := d.deleteSources(ctx, dst); err != nil {
		return err
	}
	d.moveOpenFiles()
	v.inodes.renamedTree(oldp, newp)
	v.meta.dropTree(oldp)
	v.meta.dropTree(newp)
	v.meta.removed(oldp)
	v.meta.invalidate(newp)
	v.meta.added(newp)
	return nil
}

// dirRename is a directory rename in progress.
type dirRename struct {
	v          *Volume
	oldp, newp string
	oldPrefix  string            // listing prefix of oldp
	items      []*moved          // every object below oldp
	byKey      map[string]*moved // items by old key
}

// moved is one object of a directory rename.
type moved struct {
	oldKey, newKey string
	oldPath        string
	newPath        string
	marker         bool
	info           blobstore.ObjectInfo // its metadata (a HEAD)
	node           *node                // the copy, once made
}

// uploadBelow uploads the files staged below directory p, so that the
// store holds the whole tree.
func (v *Volume) uploadBelow(ctx context.Context, p string) error {
	v.mu.Lock()
	var local []*file
	for fp, f := range v.files {
		if isUnder(fp, p) {
			local = append(local, f)
		}
	}
	v.mu.Unlock()
	for _, f := range local {
		f.mu.Lock()
		dirty := f.dirty && !f.removed
		f.mu.Unlock()
		if !dirty {
			continue
		}
		if err := v.retrying(ctx, f.upload); err != nil {
			if Errno(err) == syscall.EIO {
				return v.failEIO("rename: uploading a file staged below the directory", f.path, "", err)
			}
			return err
		}
	}
	return nil
}

// holdUploadsBelow keeps uploads of the files below directory p from
// starting until the returned function is called, and waits for those
// running. An upload landing at an old key during the rename would be
// copied with the metadata of the version before it, or deleted with the
// sources once copied: that version would be lost. A file written
// meanwhile stays staged, moves with the directory (moveOpenFiles) and
// is uploaded under its new path once the rename ends, or under its old
// one if the rename failed.
//
// It waits for running uploads (uploadBelow waited for those of files
// dirty then; one may have started since), not for f.upMu: a file rename
// below p holds the upMu of the file it replaces while it uploads the
// renamed one, which waits for this rename.
func (v *Volume) holdUploadsBelow(p string) (release func()) {
	done := make(chan struct{})
	v.mu.Lock()
	v.renaming[p] = done // the rename holds p's stripe: no other renames p
	if v.renameHeld != nil {
		v.renameHeld()
	}
	for v.uploadingBelowLocked(p) {
		v.uploadEnded.Wait()
	}
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		delete(v.renaming, p)
		v.mu.Unlock()
		close(done)
	}
}

// uploadingBelowLocked reports an upload running of a file below p (v.mu
// held).
func (v *Volume) uploadingBelowLocked(p string) bool {
	for f := range v.uploading {
		f.mu.Lock()
		fp := f.path
		f.mu.Unlock()
		if isUnder(fp, p) {
			return true
		}
	}
	return false
}

// waitRenameAbove waits while a directory above p is being renamed, for
// a metadata rewrite of p: landing at the old key during the rename, it
// would be deleted with the sources, and the copy keep the attributes
// from before. An operation of the Volume API waited at its gate already
// (gate.go) and runs on p's new path; a background store of directory
// times (flushDir) finds p gone once the rename is done (ENOENT), unless
// the rename failed.
func (v *Volume) waitRenameAbove(ctx context.Context, p string) error {
	for {
		v.mu.Lock()
		done := v.renameAboveLocked(p)
		v.mu.Unlock()
		if done == nil {
			return nil
		}
		if err := v.awaitRename(ctx, done); err != nil {
			return err
		}
	}
}

// awaitRename waits for done, a directory rename's end (renameAboveLocked).
func (v *Volume) awaitRename(ctx context.Context, done <-chan struct{}) error {
	if v.renameWait != nil {
		v.renameWait()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// renameAboveLocked is the end of a directory rename in progress above
// p, or nil (v.mu held).
func (v *Volume) renameAboveLocked(p string) <-chan struct{} {
	for dir, done := range v.renaming {
		if isUnder(p, dir) {
			return done
		}
	}
	return nil
}

// listTree lists every object below oldp (a LIST without delimiter).
func (v *Volume) listTree(ctx context.Context, oldp, newp string) (*dirRename, error) {
	prefix, err := v.dirPrefix(oldp)
	if err != nil {
		return nil, err
	}
	d := &dirRename{v: v, oldp: oldp, newp: newp, oldPrefix: prefix, byKey: map[string]*moved{}}
	for e, err := range v.store.List(ctx, prefix, "") {
		if err != nil {
			return nil, err
		}
		if !e.IsPrefix {
			m := &moved{oldKey: e.Key, marker: strings.HasSuffix(e.Key, "/")}
			d.items = append(d.items, m)
			d.byKey[e.Key] = m
		}
	}
	return d, nil
}

// headAll fetches every object's metadata, in parallel.
func (d *dirRename) headAll(ctx context.Context) error {
	return fanOut(ctx, d.v.opts.ListConcurrency, len(d.items), func(ctx context.Context, i int) error {
		m := d.items[i]
		info, err := d.v.store.Head(ctx, m.oldKey)
		m.info = info
		return err
	})
}

// decodePaths decodes every object's path below oldp and gives it its
// new path and key below newp. A key that does not decode fails the
// rename before anything moved.
func (d *dirRename) decodePaths() error {
	decoded := map[string]string{"": d.oldp} // relative key (no trailing "/") -> plaintext path
	for _, m := range d.items {
		var err error
		rel := strings.TrimSuffix(m.oldKey[len(d.oldPrefix):], "/")
		if m.oldPath, err = d.decode(decoded, rel); err != nil {
			return d.v.failEIO("rename: an entry does not decode; nothing was moved", "", m.oldKey, err)
		}
		m.newPath = d.newp + strings.TrimPrefix(m.oldPath, d.oldp)
		key, _, err := d.v.objectKey(m.newPath)
		if err != nil {
			return err
		}
		m.newKey = key
		if m.marker {
			m.newKey += "/"
		}
	}
	return nil
}

// decode returns the plaintext path of the key oldPrefix+rel, decoding
// its parents first (memoised in decoded). A hashed segment takes its
// name from the metadata of its own object, or of its marker when it is
// a directory.
func (d *dirRename) decode(decoded map[string]string, rel string) (string, error) {
	if p, ok := decoded[rel]; ok {
		return p, nil
	}
	parentRel, seg := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		parentRel, seg = rel[:i], rel[i+1:]
	}
	parent, err := d.decode(decoded, parentRel)
	if err != nil {
		return "", err
	}
	lay := d.v.lay
	long := ""
	if lay.hashed(seg) {
		m := d.byKey[d.oldPrefix+rel]
		if m == nil {
			m = d.byKey[d.oldPrefix+rel+"/"]
		}
		if m == nil {
			return "", fmt.Errorf("long name without metadata: %w", syscall.EIO)
		}
		long = lay.longName(m.info.Metadata)
	}
	name, err := lay.name(parent, seg, long)
	if err != nil {
		return "", err
	}
	p := joinPath(parent, name)
	decoded[rel] = p
	return p, nil
}

// copyAll copies every object to its new key, resealed for its new path
// (same ObjectKey), in parallel. When one fails, the copies made are
// removed and nothing has moved.
func (d *dirRename) copyAll(ctx context.Context) error {
	v := d.v
	var mu sync.Mutex
	var copied []string
	// A failed copy starts no more, but the copies in flight run on under
	// ctx (not the fan-out's, which the failure cancels): each one either
	// fails or is listed in copied, so the cleanup below misses none.
	err := fanOut(ctx, v.opts.ListConcurrency, len(d.items), func(_ context.Context, i int) error {
		m := d.items[i]
		nn, err := v.copyMoved(ctx, m)
		if err != nil {
			return err
		}
		m.node = nn
		mu.Lock()
		copied = append(copied, m.newKey)
		mu.Unlock()
		return nil
	})
	if err != nil {
		if derr := v.store.DeleteMany(context.WithoutCancel(ctx), copied); derr != nil {
			v.log.Warn("rename failed; removing its partial copies failed too", "err", v.errText(derr, copied))
		}
	}
	return err
}

// copyMoved authenticates the metadata of one object of a directory
// rename and copies it to its new key.
func (v *Volume) copyMoved(ctx context.Context, m *moved) (*node, error) {
	_, long, err := v.objectKey(m.oldPath)
	if err != nil {
		return nil, err
	}
	var n *node
	if m.marker {
		n, err = v.dirNode(m.oldPath, m.oldKey, long, m.info)
	} else {
		n, err = v.fileNode(m.oldPath, m.oldKey, long, m.info)
	}
	if v.client && errors.Is(err, cipher.ErrIsLink) {
		return v.copyLink(ctx, m)
	}
	if err != nil {
		return nil, err
	}
	_, newLong, err := v.objectKey(m.newPath)
	if err != nil {
		return nil, err
	}
	return v.copyObject(ctx, n, m.newKey, m.newPath, newLong, n.attr)
}

// deleteSources deletes every source once all were copied, and the
// marker of dst, the empty directory replaced, when the copies did not
// overwrite it.
func (d *dirRename) deleteSources(ctx context.Context, dst *node) error {
	v := d.v
	old := make([]string, 0, len(d.items))
	for _, m := range d.items {
		if m.oldKey != m.newKey {
			old = append(old, m.oldKey)
		}
	}
	if err := v.store.DeleteMany(ctx, old); err != nil {
		return err
	}
	if dst != nil && dst.key != "" && dst.key != d.oldPrefix {
		if _, ok := d.byKey[d.oldPrefix]; !ok {
			// oldp was implicit: the empty directory it replaced goes.
			if err := v.store.Delete(ctx, dst.key); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveOpenFiles moves the files open or staged below oldp to their new
// paths; a stored one now reads (and next replaces) its copy.
func (d *dirRename) moveOpenFiles() {
	v := d.v
	v.mu.Lock()
	defer v.mu.Unlock()
	var below []string
	for p := range v.files {
		if isUnder(p, d.oldp) {
			below = append(below, p)
		}
	}
	for _, p := range below {
		f := v.files[p]
		v.repathLocked(f, p, d.newp+strings.TrimPrefix(p, d.oldp))
		f.mu.Lock()
		switch {
		case f.node != nil && f.node.link != nil:
			// A hard link moved: only its link object did.
			if m := d.byKey[f.node.link.key]; m != nil && m.node != nil && m.node.link != nil {
				c := *f.node
				l := *m.node.link
				l.links = f.node.link.links
				c.link = &l
				f.node = &c
			}
		case f.node != nil:
			if m := d.byKey[f.node.key]; m != nil && m.node != nil {
				f.node, f.rd, f.replaces = m.node, nil, m.node.etag
			}
		}
		// A file written again since uploadBelow must not be journalled
		// under its old path.
		f.rejournalLocked()
		f.mu.Unlock()
	}
}
