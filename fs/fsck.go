package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Fsck checks every object of the volume (coffer fsck). It lists the
// store, reads each object's metadata, and checks what DESIGN.md §3 says
// every object must satisfy: its name decodes, its size is one a body can
// have, its KEK generation is in the keyring, its wrapped DEK opens, and
// its attributes open under the path its key decodes to. With Deep it
// downloads every body and authenticates every chunk. It changes nothing
// unless Repair is set, and then only what holds no data (fsck_repair.go).
//
// Object classes: every key is claimed by the first entry of fsckClasses
// whose claims function accepts it. Later object kinds (hard-link inodes
// under .coffer/inodes/, writer epochs under .coffer/epochs/) add an entry
// there, before the catch-all of unknown reserved objects.

// FindingKind names what is wrong with an object.
type FindingKind string

const (
	FindName     FindingKind = "name"     // a key segment does not decode to a valid name
	FindSize     FindingKind = "size"     // the object size is no envelope size (truncated or extended)
	FindMetadata FindingKind = "metadata" // coffer-* metadata missing or malformed
	FindKEK      FindingKind = "kek"      // the KEK generation is not in the keyring
	FindDEK      FindingKind = "dek"      // the wrapped DEK does not open
	FindAttr     FindingKind = "attr"     // the attributes do not open under the object's path
	FindChunk    FindingKind = "chunk"    // a chunk does not authenticate (Deep)
	FindReserved FindingKind = "reserved" // an object under .coffer/ that coffer does not know
	FindWriter   FindingKind = "writer"   // a writer's object or epoch that readers refuse
	FindUpload   FindingKind = "upload"   // an orphaned multipart upload
	FindStaging  FindingKind = "staging"  // a stale staging or journal leftover in the cache dir
	FindLink     FindingKind = "link"     // a hard link and its inode disagree (fsck_links.go)
)

// Finding is one problem fsck found. Path is the object's canonical path
// when its key decodes, else empty (Key always names the object).
type Finding struct {
	Kind     FindingKind
	Path     string
	Key      string
	Err      error
	Repaired bool // removed or aborted by Repair
}

func (f Finding) String() string {
	where := f.Path
	if where == "" {
		where = "key " + f.Key
	}
	s := fmt.Sprintf("%s: %s: %v", f.Kind, where, f.Err)
	if f.Repaired {
		s += " (repaired)"
	}
	return s
}

// FsckOptions configure Fsck.
type FsckOptions struct {
	// Deep downloads every body and authenticates every chunk.
	Deep bool
	// Repair aborts orphaned multipart uploads and removes stale
	// leftovers in CacheDir; of the store's objects it removes only the
	// hard-link leftovers fsck_links.go names (links outside their
	// inode's live set, inodes no link names) and the directory indexes
	// of directories that are gone.
	Repair bool
	// UploadAge is the age from which a multipart upload in progress is
	// orphaned (0: DefaultUploadAge). A mount completes or aborts its
	// uploads within minutes, so an older one lost its writer.
	UploadAge time.Duration
	// CacheDir, when set, is a mount's cache dir whose leftovers (stale
	// staging files, torn journal tails) are checked too.
	CacheDir string
	// Concurrency bounds parallel requests (0: the volume's list
	// concurrency for metadata, 8 for deep reads).
	Concurrency int
	// Progress, when set, is called as objects are checked.
	Progress func(done, total int)
	// Now is the clock that ages uploads (nil: time.Now).
	Now func() time.Time
	// LiveMount, when set, reports whether a running mount uses the
	// cache dir; Repair then leaves the cache dir alone.
	LiveMount func(cacheDir string) bool
}

// DefaultUploadAge is FsckOptions.UploadAge's default.
const DefaultUploadAge = 24 * time.Hour

// FsckReport is what Fsck found.
type FsckReport struct {
	Objects  int   // objects listed (the config included, directory indexes not)
	Files    int   // regular files and symlinks
	Dirs     int   // directory markers
	Reserved int   // objects under .coffer/
	Bytes    int64 // plaintext bytes of the files
	Chunks   int64 // chunks authenticated (Deep)
	Uploads  int   // multipart uploads in progress
	Inodes   int   // hard-linked files' inode objects (their names count as Files)
	Indexes  int   // directory indexes (caches: not checked)
	// OrphanIndexes are the keys of the directory indexes whose
	// directory is gone (removed or renamed): caches, no finding;
	// Repair removes them, IndexesRemoved counts those it did.
	OrphanIndexes  []string
	IndexesRemoved int
	Findings       []Finding
}

