package fs

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/cipher"
)

// node is what coffer knows of one stored path.
type node struct {
	path    string
	attr    Attr
	key     string // object key of a file or symlink; a directory's marker key ("" when implicit)
	etag    string
	objSize int64
	okey    *cipher.ObjectKey // client mode: the version's key (also markers)
	long    string            // coffer-name of a hashed last segment
	target  string            // symlink target, once read
	bad     error             // listed, but its metadata failed: every access is EIO
	// foreign: a write-only volume's node of something its session did
	// not store (writeonly.go): every access but a directory's lookup
	// and listing is EACCES.
	foreign bool
	// base is the attributes as sealed in the version the node names
	// (attr may show more: a directory's unstored times, a staged
	// file's): what metaGuard compares the store with. Zero: unknown.
	base Attr
	// link is set when the path's object is a link (link.go): then key,
	// etag, objSize and okey are its inode object's.
	link *linkRef
}

func (n *node) isDir() bool { return n.attr.IsDir() }

// unreadable is the EIO of a node that was listed but whose metadata
// failed (it has no usable key).
func (n *node) unreadable() error {
	if n.foreign {
		return withErrno(syscall.EACCES, errForeign)
	}
	if n.bad != nil {
		return withErrno(syscall.EIO, fmt.Errorf("listed, but its metadata failed: %w", n.bad))
	}
	return withErrno(syscall.EIO, errors.New("listed, but its object cannot be read"))
}

// metaCache is the mount-wide metadata cache: nodes by path (negative
// entries included) and directory listings, trusted for ttl. Own changes
// update it in place.
type metaCache struct {
	ttl   time.Duration
	now   func() time.Time
	mu    sync.Mutex
	nodes map[string]cachedNode
	dirs  map[string]cachedDir
	puts  int
	gen   uint64 // bumped by every node entry set (see putFetched)
}

type cachedNode struct {
	n   *node // nil: the path does not exist
	exp time.Time
	gen uint64 // c.gen when set
}

type cachedDir struct {
	names  map[string]struct{} // decoded child names
	hashed map[string]struct{} // hashed segments listed but not decoded
	exp    time.Time
}

func newMetaCache(ttl time.Duration) *metaCache {
	return &metaCache{ttl: ttl, now: time.Now, nodes: map[string]cachedNode{}, dirs: map[string]cachedDir{}}
}

// get returns (node, true) for a fresh entry; node nil means ENOENT.
func (c *metaCache) get(p string) (*node, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.nodes[p]
	if !ok || c.now().After(e.exp) {
		return nil, false
	}
	if e.n == nil {
		return nil, true
	}
	return e.n, true
}

// absent reports whether the listing of p's parent lacks p: known is
// false when there is no fresh listing, stale when there is an expired
// one (the parent is worth listing again). seg is p's stored segment,
// asked for only when the listing holds hashed segments.
func (c *metaCache) absent(p string, seg func() string) (absent, known, stale bool) {
	if c.ttl <= 0 || p == "/" {
		return false, false, false
	}
	dir, name := splitPath(p)
	c.mu.Lock()
	d, ok := c.dirs[dir]
	c.mu.Unlock()
	if !ok {
		return false, false, false
	}
	if c.now().After(d.exp) {
		return false, false, true
	}
	c.mu.Lock()
	_, present := d.names[name]
	nh := len(d.hashed)
	c.mu.Unlock()
	if present {
		return false, true, false
	}
	if nh > 0 {
		s := seg()
		c.mu.Lock()
		_, present = d.hashed[s]
		c.mu.Unlock()
	}
	return !present, true, false
}

func (c *metaCache) put(n *node) {
	c.setNode(n.path, n)
}

func (c *metaCache) putAbsent(p string) {
	c.setNode(p, nil)
}

// generation is the cache's generation now: take it before asking the
// store, and give the answer to putFetched.
func (c *metaCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// putFetched caches what the store said of p (n nil: nothing there) when
// asked at generation since, unless p's entry was set or invalidated
// after that: an own change (unlink, rename over p, upload) or a newer
// answer supersedes a lookup that was in flight across it, which would
// otherwise cache a version whose object is gone.
func (c *metaCache) putFetched(p string, n *node, since uint64) {
	c.set(p, n, since)
}

func (c *metaCache) setNode(p string, n *node) { c.set(p, n, ^uint64(0)) }

func (c *metaCache) set(p string, n *node, since uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.nodes[p]; ok && e.gen > since {
		return
	}
	c.gen++
	c.nodes[p] = cachedNode{n: n, exp: c.now().Add(c.ttl), gen: c.gen}
	c.puts++
	if c.puts%4096 == 0 {
		c.sweepLocked()
	}
}

func (c *metaCache) sweepLocked() {
	now := c.now()
	for p, e := range c.nodes {
		if now.After(e.exp) {
			delete(c.nodes, p)
		}
	}
	for p, d := range c.dirs {
		if now.After(d.exp) {
			delete(c.dirs, p)
		}
	}
}

// listing returns a copy of the names of dir's fresh, fully decoded
// listing, if there is one.
func (c *metaCache) listing(dir string) (map[string]struct{}, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.dirs[dir]
	if !ok || c.now().After(d.exp) || len(d.hashed) > 0 {
		return nil, false
	}
	return maps.Clone(d.names), true
}

// putListing records the children of dir; hashed holds segments whose
// names were not decoded (nil after a full ReadDir).
func (c *metaCache) putListing(dir string, names, hashed map[string]struct{}) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs[dir] = cachedDir{names: names, hashed: hashed, exp: c.now().Add(c.ttl)}
}

// added records a new child in its parent's cached listing (if cached).
func (c *metaCache) added(p string) {
	dir, name := splitPath(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.dirs[dir]; ok {
		d.names[name] = struct{}{}
	}
}

// removed forgets p: a negative entry, and gone from its parent listing.
func (c *metaCache) removed(p string) {
	dir, name := splitPath(p)
	c.mu.Lock()
	if d, ok := c.dirs[dir]; ok {
		delete(d.names, name)
	}
	delete(c.dirs, p)
	c.mu.Unlock()
	c.putAbsent(p)
}

// invalidate forgets p without asserting anything about it. It leaves
// an expired entry, so that a lookup in flight does not cache what it
// learnt before (see putFetched).
func (c *metaCache) invalidate(p string) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.nodes[p] = cachedNode{gen: c.gen}
}

// dropTree forgets p and everything below it.
func (c *metaCache) dropTree(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := p + "/"
	for k := range c.nodes {
		if k == p || strings.HasPrefix(k, prefix) {
			delete(c.nodes, k)
		}
	}
	for k := range c.dirs {
		if k == p || strings.HasPrefix(k, prefix) {
			delete(c.dirs, k)
		}
	}
}

// splitPath splits a canonical path other than "/" into its parent and
// name.
func splitPath(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

// joinPath joins a canonical directory and a name.
func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// isUnder reports whether p is below dir (not dir itself).
func isUnder(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// checkPath validates a canonical path.
func checkPath(p string) bool {
	return p == "/" || (strings.HasPrefix(p, "/") && path.Clean(p) == p && !strings.Contains(p, "\x00"))
}
