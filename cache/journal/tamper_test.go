package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// heldJournal opens a journal in dir whose syncer never runs until the
// returned release is called (so no sync marks interleave).
func heldJournal(t *testing.T, dir string, secret []byte) (*Journal, func()) {
	t.Helper()
	hold := make(chan struct{})
	j, _, err := Open(dir, secret, Options{beforeSync: func() { <-hold }})
	if err != nil {
		t.Fatal(err)
	}
	var once bool
	release := func() {
		if !once {
			once = true
			close(hold)
			j.Close()
		}
	}
	t.Cleanup(release)
	return j, release
}

// oneSegment is a crashed journal (no sync mark, nothing done): one
// segment of a header and n pending records, entries 1..n, frames 1..n.
func oneSegment(t *testing.T, secret []byte, n int) (dir string, ids []ID) {
	t.Helper()
	live := t.TempDir()
	j, release := heldJournal(t, live, secret)
	for i := 1; i <= n; i++ {
		ids = append(ids, mustAppend(t, j, testEntry(i)))
	}
	dir = copyOf(t, live)
	release()
	if segs := segments(t, dir); len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	return dir, ids
}

// frameBytes returns the byte ranges of the segment's frames.
func frameBytes(t *testing.T, path string) ([]byte, [][2]int) {
	t.Helper()
	data, sc := framesOf(t, path)
	if sc.bad != nil {
		t.Fatalf("untouched segment is bad: %+v", sc.bad)
	}
	var ranges [][2]int
	for k, f := range sc.frames {
		end := int(sc.end)
		if k+1 < len(sc.frames) {
			end = int(sc.frames[k+1].off)
		}
		ranges = append(ranges, [2]int{int(f.off), end})
	}
	return data, ranges
}

func splice(data []byte, at int, del int, ins []byte) []byte {
	out := slices.Clone(data[:at])
	out = append(out, ins...)
	return append(out, data[at+del:]...)
}

