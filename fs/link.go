package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Hard links (DESIGN.md §3; the decisions are in doc.go). A path whose
// object is a link has a node whose key, etag, objSize and okey are its
// inode object's, so reads, uploads and attribute changes through any
// name reach the one body; node.link says which link object names it.

// linkRef is the link object at a node's path.
type linkRef struct {
	key   string            // the link object's key
	etag  string            // its ETag
	okey  *cipher.ObjectKey // its own key (the link record is sealed with it)
	link  cipher.Link       // the inode it names, and its link ID
	links cipher.LinkSet    // the inode's live set, as last read or written
}

// inodePrefix holds the inode objects.
const inodePrefix = reservedName + "/inodes/"

func inodeKey(id cipher.InodeID) string { return inodePrefix + id.String() }

// inodeNumber is st_ino of a linked file: derived from its inode ID, so
// every name and every mount shows the same number; below 1<<63, where
// go-fuse numbers the inodes it makes up, and never 0 or 1 (the root).
func inodeNumber(id cipher.InodeID) uint64 {
	n := binary.BigEndian.Uint64(id[:8]) >> 1
	if n < 2 {
		n += 2
	}
	return n
}

// inodeViews holds the latest known version of each inode seen here,
// so that a cached node of one name shows what a change through another
// name did (content, attributes, link count), and the names known to
// lead to it (where an open file moves when its name is unlinked).
type inodeViews struct {
	mu    sync.Mutex
	nodes map[cipher.InodeID]*node
	names map[cipher.InodeID]map[string]struct{}
}

func (iv *inodeViews) note(n *node) {
	if n == nil || n.link == nil {
		return
	}
	id := n.link.link.Inode
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.nodes == nil {
		iv.nodes, iv.names = map[cipher.InodeID]*node{}, map[cipher.InodeID]map[string]struct{}{}
	}
	c := *n
	iv.nodes[id] = &c
}

// named records that p leads to the inode of link node n (a lookup, a
// link or a rename found or made it).
func (iv *inodeViews) named(n *node) {
	iv.note(n)
	id := n.link.link.Inode
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.names[id] == nil {
		iv.names[id] = map[string]struct{}{}
	}
	iv.names[id][n.path] = struct{}{}
}

// renamedTree moves the names below directory oldp to newp.
func (iv *inodeViews) renamedTree(oldp, newp string) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	for _, names := range iv.names {
		for q := range names {
			if isUnder(q, oldp) {
				delete(names, q)
				names[newp+strings.TrimPrefix(q, oldp)] = struct{}{}
			}
		}
	}
}

func (iv *inodeViews) get(id cipher.InodeID) *node {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.nodes[id]
}

// unnamed forgets that p leads to inode id.
func (iv *inodeViews) unnamed(id cipher.InodeID, p string) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	delete(iv.names[id], p)
}

// otherName is a name other than p known to lead to id ("" if none).
func (iv *inodeViews) otherName(id cipher.InodeID, p string) string {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	for q := range iv.names[id] {
		if q != p {
			return q
		}
	}
	return ""
}

func (iv *inodeViews) forget(id cipher.InodeID) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	delete(iv.nodes, id)
	delete(iv.names, id)
}

// overlayInode shows a link node with the latest version of its inode
// known here.
func (v *Volume) overlayInode(n *node) *node {
	if n == nil || n.link == nil {
		return n
	}
	v.mu.Lock()
	f := v.fileOfInodeLocked(n.link.link.Inode)
	v.mu.Unlock()
	if f != nil {
		// Open here through another name: its content and attributes are
		// the newest.
		s := f.snapshot()
		if s.link != nil && s.path != n.path {
			l := *n.link
			l.links = s.link.links
			s.path, s.long, s.link = n.path, n.long, &l
			return s
		}
	}
	cur := v.inodes.get(n.link.link.Inode)
	if cur == nil {
		return n
	}
	c := *n
	l := *n.link
	l.links = cur.link.links
	c.link = &l
	if cur.etag != n.etag || cur.attr.Changes != n.attr.Changes || cur.okey != n.okey {
		c.key, c.etag, c.objSize, c.okey = cur.key, cur.etag, cur.objSize, cur.okey
		c.attr, c.base = cur.attr, cur.base
	}
	c.attr.Links = uint32(l.links.Len())
	return &c
}

