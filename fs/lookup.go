package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Stat returns the attributes of path (a lookup).
func (v *Volume) Stat(ctx context.Context, path string) (Attr, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return Attr{}, v.finish("stat", path, err)
	}
	defer end()
	n, err := v.lookup(ctx, path)
	if err != nil {
		return Attr{}, v.finish("stat", path, err)
	}
	return n.attr, nil
}

// rootNode is "/": it has no object, so its attributes are the mount's
// (its times move while mounted, and are not kept).
func (v *Volume) rootNode() *node {
	v.mu.Lock()
	a := v.rootAttr
	v.mu.Unlock()
	if a.Mode == 0 {
		a = Attr{Mode: syscall.S_IFDIR | 0o755, UID: v.opts.UID, GID: v.opts.GID, Mtime: v.mount, Atime: v.mount, Ctime: v.mount}
	}
	return v.dirs.overlay(&node{path: "/", attr: a})
}

// lookup finds what path is: a file open or staged here, a cached node,
// or what the store says.
func (v *Volume) lookup(ctx context.Context, p string) (*node, error) {
	if !checkPath(p) {
		return nil, withErrno(syscall.EINVAL, fmt.Errorf("not a canonical path: %q", p))
	}
	if p == "/" {
		return v.rootNode(), nil
	}
	if p == "/"+reservedName {
		return nil, syscall.ENOENT
	}
	if len(p) > 600 {
		// Long enough that its key may exceed KeyMax, whatever the caches say.
		if _, _, err := v.objectKey(p); err != nil {
			return nil, err
		}
	}
	if n := v.openNode(p); n != nil {
		return n, nil
	}
	if n := v.heldDir(p); n != nil {
		return v.dirs.overlay(n), nil
	}
	if n, ok := v.meta.get(p); ok {
		if n == nil {
			return nil, syscall.ENOENT
		}
		return v.dirs.overlay(v.overlayInode(n)), nil
	}
	if v.absent(ctx, p) {
		v.meta.putAbsent(p)
		return nil, syscall.ENOENT
	}
	n, err := v.probe(ctx, p)
	if err != nil {
		return nil, err
	}
	return v.dirs.overlay(n), nil
}

// checkParent checks that p's parent is a directory.
func (v *Volume) checkParent(ctx context.Context, p string) error {
	if p == "/" {
		return syscall.EEXIST
	}
	n, err := v.lookup(ctx, parentOf(p))
	if err != nil {
		return err
	}
	if !n.isDir() {
		return syscall.ENOTDIR
	}
	return nil
}

// absent answers a lookup from the parent's listing. An expired listing
// of a directory in use is refreshed with a names-only LIST (no
// metadata), which keeps creating many files in one directory at one
// request per thousand entries per MetadataTTL rather than three probes
// per file.
func (v *Volume) absent(ctx context.Context, p string) bool {
	dir, name := splitPath(p)
	seg := func() string {
		s, _, err := v.lay.segment(dir, name)
		if err != nil {
			return ""
		}
		return s
	}
	gone, known, stale := v.meta.absent(p, seg)
	if known || !stale {
		return gone
	}
	if err := v.refreshNames(ctx, dir); err != nil {
		return false
	}
	gone, _, _ = v.meta.absent(p, seg)
	return gone
}

// refreshNames lists dir's names (decoding what needs no metadata).
func (v *Volume) refreshNames(ctx context.Context, dir string) error {
	prefix, err := v.dirPrefix(dir)
	if err != nil {
		return err
	}
	names := map[string]struct{}{}
	hashed := map[string]struct{}{}
	for e, err := range v.listDir(ctx, prefix, blobstore.ListOptions{}) {
		if err != nil {
			return err
		}
		switch {
		case hiddenEntry(dir, e.seg):
		case v.lay.hashed(e.seg):
			hashed[e.seg] = struct{}{}
		default:
			if name, err := v.lay.name(dir, e.seg, ""); err == nil {
				names[name] = struct{}{}
			}
		}
	}
	v.meta.putListing(dir, names, hashed)
	return nil
}

