package fs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

// A directory's mtime and ctime move whenever an entry is added or
// removed (and its ctime when it is renamed). Storing that at once would
// cost a marker PUT beside every create and unlink, so the moves are
// kept here and stored after the writeback delay, many changes of one
// directory in one rewrite of its marker (an implicit directory gets
// one). Until then every lookup and listing shows them (overlay). Flush
// (unmount) stores them all; a crash loses only these times. The root
// has no object: its times live as long as the mount.
type dirTimes struct {
	mu      sync.Mutex
	pending map[string]*dirTouch
	gen     uint64
}

// dirTouch is the unstored time change of one directory.
type dirTouch struct {
	mtime    time.Time // when entries moves set it
	mtimeSet bool
	ctime    time.Time
	gen      uint64 // bumped by every touch: a store clears only what it read
	armed    bool
}

func newDirTimes() *dirTimes { return &dirTimes{pending: map[string]*dirTouch{}} }

// overlay returns n with the unstored times of its directory, if any.
func (d *dirTimes) overlay(n *node) *node {
	if n == nil || !n.isDir() {
		return n
	}
	d.mu.Lock()
	var t dirTouch
	pt := d.pending[n.path]
	if pt != nil {
		t = *pt // touchDir changes it under d.mu
	}
	d.mu.Unlock()
	if pt == nil {
		return n
	}
	c := *n
	if t.mtimeSet {
		c.attr.Mtime = t.mtime
	}
	if t.ctime.After(c.attr.Ctime) {
		c.attr.Ctime = t.ctime
	}
	c.attr.Changes++
	return &c
}

// current is the generation of dir's pending change (0: none).
func (d *dirTimes) current(dir string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.pending[dir]; t != nil {
		return t.gen
	}
	return 0
}

// stored clears dir's pending change once what was stored included it
// (gen is what current said before the attributes were read).
func (d *dirTimes) stored(dir string, gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.pending[dir]; t != nil && gen != 0 && t.gen == gen {
		delete(d.pending, dir)
	}
}

// drop forgets the pending changes of dir and everything below it (an
// rmdir).
func (d *dirTimes) drop(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := range d.pending {
		if p == dir || isUnder(p, dir) {
			delete(d.pending, p)
		}
	}
}

// below lists the directories with pending changes at or below dir
// ("" for all).
func (d *dirTimes) below(dir string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for p := range d.pending {
		if dir == "" || p == dir || isUnder(p, dir) {
			out = append(out, p)
		}
	}
	return out
}

// touchDir records that directory dir changed at now: its entries
// (mtime and ctime) or only itself (ctime: it was renamed). The change
// is stored after the writeback delay.
func (v *Volume) touchDir(dir string, now time.Time, entries bool) {
	d := v.dirs
	d.mu.Lock()
	t := d.pending[dir]
	if t == nil {
		t = &dirTouch{}
		d.pending[dir] = t
	}
	if entries {
		t.mtime, t.mtimeSet = now, true
	}
	t.ctime = now
	d.gen++
	t.gen = d.gen
	arm := !t.armed && dir != "/"
	t.armed = true
	d.mu.Unlock()
	if arm {
		v.armDirFlush(dir, v.opts.WritebackDelay)
	}
}

// touchParent records a new or removed entry p in its parent.
func (v *Volume) touchParent(p string, now time.Time) {
	if p != "/" {
		v.touchDir(parentOf(p), now, true)
	}
}

func (v *Volume) armDirFlush(dir string, delay time.Duration) {
	v.clock.AfterFunc(max(delay, 0), func() {
		v.mu.Lock()
		if v.closed {
			v.mu.Unlock()
			return
		}
		v.bg.Add(1)
		v.mu.Unlock()
		defer v.bg.Done()
		// A touch from now on arms another flush.
		v.dirs.mu.Lock()
		if t := v.dirs.pending[dir]; t != nil {
			t.armed = false
		}
		v.dirs.mu.Unlock()
		if err := v.flushDir(v.ctx, dir); err != nil && v.ctx.Err() == nil {
			v.logEvent(slog.LevelWarn, "storing a directory's times failed, retrying", dir, "", "err", err)
			v.armDirFlush(dir, retryDelay(1))
		}
	})
}

// flushDir stores the pending times of dir in its marker: a conditional
// rewrite of what the store holds, retried on a race.
func (v *Volume) flushDir(ctx context.Context, dir string) error {
	if dir == "/" {
		return nil
	}
	defer v.lockPaths(dir)() // as changeAttr: one rewrite of dir at a time
	if err := v.waitRenameAbove(ctx, dir); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		gen := v.dirs.current(dir)
		if gen == 0 || dir == "/" {
			return nil
		}
		var n *node
		var err error
		if attempt == 0 {
			n, err = v.lookup(ctx, dir)
		} else if n, err = v.probe(ctx, dir); err == nil {
			n = v.dirs.overlay(n)
		}
		if errors.Is(err, syscall.ENOENT) || err == nil && !n.isDir() {
			v.dirs.stored(dir, gen) // gone, or replaced by a file
			return nil
		}
		if err != nil {
			return err
		}
		if v.opts.ReadOnly {
			return nil
		}
		if v.writer != nil {
			// A writer rewrites no marker (writeonly.go).
			v.dirs.stored(dir, gen)
			return nil
		}
		nn, err := v.rewriteMeta(ctx, n, dir, n.attr)
		if errors.Is(err, blobstore.ErrPreconditionFailed) && attempt < 3 {
			v.meta.invalidate(dir)
			continue
		}
		if err != nil {
			return err
		}
		v.meta.put(nn)
		v.dirs.stored(dir, gen)
		return nil
	}
}

// flushDirs stores the pending times of every directory at or below dir
// ("" for all).
func (v *Volume) flushDirs(ctx context.Context, dir string) error {
	var errs []error
	for _, p := range v.dirs.below(dir) {
		if p == "/" {
			continue
		}
		if err := v.flushDir(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
