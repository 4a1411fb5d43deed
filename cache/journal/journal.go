package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/cipher"
)

// ID names one pending record; it stays the same when compaction copies
// the record into a newer segment. IDs rise with every Append; 0 is never
// an ID.
type ID uint64

// Staging identifies one committed state of a staging file (the fields of
// cache/staging's Version): its name in the staging directory, its random
// salt (a reused name gets a new one), and the sequence number and size
// of its newest record. A staging file found with a different Staging
// changed after the record was written and must not be taken as whole.
type Staging struct {
	Name string
	Salt [cipher.LocalSaltSize]byte
	Seq  uint64
	Size int64
}

// Entry is what Append records.
type Entry struct {
	Staging Staging
	// Blob is the caller's data, opaque here (fs: the path, attributes,
	// the ETag replaced). It is sealed on disk and copied by Append.
	Blob []byte
	// Sync, if not nil, fsyncs the staging file. The background syncer
	// calls it (from its own goroutine) before the batch that makes the
	// record durable. It must return nil when the staging file is already
	// gone (uploaded and removed): an error marks the record suspect.
	// Not recorded.
	Sync func() error
}

// Record is a pending record found by Open.
type Record struct {
	ID      ID
	Staging Staging
	Blob    []byte
	// Durable: the staging file was fsynced while it matched Staging,
	// or the machine has not restarted since the record was written, so
	// a staging file that still matches Staging holds what the record
	// describes. False after a machine restart that came before the
	// batch sync (or when the staging file's fsync failed): its blocks
	// may read as holes where data was written, even where its Version
	// matches, so it must not be uploaded as whole.
	Durable bool
}

// Recovery is what Open found.
type Recovery struct {
	// Pending are the records appended and not done, in ID order.
	Pending []Record
	// Damage, if not nil, is the damaged frame replay met (a torn tail
	// it cut, or damage before the tail where it stopped).
	Damage *Damage
}

// Options tune a Journal. The zero value is the default.
type Options struct {
	// SyncInterval is the least time between two batch syncs: callers
	// waiting in Sync within it share one batch (group commit); 0:
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// SyncDelay is the longest a record waits for a batch when no caller
	// waits for it in Sync: the window in which the loss of the machine
	// (not of the process) can still lose it; 0: DefaultSyncDelay.
	SyncDelay time.Duration
	// SegmentSize is the size at which the active segment is replaced by
	// a new one holding only the pending records; 0: DefaultSegmentSize.
	SegmentSize int64

	// Test hooks.
	bootID     func() [16]byte    // nil: the kernel's boot ID
	crash      func(point string) // called at each step that a crash test kills at
	beforeSync func()             // called by the syncer before each batch
	now        func() time.Time   // nil: time.Now
}

// Defaults.
const (
	DefaultSyncInterval = 5 * time.Millisecond
	// DefaultSyncDelay exceeds fs's writeback delay (2 s), so the
	// staging file of a small file stored on time is never fsynced (each
	// fsync costs about as much CPU as the rest of its life in staging,
	// bench_test.go); only files whose upload is late are.
	DefaultSyncDelay   = 3 * time.Second
	DefaultSegmentSize = 4 << 20
)

// ErrLocked is wrapped by Open's error when another process holds the
// journal.
var ErrLocked = errors.New("in use by another coffer mount")

// ErrClosed is returned by calls on a closed Journal.
var ErrClosed = errors.New("journal closed")