// defaultRangeKeys is how many indexed names one range of a ranged
// listing holds (the ranges listBounds cuts; at most maxListRanges of
// them), each range's first request asking for about that many keys
// (rangeRequest). Measured on versitygw, cold ls -l of 2000 files,
// five alternating runs of a build taking both from the environment:
// ranges of 1000 (two ranges, each asking for the server's page of
// 1000) 0.42-1.41 s, median 0.53; ranges of 250 each asking for 1000:
// median 0.62, since the server reads every key it sends; ranges of 250
// each asking for its share: 0.37-0.64 s, median 0.42. This code against
// the one before (ranges of 1000, full pages), six alternating runs:
// 0.32-0.48 s (median 0.38) against 0.43-0.56 s (median 0.46).
const defaultRangeKeys = 250

// rangeRequest is how many keys the first request of a range of about
// keys indexed names asks for: its share with some slack, so that names
// the index does not know yet (files created since, subdirectories)
// seldom cost the range a second request. Too many is harmless: the
// range drops what lies past its bound.
func rangeRequest(keys int) int {
	return min(keys+keys/8+8, blobstore.MaxListPage)
}

// maxListRanges bounds the listing requests of one directory in flight.
const maxListRanges = 16

// listBounds cuts the listing of a directory whose index is index into
// ranges of about page indexed names each: it returns the keys of every
// per-th indexed name, in order, and per, which is page or more so that
// there are at most maxListRanges ranges (no bounds: per 0). A range
// ends at its bound (inclusive), the next one starts after it, so ranges
// partition the keys whatever the index says: a stale or wrong index
// only makes ranges uneven (a range holding more keys than its first
// request asked for, rangeRequest(per), takes more requests, one after
// the other). Names holding the delimiter are no bounds, since a
// rolled-up prefix could straddle them.
func listBounds(prefix string, index map[string]indexEntry, page int) (bounds []string, per int) {
	if len(index) <= page {
		return nil, 0
	}
	segs := make([]string, 0, len(index))
	for seg := range index {
		if seg != "" && !strings.Contains(seg, "/") {
			segs = append(segs, seg)
		}
	}
	slices.Sort(segs)
	per = max(page, (len(segs)+maxListRanges-1)/maxListRanges)
	for i := per; i < len(segs); i += per {
		bounds = append(bounds, prefix+segs[i-1])
	}
	if bounds == nil {
		return nil, 0 // one range: a full page
	}
	return bounds, per
}