// followLink opens the link object at key (metadata info) as path p and
// the inode it names: EIO unless every check DESIGN.md §3 lists holds
// (cipher.FollowLink). first is the inode's first chunk.
func (v *Volume) followLink(ctx context.Context, p, key, long string, info blobstore.ObjectInfo) (*node, []byte, error) {
	lokey, l, err := v.keyring().OpenLink(info.Metadata, p)
	if err != nil {
		return nil, nil, badMeta(err)
	}
	lr := &linkRef{key: key, etag: info.ETag, okey: lokey, link: l}
	iinfo, first, err := v.headFile(ctx, inodeKey(l.Inode))
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, nil, badMeta(fmt.Errorf("%w: link to inode %s, which is not stored", cipher.ErrAuth, l.Inode))
	}
	if err != nil {
		return nil, nil, err
	}
	n, err := v.inodeNode(p, long, lr, iinfo)
	if err != nil {
		return nil, nil, err
	}
	return n, first, nil
}

// inodeNode is the node of path p, link lr, from the inode object's
// metadata info.
func (v *Volume) inodeNode(p, long string, lr *linkRef, info blobstore.ObjectInfo) (*node, error) {
	okey, in, err := v.keyring().FollowLink(info.Metadata, lr.link)
	if err != nil {
		return nil, badMeta(err)
	}
	size, err := v.lay.plainSize(info.Size)
	if err != nil {
		return nil, badMeta(err)
	}
	at, err := storedAttr(v, in.Attr, size)
	if err != nil {
		return nil, badMeta(err)
	}
	at.Links, at.Ino = uint32(in.Links.Len()), inodeNumber(lr.link.Inode)
	l := *lr
	l.links = in.Links
	return &node{
		path: p, attr: at, base: at,
		key: inodeKey(lr.link.Inode), etag: info.ETag, objSize: info.Size, okey: okey, long: long, link: &l,
	}, nil
}

// errInodeGone: a link's inode object is not stored.
var errInodeGone = errors.New("inode is not stored")

// currentInode re-reads the inode of link node n as the store holds it
// now.
func (v *Volume) currentInode(ctx context.Context, n *node) (*node, error) {
	info, err := v.store.Head(ctx, n.key)
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, badMeta(fmt.Errorf("%w: %w: inode %s", cipher.ErrAuth, errInodeGone, n.link.link.Inode))
	}
	if err != nil {
		return nil, err
	}
	return v.inodeNode(n.path, n.long, n.link, info)
}

// Link makes newPath a second name of the file at oldPath (link(2)).
func (v *Volume) Link(ctx context.Context, oldPath, newPath string) (Attr, error) {
	o, err := v.begin(ctx, oldPath, newPath)
	if err != nil {
		return Attr{}, v.finish("link", newPath, err)
	}
	defer v.end(o)
	oldPath, newPath = o.paths[0], o.paths[1]
	n, err := v.link(ctx, oldPath, newPath)
	if err != nil {
		return Attr{}, v.finish("link", newPath, err)
	}
	return n.attr, nil
}

func (v *Volume) link(ctx context.Context, oldp, newp string) (*node, error) {
	if v.keyring() == nil {
		return nil, withErrno(syscall.EPERM, errors.New("hard links need client-side encryption and the full key (not a writer's)"))
	}
	if err := v.checkWritable(oldp); err != nil {
		return nil, err
	}
	key, long, err := v.newName(ctx, newp)
	if err != nil {
		return nil, err
	}
	src, err := v.lookup(ctx, oldp)
	if err != nil {
		return nil, err
	}
	if src.isDir() {
		return nil, syscall.EPERM
	}
	f := v.fileOf(oldp, src)
	if f != nil {
		// The inode copy must carry the staged content.
		f.mu.Lock()
		dirty := f.dirty && !f.removed
		f.mu.Unlock()
		if dirty {
			if err := v.retrying(ctx, f.upload); err != nil {
				return nil, err
			}
		}
	}
	defer v.lockPaths(oldp, newp)()
	if src, err = v.lookup(ctx, oldp); err != nil {
		return nil, err
	}
	if src.key == "" {
		return nil, src.unreadable()
	}
	now := time.Now()
	var on, nn *node
	if src.link == nil {
		on, nn, err = v.firstLink(ctx, src, newp, key, long, now)
	} else {
		on, nn, err = v.addLink(ctx, src, newp, key, long, now)
	}
	if err != nil {
		return nil, err
	}
	if f != nil {
		f.mu.Lock()
		if !f.removed {
			ref := on.link
			if f.node != nil && f.node.link != nil {
				ref = f.node.link // open through another name
			}
			f.adoptInodeLocked(on, ref)
		}
		f.mu.Unlock()
	}
	v.meta.added(newp)
	v.touchParent(newp, now)
	return nn, nil
}

