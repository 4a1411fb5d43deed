package cache

import (
	"bytes"
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/cipher"
)

// The disk layer keeps one file per object; chunk i lives in slot i at a
// fixed offset, so caching a chunk is one write into an existing file
// (creating a file costs milliseconds on a busy ext4, a write tens of
// microseconds). Evicting a chunk punches a hole over its slot; a file
// whose last chunk goes is deleted. Format (integers big-endian):
//
//	header (4096): "CFRBLK" | version 1 | mode (0 as given, 1 sealed)
//	               | object (32) | slotSize u32 | salt (32, zero in mode 0)
//	slot i @ headerSize + i*slotSize: length u32 | 0 u32 | payload (length)
//	   mode 0: payload = the chunk as given
//	   mode 1: payload = LocalSealer(secret, SHA-256(domain | salt | object)).Seal(chunk, i)
//
// A slot whose length is 0 (never written, or punched) holds no chunk.
// Files live at <dir>/<first two hex digits>/<hex object>.
const (
	fileMagic    = "CFRBLK"
	fileVersion  = 1
	modeAsGiven  = 0
	modeSealed   = 1
	fileHeader   = 4096
	headerUsed   = 6 + 1 + 1 + 32 + 4 + 32
	slotHeader   = 8
	slotSize     = 68 << 10 // a 64 KiB chunk with any overhead, in whole 4 KiB blocks
	maxPayload   = slotSize - slotHeader
	allocUnit    = 4096
	saltDomain   = "coffer cache object v1"
	logInterval  = 10 * time.Second
	queueEntries = 4096
	// maxPendingBytes bounds the chunks queued for the disk writer.
	maxPendingBytes = 32 << 20
)

// disk is the on-disk layer, LRU per chunk by allocated bytes. The index
// lives in memory and is rebuilt by scanning at open.
type disk struct {
	dir    string
	limit  int64
	secret []byte // nil: client mode
	log    *slog.Logger

	mu      sync.Mutex
	lru     *list.List // of *entry, most recent at the front
	entries map[BlockID]*entry
	objects map[[32]byte]*objFile
	total   int64 // bytes charged: headers and slots in use
	closed  bool

	// One writer goroutine makes every change to files (create, write,
	// punch, delete), in the order the index changed, so neither reads
	// nor index changes wait for the disk. pending holds the queued puts,
	// readable already; removals lists files and slots to delete.
	queue        chan *pendingPut
	pending      map[BlockID]*pendingPut
	pendingBytes int64
	removals     []removal
	wake         chan struct{} // removals are waiting
	queued, done int64         // operations handed to the writer, and finished
	idle         *sync.Cond    // signalled when done moves
	exited       chan struct{}

	hits, misses, dropped atomic.Int64
	lastLog               atomic.Int64 // unix ns of the last logged error
}

// objFile is the state of one object's file.
type objFile struct {
	object  [32]byte
	salt    []byte
	sealer  *cipher.LocalSealer // nil in client mode
	created bool                // the file exists on disk with its header
	chunks  map[int64]*entry
	queued  int  // puts of this object in the writer's queue
	dead    bool // deleted (dropped or evicted): writes to it are void
}

// removal is a file change the writer owes the index: punching out one
// slot, or deleting a whole object file (slot < 0).
type removal struct {
	object [32]byte
	slot   int64
}

type entry struct {
	id     BlockID
	length int // payload length in the slot
	obj    *objFile
	elem   *list.Element
}

// pendingPut is a chunk waiting for the writer. payload is what goes in
// the slot: in client mode the caller's chunk (kept, not copied: the
// caller authenticates what it reads back anyway), in sealed mode the
// chunk sealed at put time, so nothing of the caller's is kept.
type pendingPut struct {
	id      BlockID
	obj     *objFile
	payload []byte
}

// charge is what a slot holding n payload bytes costs on disk.
func charge(n int) int64 { return int64(slotHeader+n+allocUnit-1) / allocUnit * allocUnit }

func slotOff(index int64) int64 { return fileHeader + index*slotSize }

