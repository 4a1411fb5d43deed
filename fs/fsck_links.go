package fs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cofferfs/coffer/cipher"
)

// Hard links in fsck (DESIGN.md §3). An inode object (.coffer/inodes/
// <hex inode ID>) is checked like a file body (size, KEK generation,
// DEK, Deep: every chunk) and its record opened under the inode AAD of
// the ID its key names; a link object like an entry (its record opened
// under its path), with an empty body. Then links and inodes are held
// against each other:
//
//   - a link whose inode is not stored: dangling (reported; reading it
//     is EIO);
//   - a link whose ID is not in its inode's live set: an unlink that
//     did not finish (DESIGN.md: removed with Repair);
//   - an inode no link names: a link or the last unlink that did not
//     finish, its content reachable by no name (removed with Repair);
//   - an inode whose live set holds IDs no link object holds: a link
//     that did not finish, so st_nlink shows one too many (reported).

type fsckLink struct {
	path, key string
	link      cipher.Link
}

type fsckInode struct {
	key   string
	links cipher.LinkSet
	bad   bool // its own checks failed: its links are not judged by it
}

// inode checks an inode object.
func (c *checker) inode(o *storedObject) *Finding {
	c.count(func(r *FsckReport) { r.Inodes++ })
	bad := func(kind FindingKind, err error) *Finding { return &Finding{Kind: kind, Key: o.key, Err: err} }
	id, err := cipher.ParseInodeID(strings.TrimPrefix(o.key, inodePrefix))
	if err != nil || !c.v.client {
		if err == nil {
			err = errors.New("an inode object in a volume without client-side encryption")
		}
		return bad(FindReserved, err)
	}
	in := &fsckInode{key: o.key, bad: true}
	c.mu.Lock()
	c.inodes[id] = in
	c.mu.Unlock()
	size, err := c.v.lay.plainSize(o.size)
	if err != nil {
		return bad(FindSize, err)
	}
	c.count(func(r *FsckReport) { r.Bytes += size })
	if f := c.objectKey(o, bad); f != nil {
		return f
	}
	_, rec, err := c.v.keyring().OpenInode(o.info.Metadata, id)
	if err != nil {
		if errors.Is(err, cipher.ErrAuth) {
			return bad(FindAttr, err)
		}
		return bad(FindMetadata, err)
	}
	c.mu.Lock()
	in.links, in.bad = rec.Links, false
	c.mu.Unlock()
	return c.deepFinding(o, "")
}

// link checks a link object at path p.
func (c *checker) link(o *storedObject, p string) *Finding {
	c.count(func(r *FsckReport) { r.Files++ })
	bad := func(kind FindingKind, err error) *Finding { return &Finding{Kind: kind, Path: p, Key: o.key, Err: err} }
	if o.size != 0 {
		return bad(FindSize, fmt.Errorf("a link object of %d bytes, want 0", o.size))
	}
	if f := c.objectKey(o, bad); f != nil {
		return f
	}
	_, l, err := c.v.keyring().OpenLink(o.info.Metadata, p)
	if err != nil {
		if errors.Is(err, cipher.ErrAuth) {
			return bad(FindAttr, err)
		}
		return bad(FindMetadata, err)
	}
	c.mu.Lock()
	c.links = append(c.links, fsckLink{path: p, key: o.key, link: l})
	c.mu.Unlock()
	return nil
}

// crossCheckLinks holds links and inodes against each other (see the top
// of this file), and with Repair removes what DESIGN.md lets it.
func (c *checker) crossCheckLinks(ctx context.Context) {
	named := map[cipher.InodeID]map[cipher.LinkID]bool{}
	for _, l := range c.links {
		in, ok := c.inodes[l.link.Inode]
		switch {
		case !ok:
			c.rep.Findings = append(c.rep.Findings, Finding{Kind: FindLink, Path: l.path, Key: l.key,
				Err: fmt.Errorf("dangling: inode %s is not stored", l.link.Inode)})
		case in.bad:
		case !in.links.Has(l.link.ID):
			f := Finding{Kind: FindLink, Path: l.path, Key: l.key,
				Err: fmt.Errorf("link %s is not in the live set of inode %s (an unlink that did not finish)", l.link.ID, l.link.Inode)}
			c.remove(ctx, &f)
			c.rep.Findings = append(c.rep.Findings, f)
		default:
			if named[l.link.Inode] == nil {
				named[l.link.Inode] = map[cipher.LinkID]bool{}
			}
			named[l.link.Inode][l.link.ID] = true
		}
	}
	for id, in := range c.inodes {
		if in.bad {
			continue
		}
		switch n := len(named[id]); {
		case n == 0:
			f := Finding{Kind: FindLink, Key: in.key, Err: fmt.Errorf("inode %s: no name links to it", id)}
			c.remove(ctx, &f)
			c.rep.Findings = append(c.rep.Findings, f)
		case n < in.links.Len():
			c.rep.Findings = append(c.rep.Findings, Finding{Kind: FindLink, Key: in.key,
				Err: fmt.Errorf("inode %s lists %d links, %d names hold them (a link that did not finish: nlink shows one too many)", id, in.links.Len(), n)})
		}
	}
}

// remove deletes the object of finding f with Repair.
func (c *checker) remove(ctx context.Context, f *Finding) {
	if !c.opts.Repair {
		return
	}
	if err := c.v.store.Delete(ctx, f.Key); err != nil {
		f.Err = fmt.Errorf("%v; removing it failed: %w", f.Err, err)
		return
	}
	f.Repaired = true
}