// firstLink turns the file of node src into an inode with two links: one
// server-side copy of its body to the inode object (same ObjectKey, so
// cached chunks stay valid), the new name's link, then the old name's
// (its object rewritten as a link, conditional on the version copied).
// A failure undoes what was stored.
func (v *Volume) firstLink(ctx context.Context, src *node, newp, key, long string, now time.Time) (on, nn *node, err error) {
	kr := v.keyring()
	if err := v.metaGuard(ctx, src); err != nil {
		return nil, nil, err
	}
	ino := cipher.NewInodeID()
	oldL := cipher.Link{Inode: ino, ID: cipher.NewLinkID()}
	newL := cipher.Link{Inode: ino, ID: cipher.NewLinkID()}
	links := cipher.LinkSet{}.With(oldL.ID).With(newL.ID)
	attr := src.attr
	attr.touch(now)
	imeta, err := kr.SealInodeMetadata(src.okey, ino, cipher.Inode{Attr: toCipherAttr(attr), Links: links})
	if err != nil {
		return nil, nil, linkErr(err)
	}
	ikey := inodeKey(ino)
	info, err := v.store.Copy(ctx, src.key, ikey, blobstore.CopyOptions{Metadata: imeta, IfMatch: src.etag})
	if err != nil {
		return nil, nil, err
	}
	undo := func() {
		if err := v.store.Delete(context.WithoutCancel(ctx), ikey); err != nil {
			v.logEvent(slog.LevelWarn, "could not remove the inode of a failed link (fsck removes it)", newp, ikey, "err", err)
		}
	}
	newRef, err := v.putLink(ctx, newp, key, newL, blobstore.PutOptions{IfNoneMatch: true})
	if err != nil {
		undo()
		return nil, nil, existsErr(err)
	}
	oldRef, err := v.putLink(ctx, src.path, src.key, oldL, blobstore.PutOptions{IfMatch: src.etag})
	if err != nil {
		if derr := v.store.Delete(context.WithoutCancel(ctx), key); derr != nil {
			v.logEvent(slog.LevelWarn, "could not remove the link of a failed link", newp, key, "err", derr)
		}
		undo()
		return nil, nil, err
	}
	attr.Links, attr.Ino = 2, inodeNumber(ino)
	objSize := info.Size
	if objSize == 0 {
		objSize = src.objSize
	}
	mk := func(p, l string, r *linkRef) *node {
		r.links = links
		return &node{path: p, attr: attr, base: attr, key: ikey, etag: info.ETag, objSize: objSize, okey: src.okey, long: l, link: r, target: src.target}
	}
	on, nn = mk(src.path, src.long, oldRef), mk(newp, long, newRef)
	for _, n := range []*node{on, nn} {
		v.inodes.named(n)
		v.meta.put(n)
	}
	return on, nn, nil
}

