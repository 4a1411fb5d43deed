package fs

import (
	"context"
	"strings"
)

// Operations and directory renames.
//
// The kernel does not lock a directory it renames, only the parents: a
// create, an open, a chmod or a rename inside it runs while its objects
// are being copied, with a path the FUSE layer computed before the
// rename and that names nothing once it ends. Stored under the old path
// during the copies, a change would be deleted with the sources or left
// behind in a directory that comes back (a create), or the rename would
// miss it (a nested directory rename moved nothing).
//
// So every path operation of the Volume API passes a gate first (begin):
// it waits while a directory rename is in progress at or above one of
// its paths, and the rename, when it succeeds, rewrites the paths of the
// operations waiting on it to where their objects went. An operation
// past its gate is active until it returns (end); a directory rename
// lets those active at or below its two paths finish before it looks at
// anything (drain), so it sees every change made before it and none made
// during it. Directory renames run one at a time (dirRenames): one
// waiting for another is parked, its paths rewritten like those of the
// operations waiting, and drains do not wait for it.
//
// Deadlock freedom rests on three rules. An operation waits on a gate
// only in begin, before it takes any lock, and never begins again while
// active (the Volume API never calls itself from a gated method). A
// drain waits only for active operations, and those never wait for a
// gate. The background work a rename waits for (uploads, stores of
// directory times) never passes a gate; it waits only for renames
// holding their uploads (holdUploadsBelow), which happens after the
// drain.
//
// What a gate cannot see: the FUSE layer computes an operation's path
// before it calls in, so one computed just before a rename and arriving
// just after it ended (microseconds, against the seconds a rename of a
// large directory takes) still carries the old path and meets ENOENT.

// op is one operation past or waiting at its gate: its paths, rewritten
// by the renames it waits for.
type op struct {
	paths []string
	// waiting: at its gate; parked: a directory rename waiting for
	// dirRenames. Drains wait for neither.
	waiting, parked bool
}

// gate is a directory rename in progress at one of its paths.
type gate struct {
	done chan struct{} // closed when the rename ends
}

// begin waits until no directory rename is in progress at or above any of
// paths, then counts the operation as active. The paths it returns in
// op.paths are where the objects are now. The caller calls end when it
// returns.
func (v *Volume) begin(ctx context.Context, paths ...string) (*op, error) {
	o := &op{paths: paths, waiting: true}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ops[o] = struct{}{}
	if err := v.passLocked(ctx, o); err != nil {
		delete(v.ops, o)
		return nil, err
	}
	o.waiting = false
	return o, nil
}

// begin1 is begin for one path; it returns the path to use and the end.
func (v *Volume) begin1(ctx context.Context, p string) (string, func(), error) {
	o, err := v.begin(ctx, p)
	if err != nil {
		return p, nil, err
	}
	return o.paths[0], func() { v.end(o) }, nil
}

// passLocked waits, v.mu held, until no gate is at or above o's paths.
func (v *Volume) passLocked(ctx context.Context, o *op) error {
	for {
		g := v.gateAtOrAboveLocked(o.paths)
		if g == nil {
			return nil
		}
		v.mu.Unlock()
		err := v.awaitRename(ctx, g.done)
		v.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// end ends an operation begin began.
func (v *Volume) end(o *op) {
	v.mu.Lock()
	delete(v.ops, o)
	v.opEnded.Broadcast()
	v.mu.Unlock()
}

// gateAtOrAboveLocked is a gate at or above one of paths, or nil.
func (v *Volume) gateAtOrAboveLocked(paths []string) *gate {
	for _, p := range paths {
		for dir, g := range v.gates {
			if p == dir || isUnder(p, dir) {
				return g
			}
		}
	}
	return nil
}

// dirRename makes o, a rename found to move a directory, the only one in
// progress: it parks o while another runs, then gates both of o's paths
// and drains the operations active at or below them. The paths may have
// moved meanwhile (o.paths): the caller looks at everything again. The
// returned function ends the rename, moving the paths of the operations
// that waited below o.paths[0] to below o.paths[1] when it succeeded.
func (v *Volume) dirRename(ctx context.Context, o *op) (end func(moved bool), err error) {
	v.mu.Lock()
	o.parked = true
	v.opEnded.Broadcast() // a drain may be waiting for o
	v.mu.Unlock()
	if err := v.lockDirRenames(ctx); err != nil {
		return nil, err
	}
	v.mu.Lock()
	o.parked = false
	// No gate can be up: only a holder of dirRenames raises one.
	oldp, newp := o.paths[0], o.paths[1]
	g := &gate{done: make(chan struct{})}
	v.gates[oldp], v.gates[newp] = g, g
	for v.activeAtOrBelowLocked(o, oldp, newp) {
		if v.drainWait != nil {
			v.drainWait()
		}
		v.opEnded.Wait()
	}
	v.mu.Unlock()
	return func(moved bool) {
		v.mu.Lock()
		delete(v.gates, oldp)
		delete(v.gates, newp)
		if moved {
			for w := range v.ops {
				if w != o {
					w.moved(oldp, newp)
				}
			}
		}
		v.mu.Unlock()
		close(g.done)
		<-v.dirRenames
	}, nil
}

// lockDirRenames takes the one directory rename slot, or fails with ctx.
func (v *Volume) lockDirRenames(ctx context.Context) error {
	select {
	case v.dirRenames <- struct{}{}:
		return nil
	default:
	}
	if v.renameWait != nil {
		v.renameWait()
	}
	select {
	case v.dirRenames <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// activeAtOrBelowLocked reports an active operation other than self with a
// path at or below one of dirs.
func (v *Volume) activeAtOrBelowLocked(self *op, dirs ...string) bool {
	for o := range v.ops {
		if o == self || o.waiting || o.parked {
			continue
		}
		for _, p := range o.paths {
			for _, dir := range dirs {
				if p == dir || isUnder(p, dir) {
					return true
				}
			}
		}
	}
	return false
}

// moved rewrites o's paths at or below oldp to below newp.
func (o *op) moved(oldp, newp string) {
	for i, p := range o.paths {
		if p == oldp || isUnder(p, oldp) {
			o.paths[i] = newp + strings.TrimPrefix(p, oldp)
		}
	}
}
