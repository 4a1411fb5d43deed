package fs

import (
	"context"
	"slices"
	"sync"

	"github.com/cofferfs/coffer/cipher"
)

// Directory read-ahead. A listing answered from a directory index
// (dirindex.go) fetches no object, so it brings no first chunk along, as
// a listing with a ranged GET per entry does (headFile). A program that
// then reads the small files of the directory one after another (cp -r,
// tar, grep -r) would wait for one GET per file. So once two files of a
// listed directory are opened one after the other in the listing's
// (name) order, the first chunks of the small files that follow are
// fetched in parallel, up to aheadWindow of them beyond the last one
// opened, under the listings' request bound (headSem); an open of a file
// whose chunk is on its way waits for it. Nothing is fetched for a
// directory listed but not read that way (ls -l).

const (
	// aheadWindow is how many files beyond the one opened are fetched.
	aheadWindow = 2 * DefaultListConcurrency
	// aheadMinEntries: smaller listings are not worth tracking.
	aheadMinEntries = 4
	// aheadDirs bounds the directories whose order is kept.
	aheadDirs = 64
)

type dirAhead struct {
	mu       sync.Mutex
	dirs     map[string]*aheadDir
	inflight map[string]chan struct{} // path -> closed once its first chunk is fetched (or failed)
}

type aheadDir struct {
	names []string // the last listing's names, sorted
	last  int      // index of the last file opened (-2: none)
	upTo  int      // the files up to this index have been fetched or started
}

func newDirAhead() *dirAhead {
	return &dirAhead{dirs: map[string]*aheadDir{}, inflight: map[string]chan struct{}{}}
}

// listed records the sorted names of directory dir's listing.
func (a *dirAhead) listed(dir string, ents []DirEntry) {
	if len(ents) < aheadMinEntries {
		return
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.dirs[dir]; !ok && len(a.dirs) >= aheadDirs {
		clear(a.dirs)
	}
	a.dirs[dir] = &aheadDir{names: names, last: -2, upTo: -1}
}

// opened is called when file p (whose stored version is n) is opened
// for reading: it starts the read-ahead when p follows the last file
// opened in its directory, and waits for p's own first chunk when it is
// on its way.
func (v *Volume) opened(ctx context.Context, p string, n *node) {
	a := v.ahead
	if a == nil || n == nil || n.key == "" || n.link != nil {
		return
	}
	dir, name := splitPath(p)
	a.mu.Lock()
	wait := a.inflight[p]
	var todo []string
	if d := a.dirs[dir]; d != nil {
		if i, ok := slices.BinarySearch(d.names, name); ok {
			if i == d.last+1 {
				for j := max(i+1, d.upTo+1); j <= min(i+aheadWindow, len(d.names)-1); j++ {
					todo = append(todo, joinPath(dir, d.names[j]))
				}
				d.upTo = max(d.upTo, i+aheadWindow)
			}
			d.last = i
		}
	}
	a.mu.Unlock()
	for _, q := range todo {
		v.prefetchFirst(q)
	}
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
}

// prefetchFirst fetches the first chunk of the small file at q in the
// background, unless it is cached. A node no longer cached (the metadata
// TTL passed) is looked up again, which fetches the first chunk with the
// metadata (probe).
func (v *Volume) prefetchFirst(q string) {
	n, ok := v.meta.get(q)
	if ok && !v.wantsFirst(n) {
		return
	}
	a := v.ahead
	a.mu.Lock()
	if _, busy := a.inflight[q]; busy {
		a.mu.Unlock()
		return
	}
	done := make(chan struct{})
	a.inflight[q] = done
	a.mu.Unlock()
	v.bg.Add(1)
	go func() {
		defer v.bg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.inflight, q)
			a.mu.Unlock()
			close(done)
		}()
		select {
		case v.headSem <- struct{}{}:
		case <-v.ctx.Done():
			return
		}
		defer func() { <-v.headSem }()
		if !ok {
			v.lookup(v.ctx, q) // errors: the open reports them
			return
		}
		info, first, err := v.headFile(v.ctx, n.key)
		if err != nil || info.ETag != n.etag {
			return // the read fetches it, and reports what is wrong
		}
		v.keepFirstChunk(n, first)
	}()
}

// wantsFirst reports a cached node of a small stored file whose first
// chunk is not in the block cache.
func (v *Volume) wantsFirst(n *node) bool {
	if n == nil || n.key == "" || n.link != nil || n.bad != nil || n.foreign || n.isDir() ||
		n.attr.IsSymlink() || n.attr.IsSpecial() || n.attr.Size == 0 || n.attr.Size > cipher.ChunkSize {
		return false
	}
	id := blockID{Object: v.lay.blockObject(n.key, n.etag, n.okey), Index: 0}
	_, cached := v.local.blocks.GetPlain(id)
	return !cached
}
