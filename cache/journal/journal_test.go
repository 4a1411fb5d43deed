package journal

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	cases := []struct {
		name string
		c    damageCase
		want verdict
	}{
		{"write cut short at the end of the newest segment", damageCase{newest: true, incomplete: true}, cutTail},
		{"zero-filled tail after a power loss", damageCase{newest: true, zeroAfter: true}, cutTail},
		{"bad last frame, nothing after it", damageCase{newest: true, zeroAfter: true}, cutTail},
		{"garbage after the last sync mark, machine restarted", damageCase{newest: true, unsynced: true}, cutTail},
		{"bad frame with data after it, same boot", damageCase{newest: true}, stopHere},
		{"cut short in an older segment", damageCase{incomplete: true}, stopHere},
		{"zeros in an older segment", damageCase{zeroAfter: true}, stopHere},
		{"unsynced damage in an older segment", damageCase{unsynced: true, zeroAfter: true, incomplete: true}, stopHere},
	}
	for _, c := range cases {
		if got := judge(c.c); got != c.want {
			t.Errorf("%s: judge(%+v) = %v, want %v", c.name, c.c, got, c.want)
		}
	}
}

// Appended records come back in order with their contents; done ones do
// not; a record supersedes older ones of the same staging file.
func TestAppendDoneReplay(t *testing.T) {
	dir := t.TempDir()
	j, rec := openTest(t, dir, Options{})
	if len(rec.Pending) != 0 || rec.Damage != nil {
		t.Fatalf("fresh journal: %+v", rec)
	}
	var ids []ID
	for i := range 10 {
		ids = append(ids, mustAppend(t, j, testEntry(i)))
	}
	for k := 1; k < len(ids); k++ {
		if ids[k] <= ids[k-1] {
			t.Fatalf("IDs not rising: %v", ids)
		}
	}
	for _, k := range []int{0, 3, 4, 9} {
		if err := j.Done(ids[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Done(ids[3]); err != nil {
		t.Fatalf("second Done: %v", err)
	}
	// Entry 5's staging file changes and is journalled again.
	e := testEntry(5)
	e.Staging.Seq++
	id5b := mustAppend(t, j, e)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	rec = pendingOf(t, dir, Options{})
	wantIDs := []ID{ids[1], ids[2], ids[6], ids[7], ids[8], id5b}
	if len(rec.Pending) != len(wantIDs) {
		t.Fatalf("pending %+v", rec.Pending)
	}
	for k, r := range rec.Pending {
		if r.ID != wantIDs[k] || !r.Durable {
			t.Fatalf("pending[%d] = %+v, want ID %d, durable", k, r, wantIDs[k])
		}
	}
	if got := rec.Pending[5].Staging; got != e.Staging {
		t.Fatalf("superseding record has %+v, want %+v", got, e.Staging)
	}
	wantPending(t, Recovery{Pending: rec.Pending[:5]}, wantIDs[:5], []int{1, 2, 6, 7, 8})

	// Replay twice more: the compaction Open did keeps the same set.
	for range 2 {
		again := pendingOf(t, dir, Options{})
		if len(again.Pending) != len(rec.Pending) {
			t.Fatalf("second replay: %d records, first %d", len(again.Pending), len(rec.Pending))
		}
		for k := range again.Pending {
			if again.Pending[k].ID != rec.Pending[k].ID || !bytes.Equal(again.Pending[k].Blob, rec.Pending[k].Blob) {
				t.Fatalf("second replay differs at %d", k)
			}
		}
	}
	if n := len(segments(t, dir)); n != 1 {
		t.Fatalf("%d segments after Open's compaction, want 1", n)
	}
}

func TestAppendRejects(t *testing.T) {
	j, _ := openTest(t, t.TempDir(), Options{})
	big := testEntry(1)
	big.Blob = make([]byte, MaxBlobSize+1)
	long := testEntry(2)
	long.Staging.Name = strings.Repeat("x", MaxNameLen+1)
	neg := testEntry(3)
	neg.Staging.Size = -1
	for name, e := range map[string]Entry{"big blob": big, "long name": long, "empty name": {}, "negative size": neg} {
		if _, err := j.Append(e); err == nil {
			t.Errorf("%s: Append accepted it", name)
		}
	}
	if s := j.Stats(); s.Appends != 0 {
		t.Fatalf("%d appends recorded", s.Appends)
	}
	ok := testEntry(4)
	ok.Blob = make([]byte, MaxBlobSize)
	ok.Staging.Name = strings.Repeat("y", MaxNameLen)
	mustAppend(t, j, ok)
}

// A second Open of the same directory fails with an error naming it,
// until the first is closed.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTest(t, dir, Options{})
	_, _, err := Open(dir, testSecret, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "cache dir") {
		t.Fatalf("second Open: %v", err)
	}
	j.Close()
	j2, _, err := Open(dir, testSecret, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
}

// Files are private; nothing of a name or blob is on disk in the clear,
// in one segment or across rotations.
func TestNoPlaintextOnDisk(t *testing.T) {
	for _, segSize := range []int64{0, 4096} {
		dir := t.TempDir()
		j, _ := openTest(t, dir, Options{SegmentSize: segSize})
		var ids []ID
		for i := range 200 {
			id := mustAppend(t, j, testEntry(i))
			ids = append(ids, id)
			if i%3 == 0 {
				j.Done(ids[i/2])
			}
			if i%50 == 0 {
				j.Sync(context.Background(), id)
			}
		}
		j.Close()
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
			t.Errorf("journal dir mode %v", st.Mode().Perm())
		}
		files := 0
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			files++
			st, _ := d.Info()
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v", path, st.Mode().Perm())
			}
			data, _ := os.ReadFile(path)
			for _, needle := range []string{"secret-name", "path", ".stg", "000000000000"} {
				if bytes.Contains(data, []byte(needle)) {
					t.Errorf("%s holds %q in the clear", path, needle)
				}
			}
			return nil
		})
		if files < 2 {
			t.Fatalf("%d files scanned", files)
		}
	}
}