// listRanges lists directory p (listing prefix prefix) as the ranges
// that bounds cut, in parallel, each asking first for about per keys
// (rangeRequest; per 0: the server's page), and returns its visible
// entries in key order. Measured on versitygw, a cold listing of 2000
// files: one range after another, two pages, 0.34 s of a 0.58 s ls -l.
func (v *Volume) listRanges(ctx context.Context, p, prefix string, bounds []string, per int) ([]listItem, error) {
	ranges := make([][]listItem, len(bounds)+1)
	err := fanOut(ctx, maxListRanges, len(ranges), func(ctx context.Context, i int) error {
		after, upTo := "", ""
		if i > 0 {
			after = bounds[i-1]
		}
		if i < len(bounds) {
			upTo = bounds[i]
		}
		opts := blobstore.ListOptions{StartAfter: after}
		if per > 0 {
			opts.FirstPage = rangeRequest(per)
		}
		for e, err := range v.listDir(ctx, prefix, opts) {
			if err != nil {
				return err
			}
			if upTo != "" && e.Key > upTo {
				break // the next range's
			}
			if !hiddenEntry(p, e.seg) {
				ranges[i] = append(ranges[i], listItemOf(e))
			}
			if e.Key == upTo {
				// Its bound ends the range: the key after it would
				// cost a request for the next page, which the next
				// range lists anyway (seen on versitygw: every range
				// of a 10,000-file directory asked for two pages).
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Concat(ranges...), nil
}

// listedEntry is an entry listed directly below a directory, with its
// stored name segment (a common prefix without its trailing "/").
type listedEntry struct {
	blobstore.Entry
	seg string
}

// listDir lists the entries directly below the directory whose listing
// prefix is prefix (dirPrefix), leaving out the directory's own marker;
// from the first key after opts.StartAfter ("": all).
func (v *Volume) listDir(ctx context.Context, prefix string, opts blobstore.ListOptions) iter.Seq2[listedEntry, error] {
	return func(yield func(listedEntry, error) bool) {
		var list iter.Seq2[blobstore.Entry, error]
		if opts == (blobstore.ListOptions{}) {
			list = v.store.List(ctx, prefix, "/")
		} else {
			list = v.store.ListAfter(ctx, prefix, "/", opts)
		}
		for e, err := range list {
			if err != nil {
				yield(listedEntry{}, err)
				return
			}
			if e.Key == prefix && !e.IsPrefix {
				continue // the directory's own marker
			}
			seg := e.Key[len(prefix):]
			if e.IsPrefix {
				seg = strings.TrimSuffix(seg, "/")
			}
			if !yield(listedEntry{Entry: e, seg: seg}, nil) {
				return
			}
		}
	}
}

// hiddenEntry reports a listed segment of directory dir that is never
// shown: an empty one (a key holding "//") and the root's reserved
// .coffer.
func hiddenEntry(dir, seg string) bool {
	return seg == "" || (dir == "/" && seg == reservedName)
}

// openNode is the node of a file open or staged here, if any.
func (v *Volume) openNode(p string) *node {
	v.mu.Lock()
	f := v.files[p]
	v.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.snapshot()
}

// probe asks the store what p is: an object (file or symlink), a marker
// (directory), a common prefix (implicit directory) or nothing.
func (v *Volume) probe(ctx context.Context, p string) (*node, error) {
	since := v.meta.generation()
	key, long, err := v.objectKey(p)
	if err != nil {
		return nil, err
	}
	info, first, err := v.headFile(ctx, key)
	if err == nil {
		n, first, err := v.entryNode(ctx, p, key, long, info, first)
		if err != nil {
			return nil, err
		}
		v.keepFirstChunk(n, first)
		v.meta.putFetched(p, n, since)
		return n, nil
	}
	if !errors.Is(err, blobstore.ErrNotFound) {
		return nil, err
	}
	n, err := v.probeDir(ctx, p, key+"/", long)
	if err != nil {
		return nil, err
	}
	if n == nil && v.writerScopeDir(p) {
		n = v.foreignDir(p)
	}
	if n == nil {
		v.meta.putFetched(p, nil, since)
		return nil, syscall.ENOENT
	}
	v.meta.putFetched(p, n, since)
	return n, nil
}

// probeDir returns the directory at marker key (nil when there is none).
func (v *Volume) probeDir(ctx context.Context, p, marker, long string) (*node, error) {
	info, err := v.store.Head(ctx, marker)
	if err == nil {
		return v.dirNode(p, marker, long, info)
	}
	if !errors.Is(err, blobstore.ErrNotFound) {
		return nil, err
	}
	for e, err := range v.store.List(ctx, marker, "/") {
		if err != nil {
			return nil, err
		}
		_ = e
		return v.implicitDir(p), nil
	}
	return nil, nil
}

func (v *Volume) implicitDir(p string) *node {
	return &node{path: p, attr: Attr{Mode: syscall.S_IFDIR | v.lay.implicitDirMode(), UID: v.opts.UID, GID: v.opts.GID, Mtime: v.mount, Atime: v.mount, Ctime: v.mount}}
}

// fileNode authenticates the metadata of the object at key as path p.
func (v *Volume) fileNode(p, key, long string, info blobstore.ObjectInfo) (*node, error) {
	okey, a, err := v.lay.openMeta(p, key, info.Metadata, info.LastModified)
	if err != nil {
		return nil, badMeta(err)
	}
	size, err := v.lay.plainSize(info.Size)
	if err != nil {
		return nil, badMeta(err)
	}
	at, err := storedAttr(v, a, size)
	if err != nil {
		return nil, badMeta(err)
	}
	at.Origin = originOf(okey)
	return &node{
		path: p, attr: at, base: at,
		key: key, etag: info.ETag, objSize: info.Size, okey: okey, long: long,
	}, nil
}

// storedAttr is the Attr of a stored file, symlink or special file
// (anything not a directory) of plaintext size.
func storedAttr(v *Volume, a cipher.Attr, size int64) (Attr, error) {
	mode := a.Mode
	switch {
	case isSpecialType(mode):
		// Metadata only: a body would be content no open can reach.
		if size != 0 {
			return Attr{}, fmt.Errorf("%w: a special file (mode 0%o) with a %d-byte body", cipher.ErrBadMetadata, mode, size)
		}
	case mode&syscall.S_IFMT != syscall.S_IFLNK:
		mode = syscall.S_IFREG | mode&0o7777
	}
	return v.attrOf(mode, a, size), nil
}

// entryNode is fileNode, following a link object to its inode; first is
// the first chunk of what the node reads.
func (v *Volume) entryNode(ctx context.Context, p, key, long string, info blobstore.ObjectInfo, first []byte) (*node, []byte, error) {
	n, err := v.fileNode(p, key, long, info)
	if v.keyring() != nil && errors.Is(err, cipher.ErrIsLink) {
		n, first, err = v.followLink(ctx, p, key, long, info)
		if err == nil {
			v.inodes.named(n)
			n = v.overlayInode(n)
		}
	}
	return n, first, err
}

// dirNode authenticates a directory marker.
func (v *Volume) dirNode(p, marker, long string, info blobstore.ObjectInfo) (*node, error) {
	okey, a, err := v.lay.openMeta(p, marker, info.Metadata, info.LastModified)
	if errors.Is(err, errForeign) {
		return v.foreignDir(p), nil
	}
	if err != nil {
		return nil, badMeta(err)
	}
	perm := a.Mode & 0o7777
	if _, ok := info.Metadata["mode"]; !ok && !v.client {
		perm = 0o755 // a marker made by another tool
	}
	at := v.attrOf(syscall.S_IFDIR|perm, a, 0)
	at.Origin = originOf(okey)
	return &node{
		path: p, attr: at, base: at,
		key: marker, etag: info.ETag, objSize: info.Size, okey: okey, long: long,
	}, nil
}

// badMeta is the EIO of a stored object whose metadata or size does not
// authenticate or decode (the caller logs it); a writer's object that
// --writers=refuse hides is ENOENT.
func badMeta(err error) error {
	switch {
	case errors.Is(err, errWriterHidden):
		return withErrno(syscall.ENOENT, err)
	case errors.Is(err, errForeign):
		return withErrno(syscall.EACCES, err)
	}
	return withErrno(syscall.EIO, fmt.Errorf("stored object failed authentication: %w", err))
}

func (v *Volume) attrOf(mode uint32, a cipher.Attr, size int64) Attr {
	at := Attr{
		Mode: mode, UID: a.UID, GID: a.GID, Size: size, Rdev: a.Rdev,
		Mtime: time.Unix(0, a.MtimeNs), Atime: time.Unix(0, a.AtimeNs), Ctime: time.Unix(0, a.CtimeNs),
		Changes: a.Changes, Xattrs: a.Xattrs,
	}
	if at.UID == noOwner {
		at.UID = v.opts.UID
	}
	if at.GID == noOwner {
		at.GID = v.opts.GID
	}
	return at
}

func toCipherAttr(a Attr) cipher.Attr {
	atime, mtime, ctime := a.StatTimes()
	return cipher.Attr{
		Mode: a.Mode, UID: a.UID, GID: a.GID, Rdev: a.Rdev,
		AtimeNs: atime.UnixNano(), MtimeNs: mtime.UnixNano(), CtimeNs: ctime.UnixNano(),
		Changes: a.Changes, Xattrs: a.Xattrs,
	}
}

// ReadDir lists a directory with every child's attributes. Their
// attributes live in metadata: listed files are fetched in parallel with
// a ranged GET of their first chunk (headFile), directories with a HEAD
// of their marker, and the results cached for MetadataTTL, so the
// lookups that follow a READDIRPLUS, and reading a small file, hit the
// cache.
func (v *Volume) ReadDir(ctx context.Context, path string) ([]DirEntry, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return nil, v.finish("readdir", path, err)
	}
	defer end()
	ents, err := v.readDir(ctx, path)
	return ents, v.finish("readdir", path, err)
}

func (v *Volume) readDir(ctx context.Context, p string) ([]DirEntry, error) {
	dn, err := v.lookup(ctx, p)
	if err != nil {
		return nil, err
	}
	if !dn.isDir() {
		return nil, syscall.ENOTDIR
	}
	// Files open or staged here override what the store says.
	v.mu.Lock()
	local := map[string]*file{}
	for fp, f := range v.files {
		if fp != "/" && parentOf(fp) == p {
			local[nameOf(fp)] = f
		}
	}
	v.mu.Unlock()
	children, ok := v.cachedChildren(p, local)
	if !ok {
		if children, err = v.listChildren(ctx, p); err != nil {
			return nil, err
		}
	}
	for name, f := range local {
		children[name] = f.snapshot()
	}
	for name, n := range v.heldChildren(p) {
		children[name] = n
	}
	ents := make([]DirEntry, 0, len(children))
	for _, name := range slices.Sorted(maps.Keys(children)) {
		ents = append(ents, DirEntry{Name: name, Attr: v.dirs.overlay(v.overlayInode(children[name])).attr})
	}
	if v.ahead != nil {
		v.ahead.listed(p, ents)
	}
	return ents, nil
}

func parentOf(p string) string { d, _ := splitPath(p); return d }
func nameOf(p string) string   { _, n := splitPath(p); return n }

// cachedChildren answers from a fresh listing whose children are all
// cached (or open here).
func (v *Volume) cachedChildren(p string, local map[string]*file) (map[string]*node, bool) {
	names, ok := v.meta.listing(p)
	if !ok {
		return nil, false
	}
	out := make(map[string]*node, len(names))
	for name := range names {
		if local[name] != nil {
			continue
		}
		n, ok := v.meta.get(joinPath(p, name))
		if !ok || n == nil {
			return nil, false
		}
		out[name] = n
	}
	return out, true
}

type listItem struct {
	seg     string
	key     string
	dir     bool
	etag    string
	size    int64
	lastMod time.Time
}

func listItemOf(e listedEntry) listItem {
	return listItem{seg: e.seg, key: e.Key, dir: e.IsPrefix, etag: e.ETag, size: e.Size, lastMod: e.LastModified}
}

// listChildren lists directory p in the store and resolves every entry's
// name and attributes: from the directory's index where it shows the
// listed object as listed (dirindex.go), else with a request per entry.
func (v *Volume) listChildren(ctx context.Context, p string) (map[string]*node, error) {
	since := v.meta.generation()
	prefix, err := v.dirPrefix(p)
	if err != nil {
		return nil, err
	}
	// The index first: its names split a long listing into ranges
	// listed in parallel (listRanges).
	index, indexVer := v.loadIndex(ctx, p)
	bounds, per := listBounds(prefix, index, v.rangeKeys)
	items, err := v.listRanges(ctx, p, prefix, bounds, per)
	if err != nil {
		return nil, err
	}
	nodes := make([]*node, len(items))
	records := make([]*indexEntry, len(items)) // what resolve learnt for a new index
	err = fanOut(ctx, v.opts.ListConcurrency, len(items), func(ctx context.Context, i int) error {
		var err error
		nodes[i], records[i], err = v.resolve(ctx, p, items[i], index)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*node, len(items))
	names := make(map[string]struct{}, len(items))
	for _, n := range nodes {
		if n == nil {
			continue
		}
		name := nameOf(n.path)
		if old, dup := out[name]; dup && old.isDir() {
			continue // a directory and a file of one name: the directory wins
		}
		out[name] = n
		names[name] = struct{}{}
	}
	for _, n := range out {
		if n.key != "" || n.isDir() {
			v.meta.putFetched(n.path, n, since)
		}
	}
	v.meta.putListing(p, names, nil)
	fetched := map[string]indexEntry{}
	for _, r := range records {
		if r != nil {
			fetched[r.seg] = *r
		}
	}
	v.indexListed(p, prefix, items, fetched, index, indexVer)
	return out, nil
}

// resolve turns one listed item into a node; nil means skip it (logged).
// An item that index shows as listed is resolved from its metadata
// there, through the same authentication as a fetched one; when that
// fails (a stale or forged index) it is fetched. rec is the index entry
// of a fetched file that authenticated.
func (v *Volume) resolve(ctx context.Context, dir string, it listItem, index map[string]indexEntry) (n *node, rec *indexEntry, err error) {
	var name string
	if !v.lay.hashed(it.seg) {
		var err error
		if name, err = v.lay.name(dir, it.seg, ""); err != nil {
			v.logEvent(slog.LevelWarn, "skipping an entry whose name does not decode", "", it.key, "err", err)
			return nil, nil, nil
		}
		if n, ok := v.meta.get(joinPath(dir, name)); ok && n != nil && n.isDir() == it.dir && (it.dir || n.etag == it.etag) {
			return n, nil, nil
		}
	}
	if e, ok := index[it.seg]; ok && e.matches(it) {
		info := blobstore.ObjectInfo{Key: it.key, Size: it.size, ETag: it.etag, LastModified: it.lastMod, Metadata: e.meta}
		n, err := v.listedNode(ctx, dir, name, it, info, nil)
		if err == nil && n != nil {
			return n, nil, nil
		}
	}
	// headSem bounds the requests of every listing of the volume
	// together (the store's connection pool is sized for it).
	select {
	case v.headSem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-v.headSem }()
	var info blobstore.ObjectInfo
	var first []byte
	if it.dir {
		info, err = v.store.Head(ctx, it.key)
	} else {
		info, first, err = v.headFile(ctx, it.key)
	}
	if errors.Is(err, blobstore.ErrNotFound) {
		if it.dir && name != "" {
			return v.implicitDir(joinPath(dir, name)), nil, nil
		}
		if it.dir {
			v.logEvent(slog.LevelWarn, "skipping a long-named directory without marker", "", it.key)
		}
		return nil, nil, nil // gone since the listing
	}
	if err != nil {
		return nil, nil, err
	}
	n, err = v.listedNode(ctx, dir, name, it, info, first)
	if errors.Is(err, errWriterHidden) {
		return nil, nil, nil
	}
	if errors.Is(err, errForeign) {
		// A write-only volume lists its name and size, and nothing else.
		size, _ := v.lay.plainSize(info.Size)
		return &node{path: joinPath(dir, name), attr: Attr{Mode: syscall.S_IFREG, Size: size}, bad: err, foreign: true}, nil, nil
	}
	if err != nil {
		if n == nil {
			return nil, nil, nil // logged by listedNode
		}
		// Listed, but its attributes do not open: show it, and let every
		// access to it fail with EIO.
		v.logEvent(slog.LevelWarn, "a listed entry failed authentication: accessing it is EIO", n.path, it.key, "err", err)
		return &node{path: n.path, attr: Attr{Mode: syscall.S_IFREG, Mtime: info.LastModified}, bad: err}, nil, nil
	}
	if !it.dir && info.ETag == it.etag && info.Size == it.size {
		rec = &indexEntry{seg: it.seg, etag: it.etag, size: it.size, lastMod: it.lastMod.UnixNano(), meta: info.Metadata}
	}
	return n, rec, nil
}

// listedNode authenticates the metadata info of a listed item of
// directory dir whose name (when not hashed) is name. A nil node with an
// error means skip the item; a node with an error is the item's path
// whose metadata failed.
func (v *Volume) listedNode(ctx context.Context, dir, name string, it listItem, info blobstore.ObjectInfo, first []byte) (*node, error) {
	long := ""
	if v.lay.hashed(it.seg) {
		long = v.lay.longName(info.Metadata)
		var err error
		if name, err = v.lay.name(dir, it.seg, long); err != nil {
			v.logEvent(slog.LevelWarn, "skipping an entry whose long name does not decode", "", it.key, "err", err)
			return nil, err
		}
	}
	p := joinPath(dir, name)
	var n *node
	var err error
	if it.dir {
		n, err = v.dirNode(p, it.key, long, info)
	} else if n, first, err = v.entryNode(ctx, p, it.key, long, info, first); err == nil {
		v.keepFirstChunk(n, first)
	}
	if err != nil {
		return &node{path: p}, err
	}
	return n, nil
}

// headFile reads an object's metadata together with its first chunk: a
// ranged GET costs the store about what a HEAD does, and small files
// then need no request when they are read.
func (v *Volume) headFile(ctx context.Context, key string) (blobstore.ObjectInfo, []byte, error) {
	length := int64(cipher.ChunkSize)
	if v.client {
		length = cipher.HeaderSize + cipher.ChunkSize + cipher.ChunkOverhead
	}
	body, info, err := v.store.Get(ctx, key, blobstore.GetOptions{Length: length})
	if err != nil {
		return info, nil, err
	}
	defer body.Close()
	buf, err := io.ReadAll(io.LimitReader(body, length))
	if err != nil {
		return info, nil, err
	}
	return info, buf, nil
}

// keepFirstChunk puts chunk 0 of n, fetched with its metadata, in the
// block cache once it authenticates.
func (v *Volume) keepFirstChunk(n *node, first []byte) {
	if n.attr.Size == 0 || n.attr.IsSymlink() && !v.client {
		return
	}
	off, ln := v.lay.chunkRange(0, n.attr.Size)
	if int64(len(first)) < off+ln {
		return
	}
	stored := first[off : off+ln : off+ln]
	plain, err := v.lay.openChunk(n.okey, nil, stored, 0, n.attr.Size)
	if err != nil {
		return // reading it will report the failure
	}
	id := blockID{Object: v.lay.blockObject(n.key, n.etag, n.okey), Index: 0}
	v.local.blocks.PutStored(id, stored)
	v.local.blocks.PutPlain(id, plain)
}
