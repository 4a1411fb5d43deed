package fs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cache/journal"
	"github.com/cofferfs/coffer/cache/staging"
	"github.com/cofferfs/coffer/cipher"
)

// file is the shared state of a regular file open on this volume, or
// staged here and waiting for its upload. Every open of a path shares
// the one file in v.files; it leaves v.files when it is forgotten
// (closed and clean) or removed (its object deleted or replaced).
//
// Its life, by the fields that make its state (all under f.mu; "gone" is
// a file no longer in v.files, left to the garbage collector; jid is its
// pending record in the upload journal, 0 for none):
//
//	state       refs  dirty  removed  jid  timer  what it means
//	open        >0    no     no       0    -      handles read the stored version (node) or a staged copy (st)
//	changed     >0    yes    no       any  -      staged changes not stored yet; fsync uploads them now
//	journalled  >0    yes    no       set  -      a close(2) recorded the staged version; more handles are open
//	waiting     0     yes    no       set  armed  closed and journalled: its upload waits for the writeback delay or a retry
//	uploading   any   yes    no       any  -      an upload holds upMu (changes wait) and took seq
//	removed     >0    any    yes      0    -      unlinked, or replaced by a rename, while open: never uploaded
//	gone        0     -      -        0    -      forgotten: staging removed, record done, its stored version left in meta
//
//	event                          from -> to                                   where
//	create                         -> changed (node nil; excl = O_EXCL)         Volume.create
//	open of a stored file          -> open (node; replaces = its ETag)          Volume.acquire
//	open of a waiting file         waiting -> journalled (the armed upload stays) Volume.acquire
//	first change after a close     journalled -> changed in a copy: the record   keepJournalled
//	  whose version is not stored    keeps the original (kept) until the next close
//	                                 journals the copy or an upload stores it; the
//	                                 armed upload waits for that close
//	write, truncate, setattr       open, changed, journalled -> changed; seq++  changed, file.setAttr
//	  (setattr of a clean stored file is a metadata copy: open, new node and replaces;
//	  of a journalled or waiting one, the new attributes are journalled at once)
//	close(2) of a changed file     changed -> journalled (record, before close returns) Handle.Flush, recordLocked
//	last close, clean              open -> gone                                 Handle.Close, forgetLocked
//	last close, changed            changed, journalled -> waiting (WritebackDelay) Handle.Close, handOffLocked
//	  (a file with a live stream waits no delay: its upload completes the stream, stream.go)
//	timer, fsync, Flush, rename    changed, journalled, waiting -> uploading    file.upload
//	stored, seq unchanged          uploading -> open, or gone when closed;      storedLocked, uploadedLocked,
//	                                 the record is done                          doneLocked
//	stored, seq moved              uploading -> changed, or waiting             storedLocked, uploadedLocked
//	upload failed                  uploading -> changed, or waiting (retry)     uploadFailedLocked
//	another mount changed the      uploading -> stored as NAME.conflict-TIME:   settleConflict, upload
//	  object (412)                   the file moves to that path, as above
//	unlink, rename over it         any -> removed (record done), or gone        keepContent, dropFileLocked
//	  (a stored file still open first gets a private staged copy of the version it opened)
//	rename of the file             state kept, path moves (re-journalled)       moveLocal, renameDir
//	  (a never-stored file drops excl and replaces the target's ETag)
//	last close of a removed file   removed -> gone                              Handle.Close, forgetLocked
//	recovery at mount              (journal record) -> waiting, then uploading  Volume.recover
//
// excl and replaces are the condition of the next upload: If-None-Match
// for a file created here (at the path's first upload, and for an O_EXCL
// create), If-Match on the ETag of the version it replaces (set by the
// open and by every upload or metadata copy; a rename of a never-stored
// file over a stored one takes the replaced file's ETag and drops excl).
// A successful upload clears excl. seq is bumped by every change; an
// upload leaves the file dirty when seq moved while it ran.
//
// The journal's record of a file names its staging file's committed
// version (staging.Version), and is written before close(2) returns. The
// record is done (journal.Done) only after the staging file is removed
// (forgotten) or, for a file still open, once its stored version holds
// everything journalled: so a crash leaves either a record whose staging
// file is gone (nothing to upload) or one whose staging file is exactly
// the version journalled, never a closed file without a record.
//
// Lock order: an operation's gate (v.begin, gate.go) and, for a
// directory rename, the directory rename slot, before everything; then a
// path stripe (v.lockPaths), then f.upMu, then v.mu, then f.mu. A rename holds two upMu: the replaced file's, then the renamed
// one's (the path stripes of both names keep any other holder of both
// away). Uploads of files below a directory being renamed wait for it
// without holding upMu; the rename waits for those running, never for
// upMu (holdUploadsBelow, file.lockUpload).
type file struct {
	v *Volume

	// upMu excludes uploads (Lock) from changes to the content (RLock),
	// so an upload reads one consistent version of the staging file.
	upMu sync.RWMutex

	mu   sync.Mutex
	path string
	attr Attr        // mode, owner, mtime; Size is the stored one when not staged
	node *node       // the stored version (nil: never stored)
	st   stagingFile // the content, once it is staged
	rd   *reader     // reads of node's version

	refs     int    // open handles
	dirty    bool   // staged changes not yet stored
	seq      uint64 // bumped by every change
	excl     bool   // the next upload is a conditional create
	replaces string // ETag of the object the next upload replaces, when known
	removed  bool   // its object was deleted or replaced while open: never uploaded

	// The upload pipeline's (writeback.go).
	timer     timer // the armed upload of a waiting file
	retries   int   // failed uploads in a row
	uploadErr error // the last failure, reported to fsync and Flush

	// The upload journal's (crash safety, DESIGN.md §5).
	jid  journal.ID      // the pending record of the staged content (0: none)
	jver staging.Version // the staging version it records
	jtag uploadTag       // the upload tag it records as current
	up   upKey           // what the next upload of this content is stored under
	// tags are the upload tags earlier uploads of this content may have
	// stored (a crashed run's included), oldest first: an object found
	// at the path with one of them is this content, already stored.
	tags []uploadTag
	// kept is the staging file the record jid vouches for, set aside
	// while the content changes again in a copy (keepJournalled) until
	// the copy is journalled or stored in turn; nil otherwise.
	kept stagingFile

	// Streaming writeback's (stream.go).
	stream   *stream // the multipart upload running while the file is written
	seqEnd   int64   // bytes [0, seqEnd) written sequentially since staged empty
	noStream bool    // this version was not written sequentially: no stream
}