// The syncer batches: records appended while it waits go out in one
// batch, each staging file synced once, and Sync returns after it.
func TestGroupCommit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	opts := Options{SyncDelay: time.Hour, beforeSync: func() {
		entered <- struct{}{}
		<-release
	}}
	j, _ := openTest(t, t.TempDir(), opts)
	var closeOnce sync.Once
	t.Cleanup(func() { closeOnce.Do(func() { close(release) }) }) // before Close
	var mu sync.Mutex
	synced := map[string]int{}
	var ids []ID
	const n = 50
	for i := range n {
		e := testEntry(i)
		e.Sync = func() error {
			mu.Lock()
			synced[e.Staging.Name]++
			mu.Unlock()
			return nil
		}
		ids = append(ids, mustAppend(t, j, e))
	}
	done := make(chan error, 1)
	go func() { done <- j.Sync(context.Background(), ids[n-1]) }()
	<-entered // the waiter woke the syncer, which waits in the hook
	select {
	case err := <-done:
		t.Fatalf("Sync returned before its batch ran: %v", err)
	default:
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := j.Stats(); s.Batches != 1 || s.StagingSyncs != n {
		t.Fatalf("stats %+v, want 1 batch syncing %d staging files", s, n)
	}
	for i := range n {
		if c := synced[testEntry(i).Staging.Name]; c != 1 {
			t.Fatalf("staging file %d synced %d times", i, c)
		}
	}
	// Already durable, done, or superseded: no wait.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.Sync(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	j.Done(ids[1])
	if err := j.Sync(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
}

// A staging file whose fsync fails: Sync reports it, and its record is
// never durable, even where the machine did not restart.
func TestStagingSyncFailure(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTest(t, dir, Options{})
	bad := testEntry(1)
	bad.Sync = func() error { return errors.New("EIO from the disk") }
	good := testEntry(2)
	good.Sync = func() error { return nil }
	idBad := mustAppend(t, j, bad)
	idGood := mustAppend(t, j, good)
	ctx := context.Background()
	if err := j.Sync(ctx, idBad); err == nil || !strings.Contains(err.Error(), "EIO from the disk") {
		t.Fatalf("Sync of the failed file: %v", err)
	}
	if err := j.Sync(ctx, idGood); err != nil {
		t.Fatal(err)
	}
	j.Close()
	rec := pendingOf(t, dir, Options{})
	if len(rec.Pending) != 2 || rec.Pending[0].Durable || !rec.Pending[1].Durable {
		t.Fatalf("replay: %+v", rec.Pending)
	}
	// Still not durable after Open copied it into a new segment.
	rec = pendingOf(t, dir, Options{})
	if len(rec.Pending) != 2 || rec.Pending[0].Durable || !rec.Pending[1].Durable {
		t.Fatalf("second replay: %+v", rec.Pending)
	}
}

// After a machine restart (another boot ID), a record is durable only if
// a sync mark covers it; one appended after the last batch is not.
func TestDurableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	boot := [16]byte{1}
	block := make(chan struct{})
	var blocked bool
	var mu sync.Mutex
	opts := Options{bootID: func() [16]byte { return boot }, beforeSync: func() {
		mu.Lock()
		b := blocked
		mu.Unlock()
		if b {
			<-block
		}
	}}
	j, _ := openTest(t, dir, opts)
	synced := mustAppend(t, j, testEntry(1))
	if err := j.Sync(context.Background(), synced); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	blocked = true
	mu.Unlock()
	late := mustAppend(t, j, testEntry(2))
	// The process dies before the batch: copy the files as they are.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	close(block)
	j.Close()

	sameBoot := pendingOf(t, copyOf(t, crashed), Options{bootID: func() [16]byte { return boot }})
	wantDurable(t, "same boot", sameBoot, map[ID]bool{synced: true, late: true})
	restarted := pendingOf(t, copyOf(t, crashed), Options{bootID: func() [16]byte { return [16]byte{2} }})
	wantDurable(t, "after a restart", restarted, map[ID]bool{synced: true, late: false})
	unknown := pendingOf(t, copyOf(t, crashed), Options{bootID: func() [16]byte { return [16]byte{} }})
	wantDurable(t, "boot ID unknown", unknown, map[ID]bool{synced: true, late: false})

	// What Open decided sticks: a restart later does not make the late
	// record durable, nor the synced one less so.
	d := copyOf(t, crashed)
	pendingOf(t, d, Options{bootID: func() [16]byte { return [16]byte{2} }})
	again := pendingOf(t, d, Options{bootID: func() [16]byte { return [16]byte{3} }})
	wantDurable(t, "after two restarts", again, map[ID]bool{synced: true, late: false})
}

