package journal

import "fmt"

// verdict is what Open does about a bad frame.
type verdict int

const (
	// cutTail: a write cut short. Truncate the segment at the frame and
	// keep everything before it.
	cutTail verdict = iota
	// stopHere: damage before the tail. Keep everything before the
	// frame, set the segment and all later ones aside for inspection,
	// and report.
	stopHere
)

func (v verdict) String() string {
	if v == cutTail {
		return "cut the torn tail"
	}
	return "stop and keep for inspection"
}

// damageCase is what judge weighs about a bad frame.
type damageCase struct {
	// newest: the frame is in the newest segment. Older segments were
	// fsynced before a newer one was started, so no crash tears them.
	newest bool
	// incomplete and zeroAfter: as in badFrame.
	incomplete bool
	zeroAfter  bool
	// unsynced: the machine restarted since the segment was written and
	// no sync mark covers the frame, so the kernel may have written any
	// subset of its pages: after such a crash, damage there is the crash
	// and not tampering (and nothing past it was ever promised).
	unsynced bool
}

// judge is the one place that decides what a damaged frame means.
//
// A process killed mid-write leaves a frame that runs past the end of the
// file (write(2) is cut between pages); a machine that lost power may
// leave the tail of the file extended with zeros, or, for what was never
// fsynced, any mix of old and new sectors. Those are torn tails: cut them
// and keep what precedes, which is all that was written before. Anything
// else (a flipped bit, a frame moved, dropped or duplicated, a frame under
// another key, damage in an older segment) is damage before the tail:
// records past it cannot be trusted or even found, and cutting would
// destroy the evidence, so replay stops there and the bytes are kept.
func judge(c damageCase) verdict {
	switch {
	case !c.newest:
		return stopHere
	case c.incomplete || c.zeroAfter || c.unsynced:
		return cutTail
	}
	return stopHere
}

// Damage is a bad frame Open found in the journal.
type Damage struct {
	Segment string // the segment file as found
	Offset  int64  // where its first bad frame starts
	Reason  string
	// Cut: it was a torn tail, cut off; every record before it was
	// replayed. Otherwise replay stopped there: records before it were
	// replayed, and the segment and every later one were renamed to
	// Kept (with the suffix .damaged) and are no longer read.
	Cut bool
	// Kept lists the files holding the damaged bytes for inspection: a
	// copy of a cut segment (suffix .broken; none when the cut bytes
	// were all zero), or the segments set aside.
	Kept []string
}

func (d *Damage) Error() string {
	what := "damaged; replay stopped there, the rest kept as"
	if d.Cut {
		what = "torn tail cut; copy kept as"
	}
	if len(d.Kept) == 0 {
		return fmt.Sprintf("journal %s at offset %d: %s: torn tail cut", d.Segment, d.Offset, d.Reason)
	}
	return fmt.Sprintf("journal %s at offset %d: %s: %s %v", d.Segment, d.Offset, d.Reason, what, d.Kept)
}