// uploadTag tells one upload of a file's content from every other: the
// file ID of its ObjectKey in client mode, 16 random bytes (metadata
// coffer-upload) in none mode. Journalled before the upload starts, it
// lets a later run recognise an upload that finished before its record
// was marked done.
type uploadTag [16]byte

// upKey is the key material of the next upload of one content version
// (seq): its ObjectKey (nil in none mode) and tag. A retry of the same
// content reuses it; any change draws a new one.
type upKey struct {
	okey *cipher.ObjectKey
	tag  uploadTag
	seq  uint64
	set  bool
}

// maxTags bounds the upload tags a record keeps.
const maxTags = 4

// MarshalText encodes a tag in the journal's JSON (base64url).
func (t uploadTag) MarshalText() ([]byte, error) {
	return []byte(base64.RawURLEncoding.EncodeToString(t[:])), nil
}

// UnmarshalText decodes a tag from the journal's JSON.
func (t *uploadTag) UnmarshalText(b []byte) error {
	if base64.RawURLEncoding.DecodedLen(len(b)) != len(t) {
		return fmt.Errorf("upload tag of %d characters", len(b))
	}
	_, err := base64.RawURLEncoding.Decode(t[:], b)
	return err
}

// timer is an armed upload; Stop disarms it (*time.Timer).
type timer interface{ Stop() bool }

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
	if n.link != nil && !n.attr.Unlinked {
		if cur := f.v.inodes.get(n.link.link.Inode); cur != nil {
			n.attr.Links = uint32(cur.link.links.Len())
		}
	}
	return &n
}

