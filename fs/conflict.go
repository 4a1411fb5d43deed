package fs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// This file decides what an upload refused by its condition does
// (DESIGN.md §5, conflicts between mounts). Every content upload is
// conditional on the version it replaces: If-Match on that version's
// ETag, If-None-Match for a file created here. The store refuses it when
// the object at the path is no longer that version: 412, or 404 for an
// If-Match onto an object deleted since. Then a HEAD says which case it
// is:
//
//	object found with a tag of this upload   stored already (a lost answer, or a run that
//	                                         died before its record was done): done, its
//	                                         attributes resealed if they differ (a stream's)
//	nothing at the path                      deleted by another mount: created again
//	                                         (If-None-Match), since this version is newer
//	anything else                            another mount's version: both are kept; this
//	                                         one is stored beside it as NAME.conflict-TIME
//
// A conflict copy has the file's attributes, is created with
// If-None-Match (taken: -2, -3, ... appended), and the file moves to it;
// a warning names both objects, and Volume.Conflicts lists the pair for
// the unmount report. Nothing is retried against the other version: that
// would undo its writer's change.

// metaUploadTag is the user metadata that carries the upload tag in none
// mode (client mode has the file ID, coffer-fid, which authenticates).
const metaUploadTag = "coffer-upload"

// maxConflictCopies bounds the conflict names tried for one upload.
const maxConflictCopies = 20

// Conflict is a file two writers changed: this mount's version went to
// Copy, beside the other's at Path.
type Conflict struct {
	Path string
	Copy string
}

// Conflicts lists the conflict copies this volume stored, oldest first.
func (v *Volume) Conflicts() []Conflict {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.conflicts)
}

// isConflict reports an upload refused because the object at its path is
// not the version it replaces.
func isConflict(err error) bool {
	return errors.Is(err, blobstore.ErrPreconditionFailed) || errors.Is(err, blobstore.ErrNotFound)
}

// settleConflict handles an upload of job that met a conflict (cause) and
// returns the version it stored: at job.path, or at a conflict copy's
// path.
func (v *Volume) settleConflict(ctx context.Context, job uploadJob, cause error) (*node, error) {
	if job.link != nil {
		return v.settleInodeConflict(ctx, job)
	}
	key, long, err := v.objectKey(job.path)
	if err != nil {
		return nil, err
	}
	for range 3 {
		info, err := v.store.Head(ctx, key)
		if errors.Is(err, blobstore.ErrNotFound) {
			// Deleted since: create it again.
			job.opts = blobstore.PutOptions{IfNoneMatch: true}
			n, err := v.storeStaged(ctx, job)
			if !isConflict(err) {
				return n, err
			}
			cause = err
			continue
		}
		if err != nil {
			return nil, err
		}
		if n, ok := v.ownUpload(job, key, long, info); ok {
			if a := job.attr; !sameSealed(n.attr, a) {
				// A streamed upload completed with the attributes of its
				// start, and its metadata copy did not follow (stream.go).
				a.Size = n.attr.Size
				return v.copyObject(ctx, n, key, job.path, long, a)
			}
			return n, nil
		}
		if l := v.linkReplaced(ctx, job, key, long, info); l != nil {
			// A hard-linked file's content whose link was not known to
			// the upload (a journal record recovered after a crash).
			job.link = l
			n, err := v.storeStaged(ctx, job)
			if isConflict(err) {
				return v.settleInodeConflict(ctx, job)
			}
			return n, err
		}
		return v.storeConflictCopy(ctx, job, key)
	}
	return nil, cause
}

// linkReplaced is the link of the object at job's path (info) when that
// is a hard link whose inode is the version job replaces, or one of its
// uploads; else nil.
func (v *Volume) linkReplaced(ctx context.Context, job uploadJob, key, long string, info blobstore.ObjectInfo) *linkRef {
	if v.keyring() == nil || job.opts.IfMatch == "" {
		return nil
	}
	n, _, err := v.entryNode(ctx, job.path, key, long, info, nil)
	if err != nil || n.link == nil {
		return nil
	}
	if n.etag != job.opts.IfMatch && (n.okey == nil || !job.hasTag(uploadTag(n.okey.FileID()))) {
		return nil
	}
	return n.link
}

