package journal

import (
	"bytes"
	"testing"

	"github.com/cofferfs/coffer/cipher"
)

// FuzzDecodeRecord: decodeRecord never panics, and accepts exactly what
// appendRecord produces.
func FuzzDecodeRecord(f *testing.F) {
	e := testEntry(3)
	for _, r := range []record{
		{kind: kindHeader, boot: [16]byte{1, 2}},
		{kind: kindPending, id: 9, flags: flagSynced, st: e.Staging, blob: e.Blob},
		{kind: kindPending, id: 1, st: Staging{Name: "x"}},
		{kind: kindDone, id: 4},
		{kind: kindSynced, through: 77},
	} {
		f.Add(appendRecord(nil, &r))
	}
	f.Add([]byte{})
	f.Add([]byte{kindPending, 0, 0, 0, 0, 0, 0, 0, 1, 0, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := appendRecord(nil, &r); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to %x, input %x", r, again, b)
		}
	})
}

// FuzzScanSegment: any bytes as a segment (and as a segment's tail after
// valid frames) never panic the scanner; every frame it accepts is one
// the encoder made under the right key and sequence number; and what it
// reports as bad is where it stopped.
func FuzzScanSegment(f *testing.F) {
	salt := bytes.Repeat([]byte{5}, cipher.LocalSaltSize)
	s, err := cipher.NewLocalSealer(testSecret, salt)
	if err != nil {
		f.Fatal(err)
	}
	valid := appendPrefix(nil, salt)
	valid = appendFrame(valid, s, 10, appendRecord(nil, &record{kind: kindHeader}))
	for k := range 3 {
		e := testEntry(k)
		valid = appendFrame(valid, s, uint64(11+k), appendRecord(nil, &record{kind: kindPending, id: ID(11 + k), st: e.Staging, blob: e.Blob}))
	}
	valid = appendFrame(valid, s, 14, appendRecord(nil, &record{kind: kindSynced, through: 13}))
	f.Add(valid, uint16(0))
	f.Add(valid[:len(valid)-3], uint16(0))
	f.Add(valid, uint16(len(valid)))
	f.Add([]byte{}, uint16(0))
	f.Add(append(bytes.Clone(valid), make([]byte, 64)...), uint16(0))
	f.Fuzz(func(t *testing.T, tail []byte, keep uint16) {
		// The first keep bytes of the valid segment, then tail.
		data := append(bytes.Clone(valid[:min(int(keep), len(valid))]), tail...)
		sc := scanSegment(data, testSecret, 10)
		if sc.end > int64(len(data)) || (sc.bad == nil) != (sc.end == int64(len(data)) && len(sc.frames) > 0) {
			t.Fatalf("end %d of %d, bad %+v, %d frames", sc.end, len(data), sc.bad, len(sc.frames))
		}
		for k, fr := range sc.frames {
			if fr.seq != 10+uint64(k) {
				t.Fatalf("frame %d at seq %d", k, fr.seq)
			}
			// The frame's bytes open under the key at its seq, and
			// decode to what the scanner reported.
			n, total, ok := frameLen(data[fr.off:])
			if !ok || fr.off+int64(total) > sc.end {
				t.Fatalf("frame %d: bad bounds", k)
			}
			plain, err := s.Open(nil, data[fr.off+frameHeader:fr.off+frameHeader+int64(n)], fr.seq)
			if err != nil {
				// Another salt in the fuzzed prefix: open under it.
				fs, _ := cipher.NewLocalSealer(testSecret, data[8:prefixSize])
				if plain, err = fs.Open(nil, data[fr.off+frameHeader:fr.off+frameHeader+int64(n)], fr.seq); err != nil {
					t.Fatalf("frame %d accepted but does not open", k)
				}
			}
			if !bytes.Equal(appendRecord(nil, &fr.rec), plain) {
				t.Fatalf("frame %d: record %+v is not its plaintext", k, fr.rec)
			}
		}
		if b := sc.bad; b != nil && b.off != sc.end && len(sc.frames) > 0 {
			t.Fatalf("bad frame at %d, valid frames end at %d", b.off, sc.end)
		}
	})
}