// stagedMeta is what the journal records (sealed) about a staged file,
// and what its staging file holds (sealed) for coffer fsck --repair: the
// canonical path, the attributes, the condition of its upload (the ETag
// of the version it replaces, or a create), and in the journal the tags
// of the uploads that may have stored it. A staging file of a file
// unlinked while open says only Removed.
type stagedMeta struct {
	Path     string `json:"path,omitempty"`
	Mode     uint32 `json:"mode,omitempty"`
	UID      uint32 `json:"uid,omitempty"`
	GID      uint32 `json:"gid,omitempty"`
	MtimeNs  int64  `json:"mtime_ns,omitempty"`
	Replaces string `json:"replaces,omitempty"`
	Excl     bool   `json:"excl,omitempty"`
	// The rest of the attributes (version 2), so a recovered upload
	// carries what a clean one would.
	AtimeNs int64             `json:"atime_ns,omitempty"`
	CtimeNs int64             `json:"ctime_ns,omitempty"`
	Changes uint64            `json:"changes,omitempty"`
	Xattrs  map[string][]byte `json:"xattrs,omitempty"`
	// The journal's: the tags of uploads that may have stored it.
	Tags    []uploadTag `json:"tags,omitempty"`
	Removed bool        `json:"removed,omitempty"`
}

// journalLocked encodes the file's staged metadata for its staging file
// (f.mu held, or f not yet shared).
func (f *file) journalLocked() []byte { return f.metaLocked(false) }

// metaLocked encodes the staged metadata; withTags adds the upload tags
// (the journal's record).
func (f *file) metaLocked(withTags bool) []byte {
	m := stagedMeta{
		Path: f.path, Mode: f.attr.Mode, UID: f.attr.UID, GID: f.attr.GID,
		MtimeNs: f.attr.Mtime.UnixNano(), Replaces: f.replaces, Excl: f.excl,
		AtimeNs: f.attr.Atime.UnixNano(), CtimeNs: f.attr.Ctime.UnixNano(), Changes: f.attr.Changes,
	}
	for name, value := range f.attr.Xattrs.All() {
		if m.Xattrs == nil {
			m.Xattrs = map[string][]byte{}
		}
		m.Xattrs[name] = value
	}
	if withTags {
		m.Tags = f.tags
	}
	b, _ := json.Marshal(m)
	return b
}

// rejournalLocked records a changed path or attributes (f.mu held): in
// the staging file, and in the journal when the file has a record or is
// closed (a record of the old path or attributes would upload the file
// under them after a crash). Failures only cost recoverability.
func (f *file) rejournalLocked() {
	if f.st == nil || f.removed {
		return
	}
	if err := f.st.SetMeta(f.journalLocked()); err != nil {
		f.v.logEvent(slog.LevelWarn, "recording staged metadata", f.path, "", "err", err)
	}
	if f.jid != 0 || f.refs == 0 {
		if err := f.recordLocked(); err != nil {
			f.v.logEvent(slog.LevelWarn, "journalling a staged file", f.path, "", "err", err)
		}
	}
}

