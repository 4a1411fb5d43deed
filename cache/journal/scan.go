package journal

import (
	"errors"
	"fmt"

	"github.com/cofferfs/coffer/cipher"
)

// frame is one valid frame of a segment.
type frame struct {
	seq uint64
	off int64
	rec record
}

// badFrame is the first frame of a segment that does not read back: what
// is wrong with it and what surrounds it, for judge.
type badFrame struct {
	off    int64
	seq    uint64 // the sequence number it should have had
	reason string
	// incomplete: the frame (or the prefix) runs past the end of the
	// file, as a write cut short leaves it.
	incomplete bool
	// zeroAfter: nothing but zero bytes follows the frame's end (the
	// length field's end when the length is not valid), as an extended
	// but never written file tail reads.
	zeroAfter bool
}

// scanned is a segment read up to its end or its first bad frame.
type scanned struct {
	frames []frame
	boot   [16]byte // from the header record (zero if none)
	end    int64    // offset just past the last valid frame
	next   uint64   // the sequence number after the last valid frame
	bad    *badFrame
}

// scanSegment reads the frames of one segment whose file name says its
// first frame has sequence number first. It never fails: what it cannot
// read is described in bad, and everything before it is returned.
func scanSegment(data []byte, secret []byte, first uint64) scanned {
	sc := scanned{next: first}
	salt, err := parsePrefix(data)
	if err != nil {
		sc.bad = &badFrame{seq: first, reason: err.Error(),
			incomplete: len(data) < prefixSize && isPrefixOfMagic(data), zeroAfter: isZero(data)}
		return sc
	}
	sealer, err := cipher.NewLocalSealer(secret, salt)
	if err != nil {
		// Only a secret of the wrong size gets here; Open checks it.
		sc.bad = &badFrame{seq: first, reason: err.Error()}
		return sc
	}
	off := int64(prefixSize)
	sc.end = off
	for int64(len(data)) > off {
		seq := sc.next
		rest := data[off:]
		bad := func(reason string, incomplete bool, after []byte) scanned {
			sc.bad = &badFrame{off: off, seq: seq, reason: reason, incomplete: incomplete, zeroAfter: isZero(after)}
			return sc
		}
		if len(rest) < frameHeader {
			return bad("length field cut short", true, rest)
		}
		n, total, ok := frameLen(rest)
		if !ok {
			return bad("invalid length field", false, rest)
		}
		if total > len(rest) {
			return bad(fmt.Sprintf("frame of %d bytes cut short at %d", total, len(rest)), true, nil)
		}
		if !isZero(rest[frameHeader+n : total]) {
			return bad("non-zero padding", false, rest[total:])
		}
		plain, err := sealer.Open(nil, rest[frameHeader:frameHeader+n], seq)
		if err != nil {
			return bad(fmt.Sprintf("record %d fails authentication", seq), false, rest[total:])
		}
		rec, err := decodeRecord(plain)
		if err == nil && (rec.kind == kindHeader) != (seq == first) {
			err = errors.New("header record out of place")
		}
		if err != nil {
			return bad(fmt.Sprintf("record %d: %v", seq, err), false, rest[total:])
		}
		if rec.kind == kindHeader {
			sc.boot = rec.boot
		}
		sc.frames = append(sc.frames, frame{seq: seq, off: off, rec: rec})
		off += int64(total)
		sc.end, sc.next = off, seq+1
	}
	if len(sc.frames) == 0 {
		// A prefix alone: the header record was never written.
		sc.bad = &badFrame{off: off, seq: first, reason: "no header record", incomplete: true, zeroAfter: true}
	}
	return sc
}

// isPrefixOfMagic reports whether b could be the start of a prefix cut
// short (as opposed to another file's bytes).
func isPrefixOfMagic(b []byte) bool {
	m := []byte(segMagic)
	n := min(len(b), len(m))
	return string(b[:n]) == string(m[:n])
}