// Journal is an open upload journal. It is safe for concurrent use.
type Journal struct {
	dir    string
	secret []byte
	opts   Options
	boot   [16]byte
	lock   *os.File

	mu       sync.Mutex
	seg      *os.File // the active segment
	segPath  string
	sealer   *cipher.LocalSealer
	off      int64  // end of the active segment's valid frames
	limit    int64  // rotate once off reaches it
	next     uint64 // sequence number of the next frame
	old      []string
	live     map[ID]*entry
	byName   map[string]ID
	unsynced []*entry // appended since the last batch took them
	waiters  map[ID][]chan error
	err      error // sticky: a failed fsync; nothing more is promised
	closed   bool
	buf      []byte
	stats    Stats

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

// entry is one pending record in memory.
type entry struct {
	id       ID
	at       time.Time // when it was appended
	st       Staging
	blob     []byte
	sync     func() error
	firstSeq uint64 // sequence number of its first copy
	seq      uint64 // sequence number of its newest copy
	size     int    // its frame's size
	durable  bool   // its batch (journal and staging fsync) completed
	synced   bool   // replay: a copy says its staging file was fsynced
	suspect  bool   // its staging file's fsync failed, or replay found it not durable
	sameBoot bool   // replay: a copy was written since the machine started
	err      error  // the staging fsync's error, for Sync
}

// Stats counts what a Journal did, for tests and benchmarks.
type Stats struct {
	Appends      int
	Dones        int
	Batches      int // journal fsyncs by the syncer
	StagingSyncs int // Entry.Sync calls
	Rotations    int
}

// Open opens (creating it 0700 if needed) the journal in dir, locks it
// against other processes, and replays it: the pending records are in the
// returned Recovery. secret is the volume's local secret (32 bytes). A
// torn tail is cut; damage before the tail stops the replay, sets the
// damaged segments aside, and is reported in Recovery.Damage, not as an
// error: the journal then starts afresh after the last record replayed.
func Open(dir string, secret []byte, opts Options) (*Journal, Recovery, error) {
	if _, err := cipher.NewLocalSealer(secret, make([]byte, cipher.LocalSaltSize)); err != nil {
		return nil, Recovery{}, fmt.Errorf("journal: %w", err)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.bootID == nil {
		opts.bootID = kernelBootID
	}
	if opts.SyncDelay <= 0 {
		opts.SyncDelay = DefaultSyncDelay
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.crash == nil {
		opts.crash = func(string) {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, Recovery{}, fmt.Errorf("journal: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, Recovery{}, fmt.Errorf("journal: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, Recovery{}, err
	}
	j := &Journal{
		dir: dir, secret: bytes.Clone(secret), opts: opts, boot: opts.bootID(), lock: lock,
		waiters: map[ID][]chan error{},
		kick:    make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	rec, err := j.recover()
	if err != nil {
		lock.Close()
		return nil, Recovery{}, fmt.Errorf("journal %s: %w", dir, err)
	}
	go j.run()
	return j, rec, nil
}

// recover replays the segments, acts on damage, and starts a new segment
// holding the pending records, then deletes the older ones.
func (j *Journal) recover() (Recovery, error) {
	r, err := replay(j.dir, j.secret, j.boot)
	if err != nil {
		return Recovery{}, err
	}
	segs := r.segs
	if d := r.damage; d != nil {
		if r.verdict == cutTail {
			if err := j.cut(d, r.badSeg == len(segs)-1 && len(segs) > 0, r.badOff, !r.badIncomplete); err != nil {
				return Recovery{}, err
			}
			j.opts.crash("open.cut")
			if r.badOff <= prefixSize {
				segs = segs[:len(segs)-1] // the cut segment was deleted
			}
		} else {
			paths, _, err := listSegments(j.dir)
			if err != nil {
				return Recovery{}, err
			}
			for _, p := range paths[r.badSeg:] {
				kept := p + ".damaged"
				if err := os.Rename(p, kept); err != nil {
					return Recovery{}, err
				}
				d.Kept = append(d.Kept, kept)
			}
			segs = paths[:r.badSeg]
			if err := syncDir(j.dir); err != nil {
				return Recovery{}, err
			}
		}
	}
	pending := make([]*entry, 0, len(r.live))
	for _, e := range r.live {
		pending = append(pending, e)
	}
	slices.SortFunc(pending, func(a, b *entry) int { return cmpID(a.id, b.id) })
	// Records durable only because the machine has not restarted have
	// staging files the kernel may not have written yet: flush them all
	// (the staging directory shares the cache dir's file system) before
	// their copies below claim they are synced.
	for _, e := range pending {
		if e.durable && !e.synced && e.firstSeq > r.markThrough {
			if err := syncFS(j.dir); err != nil {
				return Recovery{}, err
			}
			break
		}
	}
	out := Recovery{Damage: r.damage, Pending: make([]Record, len(pending))}
	j.live, j.byName = map[ID]*entry{}, map[string]ID{}
	for i, e := range pending {
		out.Pending[i] = Record{ID: e.id, Staging: e.st, Blob: bytes.Clone(e.blob), Durable: e.durable}
		e.synced, e.suspect = e.durable, !e.durable
		if e.suspect {
			e.err = fmt.Errorf("journal: staging file %s is not known to have reached the disk before the machine restarted, or its fsync failed", e.st.Name)
		}
		j.live[e.id], j.byName[e.st.Name] = e, e.id
	}
	j.next = r.next
	j.old = segs
	if err := j.startSegment(); err != nil {
		return Recovery{}, err
	}
	old := j.old
	j.old = nil
	if err := j.retireOld(j.seg, old); err != nil {
		return Recovery{}, err
	}
	return out, nil
}

func cmpID(a, b ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cut truncates the newest segment at off, keeping a copy of it first
// when keep is set and the bytes cut are not all zero (a frame that
// failed its checks; not one a crash cut short, which every kill of a
// writing process leaves). A segment without one valid frame is deleted.
func (j *Journal) cut(d *Damage, newest bool, off int64, keep bool) error {
	if !newest {
		return fmt.Errorf("internal error: cut of %s, not the newest segment", d.Segment)
	}
	data, err := os.ReadFile(d.Segment)
	if err != nil {
		return err
	}
	if keep && !isZero(data[min(off, int64(len(data))):]) {
		kept := d.Segment + ".broken"
		if err := writeFileSync(kept, data); err != nil {
			return err
		}
		d.Kept = append(d.Kept, kept)
	}
	if off <= prefixSize {
		if err := os.Remove(d.Segment); err != nil {
			return err
		}
		return syncDir(j.dir)
	}
	f, err := os.OpenFile(d.Segment, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return err
	}
	return f.Sync()
}

// startSegment makes a new segment the active one: its prefix, header
// record and a copy of every pending record, in a new file whose name is
// its first sequence number. The segment it replaces joins j.old, to be
// deleted by retireOld once this one is synced (j.mu held, or j not yet
// shared).
func (j *Journal) startSegment() error {
	salt := make([]byte, cipher.LocalSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	sealer, err := cipher.NewLocalSealer(j.secret, salt)
	if err != nil {
		return err
	}
	first := j.next
	path := filepath.Join(j.dir, segName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	buf := appendPrefix(nil, salt)
	seq := first
	buf = appendFrame(buf, sealer, seq, appendRecord(nil, &record{kind: kindHeader, boot: j.boot}))
	carried := 0
	pending := make([]*entry, 0, len(j.live))
	for _, e := range j.live {
		pending = append(pending, e)
	}
	slices.SortFunc(pending, func(a, b *entry) int { return cmpID(a.id, b.id) })
	for _, e := range pending {
		seq++
		var flags byte
		switch {
		case e.suspect:
			flags = flagSuspect
		case e.synced || e.durable:
			flags = flagSynced
		}
		buf = appendFrame(buf, sealer, seq, appendRecord(nil, &record{kind: kindPending, id: e.id, flags: flags, st: e.st, blob: e.blob}))
		carried += e.size
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	j.opts.crash("segment.written")
	for i, e := range pending {
		e.seq = first + 1 + uint64(i)
	}
	if j.seg != nil {
		j.seg.Close()
		j.old = append(j.old, j.segPath)
	}
	j.seg, j.segPath, j.sealer = f, path, sealer
	j.off, j.next = int64(len(buf)), seq+1
	// Compaction costs the pending records' size: rotate no sooner than
	// after four times that much, so its cost per append stays bounded.
	j.limit = max(j.opts.SegmentSize, int64(len(buf))+4*int64(carried))
	return nil
}

// retireOld fsyncs the active segment (which holds every pending record)
// and its directory entry, then deletes the older segments, oldest first,
// so a crash part way leaves a contiguous run of segments.
func (j *Journal) retireOld(seg *os.File, old []string) error {
	if err := unix.Fdatasync(int(seg.Fd())); err != nil {
		return err
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	j.opts.crash("segment.synced")
	for _, p := range old {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		j.opts.crash("segment.deleted")
	}
	if len(old) == 0 {
		return nil
	}
	return syncDir(j.dir)
}

// Append records e and returns its ID once the record is written to the
// journal file (write(2)): from then on it survives the death of the
// process. It survives the loss of the machine once its batch is synced
// (Sync waits for that). A record supersedes every pending record naming
// the same staging file (the file changed since, so they can no longer
// describe it).
func (j *Journal) Append(e Entry) (ID, error) {
	if n := len(e.Staging.Name); n == 0 || n > MaxNameLen {
		return 0, fmt.Errorf("journal: staging name of %d bytes (want 1..%d)", n, MaxNameLen)
	}
	if len(e.Blob) > MaxBlobSize {
		return 0, fmt.Errorf("journal: blob of %d bytes exceeds %d", len(e.Blob), MaxBlobSize)
	}
	if e.Staging.Size < 0 {
		return 0, fmt.Errorf("journal: negative staging size %d", e.Staging.Size)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return 0, err
	}
	id := ID(j.next)
	en := &entry{id: id, at: j.opts.now(), st: e.Staging, blob: bytes.Clone(e.Blob), sync: e.Sync,
		firstSeq: j.next, seq: j.next, size: pendingFrameSize(e.Staging.Name, e.Blob)}
	if err := j.writeLocked(&record{kind: kindPending, id: id, st: en.st, blob: en.blob}); err != nil {
		return 0, err
	}
	j.opts.crash("append.written")
	if old, ok := j.byName[en.st.Name]; ok {
		delete(j.live, old)
	}
	j.live[id], j.byName[en.st.Name] = en, id
	j.unsynced = append(j.unsynced, en)
	j.stats.Appends++
	j.kickSyncer()
	return id, nil
}

// Done marks record id completed (its file is stored, or no longer needs
// to be): it is no longer pending, and compaction drops it. An ID that is
// not pending (done, superseded, unknown) is not an error. Done does not
// wait for a sync: a Done lost in a crash only makes recovery find the
// record again.
func (j *Journal) Done(id ID) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	e := j.live[id]
	if e == nil {
		return nil
	}
	if err := j.writeLocked(&record{kind: kindDone, id: id}); err != nil {
		return err
	}
	j.opts.crash("done.written")
	delete(j.live, id)
	if j.byName[e.st.Name] == id {
		delete(j.byName, e.st.Name)
	}
	for _, ch := range j.waiters[id] {
		ch <- nil
	}
	delete(j.waiters, id)
	j.stats.Dones++
	return nil
}

// Sync waits until record id and its staging file are on stable storage
// (the batch holding it is synced), and returns the staging file's sync
// error if it had one. An ID no longer pending (done, or superseded by a
// newer record of its staging file) returns nil at once.
func (j *Journal) Sync(ctx context.Context, id ID) error {
	j.mu.Lock()
	e := j.live[id]
	switch {
	case j.closed:
		j.mu.Unlock()
		return ErrClosed
	case e == nil:
		j.mu.Unlock()
		return nil
	case e.durable || e.suspect:
		j.mu.Unlock()
		return e.err
	case j.err != nil:
		j.mu.Unlock()
		return j.err
	}
	ch := make(chan error, 1)
	j.waiters[id] = append(j.waiters[id], ch)
	j.kickSyncer()
	j.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns what the journal did so far.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// Close runs a last batch sync (so Entry.Sync functions must still work),
// closes the journal and releases its lock. Pending records stay for the
// next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	j.closed = true
	j.mu.Unlock()
	close(j.quit)
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.err
	for id, chs := range j.waiters {
		for _, ch := range chs {
			ch <- ErrClosed
		}
		delete(j.waiters, id)
	}
	if cerr := j.seg.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if cerr := j.lock.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.dir, err)
	}
	return nil
}

func (j *Journal) usable() error {
	if j.closed {
		return ErrClosed
	}
	return j.err
}

// writeLocked seals rec at the next sequence number and writes its frame
// at the end of the active segment. A failed write is cut off again, so
// the segment never holds a partial frame followed by more (j.mu held).
func (j *Journal) writeLocked(rec *record) error {
	seq := j.next
	plain := appendRecord(j.buf[:0], rec)
	frame := appendFrame(plain[len(plain):], j.sealer, seq, plain)
	j.buf = plain[:0]
	if _, err := j.seg.WriteAt(frame, j.off); err != nil {
		if terr := j.seg.Truncate(j.off); terr != nil {
			j.err = fmt.Errorf("journal %s: cannot cut a failed write (%v) off: %w", j.segPath, err, terr)
		}
		return fmt.Errorf("journal %s: %w", j.segPath, err)
	}
	j.off += int64(len(frame))
	j.next++
	return nil
}

func (j *Journal) kickSyncer() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// run is the background syncer. A batch is due SyncInterval after the
// last one when a caller waits in Sync (group commit), else SyncDelay
// after the oldest record not yet synced was appended.
func (j *Journal) run() {
	defer close(j.done)
	var last time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		j.mu.Lock()
		due, ok := j.dueLocked(last)
		j.mu.Unlock()
		if wait := due.Sub(j.opts.now()); !ok || wait > 0 {
			var fire <-chan time.Time
			if ok {
				timer.Reset(wait)
				fire = timer.C
			}
			select {
			case <-j.kick:
				timer.Stop()
				continue
			case <-j.quit:
				timer.Stop()
				j.batch(true)
				return
			case <-fire:
			}
		}
		last = j.opts.now()
		if j.opts.beforeSync != nil {
			j.opts.beforeSync()
		}
		j.batch(false)
		j.rotateIfFull()
	}
}

// dueLocked says when the next batch is due, if one is (j.mu held).
func (j *Journal) dueLocked(last time.Time) (time.Time, bool) {
	if len(j.waiters) == 0 && len(j.unsynced) == 0 {
		return time.Time{}, false
	}
	earliest := last.Add(j.opts.SyncInterval)
	if len(j.waiters) > 0 {
		return earliest, true
	}
	if due := j.unsynced[0].at.Add(j.opts.SyncDelay); due.After(earliest) {
		return due, true
	}
	return earliest, true
}

// batch makes records durable: all appended so far when all is set or a
// caller waits, else those older than SyncDelay. It fsyncs their staging
// files (Entry.Sync), records a sync mark, fsyncs the journal, then
// answers the waiters. A staging file whose fsync failed gets a
// suspect copy of its record before the mark, so the mark never vouches
// for it.
func (j *Journal) batch(all bool) {
	j.mu.Lock()
	if j.err != nil {
		j.answerLocked()
		j.mu.Unlock()
		return
	}
	// With a caller waiting, everything goes; else the records older
	// than SyncDelay (most are done by then, their files stored).
	cut := len(j.unsynced)
	if !all && len(j.waiters) == 0 {
		old := j.opts.now().Add(-j.opts.SyncDelay)
		cut = sort.Search(cut, func(i int) bool { return j.unsynced[i].at.After(old) })
	}
	todo := slices.Clone(j.unsynced[:cut])
	j.unsynced = slices.Delete(j.unsynced, 0, cut)
	// The mark vouches for every sequence number below the first record
	// left for a later batch (the list is in sequence order).
	through := j.next - 1
	if len(j.unsynced) > 0 {
		through = j.unsynced[0].seq - 1
	}
	todo = slices.DeleteFunc(todo, func(e *entry) bool { return j.live[e.id] != e })
	if len(todo) == 0 {
		// Nothing pending to vouch for: no fsync needed.
		j.answerLocked()
		j.mu.Unlock()
		return
	}
	seg := j.seg
	j.mu.Unlock()

	errs := make([]error, len(todo))
	syncs := 0
	// One after another: run in parallel, they measured no faster here
	// (ext4 on a shared disk, bench_test.go).
	for i, e := range todo {
		if e.sync != nil && j.isLive(e) {
			errs[i] = e.sync()
			syncs++
		}
	}

	j.mu.Lock()
	j.stats.StagingSyncs += syncs
	for i, e := range todo {
		if errs[i] != nil && j.live[e.id] == e {
			e.suspect, e.err = true, fmt.Errorf("journal: syncing staging file %s: %w", e.st.Name, errs[i])
			if err := j.writeLocked(&record{kind: kindPending, id: e.id, flags: flagSuspect, st: e.st, blob: e.blob}); err != nil {
				j.err = err // the mark below would vouch for the file
			}
			e.seq = j.next - 1
		}
	}
	if j.err == nil {
		if err := j.writeLocked(&record{kind: kindSynced, through: through}); err != nil {
			j.err = err
		}
	}
	j.opts.crash("batch.marked")
	j.mu.Unlock()

	err := unix.Fdatasync(int(seg.Fd()))

	j.mu.Lock()
	defer j.mu.Unlock()
	j.stats.Batches++
	if err != nil && j.err == nil {
		j.err = fmt.Errorf("journal %s: fsync: %w", j.segPath, err)
	}
	if j.err == nil {
		for _, e := range todo {
			e.durable = !e.suspect
		}
	}
	j.answerLocked()
}

func (j *Journal) isLive(e *entry) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.live[e.id] == e
}

// answerLocked answers the waiters whose records are settled (j.mu held).
func (j *Journal) answerLocked() {
	for id, chs := range j.waiters {
		e := j.live[id]
		var err error
		switch {
		case e == nil:
		case e.durable || e.suspect:
			err = e.err
		case j.err != nil:
			err = j.err
		default:
			continue
		}
		for _, ch := range chs {
			ch <- err
		}
		delete(j.waiters, id)
	}
}

// rotateIfFull replaces a full segment by a new one holding only the
// pending records, then deletes the old. The old segment is fsynced
// before the new one gets a byte, so only the newest segment can ever
// have a torn tail.
func (j *Journal) rotateIfFull() {
	j.mu.Lock()
	full := j.err == nil && j.off >= j.limit
	seg := j.seg
	j.mu.Unlock()
	if !full {
		return
	}
	// Most of the old segment's pages go out here, without blocking
	// appends; the second fsync below, under the lock, is short.
	if err := unix.Fdatasync(int(seg.Fd())); err != nil {
		j.setErr(fmt.Errorf("journal %s: fsync: %w", j.segPath, err))
		return
	}
	j.mu.Lock()
	if err := unix.Fdatasync(int(seg.Fd())); err != nil {
		j.err = fmt.Errorf("journal %s: fsync: %w", j.segPath, err)
		j.mu.Unlock()
		return
	}
	j.opts.crash("rotate.synced")
	// Records not yet durable keep their place in the unsynced list: the
	// next batch fsyncs their staging files and its mark covers their
	// copies.
	if err := j.startSegment(); err != nil {
		j.err = fmt.Errorf("journal %s: starting a new segment: %w", j.dir, err)
		j.mu.Unlock()
		return
	}
	j.stats.Rotations++
	old, newSeg := j.old, j.seg
	j.old = nil
	j.mu.Unlock()
	if err := j.retireOld(newSeg, old); err != nil {
		j.setErr(fmt.Errorf("journal %s: retiring old segments: %w", j.dir, err))
	}
}

func (j *Journal) setErr(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = err
	}
}