func openDisk(dir string, limit int64, secret []byte, log *slog.Logger) (*disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	d := &disk{
		dir:     dir,
		limit:   limit,
		secret:  bytes.Clone(secret),
		log:     log,
		lru:     list.New(),
		entries: make(map[BlockID]*entry),
		objects: make(map[[32]byte]*objFile),
		queue:   make(chan *pendingPut, queueEntries),
		pending: make(map[BlockID]*pendingPut),
		wake:    make(chan struct{}, 1),
		exited:  make(chan struct{}),
	}
	d.idle = sync.NewCond(&d.mu)
	if err := d.scan(); err != nil {
		return nil, err
	}
	go d.writer()
	return d, nil
}

func (d *disk) mode() byte {
	if d.secret == nil {
		return modeAsGiven
	}
	return modeSealed
}

func (d *disk) path(object [32]byte) string {
	h := hex.EncodeToString(object[:])
	return filepath.Join(d.dir, h[:2], h)
}

func (d *disk) header(o *objFile) []byte {
	h := make([]byte, headerUsed)
	copy(h, fileMagic)
	h[6] = fileVersion
	h[7] = d.mode()
	copy(h[8:40], o.object[:])
	binary.BigEndian.PutUint32(h[40:], slotSize)
	copy(h[44:], o.salt)
	return h
}