// settleInodeConflict settles the conflict of a hard-linked file's
// upload, which met its inode object changed by another mount: unless
// what the inode holds is this upload, this version is kept as a plain
// file (one name, no inode) at a conflict copy of the path it was
// written through, and the inode and its names keep the other version.
func (v *Volume) settleInodeConflict(ctx context.Context, job uploadJob) (*node, error) {
	key := inodeKey(job.link.link.Inode)
	info, err := v.store.Head(ctx, key)
	switch {
	case err == nil:
		if n, err := v.inodeNode(job.path, "", job.link, info); err == nil && n.okey != nil && job.hasTag(uploadTag(n.okey.FileID())) {
			return n, nil
		}
	case !errors.Is(err, blobstore.ErrNotFound):
		return nil, err
	}
	job.link = nil
	return v.storeConflictCopy(ctx, job, key)
}

// hasTag reports whether tag, read from a stored version, is one of
// job's uploads.
func (job uploadJob) hasTag(tag uploadTag) bool {
	return tag == job.up.tag || slices.Contains(job.tags, tag)
}

// ownUpload reports whether info, the object at job's path, is this
// content stored by an earlier upload (one of job's tags), and returns
// its node.
func (v *Volume) ownUpload(job uploadJob, key, long string, info blobstore.ObjectInfo) (*node, bool) {
	n, err := v.fileNode(job.path, key, long, info)
	if err != nil || n.attr.IsSymlink() {
		return nil, false // unreadable or not a file: not ours
	}
	var tag uploadTag
	if n.okey != nil {
		tag = uploadTag(n.okey.FileID())
	} else if b, err := hex.DecodeString(info.Metadata[metaUploadTag]); err == nil && len(b) == len(tag) {
		copy(tag[:], b)
	} else {
		return nil, false
	}
	if !job.hasTag(tag) {
		return nil, false
	}
	return n, true
}

// storeConflictCopy stores job's content beside the other mount's
// version at key, as its conflict copy.
func (v *Volume) storeConflictCopy(ctx context.Context, job uploadJob, key string) (*node, error) {
	at := v.now().UTC()
	for i := 1; i <= maxConflictCopies; i++ {
		cj := job
		cj.path = conflictPath(job.path, at, i)
		cj.opts = blobstore.PutOptions{IfNoneMatch: true}
		n, err := v.storeStaged(ctx, cj)
		if errors.Is(err, blobstore.ErrPreconditionFailed) {
			continue // the name is taken
		}
		if err != nil {
			return nil, err
		}
		v.logEvent(slog.LevelWarn, "conflict: another mount changed this file in the store; both versions are kept, this mount's as a conflict copy beside it",
			job.path, key, "conflict_key", v.logKey(n.key))
		if v.opts.LogPlaintextNames {
			v.log.Debug("conflict copy (paths of the keys above)", "path", job.path, "conflict_path", cj.path)
		}
		v.meta.invalidate(job.path)
		v.meta.added(cj.path)
		v.mu.Lock()
		v.conflicts = append(v.conflicts, Conflict{Path: job.path, Copy: cj.path})
		v.mu.Unlock()
		return n, nil
	}
	return nil, fmt.Errorf("conflict: no free conflict name for this version after %d tries", maxConflictCopies)
}

// conflictPath is the i-th conflict name of p for a conflict at at:
// NAME.conflict-YYYYMMDD-HHMMSS, then -2, -3, ...; NAME is cut (at a
// character boundary) so the name stays within NAME_MAX.
func conflictPath(p string, at time.Time, i int) string {
	dir, name := splitPath(p)
	suffix := ".conflict-" + at.Format("20060102-150405")
	if i > 1 {
		suffix += "-" + strconv.Itoa(i)
	}
	if keep := cipher.NameMax - len(suffix); len(name) > keep {
		for keep > 0 && !utf8.RuneStart(name[keep]) {
			keep--
		}
		name = name[:keep]
	}
	return joinPath(dir, name+suffix)
}