// storedObject is one listed object with what a HEAD (or a deep GET)
// told about it.
type storedObject struct {
	key  string
	size int64
	info blobstore.ObjectInfo
	gone bool // deleted since the listing
}

// objectClass is one kind of stored object fsck knows.
type objectClass struct {
	name   string
	claims func(key string) bool
	// check returns what is wrong with o (nil: nothing) and counts it.
	check func(c *checker, o *storedObject) *Finding
}

var fsckClasses = []objectClass{
	{
		name:   "config",
		claims: func(k string) bool { return k == ConfigKey },
		// OpenVolume authenticated it before Fsck could run.
		check: func(c *checker, o *storedObject) *Finding { c.count(func(r *FsckReport) { r.Reserved++ }); return nil },
	},
	{
		name:   "epoch",
		claims: func(k string) bool { return strings.HasPrefix(k, cipher.EpochsPrefix) },
		check:  (*checker).epoch,
	},
	{
		name:   "inode",
		claims: func(k string) bool { return strings.HasPrefix(k, inodePrefix) },
		check:  (*checker).inode,
	},
	{
		name:   "reserved",
		claims: func(k string) bool { return strings.HasPrefix(k, reservedName+"/") },
		check: func(c *checker, o *storedObject) *Finding {
			c.count(func(r *FsckReport) { r.Reserved++ })
			return &Finding{Kind: FindReserved, Key: o.key, Err: errors.New("an object under .coffer/ that this version of coffer does not know")}
		},
	},
	{
		name:   "entry",
		claims: func(string) bool { return true },
		check:  (*checker).entry,
	},
}

func classOf(key string) objectClass {
	for _, c := range fsckClasses {
		if c.claims(key) {
			return c
		}
	}
	panic("fsck: no class claims " + key) // the last class claims every key
}

// checker is one run of Fsck.
type checker struct {
	v    *Volume
	opts FsckOptions
	objs map[string]*storedObject

	mu     sync.Mutex
	rep    FsckReport
	paths  map[string]pathResult // decoded directory key -> path
	deep   map[string]deepResult // Deep: the body reads, by key
	chunks int64
	links  []fsckLink                    // link objects that opened
	inodes map[cipher.InodeID]*fsckInode // inode objects, by the ID their key names
}

type pathResult struct {
	path string
	err  error
}

func (c *checker) count(f func(*FsckReport)) {
	c.mu.Lock()
	f(&c.rep)
	c.mu.Unlock()
}

