package blobstore

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Local is the local-directory backend: one file per object (a header
// with size, ETag, time and metadata, then the body) under
// dir/objects, laid out as local_layout.go describes.
//
// Writes go to a temp file in this instance's own temp dir (same file
// system), are fsync'd, and are published by rename under the commit
// lock, where conditions are checked; so readers see whole objects
// only, and conditional operations are atomic across goroutines and
// processes. Body I/O happens outside the lock. ETags are the hex MD5 of
// the body (S3's for single-part objects; "md5-of-md5s-N" for multipart)
// and a copy keeps its source's ETag, as S3 does. SSE options do not
// apply to this backend.
type Local struct {
	root    string
	objects string
	tmp     string   // this instance's temp dir, root/tmp/<id>
	tmpLock *os.File // flocked while open: marks tmp as in use
	lockf   *os.File // root/lock, flocked for each commit (other processes)
	mu      sync.Mutex
	bufs    sync.Pool

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*Local)(nil)

const (
	localMarkerName  = "coffer-local-store"
	localMarkerText  = "coffer local object store, format 1\n"
	localMagic       = "coffer\x00\x01"
	maxETagLen       = 64
	fixedHeaderLen   = len(localMagic) + 8 + 8 + 1 + maxETagLen + 4
	maxMetaJSONLen   = 64 << 10
	maxMetadataBytes = 2048 // S3's limit on user metadata (keys + values)
	maxPartNumber    = 10000
	copyBufSize      = 256 << 10
	copyRetries      = 5
)

// NewLocal opens the local store in dir, creating it when dir is missing
// or empty. A non-empty directory that is not a coffer store is refused.
// Temp files left by crashed processes are removed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, &Error{Op: "open", Err: errors.New("empty store directory")}
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, &Error{Op: "open", Key: dir, Err: err}
	}
	if err := initStoreDir(root); err != nil {
		return nil, &Error{Op: "open", Key: root, Err: err}
	}
	l := &Local{root: root, objects: filepath.Join(root, "objects")}
	l.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	for _, d := range []string{l.objects, filepath.Join(root, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, &Error{Op: "open", Key: root, Err: err}
		}
	}
	l.lockf, err = os.OpenFile(filepath.Join(root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &Error{Op: "open", Key: root, Err: err}
	}
	if err := l.claimTempDir(); err != nil {
		l.lockf.Close()
		return nil, &Error{Op: "open", Key: root, Err: err}
	}
	l.cleanStaleTemp()
	return l, nil
}

// initStoreDir creates root and its marker, or checks an existing one.
func initStoreDir(root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	marker := filepath.Join(root, localMarkerName)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("directory is not empty and not a coffer store (no %s file): choose an empty or new directory", localMarkerName)
	}
	err = os.WriteFile(marker, []byte(localMarkerText), 0o600)
	if err == nil {
		err = syncDir(root)
	}
	return err
}

// claimTempDir creates root/tmp/<id>.lock, flocks it, then creates
// root/tmp/<id>. A live owner holds its lock, so a lock that can be
// taken belongs to a dead process and its dir can go (cleanStaleTemp).
func (l *Local) claimTempDir() error {
	tmpRoot := filepath.Join(l.root, "tmp")
	for range 10 {
		id := randomHex(8)
		lockPath := filepath.Join(tmpRoot, id+".lock")
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return fmt.Errorf("lock temp dir: %w", err)
		}
		// A cleaner may have taken and removed the lock file before we
		// locked it: then it is not ours any more; try another id.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(lockPath)
		if err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
			f.Close()
			continue
		}
		dir := filepath.Join(tmpRoot, id)
		if err := os.Mkdir(dir, 0o700); err != nil {
			f.Close()
			os.Remove(lockPath)
			return err
		}
		l.tmp, l.tmpLock = dir, f
		return nil
	}
	return errors.New("could not create a temp dir")
}