func wantDurable(t *testing.T, what string, rec Recovery, want map[ID]bool) {
	t.Helper()
	if len(rec.Pending) != len(want) {
		t.Fatalf("%s: %d pending, want %d", what, len(rec.Pending), len(want))
	}
	for _, r := range rec.Pending {
		if w, ok := want[r.ID]; !ok || r.Durable != w {
			t.Errorf("%s: record %d durable %v, want %v", what, r.ID, r.Durable, w)
		}
	}
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == lockName {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func copyOf(t testing.TB, dir string) string {
	t.Helper()
	d := t.TempDir()
	copyDir(t, dir, d)
	return d
}

// Rotation keeps the journal small while records come and go, and keeps
// every pending record.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTest(t, dir, Options{SegmentSize: 8 << 10})
	ctx := context.Background()
	pending := map[ID]int{}
	var order []ID
	for i := range 3000 {
		id := mustAppend(t, j, testEntry(i))
		pending[id] = i
		order = append(order, id)
		// Keep ~20 pending; every so often one stays for good.
		if old := len(order) - 20; old >= 0 && i%97 != 0 {
			if idx, ok := pending[order[old]]; ok && idx%97 != 0 {
				j.Done(order[old])
				delete(pending, order[old])
			}
		}
		if i%100 == 0 {
			// A batch, then (rotation runs right after a batch) another:
			// any rotation the first one started is complete.
			j.Sync(ctx, id)
			extra := mustAppend(t, j, testEntry(100000+i))
			j.Sync(ctx, extra)
			j.Done(extra)
			var total int64
			for _, p := range segments(t, dir) {
				st, _ := os.Stat(p)
				total += st.Size()
			}
			// A full segment (8 KiB, or 4x the pending records) plus
			// what the last 100 appends added.
			if bound := int64(8<<10 + 5*len(pending)*250 + 100*300); total > bound {
				t.Fatalf("journal holds %d bytes with %d records pending, bound %d", total, len(pending), bound)
			}
		}
	}
	if s := j.Stats(); s.Rotations < 10 {
		t.Fatalf("%d rotations", s.Rotations)
	}
	j.Close()
	rec := pendingOf(t, dir, Options{})
	var ids []ID
	var idx []int
	for _, id := range order {
		if i, ok := pending[id]; ok {
			ids, idx = append(ids, id), append(idx, i)
		}
	}
	wantPending(t, rec, ids, idx)
}

// Without a caller waiting, a record's staging file is fsynced only once
// it is SyncDelay old: records done before never are. Close syncs what
// is still pending.
func TestBackgroundSync(t *testing.T) {
	t.Run("only records past their delay", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Unix(1e9, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		j, _ := openTest(t, t.TempDir(), Options{SyncDelay: time.Hour, now: clock})
		synced := map[int]bool{}
		entry := func(i int) Entry {
			e := testEntry(i)
			e.Sync = func() error {
				mu.Lock()
				synced[i] = true
				mu.Unlock()
				return nil
			}
			return e
		}
		var ids []ID
		for i := range 10 {
			ids = append(ids, mustAppend(t, j, entry(i)))
		}
		for _, id := range ids[:5] {
			j.Done(id) // stored before their delay
		}
		advance(30 * time.Minute)
		for i := 10; i < 20; i++ {
			ids = append(ids, mustAppend(t, j, entry(i)))
		}
		advance(31 * time.Minute) // 0-9 are past their delay, 10-19 not
		j.kickSyncer()
		for j.Stats().Batches == 0 {
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		for i := range 20 {
			if synced[i] != (i >= 5 && i < 10) {
				t.Errorf("after the first batch, staging file %d synced %v", i, synced[i])
			}
		}
		mu.Unlock()
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if synced[i] != (i >= 5) {
				t.Errorf("after Close, staging file %d synced %v", i, synced[i])
			}
		}
	})
	t.Run("pending past its delay", func(t *testing.T) {
		dir := t.TempDir()
		j, _ := openTest(t, dir, Options{SyncDelay: time.Millisecond})
		called := make(chan struct{})
		e := testEntry(1)
		var once sync.Once
		e.Sync = func() error { once.Do(func() { close(called) }); return nil }
		mustAppend(t, j, e)
		select {
		case <-called:
		case <-time.After(time.Minute):
			t.Fatal("no batch synced the staging file")
		}
		for j.Stats().Batches == 0 {
			time.Sleep(time.Millisecond) // the batch's journal fsync follows its staging syncs
		}
		// A restart now finds it durable: its batch's mark covers it.
		crashed := copyOf(t, dir)
		rec := pendingOf(t, crashed, Options{bootID: func() [16]byte { return [16]byte{42} }})
		if len(rec.Pending) != 1 || !rec.Pending[0].Durable {
			t.Fatalf("after a restart: %+v", rec.Pending)
		}
	})
}