// addLink adds a name to the inode of link node src: a conditional
// metadata copy of the inode adding a link ID, then the new link object
// (a failure drops the ID again).
func (v *Volume) addLink(ctx context.Context, src *node, newp, key, long string, now time.Time) (on, nn *node, err error) {
	l := cipher.Link{Inode: src.link.link.Inode, ID: cipher.NewLinkID()}
	cur, err := v.changeInode(ctx, src, func(a Attr, s cipher.LinkSet) (Attr, cipher.LinkSet, error) {
		a.touch(now)
		return a, s.With(l.ID), nil
	})
	if err != nil {
		return nil, nil, err
	}
	ref, err := v.putLink(ctx, newp, key, l, blobstore.PutOptions{IfNoneMatch: true})
	if err != nil {
		if _, derr := v.changeInode(context.WithoutCancel(ctx), cur, func(a Attr, s cipher.LinkSet) (Attr, cipher.LinkSet, error) {
			return a, s.Without(l.ID), nil
		}); derr != nil {
			v.logEvent(slog.LevelWarn, "could not drop the link ID of a failed link (fsck reports it)", newp, src.key, "err", derr)
		}
		return nil, nil, existsErr(err)
	}
	ref.links = cur.link.links
	c := *cur
	c.path, c.long, c.link = newp, long, ref
	v.inodes.named(&c)
	v.meta.put(&c)
	v.meta.put(cur)
	return cur, &c, nil
}

// changeInode applies change to the attributes and live set of the inode
// of link node n, as the store holds it (re-read on a race), with a
// conditional metadata copy of the inode onto itself. The result is n's
// path with the new version.
func (v *Volume) changeInode(ctx context.Context, n *node, change func(Attr, cipher.LinkSet) (Attr, cipher.LinkSet, error)) (*node, error) {
	for attempt := 0; ; attempt++ {
		cur, err := v.currentInode(ctx, n)
		if err != nil {
			return nil, err
		}
		a, links, err := change(cur.attr, cur.link.links)
		if err != nil {
			return nil, err
		}
		nn, err := v.copyInode(ctx, cur, a, links)
		if errors.Is(err, blobstore.ErrPreconditionFailed) && attempt < 3 {
			continue
		}
		return nn, err
	}
}

// copyInode stores attributes a and live set links for the inode of
// link node n (read from the store: its ETag is the copy's condition).
func (v *Volume) copyInode(ctx context.Context, n *node, a Attr, links cipher.LinkSet) (*node, error) {
	in := cipher.Inode{Attr: toCipherAttr(a), Links: links}
	meta, err := v.keyring().SealInodeMetadata(n.okey, n.link.link.Inode, in)
	if err != nil {
		return nil, linkErr(err)
	}
	info, err := v.store.Copy(ctx, n.key, n.key, blobstore.CopyOptions{Metadata: meta, IfMatch: n.etag})
	if err != nil {
		return nil, err
	}
	c := *n
	l := *n.link
	l.links = links
	a.Links = uint32(links.Len())
	c.attr, c.base, c.etag, c.link = a, a, info.ETag, &l
	if info.Size != 0 {
		c.objSize = info.Size
	}
	v.inodes.note(&c)
	return &c, nil
}

// putLink stores a link object for l at path p (key), with a fresh
// ObjectKey.
func (v *Volume) putLink(ctx context.Context, p, key string, l cipher.Link, opts blobstore.PutOptions) (*linkRef, error) {
	kr := v.keyring()
	okey, err := kr.NewObjectKey()
	if err != nil {
		return nil, err
	}
	meta, err := kr.SealLinkMetadata(okey, p, l)
	if err != nil {
		return nil, err
	}
	opts.Metadata = meta
	info, err := v.store.Put(ctx, key, bytes.NewReader(nil), 0, opts)
	if err != nil {
		return nil, err
	}
	return &linkRef{key: key, etag: info.ETag, okey: okey, link: l}, nil
}

// linkErr is EMLINK for a live set that no longer fits the metadata.
func linkErr(err error) error {
	if errors.Is(err, cipher.ErrMetadataTooBig) {
		return withErrno(syscall.EMLINK, err)
	}
	if errors.Is(err, cipher.ErrWriterOrigin) {
		return withErrno(syscall.EPERM, fmt.Errorf("a writer's file gets a second name only once adopted (coffer adopt): %w", err))
	}
	return err
}

// existsErr is EEXIST for a name created by another client meanwhile.
func existsErr(err error) error {
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		return withErrno(syscall.EEXIST, err)
	}
	return err
}

