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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferfs/coffer/cipher"
)

// Disk entry format (one file per chunk, integers big-endian):
//
//	"CFRBLK" | version 1 | mode | object (32) | index u64          = 48 bytes
//	mode 0 (client): the chunk exactly as given
//	mode 1 (sealed): salt (32) | LocalSealer.Seal(chunk, index)
//
// In sealed mode the sealer's salt input is SHA-256 of a domain string,
// the stored salt, the object and the index, so an entry copied or renamed
// to another chunk's name fails authentication. Files live at
// <dir>/<first two hex digits of object>/<hex object>-<index as 16 hex>.
const (
	entryMagic   = "CFRBLK"
	entryVersion = 1
	modeAsGiven  = 0
	modeSealed   = 1
	entryHeader  = 48
	saltDomain   = "coffer cache entry v1"
	tmpDir       = "tmp"
	logInterval  = 10 * time.Second
)

// disk is the on-disk layer: one file per chunk, LRU by total size. The
// index (sizes and recency) lives in memory and is rebuilt by scanning.
type disk struct {
	dir    string
	limit  int64
	secret []byte // nil: client mode
	log    *slog.Logger

	mu       sync.Mutex
	lru      *list.List // of *entry, most recent at the front
	entries  map[BlockID]*entry
	byObject map[[32]byte]map[int64]*entry
	total    int64
	closed   bool

	// Puts are written by one background goroutine, so a read that
	// fetched a chunk does not wait for the disk. pending holds what is
	// queued (readable already); a put finding the queue over
	// maxPending bytes is dropped.
	queue        chan *pendingPut
	pending      map[BlockID]*pendingPut
	pendingBytes int64
	maxPending   int64
	idle         *sync.Cond // signalled when pending empties
	done         chan struct{}

	hits, misses, dropped atomic.Int64
	lastLog               atomic.Int64 // unix ns of the last logged error
}

type pendingPut struct {
	id   BlockID
	data []byte
}

// maxPendingBytes bounds the chunks queued for the disk writer.
const maxPendingBytes = 32 << 20

type entry struct {
	id   BlockID
	size int64
	elem *list.Element
}

func openDisk(dir string, limit int64, secret []byte, log *slog.Logger) (*disk, error) {
	for _, p := range []string{dir, filepath.Join(dir, tmpDir)} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	d := &disk{
		dir:      dir,
		limit:    limit,
		secret:   bytes.Clone(secret),
		log:      log,
		lru:      list.New(),
		entries:  make(map[BlockID]*entry),
		byObject: make(map[[32]byte]map[int64]*entry),
		queue:    make(chan *pendingPut, 4096),
		pending:  make(map[BlockID]*pendingPut),
		done:     make(chan struct{}),
	}
	d.maxPending = min(maxPendingBytes, limit)
	d.idle = sync.NewCond(&d.mu)
	if err := d.scan(); err != nil {
		return nil, err
	}
	go d.writer()
	return d, nil
}

