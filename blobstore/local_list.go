package blobstore

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// listItem is one entry of a directory level: an object (path set) or a
// subtree of keys sharing key as prefix (dir set; key ends in '/').
type listItem struct {
	key  string
	path string
	dir  string
}

// readLevel collects the items of one directory level, expanding
// continuation dirs (long segments) into the same level.
func readLevel(dir, keyPrefix string, items []listItem) ([]listItem, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return items, nil
		}
		return items, err
	}
	for _, e := range ents {
		chunk, suffix, ok := parseName(e.Name())
		if !ok {
			continue
		}
		p := filepath.Join(dir, e.Name())
		switch suffix {
		case suffixObject:
			items = append(items, listItem{key: keyPrefix + chunk, path: p})
		case suffixDir:
			items = append(items, listItem{key: keyPrefix + chunk + "/", dir: p})
		case suffixCont:
			if items, err = readLevel(p, keyPrefix+chunk, items); err != nil {
				return items, err
			}
		}
	}
	// Every key in a subtree starts with its item's key and no other item
	// of this level falls in that range, so sorting by item key and
	// walking subtrees in place yields keys in lexical order.
	slices.SortFunc(items, func(a, b listItem) int { return cmp.Compare(a.key, b.key) })
	return items, nil
}

// hasObject reports whether the tree under dir holds any object: empty
// dirs left by a crash between delete and rmdir must not show up as
// common prefixes.
func hasObject(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	for {
		ents, err := d.ReadDir(64)
		for _, e := range ents {
			_, suffix, ok := parseName(e.Name())
			switch {
			case !ok:
			case suffix == suffixObject:
				return true
			case hasObject(filepath.Join(dir, e.Name())):
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}

// List yields the objects (and with a delimiter, rolled-up prefixes)
// under prefix in lexical key order.
func (l *Local) List(ctx context.Context, prefix, delimiter string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if delimiter == "" || delimiter == "/" {
			l.walkPrefix(ctx, prefix, delimiter == "/", yield)
			return
		}
		// Any other delimiter: roll up a full walk. Keys sharing a
		// common prefix are contiguous in lexical order.
		var last string
		l.walkPrefix(ctx, prefix, false, func(e Entry, err error) bool {
			if err != nil {
				return yield(e, err)
			}
			if i := strings.Index(e.Key[len(prefix):], delimiter); i >= 0 {
				cp := e.Key[:len(prefix)+i+len(delimiter)]
				if cp == last {
					return true
				}
				last = cp
				return yield(Entry{Key: cp, IsPrefix: true}, nil)
			}
			return yield(e, nil)
		})
	}
}

// ListAfter is List from the first key after opts.StartAfter (a listing
// of Local has no pages: FirstPage does not apply).
func (l *Local) ListAfter(ctx context.Context, prefix, delimiter string, opts ListOptions) iter.Seq2[Entry, error] {
	startAfter := opts.StartAfter
	return func(yield func(Entry, error) bool) {
		for e, err := range l.List(ctx, prefix, delimiter) {
			if err == nil && e.Key <= startAfter && !(e.IsPrefix && strings.HasPrefix(startAfter, e.Key)) {
				continue
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// walkPrefix starts at the directory of prefix's complete segments.
func (l *Local) walkPrefix(ctx context.Context, prefix string, rollUp bool, yield func(Entry, error) bool) {
	dirKey := prefix[:strings.LastIndexByte(prefix, '/')+1]
	if len(dirKey) > MaxKeyLen {
		return
	}
	l.walk(ctx, filepath.Join(l.objects, dirRelPath(dirKey)), dirKey, prefix, rollUp, yield)
}

func (l *Local) walk(ctx context.Context, dir, dirKey, prefix string, rollUp bool, yield func(Entry, error) bool) bool {
	items, err := readLevel(dir, dirKey, nil)
	if err != nil {
		return yield(Entry{}, &Error{Op: "list", Key: prefix, Err: err})
	}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return yield(Entry{}, &Error{Op: "list", Key: prefix, Err: err})
		}
		if !strings.HasPrefix(it.key, prefix) {
			continue
		}
		if it.dir != "" {
			if rollUp {
				if hasObject(it.dir) && !yield(Entry{Key: it.key, IsPrefix: true}, nil) {
					return false
				}
				continue
			}
			if !l.walk(ctx, it.dir, it.key, it.key, false, yield) {
				return false
			}
			continue
		}
		f, err := os.Open(it.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while listing
		}
		var h localHeader
		if err == nil {
			h, _, err = readHeader(f)
			f.Close()
		}
		if err != nil {
			if !yield(Entry{}, &Error{Op: "list", Key: it.key, Err: err}) {
				return false
			}
			continue
		}
		if !yield(Entry{Key: it.key, Size: h.size, ETag: h.etag, LastModified: h.mtime}, nil) {
			return false
		}
	}
	return true
}