// dropLink removes the name of link node n from its inode: the link ID
// leaves the live set (a conditional copy of the inode, which moves its
// ctime), then the link object goes; the last link deletes the inode
// after its link object. A link that is not in the live set any more (an
// unlink that did not finish) only has its object deleted. last reports
// that the inode is gone.
func (v *Volume) dropLink(ctx context.Context, n *node, now time.Time, deleteLink bool) (cur *node, last bool, err error) {
	id := n.link.link.ID
	cur, err = v.changeInode(ctx, n, func(a Attr, s cipher.LinkSet) (Attr, cipher.LinkSet, error) {
		if !s.Has(id) {
			return a, s, errStaleLink
		}
		if s.Len() == 1 {
			return a, s, errLastLink
		}
		a.touch(now)
		return a, s.Without(id), nil
	})
	switch {
	case errors.Is(err, errLastLink):
		last, err = true, nil
	case errors.Is(err, cipher.ErrStaleLink), errors.Is(err, errStaleLink):
		cur, err = nil, nil
	case err != nil:
		return nil, false, err
	}
	if deleteLink {
		if err := v.store.Delete(ctx, n.link.key); err != nil {
			return nil, false, err
		}
	}
	v.inodes.unnamed(n.link.link.Inode, n.path)
	if last {
		if err := v.store.Delete(ctx, n.key); err != nil {
			return nil, false, err
		}
		v.inodes.forget(n.link.link.Inode)
		v.dropCached(n)
	}
	return cur, last, nil
}

var (
	errLastLink  = errors.New("the last link of its inode")
	errStaleLink = fmt.Errorf("%w: not in the live set", cipher.ErrStaleLink)
)

// unlinkLink is unlink of a name whose object is a link (n; f the file
// open or staged at p, if any). The content stays for the other names:
// an open file moves to another name known here, or keeps its handles
// on the inode without a name; the last name's unlink is an ordinary
// unlink of an open file (its handles get a private copy).
func (v *Volume) unlinkLink(ctx context.Context, p string, n *node, f *file) error {
	now := time.Now()
	other := v.fileOf(p, n) // open through another name
	if other == f {
		other = nil
	}
	for _, g := range []*file{f, other} {
		if g == nil {
			continue
		}
		g.mu.Lock()
		dirty := g.dirty && !g.removed && g.node != nil
		g.mu.Unlock()
		if dirty {
			// Its upload must not carry the link count from before.
			if err := v.retrying(ctx, g.upload); err != nil {
				return err
			}
		}
	}
	if f != nil {
		f.mu.Lock()
		dirty := f.dirty && !f.removed && f.node != nil
		f.mu.Unlock()
		if dirty {
			if err := v.retrying(ctx, f.upload); err != nil {
				return err
			}
		}
		if n.link.links.Len() <= 1 {
			// The last name, as an unlink: no upload of f may follow
			// until it is marked removed (held to the end, which makes
			// no upload). Landing once the inode is deleted, one would be
			// taken for another mount's change and stored as a conflict
			// copy of the file just removed.
			f.upMu.Lock()
			defer f.upMu.Unlock()
			if err := f.keepContent(ctx); !keptOrLost(err) {
				return err
			}
		}
	}
	cur, last, err := v.dropLink(ctx, n, now, true)
	if err != nil {
		return err
	}
	if other != nil && cur != nil {
		other.mu.Lock()
		if !other.removed && other.node != nil && other.node.link != nil {
			other.adoptInodeLocked(cur, other.node.link)
		}
		other.mu.Unlock()
	}
	if f == nil {
		return nil
	}
	if last {
		v.mu.Lock()
		v.dropFileLocked(f, p)
		v.mu.Unlock()
		return nil
	}
	v.keepLinkedOpen(ctx, f, p, n, cur)
	return nil
}

// keepLinkedOpen moves f, open at p, a name of link node n's inode that
// just left it (cur: the inode after), away from p: the file lives on
// under another name known here (its link read again, so a rename of it
// moves the right object), else open without a name, still writing to
// the inode.
func (v *Volume) keepLinkedOpen(ctx context.Context, f *file, p string, n, cur *node) {
	var ref *linkRef
	q := v.inodes.otherName(n.link.link.Inode, p)
	if q != "" {
		if qn, err := v.probe(ctx, q); err == nil && qn.link != nil && qn.link.link.Inode == n.link.link.Inode {
			ref = qn.link
		}
	}
	v.mu.Lock()
	switch {
	case ref != nil && v.files[q] == nil:
		v.repathLocked(f, p, q)
	case v.files[p] == f:
		// Kept in v.files under a key no path has, so that it is still
		// found by its inode, flushed and uploaded.
		v.repathLocked(f, p, unnamedKey(n.link.link.Inode))
		ref = nil
	}
	f.mu.Lock()
	if cur != nil {
		if ref == nil {
			ref = f.node.link
		}
		f.adoptInodeLocked(cur, ref)
	}
	f.attr.Unlinked = false
	f.mu.Unlock()
	v.mu.Unlock()
}