// scan rebuilds the index from the files present, oldest write least
// recent; leftover temporary files and names that are not entries go.
func (d *disk) scan() error {
	tmps, _ := os.ReadDir(filepath.Join(d.dir, tmpDir))
	for _, t := range tmps {
		os.Remove(filepath.Join(d.dir, tmpDir, t.Name()))
	}
	type found struct {
		id    BlockID
		size  int64
		mtime time.Time
	}
	var all []found
	fans, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || fan.Name() == tmpDir {
			continue
		}
		fanPath := filepath.Join(d.dir, fan.Name())
		files, err := os.ReadDir(fanPath)
		if err != nil {
			d.logErr("cache: scanning", err)
			continue
		}
		for _, f := range files {
			id, ok := parseEntryName(f.Name())
			info, err := f.Info()
			if !ok || err != nil || !info.Mode().IsRegular() || info.Size() < entryHeader ||
				d.entryPath(id) != filepath.Join(fanPath, f.Name()) {
				os.Remove(filepath.Join(fanPath, f.Name()))
				continue
			}
			all = append(all, found{id, info.Size(), info.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range all {
		d.insertLocked(f.id, f.size)
	}
	d.evictLocked()
	return nil
}

func (d *disk) entryPath(id BlockID) string {
	h := hex.EncodeToString(id.Object[:])
	return filepath.Join(d.dir, h[:2], h+"-"+fmt.Sprintf("%016x", uint64(id.Index)))
}

func parseEntryName(name string) (BlockID, bool) {
	obj, idx, ok := strings.Cut(name, "-")
	if !ok || len(obj) != 64 || len(idx) != 16 || strings.ToLower(name) != name {
		return BlockID{}, false
	}
	var id BlockID
	if _, err := hex.Decode(id.Object[:], []byte(obj)); err != nil {
		return BlockID{}, false
	}
	i, err := strconv.ParseUint(idx, 16, 64)
	if err != nil {
		return BlockID{}, false
	}
	id.Index = int64(i)
	return id, true
}

func (d *disk) mode() byte {
	if d.secret == nil {
		return modeAsGiven
	}
	return modeSealed
}

func (d *disk) header(id BlockID) []byte {
	h := make([]byte, entryHeader)
	copy(h, entryMagic)
	h[6] = entryVersion
	h[7] = d.mode()
	copy(h[8:40], id.Object[:])
	binary.BigEndian.PutUint64(h[40:], uint64(id.Index))
	return h
}

func (d *disk) sealer(id BlockID, salt []byte) (*cipher.LocalSealer, error) {
	h := sha256.New()
	h.Write([]byte(saltDomain))
	h.Write(salt)
	h.Write(d.header(id)[8:])
	return cipher.NewLocalSealer(d.secret, h.Sum(nil))
}

// encode returns the entry file's bytes for data.
func (d *disk) encode(id BlockID, data []byte) ([]byte, error) {
	out := d.header(id)
	if d.secret == nil {
		return append(out, data...), nil
	}
	salt := make([]byte, cipher.LocalSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	s, err := d.sealer(id, salt)
	if err != nil {
		return nil, err
	}
	out = slices.Grow(append(out, salt...), len(data)+cipher.LocalOverhead)
	return s.Seal(out, data, uint64(id.Index)), nil
}

// decode checks an entry file's bytes and returns the chunk.
func (d *disk) decode(id BlockID, b []byte) ([]byte, error) {
	if len(b) < entryHeader || !bytes.Equal(b[:entryHeader], d.header(id)) {
		return nil, errors.New("bad entry header")
	}
	b = b[entryHeader:]
	if d.secret == nil {
		return b, nil
	}
	if len(b) < cipher.LocalSaltSize {
		return nil, errors.New("short sealed entry")
	}
	s, err := d.sealer(id, b[:cipher.LocalSaltSize])
	if err != nil {
		return nil, err
	}
	return s.Open(nil, b[cipher.LocalSaltSize:], uint64(id.Index))
}

// put queues a copy of data for the writer; it never blocks on the disk.
func (d *disk) put(id BlockID, data []byte) {
	if d.entrySize(len(data)) > d.limit {
		return
	}
	p := &pendingPut{id: id, data: bytes.Clone(data)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.pendingBytes+int64(len(data)) > d.maxPending {
		return
	}
	select {
	case d.queue <- p:
	default:
		return
	}
	if old := d.pending[id]; old != nil {
		d.pendingBytes -= int64(len(old.data))
	}
	d.pending[id] = p
	d.pendingBytes += int64(len(data))
}

func (d *disk) entrySize(n int) int64 {
	size := int64(entryHeader + n)
	if d.secret != nil {
		size += cipher.LocalSaltSize + cipher.LocalOverhead
	}
	return size
}

// writer stores queued puts until the queue is closed.
func (d *disk) writer() {
	defer close(d.done)
	for p := range d.queue {
		d.store(p)
	}
}

// store writes one queued put, unless it was dropped or superseded while
// queued.
func (d *disk) store(p *pendingPut) {
	var tmpName string
	b, err := d.encode(p.id, p.data)
	if err != nil {
		d.logErr("cache: sealing entry", err)
	} else {
		tmpName, err = d.writeTemp(b)
		if err != nil {
			d.logErr("cache: writing entry", err)
		}
	}
	// Rename and index change together, so the file at a path is always
	// the one its index entry describes.
	d.mu.Lock()
	defer d.mu.Unlock()
	current := d.pending[p.id] == p
	if current {
		delete(d.pending, p.id)
		d.pendingBytes -= int64(len(p.data))
		if len(d.pending) == 0 {
			d.idle.Broadcast()
		}
	}
	if err != nil {
		return
	}
	if !current {
		os.Remove(tmpName)
		return
	}
	path := d.entryPath(p.id)
	err = os.Rename(tmpName, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			err = os.Rename(tmpName, path)
		}
	}
	if err != nil {
		os.Remove(tmpName)
		d.logErr("cache: storing entry", err)
		return
	}
	d.insertLocked(p.id, int64(len(b)))
	d.evictLocked()
}

func (d *disk) writeTemp(b []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Join(d.dir, tmpDir), "put-*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// flush waits until every queued put is stored or dropped.
func (d *disk) flush() {
	d.mu.Lock()
	for len(d.pending) > 0 {
		d.idle.Wait()
	}
	d.mu.Unlock()
}

func (d *disk) get(id BlockID) ([]byte, bool) {
	d.mu.Lock()
	if p := d.pending[id]; p != nil && !d.closed {
		d.mu.Unlock()
		d.hits.Add(1)
		return bytes.Clone(p.data), true
	}
	e := d.entries[id]
	if e == nil || d.closed {
		d.mu.Unlock()
		d.misses.Add(1)
		return nil, false
	}
	d.lru.MoveToFront(e.elem)
	d.mu.Unlock()

	b, err := os.ReadFile(d.entryPath(id))
	if err == nil {
		b, err = d.decode(id, b)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.logErr("cache: dropping unreadable entry", err)
		}
		d.dropped.Add(1)
		d.misses.Add(1)
		d.mu.Lock()
		if d.entries[id] == e {
			d.removeLocked(e)
		}
		d.mu.Unlock()
		return nil, false
	}
	d.hits.Add(1)
	return b, true
}

func (d *disk) dropObject(object [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, p := range d.pending {
		if id.Object == object {
			delete(d.pending, id)
			d.pendingBytes -= int64(len(p.data))
		}
	}
	if len(d.pending) == 0 {
		d.idle.Broadcast()
	}
	for _, e := range d.byObject[object] {
		d.removeLocked(e)
	}
}

func (d *disk) insertLocked(id BlockID, size int64) {
	if old := d.entries[id]; old != nil {
		d.total -= old.size
		old.size = size
		d.total += size
		d.lru.MoveToFront(old.elem)
		return
	}
	e := &entry{id: id, size: size}
	e.elem = d.lru.PushFront(e)
	d.entries[id] = e
	byIndex := d.byObject[id.Object]
	if byIndex == nil {
		byIndex = make(map[int64]*entry)
		d.byObject[id.Object] = byIndex
	}
	byIndex[id.Index] = e
	d.total += size
}

// removeLocked forgets an entry and deletes its file.
func (d *disk) removeLocked(e *entry) {
	d.lru.Remove(e.elem)
	delete(d.entries, e.id)
	byIndex := d.byObject[e.id.Object]
	delete(byIndex, e.id.Index)
	if len(byIndex) == 0 {
		delete(d.byObject, e.id.Object)
	}
	d.total -= e.size
	if err := os.Remove(d.entryPath(e.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.logErr("cache: removing entry", err)
	}
}

func (d *disk) evictLocked() {
	for d.total > d.limit {
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
	<-d.done
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