// Fsck checks the volume; see the comment at the top of this file. The
// error is a failure to check (the store unreachable), not a finding.
func (v *Volume) Fsck(ctx context.Context, opts FsckOptions) (*FsckReport, error) {
	if v.writer != nil {
		return nil, errors.New("fsck needs a root key of the volume, not a writer credential")
	}
	if opts.UploadAge <= 0 {
		opts.UploadAge = DefaultUploadAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &checker{v: v, opts: opts, objs: map[string]*storedObject{}, paths: map[string]pathResult{}, inodes: map[cipher.InodeID]*fsckInode{}}
	var order []*storedObject
	var indexes []string
	for e, err := range v.store.List(ctx, "", "") {
		if err != nil {
			return nil, fmt.Errorf("listing the store: %w", err)
		}
		if strings.HasPrefix(e.Key, cipher.DirIndexPrefix) {
			// Directory indexes are caches (dirindex.go): listings
			// authenticate each entry again, so none is a finding;
			// only one whose directory is gone is (orphanIndexes).
			c.rep.Indexes++
			indexes = append(indexes, e.Key)
			continue
		}
		o := &storedObject{key: e.Key, size: e.Size}
		c.objs[e.Key] = o
		order = append(order, o)
	}
	c.rep.Objects = len(order)
	if err := c.readAll(ctx, order); err != nil {
		return nil, err
	}
	for _, o := range order {
		if o.gone {
			continue
		}
		if f := classOf(o.key).check(c, o); f != nil {
			c.rep.Findings = append(c.rep.Findings, *f)
		}
	}
	c.crossCheckLinks(ctx)
	c.orphanIndexes(ctx, order, indexes)
	if err := c.uploads(ctx); err != nil {
		return nil, err
	}
	if opts.CacheDir != "" {
		if err := c.cacheDir(ctx); err != nil {
			return nil, err
		}
	}
	c.rep.Chunks = c.chunks
	slices.SortStableFunc(c.rep.Findings, func(a, b Finding) int { return strings.Compare(a.Key, b.Key) })
	return &c.rep, nil
}

// orphanIndexes records the directory indexes (keys indexes) of no
// directory the listing showed (removed or renamed since the index was
// written), and removes them with Repair. They are no finding: an index
// is a cache, and rmdir and rename leave the old one behind rather than
// pay a request for it; its key, an HMAC of the directory's path, is all
// that tells whose it is. A directory is one with a marker or with any
// object below it; the root always is.
func (c *checker) orphanIndexes(ctx context.Context, objs []*storedObject, indexes []string) {
	kr := c.v.indexKeyring()
	if kr == nil || len(indexes) == 0 {
		return
	}
	live := map[string]bool{kr.DirIndexKey("/"): true}
	for _, o := range objs {
		if !o.gone && strings.HasSuffix(o.key, "/") && !strings.HasPrefix(o.key, reservedName+"/") {
			c.dirPath(strings.TrimSuffix(o.key, "/")) // a marker: its own path
		}
	}
	c.mu.Lock()
	for _, r := range c.paths {
		if r.err == nil {
			live[kr.DirIndexKey(r.path)] = true
		}
	}
	c.mu.Unlock()
	for _, key := range indexes {
		if live[key] {
			continue
		}
		c.rep.OrphanIndexes = append(c.rep.OrphanIndexes, key)
		if !c.opts.Repair {
			continue
		}
		if err := c.v.store.Delete(ctx, key); err != nil {
			c.v.log.Warn("fsck: removing a directory index of no directory", "key", key, "err", err)
		} else {
			c.rep.IndexesRemoved++
		}
	}
}

// readAll fetches every object's metadata (a HEAD) in parallel, and with
// Deep authenticates its whole body (a GET) as well.
func (c *checker) readAll(ctx context.Context, objs []*storedObject) error {
	limit := c.opts.Concurrency
	if limit <= 0 {
		limit = c.v.opts.ListConcurrency
		if c.opts.Deep {
			limit = 8
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	var done int
	var mu sync.Mutex
	for _, o := range objs {
		g.Go(func() error {
			info, err := c.v.store.Head(gctx, o.key)
			switch {
			case errors.Is(err, blobstore.ErrNotFound):
				o.gone = true
			case err != nil:
				return fmt.Errorf("reading the metadata of %s: %w", o.key, err)
			default:
				o.info, o.size = info, info.Size
			}
			if c.opts.Progress != nil {
				mu.Lock()
				done++
				n := done
				mu.Unlock()
				c.opts.Progress(n, len(objs))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if !c.opts.Deep {
		return nil
	}
	return c.deepAll(ctx, objs, limit)
}

// entry checks a file, symlink or directory marker.
func (c *checker) entry(o *storedObject) *Finding {
	marker := strings.HasSuffix(o.key, "/")
	p, err := c.pathOf(o)
	if err != nil {
		return &Finding{Kind: FindName, Key: o.key, Err: err}
	}
	bad := func(kind FindingKind, err error) *Finding { return &Finding{Kind: kind, Path: p, Key: o.key, Err: err} }
	if !marker && c.v.keyring() != nil {
		if _, _, err := c.v.keyring().OpenMetadata(o.info.Metadata, p); errors.Is(err, cipher.ErrIsLink) {
			return c.link(o, p)
		}
	}
	if marker {
		c.count(func(r *FsckReport) { r.Dirs++ })
		if o.size != 0 {
			return bad(FindSize, fmt.Errorf("a directory marker of %d bytes, want 0", o.size))
		}
	} else {
		size, err := c.v.lay.plainSize(o.size)
		if err != nil {
			return bad(FindSize, err)
		}
		c.count(func(r *FsckReport) { r.Files++; r.Bytes += size })
	}
	if !c.v.client {
		if _, _, err := c.v.lay.openMeta(p, o.key, o.info.Metadata, o.info.LastModified); err != nil {
			return bad(FindMetadata, err)
		}
		return c.deepFinding(o, p)
	}
	l := c.v.lay.(*clientLayout)
	kr := l.kr
	origin, err := cipher.ObjectOrigin(o.info.Metadata)
	if err != nil {
		return bad(FindMetadata, err)
	}
	if origin.IsWriter() {
		if err := cipher.CheckWriterObjectKey(o.key); err != nil {
			return bad(FindWriter, err)
		}
	}
	gen, err := cipher.MetadataGeneration(o.info.Metadata)
	if err != nil {
		return bad(FindMetadata, err)
	}
	epochWrapped := origin.IsWriter() && gen == 0
	if !epochWrapped && !slices.Contains(kr.Generations(), gen) {
		return bad(FindKEK, fmt.Errorf("KEK generation %d is not in the keyring (it has %v)", gen, kr.Generations()))
	}
	if _, err := kr.OpenAnyObjectKey(o.info.Metadata, l.epochs.epoch); err != nil {
		switch {
		case errors.Is(err, cipher.ErrWriterRefused):
			return bad(FindWriter, err)
		case errors.Is(err, cipher.ErrAuth):
			return bad(FindDEK, err)
		}
		return bad(FindMetadata, err)
	}
	_, a, _, err := kr.OpenAnyMetadata(o.info.Metadata, p, l.epochs.epoch)
	if err == nil {
		_, err = writerAttr(origin, a)
	}
	if err != nil {
		switch {
		case errors.Is(err, cipher.ErrWriterRefused):
			return bad(FindWriter, err)
		case errors.Is(err, cipher.ErrAuth):
			return bad(FindAttr, err)
		}
		return bad(FindMetadata, err)
	}
	return c.deepFinding(o, p)
}

// epoch checks an epoch object: its key names an epoch, and it opens
// under the keyring (its writer known and usable, its tag and seal
// verified), as every reader of its files requires.
func (c *checker) epoch(o *storedObject) *Finding {
	c.count(func(r *FsckReport) { r.Reserved++ })
	origin, err := cipher.ParseEpochObjectKey(o.key)
	if err != nil {
		return &Finding{Kind: FindReserved, Key: o.key, Err: err}
	}
	l, ok := c.v.lay.(*clientLayout)
	if !ok {
		return &Finding{Kind: FindReserved, Key: o.key, Err: errors.New("an epoch object in a volume without client-side encryption")}
	}
	if _, err := l.epochs.epoch(origin); err != nil {
		return &Finding{Kind: FindWriter, Key: o.key, Err: err}
	}
	return nil
}

// objectKey checks the KEK generation and wrapped DEK of o, a link or
// inode object (never a writer's: cipher refuses those).
func (c *checker) objectKey(o *storedObject, bad func(FindingKind, error) *Finding) *Finding {
	kr := c.v.keyring()
	gen, err := cipher.MetadataGeneration(o.info.Metadata)
	if err != nil {
		return bad(FindMetadata, err)
	}
	if !slices.Contains(kr.Generations(), gen) {
		return bad(FindKEK, fmt.Errorf("KEK generation %d is not in the keyring (it has %v)", gen, kr.Generations()))
	}
	if _, err := kr.OpenObjectKey(o.info.Metadata); err != nil {
		if errors.Is(err, cipher.ErrAuth) {
			return bad(FindDEK, err)
		}
		return bad(FindMetadata, err)
	}
	return nil
}

// pathOf decodes o's key into its canonical path. A directory marker
// "k/" is the directory k.
func (c *checker) pathOf(o *storedObject) (string, error) {
	key := strings.TrimSuffix(o.key, "/")
	dir, seg := "", key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		dir, seg = key[:i], key[i+1:]
	}
	parent, err := c.dirPath(dir)
	if err != nil {
		return "", err
	}
	return c.segment(parent, seg, c.v.lay.longName(o.info.Metadata))
}

// dirPath decodes the key of a directory (memoized); the long name of a
// hashed segment comes from that directory's marker.
func (c *checker) dirPath(key string) (string, error) {
	if key == "" {
		return "/", nil
	}
	c.mu.Lock()
	r, ok := c.paths[key]
	c.mu.Unlock()
	if ok {
		return r.path, r.err
	}
	dir, seg := "", key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		dir, seg = key[:i], key[i+1:]
	}
	parent, err := c.dirPath(dir)
	var p string
	if err == nil {
		long := ""
		if c.v.lay.hashed(seg) {
			m, ok := c.objs[key+"/"]
			if !ok || m.gone {
				err = fmt.Errorf("directory segment %q is hashed but the directory has no marker holding its name", seg)
			} else {
				long = c.v.lay.longName(m.info.Metadata)
			}
		}
		if err == nil {
			p, err = c.segment(parent, seg, long)
		}
	}
	c.mu.Lock()
	c.paths[key] = pathResult{p, err}
	c.mu.Unlock()
	return p, err
}

func (c *checker) segment(parent, seg, long string) (string, error) {
	name, err := c.v.lay.name(parent, seg, long)
	if err != nil {
		return "", err
	}
	if !validName(name) {
		return "", fmt.Errorf("%w: segment %q decodes to an invalid name", cipher.ErrBadName, seg)
	}
	if parent == "/" && name == reservedName {
		return "", fmt.Errorf("%w: segment %q decodes to the reserved name %s", cipher.ErrBadName, seg, reservedName)
	}
	return joinPath(parent, name), nil
}

// deepResult is what the deep read of one object found.
type deepResult struct {
	err    error
	chunks int64
}

// deepAll downloads and authenticates every body in parallel; the
// results wait in c.deep for the checks.
func (c *checker) deepAll(ctx context.Context, objs []*storedObject, limit int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	results := make(map[string]deepResult, len(objs))
	var mu sync.Mutex
	for _, o := range objs {
		if cl := classOf(o.key).name; o.gone || cl != "entry" && cl != "inode" || strings.HasSuffix(o.key, "/") {
			continue
		}
		g.Go(func() error {
			r, err := c.readBody(gctx, o)
			if err != nil {
				return err
			}
			mu.Lock()
			results[o.key] = r
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	c.deep = results
	return nil
}

// readBody reads o's whole body through the envelope decrypter, which
// authenticates the header, every chunk and the end. Only the object key
// is needed (not the path): a body that fails is reported whatever its
// attributes say.
func (c *checker) readBody(ctx context.Context, o *storedObject) (deepResult, error) {
	if !c.v.client {
		rc, _, err := c.v.store.Get(ctx, o.key, blobstore.GetOptions{Length: -1, IfMatch: o.info.ETag})
		if errors.Is(err, blobstore.ErrNotFound) || errors.Is(err, blobstore.ErrPreconditionFailed) {
			return deepResult{}, nil // changed since: nothing to say about it
		}
		if err != nil {
			return deepResult{}, fmt.Errorf("reading %s: %w", o.key, err)
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if err == nil && n != o.size {
			err = fmt.Errorf("read %d bytes of %d", n, o.size)
		}
		return deepResult{err: err, chunks: (n + cipher.ChunkSize - 1) / cipher.ChunkSize}, nil
	}
	l := c.v.lay.(*clientLayout)
	okey, err := l.kr.OpenAnyObjectKey(o.info.Metadata, l.epochs.epoch)
	if err != nil {
		return deepResult{}, nil // the metadata checks report it
	}
	if _, err := cipher.PlainSize(o.size); err != nil {
		return deepResult{}, nil // the size check reports it
	}
	rc, _, err := c.v.store.Get(ctx, o.key, blobstore.GetOptions{Length: -1, IfMatch: o.info.ETag})
	if errors.Is(err, blobstore.ErrNotFound) || errors.Is(err, blobstore.ErrPreconditionFailed) {
		return deepResult{}, nil
	}
	if err != nil {
		return deepResult{}, fmt.Errorf("reading %s: %w", o.key, err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, okey.NewDecrypter(rc, o.size))
	if err != nil && !errors.Is(err, cipher.ErrAuth) {
		return deepResult{}, fmt.Errorf("reading %s: %w", o.key, err) // the store, not the object
	}
	if err != nil {
		return deepResult{err: err, chunks: n / cipher.ChunkSize}, nil
	}
	return deepResult{chunks: cipher.ChunkCount(n)}, nil
}

// deepFinding is the result of o's deep read, if any.
func (c *checker) deepFinding(o *storedObject, p string) *Finding {
	r, ok := c.deep[o.key]
	if !ok {
		return nil
	}
	c.mu.Lock()
	c.chunks += r.chunks
	c.mu.Unlock()
	if r.err != nil {
		return &Finding{Kind: FindChunk, Path: p, Key: o.key, Err: r.err}
	}
	return nil
}