// cleanStaleTemp removes temp dirs whose owner is gone.
func (l *Local) cleanStaleTemp() {
	tmpRoot := filepath.Join(l.root, "tmp")
	ents, err := os.ReadDir(tmpRoot)
	if err != nil {
		return
	}
	own := filepath.Base(l.tmp)
	for _, e := range ents {
		name := e.Name()
		id, isLock := strings.CutSuffix(name, ".lock")
		if id == own {
			continue
		}
		if !isLock {
			// A dir without its lock file: a cleaner died half-way.
			if _, err := os.Stat(filepath.Join(tmpRoot, name+".lock")); errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(filepath.Join(tmpRoot, name))
			}
			continue
		}
		f, err := os.OpenFile(filepath.Join(tmpRoot, name), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(filepath.Join(tmpRoot, id))
			os.Remove(filepath.Join(tmpRoot, name))
		}
		f.Close()
	}
}

// Close removes this instance's temp dir (aborting its multipart
// uploads) and releases its locks.
func (l *Local) Close() error {
	l.closeOnce.Do(func() {
		err := os.RemoveAll(l.tmp)
		os.Remove(l.tmp + ".lock")
		l.closeErr = errors.Join(err, l.tmpLock.Close(), l.lockf.Close())
	})
	return l.closeErr
}

// localHeader is the start of every object file.
type localHeader struct {
	size  int64
	mtime time.Time
	etag  string
	meta  map[string]string
}

// encode lays out: magic, size, mtime (unix ns), etag length and etag
// (padded to maxETagLen), metadata JSON length and the JSON.
func (h *localHeader) encode() ([]byte, error) {
	if len(h.etag) > maxETagLen {
		return nil, fmt.Errorf("etag too long")
	}
	meta, err := json.Marshal(h.meta)
	if err != nil {
		return nil, err
	}
	b := make([]byte, fixedHeaderLen, fixedHeaderLen+len(meta))
	copy(b, localMagic)
	p := b[len(localMagic):]
	binary.BigEndian.PutUint64(p, uint64(h.size))
	binary.BigEndian.PutUint64(p[8:], uint64(h.mtime.UnixNano()))
	p[16] = byte(len(h.etag))
	copy(p[17:], h.etag)
	binary.BigEndian.PutUint32(p[17+maxETagLen:], uint32(len(meta)))
	return append(b, meta...), nil
}

var errCorrupt = errors.New("corrupt object file")

// readHeader reads the header of an object file; it returns the offset
// of the body and checks that the file holds exactly the body's bytes.
func readHeader(f *os.File) (localHeader, int64, error) {
	var fixed [fixedHeaderLen]byte
	if _, err := io.ReadFull(f, fixed[:]); err != nil {
		return localHeader{}, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if string(fixed[:len(localMagic)]) != localMagic {
		return localHeader{}, 0, fmt.Errorf("%w: bad magic", errCorrupt)
	}
	p := fixed[len(localMagic):]
	h := localHeader{
		size:  int64(binary.BigEndian.Uint64(p)),
		mtime: time.Unix(0, int64(binary.BigEndian.Uint64(p[8:]))),
	}
	etagLen := int(p[16])
	metaLen := int(binary.BigEndian.Uint32(p[17+maxETagLen:]))
	if etagLen > maxETagLen || metaLen > maxMetaJSONLen || h.size < 0 {
		return localHeader{}, 0, fmt.Errorf("%w: bad header", errCorrupt)
	}
	h.etag = string(p[17 : 17+etagLen])
	meta := make([]byte, metaLen)
	if _, err := io.ReadFull(f, meta); err != nil {
		return localHeader{}, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if err := json.Unmarshal(meta, &h.meta); err != nil {
		return localHeader{}, 0, fmt.Errorf("%w: metadata: %v", errCorrupt, err)
	}
	if h.meta == nil {
		h.meta = map[string]string{}
	}
	off := int64(fixedHeaderLen + metaLen)
	fi, err := f.Stat()
	if err != nil {
		return localHeader{}, 0, err
	}
	if fi.Size() != off+h.size {
		return localHeader{}, 0, fmt.Errorf("%w: file is %d bytes, header says %d", errCorrupt, fi.Size(), off+h.size)
	}
	return h, off, nil
}

func (h *localHeader) info(key string) ObjectInfo {
	return ObjectInfo{Key: key, Size: h.size, ETag: h.etag, LastModified: h.mtime, Metadata: cloneMeta(h.meta)}
}

func cloneMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// normalizeMetadata lower-cases keys (as S3 does) and enforces what S3
// and HTTP allow, so code that works here works on S3: keys are header
// tokens, values printable ASCII without surrounding spaces (HTTP trims
// them), 2 KiB in all.
func normalizeMetadata(m map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(m))
	total := 0
	for k, v := range m {
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return nil, fmt.Errorf("metadata key %q is not an HTTP header token", k)
		}
		if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 || strings.TrimSpace(v) != v {
			return nil, fmt.Errorf("metadata %q: value must be printable ASCII without surrounding spaces", k)
		}
		k = strings.ToLower(k)
		total += len(k) + len(v)
		out[k] = v
	}
	if total > maxMetadataBytes {
		return nil, fmt.Errorf("user metadata is %d bytes, over S3's %d-byte limit", total, maxMetadataBytes)
	}
	return out, nil
}

func isTokenChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func (l *Local) objectPath(key string) string {
	return filepath.Join(l.objects, objectRelPath(key))
}

func (l *Local) check(ctx context.Context, op, key string) error {
	if !validKey(key) {
		return &Error{Op: op, Key: key, Err: ErrInvalidKey}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Key: key, Err: err}
	}
	return nil
}

// openObject opens key's file and reads its header. The open file is a
// consistent snapshot: replacements are renames, never in-place writes.
func (l *Local) openObject(op, key string) (*os.File, localHeader, int64, error) {
	f, err := os.Open(l.objectPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			err = ErrNotFound
		}
		return nil, localHeader{}, 0, &Error{Op: op, Key: key, Err: err}
	}
	h, off, err := readHeader(f)
	if err != nil {
		f.Close()
		return nil, localHeader{}, 0, &Error{Op: op, Key: key, Err: err}
	}
	return f, h, off, nil
}

// Head returns key's size, ETag, time and metadata.
func (l *Local) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := l.check(ctx, "head", key); err != nil {
		return ObjectInfo{}, err
	}
	f, h, _, err := l.openObject("head", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	f.Close()
	return h.info(key), nil
}

// Get returns a byte range of key; see GetOptions.
func (l *Local) Get(ctx context.Context, key string, opts GetOptions) (io.ReadCloser, ObjectInfo, error) {
	const op = "get"
	if err := l.check(ctx, op, key); err != nil {
		return nil, ObjectInfo{}, err
	}
	if opts.Offset < 0 {
		return nil, ObjectInfo{}, &Error{Op: op, Key: key, Err: fmt.Errorf("negative offset %d", opts.Offset)}
	}
	f, h, off, err := l.openObject(op, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if opts.IfMatch != "" && !etagEqual(opts.IfMatch, h.etag) {
		f.Close()
		return nil, ObjectInfo{}, &Error{Op: op, Key: key, Err: ErrPreconditionFailed}
	}
	start, end := clampRange(h.size, opts.Offset, opts.Length)
	return &fileSection{SectionReader: io.NewSectionReader(f, off+start, end-start), f: f}, h.info(key), nil
}

// clampRange turns (offset, length) into [start, end) within size.
func clampRange(size, offset, length int64) (start, end int64) {
	start = min(offset, size)
	end = size
	if length >= 0 && length < size-start {
		end = start + length
	}
	return start, end
}

type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (s *fileSection) Close() error { return s.f.Close() }

func etagEqual(a, b string) bool {
	return strings.Trim(a, `"`) == strings.Trim(b, `"`)
}

// condition is what commit checks under the lock before publishing.
type condition struct {
	ifNoneMatch bool
	ifMatch     string
	srcKey      string // copy: the source must still have srcETag
	srcETag     string
	// copy: the source must not be modified after this (whole seconds)
	srcUnmodifiedSince time.Time
}

var errSourceChanged = errors.New("copy source changed")

// commit publishes the temp file tmp as key if cond holds.
func (l *Local) commit(op, key, tmp string, cond condition) error {
	final := l.objectPath(key)
	var syncDirs []string
	err := func() error {
		if err := l.lock(); err != nil {
			return err
		}
		defer l.unlock()
		if cond.srcKey != "" {
			f, h, _, err := l.openObject(op, cond.srcKey)
			if err != nil {
				return err
			}
			f.Close()
			if h.etag != cond.srcETag {
				return errSourceChanged
			}
			if modifiedAfter(h.mtime, cond.srcUnmodifiedSince) {
				return &Error{Op: op, Key: cond.srcKey, Err: ErrPreconditionFailed}
			}
		}
		if cond.ifNoneMatch || cond.ifMatch != "" {
			f, h, _, err := l.openObject(op, key)
			switch {
			case errors.Is(err, ErrNotFound):
				if cond.ifMatch != "" {
					return &Error{Op: op, Key: key, Err: ErrNotFound}
				}
			case err != nil:
				return err
			default:
				f.Close()
				if cond.ifNoneMatch || !etagEqual(cond.ifMatch, h.etag) {
					return &Error{Op: op, Key: key, Err: ErrPreconditionFailed}
				}
			}
		}
		created, err := mkdirs(l.objects, filepath.Dir(final))
		if err != nil {
			return &Error{Op: op, Key: key, Err: err}
		}
		if err := os.Rename(tmp, final); err != nil {
			return &Error{Op: op, Key: key, Err: err}
		}
		syncDirs = append(created, filepath.Dir(final))
		return nil
	}()
	if err != nil {
		return err
	}
	for _, d := range syncDirs {
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &Error{Op: op, Key: key, Err: err}
		}
	}
	return nil
}