// Every way of changing a segment that is not a torn tail stops replay at
// the change, keeps the records before it and the bytes for inspection,
// and never replays a changed record. Torn tails are cut.
func TestTamperOneSegment(t *testing.T) {
	const n = 6
	base, ids := oneSegment(t, testSecret, n)
	seg := segments(t, base)[0]
	orig, fr := frameBytes(t, seg)
	frame := func(k int) []byte { return slices.Clone(orig[fr[k][0]:fr[k][1]]) }
	otherSecret := bytes.Repeat([]byte{9}, 32)
	foreignDir, _ := oneSegment(t, otherSecret, n)
	fOrig, fFr := frameBytes2(t, segments(t, foreignDir)[0], otherSecret)
	foreign := func(k int) []byte { return slices.Clone(fOrig[fFr[k][0]:fFr[k][1]]) }

	type outcome struct {
		kept   int  // records replayed: entries 1..kept
		damage bool // Recovery.Damage set
		cut    bool // and it was a cut
		copyOf bool // and a .broken/.damaged copy was kept
	}
	cases := []struct {
		name   string
		change func([]byte) []byte
		want   outcome
	}{
		{"untouched", func(d []byte) []byte { return d }, outcome{kept: n}},
		{"frames 2 and 3 swapped", func(d []byte) []byte {
			d = splice(d, fr[2][0], fr[3][1]-fr[2][0], append(frame(3), frame(2)...))
			return d
		}, outcome{kept: 1, damage: true, copyOf: true}},
		{"frame 2 duplicated", func(d []byte) []byte { return splice(d, fr[3][0], 0, frame(2)) }, outcome{kept: 2, damage: true, copyOf: true}},
		{"frame 2 dropped", func(d []byte) []byte { return splice(d, fr[2][0], fr[2][1]-fr[2][0], nil) }, outcome{kept: 1, damage: true, copyOf: true}},
		{"frame 2 bit flipped", func(d []byte) []byte { d[fr[2][0]+20] ^= 1; return d }, outcome{kept: 1, damage: true, copyOf: true}},
		{"frame 2 length changed", func(d []byte) []byte { d[fr[2][0]+3] ^= 8; return d }, outcome{kept: 1, damage: true, copyOf: true}},
		{"frame 2 zeroed", func(d []byte) []byte { clear(d[fr[2][0]:fr[2][1]]); return d }, outcome{kept: 1, damage: true, copyOf: true}},
		{"frame 2 padding changed", func(d []byte) []byte {
			for k := 2; k <= n; k++ {
				if l, total, _ := frameLen(d[fr[k][0]:]); frameHeader+l < total {
					d[fr[k][0]+total-1] = 1
					return d
				}
			}
			t.Skip("no frame has padding")
			return d
		}, outcome{kept: 1, damage: true, copyOf: true}},
		{"frame from another cache dir's key inserted", func(d []byte) []byte { return splice(d, fr[3][0], 0, foreign(3)) }, outcome{kept: 2, damage: true, copyOf: true}},
		{"frame 3 replaced by another cache dir's", func(d []byte) []byte {
			return splice(d, fr[3][0], fr[3][1]-fr[3][0], foreign(3))
		}, outcome{kept: 2, damage: true, copyOf: true}},
		// A lone segment whose header does not open cannot say when it
		// was written, so it counts as a torn tail after a restart: cut,
		// a copy kept, nothing replayed (TestTamperSegments has the case
		// with a segment before it).
		{"whole segment from another cache dir", func([]byte) []byte { return slices.Clone(fOrig) }, outcome{kept: 0, damage: true, cut: true, copyOf: true}},
		{"prefix salt changed", func(d []byte) []byte { d[20] ^= 1; return d }, outcome{kept: 0, damage: true, cut: true, copyOf: true}},
		{"header record bit flipped", func(d []byte) []byte { d[fr[0][0]+12] ^= 1; return d }, outcome{kept: 0, damage: true, cut: true, copyOf: true}},
		{"last frame bit flipped", func(d []byte) []byte { d[fr[n][0]+20] ^= 1; return d }, outcome{kept: n - 1, damage: true, cut: true, copyOf: true}},
		{"another cache dir's frame appended", func(d []byte) []byte { return append(d, foreign(n)...) }, outcome{kept: n, damage: true, cut: true, copyOf: true}},
		{"last frame cut short", func(d []byte) []byte { return d[:fr[n][1]-9] }, outcome{kept: n - 1, damage: true, cut: true}},
		{"last length field cut short", func(d []byte) []byte { return d[:fr[n][0]+5] }, outcome{kept: n - 1, damage: true, cut: true}},
		{"zeros after the end", func(d []byte) []byte { return append(d, make([]byte, 4096)...) }, outcome{kept: n, damage: true, cut: true}},
		{"last frame zeroed", func(d []byte) []byte { clear(d[fr[n][0]:]); return d }, outcome{kept: n - 1, damage: true, cut: true}},
		// Not detectable: a whole frame cut off the tail is a rollback
		// (doc.go, What is not protected).
		{"last frame removed whole", func(d []byte) []byte { return d[:fr[n][0]] }, outcome{kept: n - 1}},
		{"prefix only", func(d []byte) []byte { return d[:prefixSize] }, outcome{kept: 0, damage: true, cut: true}},
		{"empty file", func(d []byte) []byte { return nil }, outcome{kept: 0, damage: true, cut: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyOf(t, base)
			path := segments(t, dir)[0]
			if err := os.WriteFile(path, c.change(slices.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			j, rec, err := Open(dir, testSecret, Options{})
			if err != nil {
				t.Fatal(err)
			}
			idx := make([]int, c.want.kept)
			for k := range idx {
				idx[k] = k + 1
			}
			wantPending(t, rec, ids[:c.want.kept], idx)
			d := rec.Damage
			if (d != nil) != c.want.damage || (d != nil && (d.Cut != c.want.cut || (len(d.Kept) > 0) != c.want.copyOf)) {
				t.Fatalf("damage %+v, want %+v", d, c.want)
			}
			if d != nil {
				for _, k := range d.Kept {
					if _, err := os.Stat(k); err != nil {
						t.Fatalf("kept file: %v", err)
					}
				}
				if !strings.Contains(d.Error(), filepath.Base(path)) {
					t.Fatalf("damage report does not name the segment: %v", d)
				}
			}
			// The journal works on, and what it replayed stays.
			id := mustAppend(t, j, testEntry(100))
			j.Close()
			again := pendingOf(t, dir, Options{})
			if again.Damage != nil {
				t.Fatalf("damage again after recovery: %v", again.Damage)
			}
			wantPending(t, again, append(slices.Clone(ids[:c.want.kept]), id), append(idx, 100))
		})
	}
}

func frameBytes2(t *testing.T, path string, secret []byte) ([]byte, [][2]int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := parseSegName(filepath.Base(path))
	sc := scanSegment(data, secret, first)
	var ranges [][2]int
	for k, f := range sc.frames {
		end := int(sc.end)
		if k+1 < len(sc.frames) {
			end = int(sc.frames[k+1].off)
		}
		ranges = append(ranges, [2]int{int(f.off), end})
	}
	return data, ranges
}

// threeSegments is a crashed journal of three segments (as a crash
// between starting a segment and deleting the older ones leaves it):
// entries 1-3 in the first, copies and 4-6 in the second, copies and 7-9
// in the third.
func threeSegments(t *testing.T) (string, []ID) {
	t.Helper()
	live := t.TempDir()
	j, release := heldJournal(t, live, testSecret)
	var ids []ID
	for i := 1; i <= 9; i++ {
		ids = append(ids, mustAppend(t, j, testEntry(i)))
		if i%3 == 0 && i < 9 {
			j.mu.Lock()
			if err := j.startSegment(); err != nil {
				t.Fatal(err)
			}
			j.old = nil // as if the crash came before they were deleted
			j.mu.Unlock()
		}
	}
	dir := copyOf(t, live)
	release()
	if n := len(segments(t, dir)); n != 3 {
		t.Fatalf("%d segments", n)
	}
	return dir, ids
}

func TestTamperSegments(t *testing.T) {
	base, ids := threeSegments(t)
	segs := segments(t, base)
	rel := func(p string) string { return filepath.Base(p) }
	cases := []struct {
		name   string
		change func(dir string)
		kept   int
		cut    bool
		damage bool
	}{
		{"untouched", func(string) {}, 9, false, false},
		{"newest segment removed (rollback, not detectable)", func(d string) { os.Remove(filepath.Join(d, rel(segs[2]))) }, 6, false, false},
		{"middle segment removed", func(d string) { os.Remove(filepath.Join(d, rel(segs[1]))) }, 3, false, true},
		{"oldest segment removed (as compaction does)", func(d string) { os.Remove(filepath.Join(d, rel(segs[0]))) }, 9, false, false},
		{"middle segment renamed", func(d string) {
			os.Rename(filepath.Join(d, rel(segs[1])), filepath.Join(d, segName(1000)))
		}, 3, false, true},
		{"newest and middle swapped", func(d string) {
			a, b := filepath.Join(d, rel(segs[1])), filepath.Join(d, rel(segs[2]))
			da, _ := os.ReadFile(a)
			db, _ := os.ReadFile(b)
			os.WriteFile(a, db, 0o600)
			os.WriteFile(b, da, 0o600)
		}, 3, false, true},
		{"bit flipped in the oldest", func(d string) {
			p := filepath.Join(d, rel(segs[0]))
			data, _ := os.ReadFile(p)
			data[len(data)-20] ^= 1 // its last frame: not the tail of the journal
			os.WriteFile(p, data, 0o600)
		}, 2, false, true},
		{"newest segment's header bit flipped", func(d string) {
			p := filepath.Join(d, rel(segs[2]))
			data, _ := os.ReadFile(p)
			data[prefixSize+12] ^= 1
			os.WriteFile(p, data, 0o600)
		}, 6, false, true},
		{"newest segment replaced by another cache dir's", func(d string) {
			other, _ := oneSegment(t, bytes.Repeat([]byte{9}, 32), 9)
			data, _ := os.ReadFile(segments(t, other)[0])
			os.WriteFile(filepath.Join(d, rel(segs[2])), data, 0o600)
		}, 6, false, true},
		{"middle cut short", func(d string) {
			p := filepath.Join(d, rel(segs[1]))
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)-9], 0o600)
		}, 5, false, true},
		{"frame of the middle segment copied into the newest at its place", func(d string) {
			mid, _ := frameBytesAt(t, filepath.Join(d, rel(segs[1])))
			newest := filepath.Join(d, rel(segs[2]))
			data, fr := frameBytesAt(t, newest)
			// Frame 7 of the newest (entry 7) replaced by the middle's
			// last frame (entry 6, other key).
			last := mid.data[mid.fr[len(mid.fr)-1][0]:mid.fr[len(mid.fr)-1][1]]
			k := len(fr) - 3
			os.WriteFile(newest, splice(data.data, fr[k][0], fr[k][1]-fr[k][0], last), 0o600)
		}, 6, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyOf(t, base)
			c.change(dir)
			rec := pendingOf(t, dir, Options{})
			idx := make([]int, c.kept)
			for k := range idx {
				idx[k] = k + 1
			}
			wantPending(t, rec, ids[:c.kept], idx)
			if d := rec.Damage; (d != nil) != c.damage || (d != nil && d.Cut != c.cut) {
				t.Fatalf("damage %v, want damage %v cut %v", d, c.damage, c.cut)
			}
			if rec.Damage != nil && !rec.Damage.Cut && len(rec.Damage.Kept) == 0 {
				t.Fatal("damaged segments not kept")
			}
		})
	}
}

type segBytes struct {
	data []byte
	fr   [][2]int
}

func frameBytesAt(t *testing.T, path string) (segBytes, [][2]int) {
	d, fr := frameBytes(t, path)
	return segBytes{d, fr}, fr
}