// unnamedKey is where v.files keeps a hard-linked file open here whose
// names here are all gone while the inode has others: not a canonical
// path, so no lookup finds it there.
func unnamedKey(id cipher.InodeID) string { return "\x00inode " + id.String() }

// fileOf is the file open or staged here at p (node n), or through
// another name of n's inode.
func (v *Volume) fileOf(p string, n *node) *file {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.files[p]; f != nil {
		return f
	}
	if n != nil && n.link != nil {
		return v.fileOfInodeLocked(n.link.link.Inode)
	}
	return nil
}

// adoptInodeLocked makes cur, a version of f's inode stored through any
// name, f's stored version, with ref as f's own link (f.mu held). A
// clean file takes its attributes; a staged one the link count and the
// change (its upload carries the rest).
func (f *file) adoptInodeLocked(cur *node, ref *linkRef) {
	c := *cur
	l := *ref
	l.links = cur.link.links
	c.path, c.link = f.path, &l
	f.node, f.rd, f.replaces = &c, nil, c.etag
	if f.dirty {
		f.attr.Links, f.attr.Ino = c.attr.Links, c.attr.Ino
		if c.attr.Ctime.After(f.attr.Ctime) {
			f.attr.Ctime = c.attr.Ctime
		}
		f.attr.Changes = max(f.attr.Changes, c.attr.Changes)
		return
	}
	f.attr = c.attr
}

// renameLink moves the link object of src (at oldp) to newp: only the
// small object moves; the inode's ctime moves too.
func (v *Volume) renameLink(ctx context.Context, f *file, oldp, newp string, src, dst *node, now time.Time) error {
	if dst != nil && dst.link != nil && dst.link.link.Inode == src.link.link.Inode {
		return nil // two names of one file: rename(2) does nothing
	}
	key, long, err := v.objectKey(newp)
	if err != nil {
		return err
	}
	ref, err := v.putLink(ctx, newp, key, src.link.link, blobstore.PutOptions{})
	if err != nil {
		return err
	}
	if err := v.store.Delete(ctx, src.link.key); err != nil {
		return err
	}
	if dst != nil && dst.link != nil {
		v.mu.Lock()
		victim := v.files[newp]
		v.mu.Unlock()
		if victim == f {
			victim = nil
		}
		v.dropReplacedLink(ctx, dst, victim, now)
	} else if dst != nil {
		v.dropCached(dst)
	}
	v.inodes.unnamed(src.link.link.Inode, oldp)
	var nn *node
	cur, err := v.changeInode(ctx, src, func(a Attr, s cipher.LinkSet) (Attr, cipher.LinkSet, error) {
		a.touch(now)
		return a, s, nil
	})
	if err != nil {
		v.logEvent(slog.LevelWarn, "could not move the ctime of a renamed link", newp, src.key, "err", err)
		v.meta.invalidate(newp)
	} else {
		c := *cur
		ref.links = cur.link.links
		c.path, c.long, c.link = newp, long, ref
		nn = &c
		v.inodes.named(nn)
		v.meta.put(nn)
		if g := v.fileOf("", cur); g != nil && g != f {
			g.mu.Lock()
			if !g.removed && g.node != nil && g.node.link != nil {
				g.adoptInodeLocked(cur, g.node.link)
			}
			g.mu.Unlock()
		}
	}
	if f != nil {
		v.moveLocal(f, oldp, newp, now)
		if nn != nil {
			f.mu.Lock()
			f.adoptInodeLocked(nn, nn.link)
			f.mu.Unlock()
		}
	} else {
		v.dropLocal(newp)
	}
	v.meta.removed(oldp)
	if nn != nil {
		v.meta.put(nn)
	}
	v.meta.added(newp)
	return nil
}