// newObjFile prepares the state of a new object file (not yet on disk).
func (d *disk) newObjFile(object [32]byte) (*objFile, error) {
	o := &objFile{object: object, salt: make([]byte, cipher.LocalSaltSize), chunks: make(map[int64]*entry)}
	if d.secret != nil {
		if _, err := rand.Read(o.salt); err != nil {
			return nil, err
		}
		if err := d.initSealer(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// initSealer derives the object file's sealer; the object is part of the
// salt input, so a file renamed to another object's name does not open.
func (d *disk) initSealer(o *objFile) error {
	h := sha256.New()
	h.Write([]byte(saltDomain))
	h.Write(o.salt)
	h.Write(o.object[:])
	s, err := cipher.NewLocalSealer(d.secret, h.Sum(nil))
	o.sealer = s
	return err
}

// parseHeader checks an object file's header against its name and the
// cache's mode.
func (d *disk) parseHeader(object [32]byte, h []byte) (*objFile, error) {
	if len(h) < headerUsed || string(h[:6]) != fileMagic || h[6] != fileVersion {
		return nil, errors.New("not a cache file")
	}
	if h[7] != d.mode() {
		return nil, errors.New("cache file of another mode")
	}
	if !bytes.Equal(h[8:40], object[:]) || binary.BigEndian.Uint32(h[40:]) != slotSize {
		return nil, errors.New("cache file header disagrees with its name")
	}
	o := &objFile{object: object, salt: bytes.Clone(h[44:headerUsed]), created: true, chunks: make(map[int64]*entry)}
	if d.secret != nil {
		if err := d.initSealer(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// scan rebuilds the index from the files present (their chunks ordered by
// file modification time, oldest least recent) and deletes what is not a
// valid cache file of this mode.
func (d *disk) scan() error {
	type found struct {
		o     *objFile
		slots []slotInfo
		mtime time.Time
	}
	var all []found
	fans, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, fan := range fans {
		fanPath := filepath.Join(d.dir, fan.Name())
		if !fan.IsDir() {
			os.Remove(fanPath)
			continue
		}
		files, err := os.ReadDir(fanPath)
		if err != nil {
			d.logErr("cache: scanning", err)
			continue
		}
		for _, f := range files {
			p := filepath.Join(fanPath, f.Name())
			o, slots, mtime, err := d.scanFile(p, f.Name())
			if err != nil || len(slots) == 0 {
				if err != nil && !errors.Is(err, errForeign) {
					d.logErr("cache: dropping unreadable file", err)
				}
				os.RemoveAll(p)
				continue
			}
			all = append(all, found{o, slots, mtime})
		}
	}
	slices.SortFunc(all, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range all {
		d.objects[f.o.object] = f.o
		d.total += fileHeader
		for _, s := range f.slots {
			d.insertLocked(f.o, s.index, s.length)
		}
	}
	d.evictLocked()
	return nil
}

var errForeign = errors.New("not a cache file name")

type slotInfo struct {
	index  int64
	length int
}

// scanFile reads an object file's header and lists its filled slots,
// visiting only the file's data regions (slots are sparse).
func (d *disk) scanFile(path, name string) (*objFile, []slotInfo, time.Time, error) {
	var object [32]byte
	if len(name) != 64 {
		return nil, nil, time.Time{}, errForeign
	}
	if _, err := hex.Decode(object[:], []byte(name)); err != nil || d.path(object) != path {
		return nil, nil, time.Time{}, errForeign
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, nil, time.Time{}, errForeign
	}
	h := make([]byte, headerUsed)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, nil, time.Time{}, err
	}
	o, err := d.parseHeader(object, h)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var slots []slotInfo
	var sh [slotHeader]byte
	fd := int(f.Fd())
	for off := int64(fileHeader); off < st.Size(); {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data past off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = st.Size()
		}
		first := max(0, (data-fileHeader)/slotSize)
		for i := first; slotOff(i) < hole; i++ {
			if _, err := f.ReadAt(sh[:], slotOff(i)); err != nil {
				break
			}
			if n := binary.BigEndian.Uint32(sh[:]); n > 0 && n <= maxPayload {
				slots = append(slots, slotInfo{i, int(n)})
			}
		}
		off = max(hole, slotOff(first+1))
	}
	return o, slots, st.ModTime(), nil
}

func (d *disk) entrySize(n int) int {
	if d.secret != nil {
		return n + cipher.LocalOverhead
	}
	return n
}

// put queues data for the writer; it never waits for the disk.
func (d *disk) put(id BlockID, data []byte) {
	n := d.entrySize(len(data))
	if id.Index < 0 || id.Index > (1<<62-fileHeader)/slotSize || n > maxPayload {
		return
	}
	d.mu.Lock()
	if d.closed || d.pendingBytes+int64(n) > maxPendingBytes || fileHeader+charge(n) > d.limit {
		d.mu.Unlock()
		return
	}
	o := d.objects[id.Object]
	if o == nil {
		var err error
		if o, err = d.newObjFile(id.Object); err != nil {
			d.mu.Unlock()
			d.logErr("cache: new object file", err)
			return
		}
		d.objects[id.Object] = o
	}
	o.queued++ // keeps o registered while this put seals
	d.mu.Unlock()

	p := &pendingPut{id: id, obj: o, payload: data}
	if o.sealer != nil {
		p.payload = o.sealer.Seal(make([]byte, 0, n), data, uint64(id.Index))
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	ok := !d.closed && !o.dead && d.pendingBytes+int64(n) <= maxPendingBytes
	if ok {
		select {
		case d.queue <- p:
		default:
			ok = false
		}
	}
	if !ok {
		o.queued--
		d.forgetIfUnusedLocked(o)
		return
	}
	d.queued++
	if old := d.pending[id]; old != nil {
		d.pendingBytes -= int64(len(old.payload))
	}
	d.pending[id] = p
	d.pendingBytes += int64(n)
}

// forgetIfUnusedLocked unregisters an object whose file was never made
// and that nothing refers to any more.
func (d *disk) forgetIfUnusedLocked(o *objFile) {
	if !o.created && o.queued == 0 && len(o.chunks) == 0 && d.objects[o.object] == o {
		delete(d.objects, o.object)
		o.dead = true
	}
}

// writer makes the file changes: queued removals first, then each put,
// until the queue is closed.
func (d *disk) writer() {
	defer close(d.exited)
	for {
		select {
		case p, ok := <-d.queue:
			d.runRemovals()
			if !ok {
				return
			}
			d.store(p)
		case <-d.wake:
			d.runRemovals()
		}
	}
}

func (d *disk) runRemovals() {
	d.mu.Lock()
	rs := d.removals
	d.removals = nil
	// Skip changes overtaken by a later put (only this goroutine writes
	// files, so the check holds until the change is made).
	keep := rs[:0:0]
	for _, r := range rs {
		o := d.objects[r.object]
		switch {
		case r.slot < 0 && o != nil && o.created:
		case r.slot >= 0 && d.entries[BlockID{Object: r.object, Index: r.slot}] != nil:
		default:
			keep = append(keep, r)
		}
	}
	d.mu.Unlock()
	defer d.finished(int64(len(rs)))
	for _, r := range keep {
		var err error
		if r.slot < 0 {
			err = os.Remove(d.path(r.object))
		} else {
			err = d.punch(r.object, slotOff(r.slot), slotSize)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.logErr("cache: removing a chunk", err)
		}
	}
}

func (d *disk) finished(n int64) {
	if n == 0 {
		return
	}
	d.mu.Lock()
	d.done += n
	d.idle.Broadcast() // flush waits for done == queued, flushTo for less
	d.mu.Unlock()
}

// queueRemovalLocked hands a file change to the writer.
func (d *disk) queueRemovalLocked(r removal) {
	d.removals = append(d.removals, r)
	d.queued++
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// store writes one queued put, unless it was dropped or superseded while
// queued.
func (d *disk) store(p *pendingPut) {
	defer d.finished(1)
	o := p.obj
	d.mu.Lock()
	current := d.pending[p.id] == p && !o.dead
	create := current && !o.created
	d.mu.Unlock()
	var err error
	if current {
		err = d.writeSlot(p, create)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	o.queued--
	if d.pending[p.id] == p {
		delete(d.pending, p.id)
		d.pendingBytes -= int64(len(p.payload))
	}
	switch {
	case !current:
	case err != nil:
		d.logErr("cache: writing chunk", err)
		if create {
			os.Remove(d.path(o.object))
		}
	case o.dead:
		// Dropped while being written: the write went to a deleted
		// file, or made one nobody wants.
		if create {
			os.Remove(d.path(o.object))
		}
	default:
		if create {
			o.created = true
			d.total += fileHeader
		}
		d.insertLocked(o, p.id.Index, len(p.payload))
		d.evictLocked()
	}
	d.forgetIfUnusedLocked(o)
}

// writeSlot writes a queued chunk into its object's file, creating the
// file first when needed.
func (d *disk) writeSlot(p *pendingPut, create bool) error {
	path := d.path(p.id.Object)
	flags := os.O_WRONLY
	if create {
		flags |= os.O_CREATE | os.O_TRUNC
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	if create {
		if _, err := f.WriteAt(d.header(p.obj), 0); err != nil {
			f.Close()
			return err
		}
	}
	buf := make([]byte, slotHeader, slotHeader+len(p.payload))
	binary.BigEndian.PutUint32(buf, uint32(len(p.payload)))
	_, err = f.WriteAt(append(buf, p.payload...), slotOff(p.id.Index))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// flush waits until the writer has made every change handed to it.
func (d *disk) flush() {
	d.mu.Lock()
	for d.done != d.queued {
		d.idle.Wait()
	}
	d.mu.Unlock()
}

// flushTo waits until the writer has made the first q changes handed to
// it. It runs removals before any put, in batches, so those queued
// before q are made by then whatever came after.
func (d *disk) flushTo(q int64) {
	d.mu.Lock()
	for d.done < q {
		d.idle.Wait()
	}
	d.mu.Unlock()
}

func (d *disk) get(id BlockID) ([]byte, bool) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.misses.Add(1)
		return nil, false
	}
	if p := d.pending[id]; p != nil {
		d.mu.Unlock()
		b, err := d.open(p.obj, id, p.payload)
		if err != nil {
			d.misses.Add(1)
			return nil, false
		}
		d.hits.Add(1)
		return b, true
	}
	e := d.entries[id]
	if e == nil {
		d.mu.Unlock()
		d.misses.Add(1)
		return nil, false
	}
	d.lru.MoveToFront(e.elem)
	d.mu.Unlock()

	b, err := d.readSlot(e)
	if err == nil {
		b, err = d.open(e.obj, id, b)
	}
	if err != nil {
		d.misses.Add(1)
		d.mu.Lock()
		defer d.mu.Unlock()
		// Unless the chunk was evicted or replaced while being read, it is
		// damaged: drop it.
		if d.entries[id] == e {
			d.logErr("cache: dropping unreadable chunk", err)
			d.dropped.Add(1)
			d.removeLocked(e)
		}
		return nil, false
	}
	d.hits.Add(1)
	return b, true
}

func (d *disk) readSlot(e *entry) ([]byte, error) {
	f, err := os.Open(d.path(e.id.Object))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, slotHeader+e.length)
	if _, err := f.ReadAt(b, slotOff(e.id.Index)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("chunk cut short")
		}
		return nil, err
	}
	if int(binary.BigEndian.Uint32(b)) != e.length || binary.BigEndian.Uint32(b[4:]) != 0 {
		return nil, errors.New("slot header changed")
	}
	return b[slotHeader:], nil
}

// open returns the chunk in a slot's payload: as is in client mode,
// authenticated and opened in sealed mode.
func (d *disk) open(o *objFile, id BlockID, payload []byte) ([]byte, error) {
	if o.sealer == nil {
		return payload, nil
	}
	return o.sealer.Open(make([]byte, 0, len(payload)), payload, uint64(id.Index))
}

func (d *disk) dropObject(object [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for id, p := range d.pending {
		if id.Object == object {
			delete(d.pending, id)
			d.pendingBytes -= int64(len(p.payload))
		}
	}
	if o := d.objects[object]; o != nil {
		d.deleteObjectLocked(o)
	}
}

func (d *disk) insertLocked(o *objFile, index int64, length int) {
	id := BlockID{Object: o.object, Index: index}
	if old := d.entries[id]; old != nil {
		d.total += charge(length) - charge(old.length)
		old.length = length
		d.lru.MoveToFront(old.elem)
		return
	}
	e := &entry{id: id, length: length, obj: o}
	e.elem = d.lru.PushFront(e)
	d.entries[id] = e
	o.chunks[index] = e
	d.total += charge(length)
}

// removeLocked forgets a chunk and punches its slot out of the file; the
// file goes with its last chunk.
func (d *disk) removeLocked(e *entry) {
	d.lru.Remove(e.elem)
	delete(d.entries, e.id)
	delete(e.obj.chunks, e.id.Index)
	d.total -= charge(e.length)
	if len(e.obj.chunks) == 0 && e.obj.queued == 0 {
		d.deleteObjectLocked(e.obj)
		return
	}
	d.queueRemovalLocked(removal{object: e.id.Object, slot: e.id.Index})
}

func (d *disk) punch(object [32]byte, off, n int64) error {
	f, err := os.OpenFile(d.path(object), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// deleteObjectLocked forgets an object's chunks and deletes its file.
func (d *disk) deleteObjectLocked(o *objFile) {
	for _, e := range o.chunks {
		d.lru.Remove(e.elem)
		delete(d.entries, e.id)
		d.total -= charge(e.length)
	}
	o.chunks = map[int64]*entry{}
	if d.objects[o.object] == o {
		delete(d.objects, o.object)
	}
	o.dead = true
	if o.created {
		d.total -= fileHeader
		d.queueRemovalLocked(removal{object: o.object, slot: -1})
	}
}

// shrink makes room on a full disk for what must not lose to a cache
// (staging): it drops the puts still queued, evicts least recently used
// chunks until at least n bytes are freed or none are left, and lowers
// the limit to what is left, since the disk cannot hold the cache at its
// configured size beside the staging files. It returns once the files
// are changed, and reports whether it freed or dropped anything.
func (d *disk) shrink(n int64) bool {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return false
	}
	dropped := len(d.pending) > 0
	for id, p := range d.pending {
		delete(d.pending, id)
		d.pendingBytes -= int64(len(p.payload))
	}
	before := d.total
	for before-d.total < n && d.lru.Len() > 0 {
		d.removeLocked(d.lru.Back().Value.(*entry))
	}
	freed := before - d.total
	d.limit = min(d.limit, d.total)
	limit := d.limit
	upTo := d.queued
	d.mu.Unlock()
	d.flushTo(upTo)
	if freed > 0 {
		d.log.Warn("cache: the disk is full: the block cache gave space back to staging", "freed_bytes", freed, "limit_bytes", limit)
	}
	return freed > 0 || dropped
}

func (d *disk) evictLocked() {
	for d.total > d.limit && d.lru.Len() > 0 {
		d.removeLocked(d.lru.Back().Value.(*entry))
	}
}

func (d *disk) stats(s *Stats) {
	s.DiskHits, s.DiskMisses, s.DiskDropped = d.hits.Load(), d.misses.Load(), d.dropped.Load()
	d.mu.Lock()
	s.DiskEntries, s.DiskBytes = int64(len(d.entries)), d.total
	d.mu.Unlock()
}

// close stores what is queued, then stops the writer.
func (d *disk) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	close(d.queue)
	d.mu.Unlock()
	<-d.exited
}

// logErr logs a disk error at most once per logInterval: a full disk must
// not flood the log. Errors name files by their hex IDs only.
func (d *disk) logErr(msg string, err error) {
	now := time.Now().UnixNano()
	last := d.lastLog.Load()
	if now-last < int64(logInterval) || !d.lastLog.CompareAndSwap(last, now) {
		return
	}
	d.log.Warn(msg, "err", err)
}