func (l *Local) lock() error {
	l.mu.Lock()
	if err := unix.Flock(int(l.lockf.Fd()), unix.LOCK_EX); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("store lock: %w", err)
	}
	return nil
}

func (l *Local) unlock() {
	unix.Flock(int(l.lockf.Fd()), unix.LOCK_UN)
	l.mu.Unlock()
}

// mkdirs creates dir and its missing parents below base; it returns the
// parents of the created dirs (to be fsync'd).
func mkdirs(base, dir string) ([]string, error) {
	rel, err := filepath.Rel(base, dir)
	if err != nil || rel == "." {
		return nil, err
	}
	var parents []string
	cur := base
	for _, e := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, e)
		err := os.Mkdir(next, 0o700)
		switch {
		case err == nil:
			parents = append(parents, cur)
		case !errors.Is(err, fs.ErrExist):
			return nil, err
		}
		cur = next
	}
	return parents, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tempFile is an object file being written in this instance's temp dir.
type tempFile struct {
	f    *os.File
	path string
	hdr  localHeader
}

func (l *Local) newTemp(h localHeader) (*tempFile, error) {
	f, err := os.CreateTemp(l.tmp, "obj-")
	if err != nil {
		return nil, err
	}
	t := &tempFile{f: f, path: f.Name(), hdr: h}
	b, err := t.hdr.encode()
	if err == nil {
		_, err = f.Write(b)
	}
	if err != nil {
		t.discard()
		return nil, err
	}
	return t, nil
}

// finish rewrites the fixed header part (size and etag are known only
// now), fsyncs and closes the file.
func (t *tempFile) finish(size int64, etag string) error {
	t.hdr.size, t.hdr.etag = size, etag
	b, err := t.hdr.encode()
	if err != nil {
		return err
	}
	if _, err := t.f.WriteAt(b[:fixedHeaderLen], 0); err != nil {
		return err
	}
	if err := t.f.Sync(); err != nil {
		return err
	}
	err = t.f.Close()
	t.f = nil
	return err
}

func (t *tempFile) discard() {
	if t.f != nil {
		t.f.Close()
	}
	os.Remove(t.path)
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (l *Local) copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := l.bufs.Get().(*[]byte)
	defer l.bufs.Put(bp)
	return io.CopyBuffer(dst, src, *bp)
}

// Put stores body under key. size < 0 reads body to EOF; otherwise body
// must yield at least size bytes, of which size are stored.
func (l *Local) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	const op = "put"
	if err := l.check(ctx, op, key); err != nil {
		return ObjectInfo{}, err
	}
	meta, err := normalizeMetadata(opts.Metadata)
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: key, Err: err}
	}
	t, err := l.newTemp(localHeader{mtime: time.Now(), meta: meta})
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: key, Err: err}
	}
	defer t.discard()
	src := body
	if size >= 0 {
		src = io.LimitReader(body, size)
	}
	sum := md5.New()
	n, err := l.copyBuffered(io.MultiWriter(t.f, sum), ctxReader{ctx, src})
	if err == nil && size >= 0 && n < size {
		err = fmt.Errorf("body ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: key, Err: err}
	}
	etag := hex.EncodeToString(sum.Sum(nil))
	if err := t.finish(n, etag); err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: key, Err: err}
	}
	if err := l.commit(op, key, t.path, condition{ifNoneMatch: opts.IfNoneMatch, ifMatch: opts.IfMatch}); err != nil {
		return ObjectInfo{}, err
	}
	return t.hdr.info(key), nil
}