// recordLocked journals f's staged content as it is now (f.mu held): the
// committed staging version with the path, attributes, upload condition
// and upload tags, written to the journal before it returns, so that the
// upload survives the death of the process (and, after the journal's
// batch sync, of the machine). A version journalled already is not
// recorded again; a clean, removed or unstaged file needs no record.
func (f *file) recordLocked() error {
	if !f.dirty || f.removed || f.st == nil {
		return nil
	}
	ver, err := f.st.Commit()
	if err != nil {
		return err
	}
	if err := f.upKeyLocked(); err != nil {
		return err
	}
	if f.jid != 0 && ver == f.jver && f.jtag == f.up.tag {
		return nil
	}
	st, old := f.st, f.jid
	id, err := f.v.local.journal.Append(journal.Entry{
		Staging: journal.Staging(ver),
		Blob:    f.metaLocked(true),
		Sync:    func() error { return syncStaging(st) },
	})
	if err != nil {
		return err
	}
	f.jid, f.jver, f.jtag = id, ver, f.up.tag
	if f.kept != nil {
		// The copy is journalled: the version set aside is superseded.
		f.dropKeptLocked(old)
	}
	return nil
}

// keepJournalled is called before a change of the staged content (the
// caller holds f.upMu for reading, so no upload runs). When the staging
// file is exactly what a close(2) journalled and not yet stored, the
// change would overwrite the only copy of that closed version, and a
// crash before the next close would lose it (recovery cannot upload a
// staging file changed after its record). So the change goes to a copy:
// the record keeps vouching for the original, set aside as f.kept until
// the copy is journalled (the next close) or stored (recordLocked,
// doneLocked). The copy costs one pass over the file (over its first
// upTo bytes, when upTo >= 0: a truncate), once per reopen.
func (f *file) keepJournalled(upTo int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jid == 0 || f.kept != nil || f.removed || f.st == nil || f.st.Version() != f.jver {
		return nil
	}
	cp, err := f.v.local.newStaging(f.journalLocked())
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if err := copyStaged(cp, f.st, upTo); err != nil {
		cp.Remove()
		return err
	}
	f.kept, f.st = f.st, cp
	return nil
}

// copyStaged copies the content of staging file src (its first upTo
// bytes when upTo >= 0) into dst.
func copyStaged(dst, src stagingFile, upTo int64) error {
	size := src.Size()
	if upTo >= 0 {
		size = min(size, upTo)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n, err := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return err
		}
		if _, err := dst.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += int64(n)
	}
	return dst.Truncate(size) // a sparse tail, or an empty file
}

// dropKeptLocked removes the staging file set aside by keepJournalled
// and marks its record (id) done (f.mu held): removed first, so that a
// crash in between leaves a record whose staging file is gone, which
// recovery takes as done.
func (f *file) dropKeptLocked(id journal.ID) {
	if err := f.kept.Remove(); err != nil {
		f.v.log.Warn("removing a staging file", "err", err)
	}
	f.kept = nil
	if id == 0 || id == f.jid {
		return
	}
	if err := f.v.local.journal.Done(id); err != nil {
		f.v.log.Warn("marking a journal record done (the next mount finds it again and checks the store)", "err", err)
	}
}