// dropReplacedLink drops the link ID of a link whose object another
// rename just overwrote (so the inode's live set shrinks with it).
// A file open at that name (victim) stays open on the inode when the
// inode keeps other names.
func (v *Volume) dropReplacedLink(ctx context.Context, dst *node, victim *file, now time.Time) {
	cur, last, err := v.dropLink(ctx, dst, now, false)
	if err != nil {
		v.logEvent(slog.LevelWarn, "could not drop the link ID of a replaced name (fsck reports it)", dst.path, dst.key, "err", err)
		return
	}
	if victim != nil && !last {
		v.keepLinkedOpen(ctx, victim, dst.path, dst, cur)
	}
}

// linkSurvives reports a replaced entry that is a hard link whose inode
// keeps other names: its open files need no private copy.
func linkSurvives(dst *node) bool { return dst != nil && dst.link != nil && dst.link.links.Len() > 1 }

// storeInode uploads the staged content of a hard-linked file (job) to
// its inode object, under the live set the store holds just before (one
// HEAD): every link and unlink, by any mount, is stored in the inode at
// once (changeInode), so a name another mount linked since this one
// opened the file survives the upload. A metadata copy keeps the ETag,
// so the PUT's condition cannot see such a change: what is left is the
// window between that HEAD and the PUT. Without a stored inode (every
// other name removed meanwhile) the live set known here is used.
func (v *Volume) storeInode(ctx context.Context, job uploadJob) (*node, error) {
	ino := job.link.link.Inode
	links := job.link.links
	if cur := v.inodes.get(ino); cur != nil {
		links = cur.link.links
	}
	stored, err := v.currentInode(ctx, &node{path: job.path, key: inodeKey(ino), link: job.link})
	switch {
	case err == nil:
		links = stored.link.links
	case !errors.Is(err, errInodeGone):
		return nil, err
	}
	attr := job.attr
	meta, err := v.keyring().SealInodeMetadata(job.up.okey, ino, cipher.Inode{Attr: toCipherAttr(attr), Links: links})
	if err != nil {
		return nil, err
	}
	key := inodeKey(ino)
	size := job.st.Size()
	info, err := v.putBody(ctx, key, job.up.okey, job.st.NewReader(), size, meta, job.opts)
	if err != nil {
		return nil, err
	}
	attr.Size, attr.Links, attr.Ino = size, uint32(links.Len()), inodeNumber(ino)
	l := *job.link
	l.links = links
	n := &node{path: job.path, attr: attr, base: attr, key: key, etag: info.ETag, objSize: info.Size, okey: job.up.okey, link: &l}
	v.inodes.note(n)
	return n, nil
}

// fileOfInodeLocked is the file open or staged here through any name of
// inode id (v.mu held): every name shares it, so writes through one are
// read through the others at once.
func (v *Volume) fileOfInodeLocked(id cipher.InodeID) *file {
	for _, f := range v.files {
		f.mu.Lock()
		ok := !f.removed && f.node != nil && f.node.link != nil && f.node.link.link.Inode == id
		f.mu.Unlock()
		if ok {
			return f
		}
	}
	return nil
}

// copyLink copies the link object of a directory rename to its new key,
// resealed for its new path (same ObjectKey); its inode stays. The node
// returned holds only the new link.
func (v *Volume) copyLink(ctx context.Context, m *moved) (*node, error) {
	kr := v.keyring()
	okey, l, err := kr.OpenLink(m.info.Metadata, m.oldPath)
	if err != nil {
		return nil, badMeta(err)
	}
	meta, err := kr.SealLinkMetadata(okey, m.newPath, l)
	if err != nil {
		return nil, err
	}
	info, err := v.store.Copy(ctx, m.oldKey, m.newKey, blobstore.CopyOptions{Metadata: meta, IfMatch: m.info.ETag})
	if err != nil {
		return nil, err
	}
	return &node{path: m.newPath, link: &linkRef{key: m.newKey, etag: info.ETag, okey: okey, link: l}}, nil
}

// fileAt is the file open or staged at p, unless it is except.
func (v *Volume) fileAt(p string, except *file) *file {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.files[p]; f != except {
		return f
	}
	return nil
}