// Copy rewrites src's body under dst with src's or opts' metadata. The
// copy is published only if src still has the ETag that was copied
// (with IfMatch: that ETag), so a copy never publishes a stale body.
func (l *Local) Copy(ctx context.Context, src, dst string, opts CopyOptions) (ObjectInfo, error) {
	const op = "copy"
	if err := l.check(ctx, op, src); err != nil {
		return ObjectInfo{}, err
	}
	if err := l.check(ctx, op, dst); err != nil {
		return ObjectInfo{}, err
	}
	var meta map[string]string
	if opts.Metadata != nil {
		var err error
		if meta, err = normalizeMetadata(opts.Metadata); err != nil {
			return ObjectInfo{}, &Error{Op: op, Key: dst, Err: err}
		}
	}
	for range copyRetries {
		info, err := l.copyOnce(ctx, src, dst, opts, meta)
		if errors.Is(err, errSourceChanged) {
			if opts.IfMatch != "" {
				return ObjectInfo{}, &Error{Op: op, Key: src, Err: ErrPreconditionFailed}
			}
			continue
		}
		return info, err
	}
	return ObjectInfo{}, &Error{Op: op, Key: src, Err: ErrTransient}
}

func (l *Local) copyOnce(ctx context.Context, src, dst string, opts CopyOptions, meta map[string]string) (ObjectInfo, error) {
	const op = "copy"
	f, h, off, err := l.openObject(op, src)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer f.Close()
	// S3's rule: a holding IfMatch makes IfUnmodifiedSince moot.
	since := opts.IfUnmodifiedSince
	if opts.IfMatch != "" {
		since = time.Time{}
	}
	if (opts.IfMatch != "" && !etagEqual(opts.IfMatch, h.etag)) || modifiedAfter(h.mtime, since) {
		return ObjectInfo{}, &Error{Op: op, Key: src, Err: ErrPreconditionFailed}
	}
	if meta == nil {
		meta = h.meta
	}
	t, err := l.newTemp(localHeader{mtime: time.Now(), meta: meta})
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: dst, Err: err}
	}
	defer t.discard()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: src, Err: err}
	}
	// *os.File to *os.File through a LimitedReader: copy_file_range.
	n, err := io.Copy(t.f, &io.LimitedReader{R: f, N: h.size})
	if err == nil && n != h.size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: dst, Err: err}
	}
	if err := t.finish(h.size, h.etag); err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: dst, Err: err}
	}
	if err := l.commit(op, dst, t.path, condition{srcKey: src, srcETag: h.etag, srcUnmodifiedSince: since}); err != nil {
		return ObjectInfo{}, err
	}
	return t.hdr.info(dst), nil
}

// modifiedAfter is the If-Unmodified-Since test as S3 makes it: mtime
// later than since, both in whole seconds (the HTTP date's resolution); a
// zero since never fails.
func modifiedAfter(mtime, since time.Time) bool {
	return !since.IsZero() && mtime.Truncate(time.Second).After(since.Truncate(time.Second))
}

// Delete removes key and the directories it leaves empty.
func (l *Local) Delete(ctx context.Context, key string) error {
	const op = "delete"
	if err := l.check(ctx, op, key); err != nil {
		return err
	}
	path := l.objectPath(key)
	if err := l.lock(); err != nil {
		return &Error{Op: op, Key: key, Err: err}
	}
	err := os.Remove(path)
	if err == nil {
		for d := filepath.Dir(path); d != l.objects && os.Remove(d) == nil; d = filepath.Dir(d) {
		}
	}
	l.unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
		return &Error{Op: op, Key: key, Err: err}
	}
	return nil
}

// DeleteMany deletes keys one by one; missing keys are not errors.
func (l *Local) DeleteMany(ctx context.Context, keys []string) error {
	var errs []error
	for _, k := range keys {
		if err := l.Delete(ctx, k); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