// syncStaging fsyncs a staging file for the journal; one removed since
// (its file stored or dropped) needs nothing.
func syncStaging(st stagingFile) error {
	if err := st.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// upKeyLocked makes sure f.up is the key of its current content (f.mu
// held), drawing a new one (and tag) when the content changed.
func (f *file) upKeyLocked() error {
	if f.stream != nil {
		// The stream's key: it completes with whatever version is
		// staged when it finishes.
		f.up.seq = f.seq
		return nil
	}
	if f.up.set && f.up.seq == f.seq {
		return nil
	}
	return f.newUpKeyLocked()
}

// newUpKeyLocked draws the key material of a new upload of f's content
// as it is now (f.mu held): a fresh ObjectKey (nil in none mode) and its
// tag, which joins the tags a later run may find stored.
func (f *file) newUpKeyLocked() error {
	okey, err := f.v.lay.newObjectKey()
	if err != nil {
		return err
	}
	var tag uploadTag
	if okey != nil {
		tag = uploadTag(okey.FileID())
	} else if _, err := rand.Read(tag[:]); err != nil {
		return err
	}
	f.up = upKey{okey: okey, tag: tag, seq: f.seq, set: true}
	f.tags = append(f.tags, tag)
	if len(f.tags) > maxTags {
		f.tags = f.tags[len(f.tags)-maxTags:]
	}
	return nil
}

// doneLocked marks f's record done (f.mu held): its content is stored,
// or no longer to be.
func (f *file) doneLocked() {
	if f.kept != nil {
		f.dropKeptLocked(0) // a newer version is stored, or none is wanted
	}
	if f.jid == 0 {
		return
	}
	if err := f.v.local.journal.Done(f.jid); err != nil {
		f.v.log.Warn("marking a journal record done (the next mount finds it again and checks the store)", "err", err)
	}
	f.jid = 0
}

func (f *file) readerLocked() *reader {
	if f.rd == nil {
		f.rd = f.v.newReader(f.node)
	}
	return f.rd
}

// changedAt records a write of n bytes at off (changed), and tells the
// stream.
func (f *file) changedAt(off int64, n int) {
	f.mu.Lock()
	f.wroteLocked(off, n)
	f.mu.Unlock()
	f.changed()
}

// changed records a change of the content: mtime and ctime move (atime
// stays: Linux moves only those on a write).
func (f *file) changed() {
	f.mu.Lock()
	f.dirty = true
	f.seq++
	now := time.Now()
	f.attr.Mtime = now
	f.attr.touch(now)
	f.mu.Unlock()
}

// maxObjectSize is S3's largest object (5 TiB).
const maxObjectSize = 5 << 40

// maxFileSize is the largest file the volume can store: its object must
// fit in blobstore.MaxParts parts of the upload pool and in S3's largest
// object. A truncate past it, or a write that starts at it, is EFBIG and
// changes nothing; a write across it is cut short there (POSIX write(2)).
// A bigger staged file could never be uploaded.
func (v *Volume) maxFileSize() int64 {
	limit := min(maxObjectSize, blobstore.MaxParts*v.pool.PartSize())
	if v.client {
		return cipher.MaxPlainSize(limit)
	}
	return limit
}

// truncate sets the size (the caller holds a reference). As POSIX has
// it, truncate(2) and ftruncate change the times only when the size
// changes; open with O_TRUNC (always) changes them in any case.
func (f *file) truncate(ctx context.Context, size int64, always bool) error {
	if size < 0 {
		return syscall.EINVAL
	}
	if size > f.v.maxFileSize() {
		return withErrno(syscall.EFBIG, fmt.Errorf("%d bytes exceed the largest file the volume stores (%d)", size, f.v.maxFileSize()))
	}
	f.upMu.RLock()
	defer f.upMu.RUnlock()
	same := f.snapshot().attr.Size == size
	if err := f.stageFor(ctx, size); err != nil {
		return err
	}
	if err := f.keepJournalled(size); err != nil {
		return f.v.stagingFailed(f, err)
	}
	f.mu.Lock()
	f.truncatedLocked(size)
	f.mu.Unlock()
	if err := f.st.Truncate(size); err != nil {
		return f.v.stagingFailed(f, err)
	}
	if always || !same {
		f.changed()
	}
	return nil
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
	p := f.path
	f.mu.Unlock()
	if !need {
		return nil
	}
	err := f.stage(ctx)
	if errors.Is(err, syscall.ENOSPC) {
		// The block cache has given its room already (staging's reclaim).
		f.v.logEvent(slog.LevelWarn, "no room on the local disk to keep the version open handles read: their reads fail from now on (ENOENT)", p, "", "err", err)
	}
	return err
}

// keptOrLost reports whether an unlink or rename may go on after
// keepContent returned err: when it succeeded; when the version the
// handles opened is unreadable anyway (gone, replaced by another client,
// failed authentication); or when the local disk has no room for the
// copy, since refusing would keep a user from freeing space by removing
// files (the handles' reads and writes then fail as when another client
// removed the file, ENOENT or ESTALE; nothing staged is lost). Other
// failures (store unreachable, a local disk error, interrupted) fail the
// operation, which changed nothing and can be retried.
func keptOrLost(err error) bool {
	if err == nil || errors.Is(err, cipher.ErrAuth) || errors.Is(err, cipher.ErrInvalidSize) {
		return true
	}
	switch Errno(err) {
	case syscall.ENOENT, syscall.ESTALE, syscall.ENOSPC:
		return true
	}
	return false
}

// forgetLocked drops a file that is closed and clean (v.mu and f.mu held).
func (v *Volume) forgetLocked(f *file) {
	if f.refs > 0 || (f.dirty && !f.removed) {
		return
	}
	f.abortStreamLocked()
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
	// After the removal: a crash in between leaves a record whose
	// staging file is gone, which recovery takes as done.
	f.doneLocked()
	f.tags, f.up = nil, upKey{}
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
	f.abortStreamLocked()
	f.attr.Unlinked = true
	f.attr.touch(time.Now()) // its link count dropped
	if v.files[p] == f {
		delete(v.files, p)
	}
	if f.refs == 0 {
		v.forgetLocked(f)
		return f.node
	}
	// Still open: the staging file stays for its handles. It says it was
	// removed before the record goes, so that recovery after a crash
	// deletes it rather than keeping it as a file to repair.
	if f.st != nil {
		if err := f.st.SetMeta(removedMeta); err != nil {
			v.log.Warn("marking a staging file removed", "err", err)
		}
	}
	f.doneLocked()
	return f.node
}

// removedMeta is the staged metadata of a file unlinked while open.
var removedMeta, _ = json.Marshal(stagedMeta{Removed: true})

// uploadJob is one upload of a file: its staged content and what goes
// with it, as they were when the upload started.
type uploadJob struct {
	path string
	attr Attr
	seq  uint64 // f.seq then: a change since leaves the file dirty
	st   stagingFile
	opts blobstore.PutOptions // the condition: excl, replaces
	up   upKey                // its ObjectKey and tag
	tags []uploadTag          // tags of uploads that may have stored this content
	// stream, if set, holds most of the content uploaded already: the
	// upload finishes it (finishStream).
	stream *stream
	link   *linkRef // a hard-linked file's: the content goes to its inode
}

// linkLocked is the link of a hard-linked file's stored version.
func (f *file) linkLocked() *linkRef {
	if f.node == nil {
		return nil
	}
	return f.node.link
}

// uploadJobLocked returns the upload of f's staged changes; ok is false
// when there are none to upload (clean, removed, or never staged). f.mu
// held, and f.upMu by the uploader, so the content stays as taken; the
// caller drew the content's upload key first (upKeyLocked).
func (f *file) uploadJobLocked() (job uploadJob, ok bool) {
	if !f.dirty || f.removed || f.st == nil || !f.up.set || f.up.seq != f.seq {
		return uploadJob{}, false
	}
	return uploadJob{
		path: f.path, attr: f.attr, seq: f.seq, st: f.st,
		opts: blobstore.PutOptions{IfNoneMatch: f.excl, IfMatch: f.replaces},
		up:   f.up, tags: slices.Clone(f.tags), stream: f.stream,
		link: f.linkLocked(),
	}, true
}

// storedLocked makes n, the object job stored, f's stored version (v.mu
// and f.mu held): the version it replaced leaves the block cache, the
// next upload replaces n, and f is clean unless it changed meanwhile.
func (f *file) storedLocked(job uploadJob, n *node) {
	v := f.v
	if f.node != nil {
		v.dropCached(f.node)
	}
	f.node, f.rd = n, nil
	f.excl, f.replaces = false, n.etag
	if f.seq == job.seq {
		f.dirty = false
		f.tags, f.up = nil, upKey{}
		f.seqEnd, f.noStream = 0, false
	}
	if f.path == job.path && !f.removed {
		s := *n
		s.attr = f.attr
		s.attr.Size = n.attr.Size
		v.meta.put(&s)
	}
}
