package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cofferfs/coffer/cipher"
)

// replayed is the journal's state as its segments state it.
type replayed struct {
	segs   []string // segment paths still in use, oldest first
	live   map[ID]*entry
	byName map[string]ID
	next   uint64 // the sequence number after the last valid frame
	// markThrough: the highest sequence number a sync mark vouches for.
	markThrough uint64
	damage      *Damage
	verdict     verdict
	// bad: the segment (index in segs before damage handling) and offset
	// of the bad frame, when damage != nil.
	badSeg int
	badOff int64
	// badIncomplete: the bad frame ran past the end of its file (a
	// write cut short: no copy of it is worth keeping).
	badIncomplete bool
}

// listSegments returns the segment files of dir, ordered by their first
// sequence number.
func listSegments(dir string) ([]string, []uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	type seg struct {
		name  string
		first uint64
	}
	var segs []seg
	for _, e := range ents {
		if first, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, seg{e.Name(), first})
		}
	}
	slices.SortFunc(segs, func(a, b seg) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	paths := make([]string, len(segs))
	firsts := make([]uint64, len(segs))
	for i, s := range segs {
		paths[i], firsts[i] = filepath.Join(dir, s.name), s.first
	}
	return paths, firsts, nil
}

// replay reads every segment of dir in order and applies its records,
// stopping at the first bad frame (judge says what it means; replay only
// reports it, Open acts on it). boot is this machine's boot ID (zero when
// unknown: then no segment counts as written since the last restart).
func replay(dir string, secret []byte, boot [16]byte) (*replayed, error) {
	paths, firsts, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	r := &replayed{live: map[ID]*entry{}, byName: map[string]ID{}, next: 1}
	markThrough := &r.markThrough
	var prevBoot [16]byte
	for i, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if i > 0 && firsts[i] != r.next {
			r.fail(i, path, 0, stopHere, fmt.Sprintf("segment starts at record %d, the one before ends at %d: segments missing or out of place", firsts[i], r.next-1))
			break
		}
		sc := scanSegment(data, secret, firsts[i])
		if len(sc.frames) == 0 {
			// No header record to say when it was written. A segment is
			// started by the process that wrote the one before (rotation)
			// or by an Open that fsyncs it before use, so the one before
			// tells whether the machine restarted since.
			sc.boot = prevBoot
		}
		prevBoot = sc.boot
		sameBoot := boot != [16]byte{} && sc.boot == boot
		for _, f := range sc.frames {
			r.apply(f, sameBoot, markThrough)
		}
		r.segs = append(r.segs, path)
		if len(sc.frames) > 0 {
			r.next = sc.next
		} else if i == 0 {
			r.next = firsts[0]
		}
		if b := sc.bad; b != nil {
			v := judge(damageCase{
				newest:     i == len(paths)-1,
				incomplete: b.incomplete,
				zeroAfter:  b.zeroAfter,
				unsynced:   !sameBoot && b.seq > *markThrough,
			})
			r.fail(i, path, b.off, v, b.reason)
			r.badIncomplete = b.incomplete
			break
		}
	}
	for _, e := range r.live {
		e.durable = !e.suspect && (e.synced || e.sameBoot || e.firstSeq <= *markThrough)
	}
	return r, nil
}

func (r *replayed) fail(i int, path string, off int64, v verdict, reason string) {
	r.damage = &Damage{Segment: path, Offset: off, Reason: reason, Cut: v == cutTail}
	r.verdict, r.badSeg, r.badOff = v, i, off
}

// apply folds one valid frame into the state.
func (r *replayed) apply(f frame, sameBoot bool, markThrough *uint64) {
	rec := f.rec
	switch rec.kind {
	case kindPending:
		e := r.live[rec.id]
		if e == nil {
			e = &entry{id: rec.id, st: rec.st, blob: rec.blob, firstSeq: f.seq}
			if old, ok := r.byName[rec.st.Name]; ok && old != rec.id {
				delete(r.live, old) // superseded by a newer record of the file
			}
			r.live[rec.id] = e
			r.byName[rec.st.Name] = rec.id
		}
		// A copy (rotation, Open, a failed staging sync) of a record:
		// same entry, flags accumulate.
		e.seq = f.seq
		e.synced = e.synced || rec.flags&flagSynced != 0
		e.suspect = e.suspect || rec.flags&flagSuspect != 0
		e.sameBoot = e.sameBoot || sameBoot
		e.size = pendingFrameSize(rec.st.Name, rec.blob)
	case kindDone:
		if e := r.live[rec.id]; e != nil {
			delete(r.live, rec.id)
			if r.byName[e.st.Name] == rec.id {
				delete(r.byName, e.st.Name)
			}
		}
	case kindSynced:
		*markThrough = max(*markThrough, rec.through)
	}
}

// pendingFrameSize is the size on disk of a pending record's frame.
func pendingFrameSize(name string, blob []byte) int {
	return padded(frameHeader + pendingFixed + len(name) + len(blob) + cipher.LocalOverhead)
}
