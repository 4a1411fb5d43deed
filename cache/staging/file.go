package staging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/cipher"
)

// File is one sealed staging file. It is safe for concurrent use: reads
// share a read lock, everything else is serialised.
type File struct {
	dir  *Dir
	name string
	path string
	salt [cipher.LocalSaltSize]byte
	g    geometry
	s    sealer

	mu      sync.RWMutex
	f       *os.File
	size    int64
	meta    []byte
	seq     uint64
	recSize int64 // the plaintext size in the newest record on disk
	dirty   bool  // data or size changed since the last record write
	// pinned: the newest record was handed out by Commit, so the next
	// change writes a newer record before it touches anything.
	pinned  bool
	closed  bool
	removed bool
	wb      writeBack
	// evicted: the file offset where the last Evict started dropping
	// pages (0: none yet), where the next one drops from.
	evicted int64
}

// writeBack holds one block in plaintext so that writes smaller than a
// block, sequential or not, seal each block once instead of once per write.
// buf is only as long as the block needs (rounded up to 4 KiB), so the
// many small files of a big copy hold small buffers.
// Invariants when buf is set: len(buf) >= blockLen(index, size), and
// buf[blockLen(index, size):] is zero.
type writeBack struct {
	buf   []byte // nil when no block is held
	index int64
	dirty bool // buf differs from the block on disk
}

func (w *writeBack) holds(i int64) bool { return w.buf != nil && w.index == i }

func newFile(d *Dir, name, path string, salt []byte, osf *os.File, g geometry, s sealer) *File {
	f := &File{dir: d, name: name, path: path, g: g, s: s, f: osf}
	copy(f.salt[:], salt)
	return f
}

// Name is the file's name in its Dir, for Dir.Open.
func (f *File) Name() string { return f.name }

// Size is the current plaintext size.
func (f *File) Size() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.size
}

// Meta returns a copy of the caller's meta blob.
func (f *File) Meta() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return bytes.Clone(f.meta)
}

// Version identifies one committed state of one staging file, so that a
// journal record can say which state it describes: the name, the file's
// random salt (drawn afresh by every Create, so a reused name is told
// apart), and the sequence number and plaintext size of its newest record.
type Version struct {
	Name string
	Salt [cipher.LocalSaltSize]byte
	Seq  uint64
	Size int64
}

// Version is the committed state of the file as Open found it or the last
// commit left it. Uncommitted writes are not part of it.
func (f *File) Version() Version {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.versionLocked()
}

func (f *File) versionLocked() Version {
	return Version{Name: f.name, Salt: f.salt, Seq: f.seq, Size: f.recSize}
}

// Commit commits buffered data, the size and the meta (without fsync),
// like Close but keeping the file open, and returns the Version it
// committed. The file then never again matches that Version once it
// changes: the first WriteAt or Truncate after Commit writes a newer
// record before it touches any block, so a file a crash left half
// rewritten cannot pass for the committed one.
func (f *File) Commit() (Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return Version{}, err
	}
	if f.dirty {
		if err := f.commit(); err != nil {
			return Version{}, err
		}
	}
	f.pinned = true
	return f.versionLocked(), nil
}

// unpin writes a newer record (same size and meta) if Commit handed out
// the current one, before a change to the blocks or the size.
func (f *File) unpin() error {
	if !f.pinned {
		return nil
	}
	if err := f.writeRecord(); err != nil {
		return f.ioErr(err)
	}
	return nil
}

// SetMeta replaces the meta blob and commits it (with the size and all
// buffered data) to the file.
func (f *File) SetMeta(meta []byte) error {
	if len(meta) > MaxMetaSize {
		return fmt.Errorf("staging %s: meta of %d bytes exceeds %d", f.name, len(meta), MaxMetaSize)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	f.meta = bytes.Clone(meta)
	return f.commit()
}

// ReadAt reads plaintext at off: zeros in holes, io.EOF past Size. A block
// that fails authentication gives an error wrapping cipher.ErrAuth, and p
// beyond the returned count must not be used.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.usable(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("staging %s: negative offset %d", f.name, off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := p
	if rem := f.size - off; int64(len(p)) > rem {
		want = p[:rem]
	}
	n, err := f.readRange(want, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes plaintext at off, extending the file (with holes where
// nothing was written) when it ends past Size.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	if off < 0 || end < off || end > f.g.maxSize() {
		return 0, fmt.Errorf("staging %s: write of %d bytes at %d out of range", f.name, len(p), off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.unpin(); err != nil {
		return 0, err
	}
	if end > f.size {
		if err := f.reserve(end); err != nil {
			return 0, f.ioErr(err)
		}
		if err := f.grow(end); err != nil {
			return 0, f.ioErr(err)
		}
	}
	f.dirty = true
	n := 0
	for n < len(p) {
		i, within := f.g.blockOf(off + int64(n))
		blen := f.g.blockLen(i, f.size)
		if within == 0 && int64(len(p)-n) >= blen {
			k, err := f.writeWhole(p[n:], i)
			n += k
			if err != nil {
				return n, f.ioErr(err)
			}
			continue
		}
		if err := f.bufferBlock(i); err != nil {
			return n, f.ioErr(err)
		}
		n += copy(f.wb.buf[within:blen], p[n:])
		f.wb.dirty = true
	}
	return n, nil
}

// Truncate sets the plaintext size; bytes past the old end read as zeros.
// The new size is committed to the file at once.
func (f *File) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	if size < 0 || size > f.g.maxSize() {
		return fmt.Errorf("staging %s: size %d out of range", f.name, size)
	}
	if err := f.unpin(); err != nil {
		return err
	}
	if err := f.flushWB(); err != nil {
		return f.ioErr(err)
	}
	f.dropWB()
	if err := f.resize(size); err != nil {
		return f.ioErr(err)
	}
	f.dirty = true
	return f.commit()
}

// Sync commits buffered data, the size and the meta, and flushes them to
// stable storage.
func (f *File) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	if f.dirty {
		if err := f.commit(); err != nil {
			return err
		}
	}
	if err := unix.Fdatasync(int(f.f.Fd())); err != nil {
		return f.ioErr(err)
	}
	return nil
}

// Close commits buffered data, the size and the meta (without fsync) and
// closes the file; it stays on disk for Dir.Open.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	var err error
	if f.dirty {
		err = f.commit()
	}
	f.dropWB()
	f.closed = true
	if cerr := f.f.Close(); err == nil && cerr != nil {
		err = f.ioErr(cerr)
	}
	return err
}

// Evict writes the blocks holding plaintext [off, end) out to disk and
// drops them from the page cache: the data stays in the file, reads of
// it come from disk. A streaming upload calls it for what it has read,
// so that a big file being written recycles a few megabytes of page
// cache instead of holding all of itself there (cache/staging/doc.go,
// "Page cache"). Dropping is best effort: pages whose writeback has just
// completed can sit in another CPU's LRU batch for a moment, so each call
// drops again from where the previous one started. Errors are the
// kernel's and change nothing on disk; a closed file is left alone.
func (f *File) Evict(off, end int64) error {
	f.mu.Lock()
	osf, closed, again := f.f, f.closed, f.evicted
	first, _ := f.g.blockOf(off)
	last, _ := f.g.blockOf(end) // block last is kept: end may fall inside it
	if !closed && last > first {
		f.evicted = f.g.blockOff(first)
	}
	f.mu.Unlock()
	if closed || last <= first {
		return nil
	}
	start, stop := f.g.blockOff(first), f.g.blockOff(last)
	if again == 0 || again > start {
		again = start
	}
	rc, err := osf.SyscallConn()
	if err != nil {
		return f.ioErr(err)
	}
	var serr error
	// Control holds the descriptor open for the call (a concurrent Close
	// waits), so the number cannot name another file meanwhile.
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), start, stop-start,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if serr == nil {
			serr = unix.Fadvise(int(fd), again, stop-again, unix.FADV_DONTNEED)
		}
	}); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return nil
		}
		return f.ioErr(err)
	}
	if serr != nil {
		return f.ioErr(serr)
	}
	return nil
}

// Remove closes the file without committing and deletes its contents.
// (The emptied file may be kept for a later Create; it is no longer a
// staging file.)
func (f *File) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed {
		return f.ioErr(os.ErrNotExist)
	}
	f.removed = true
	osf := f.f
	if f.closed {
		var err error
		if osf, err = os.OpenFile(f.path, os.O_RDWR, 0); err != nil {
			return f.ioErr(err)
		}
	}
	f.dropWB()
	f.closed = true
	if err := osf.Truncate(0); err == nil && f.dir.putSpare(f.name, osf) {
		return nil
	}
	osf.Close()
	if err := os.Remove(f.path); err != nil {
		return f.ioErr(err)
	}
	return nil
}

func (f *File) usable() error {
	if f.closed {
		return fmt.Errorf("staging %s: %w", f.name, os.ErrClosed)
	}
	return nil
}

func (f *File) ioErr(err error) error {
	return fmt.Errorf("staging %s: %w", f.name, err)
}

// abandon removes a file that failed during Create.
func (f *File) abandon(err error) error {
	f.f.Close()
	os.Remove(f.path)
	return f.ioErr(err)
}

// reserve allocates the disk space a write ending at end > size needs
// before anything changes, so a full disk fails the write whole (ENOSPC)
// instead of half-way, which would leave the size covering blocks never
// written; when the disk is full, the Dir's reclaim is asked for room
// first. Filesystems without fallocate keep the old behaviour.
func (f *File) reserve(end int64) error {
	from, to := f.g.physicalSize(f.size), f.g.physicalSize(end)
	if to <= from {
		return nil
	}
	err := f.dir.retryFull(to-from, func() error {
		return unix.Fallocate(int(f.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, from, to-from)
	})
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return err
}

// grow prepares the file for a write ending at end > size. The old last
// block, if partial, is sealed at its old length on disk; it is taken into
// the write-back buffer and marked dirty so that it is resealed at its new
// length.
func (f *File) grow(end int64) error {
	if f.size%f.g.blockSize != 0 {
		if err := f.bufferBlock(f.size / f.g.blockSize); err != nil {
			return err
		}
		f.wb.dirty = true
	}
	f.size = end
	if f.wb.buf != nil {
		f.fitWB()
	}
	return nil
}

// fitWB lengthens the write-back buffer to its block's length (which grows
// with the size when it is the last block).
func (f *File) fitWB() {
	need := f.g.blockLen(f.wb.index, f.size)
	if int64(len(f.wb.buf)) >= need {
		return
	}
	nb := f.allocWB(need)
	clear(nb[copy(nb, f.wb.buf):])
	f.releaseWB()
	f.wb.buf = nb
}

// allocWB returns a buffer for a block of n plaintext bytes: pooled when
// it needs a whole block, else rounded up to 4 KiB.
func (f *File) allocWB(n int64) []byte {
	const unit = 4 << 10
	n = min((n+unit-1)/unit*unit, f.g.blockSize)
	return *f.dir.getBlock(n)
}

func (f *File) releaseWB() {
	if f.wb.buf != nil {
		f.dir.putBlock(&f.wb.buf)
		f.wb.buf = nil
	}
}

// resize changes size on disk, resealing the block that becomes (shrink)
// or stops being (grow) the partial last block. The write-back buffer must
// be empty.
func (f *File) resize(size int64) error {
	old := f.size
	k := int64(-1)
	switch {
	case size < old && size%f.g.blockSize != 0:
		k = size / f.g.blockSize
	case size > old && old%f.g.blockSize != 0:
		k = old / f.g.blockSize
	}
	if k >= 0 {
		bp := f.dir.getBlock(f.g.blockSize)
		defer f.dir.putBlock(bp)
		buf := *bp
		hole, err := f.readBlock(buf, k)
		if err != nil {
			return err
		}
		f.size = size
		if !hole {
			clear(buf[f.g.blockLen(k, size):])
			if err := f.writeBlock(buf[:f.g.blockLen(k, size)], k); err != nil {
				return err
			}
		}
	}
	f.size = size
	// Cuts dropped blocks, or extends with zeros that read as holes.
	return f.f.Truncate(f.g.physicalSize(size))
}

// commit writes buffered data, makes the file length match the size, and
// writes a new meta record.
func (f *File) commit() error {
	if err := f.flushWB(); err != nil {
		return f.ioErr(err)
	}
	if err := f.f.Truncate(f.g.physicalSize(f.size)); err != nil {
		return f.ioErr(err)
	}
	if err := f.writeRecord(); err != nil {
		return f.ioErr(err)
	}
	f.dirty = false
	return nil
}

// writeRecord seals the size and meta into the slot not holding the
// current record, so a torn write leaves the previous record intact.
func (f *File) writeRecord() error {
	rec := record{seq: f.seq + 1, size: f.size, meta: f.meta}.encode(f.g)
	buf := make([]byte, 4, 4+len(rec)+overhead)
	buf = f.s.Seal(buf, rec, metaIndex)
	if int64(len(buf)) > f.g.metaSlotSize {
		return fmt.Errorf("meta record of %d bytes exceeds its slot", len(buf))
	}
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if _, err := f.f.WriteAt(buf, f.g.slotOff(int((f.seq+1)%2))); err != nil {
		return err
	}
	f.seq++
	f.recSize = f.size
	f.pinned = false
	return nil
}

// readRecord opens both meta slots and returns the newest valid record.
func (f *File) readRecord() (record, error) {
	var best record
	found := false
	for s := range 2 {
		r, err := f.readSlot(s)
		if err != nil {
			if errors.Is(err, cipher.ErrAuth) || errors.Is(err, errFormat) {
				continue
			}
			return record{}, err
		}
		if !found || r.seq > best.seq {
			best, found = r, true
		}
	}
	if !found {
		return record{}, fmt.Errorf("%w: no meta record authenticates", cipher.ErrAuth)
	}
	return best, nil
}

func (f *File) readSlot(s int) (record, error) {
	raw := make([]byte, f.g.metaSlotSize)
	n, err := f.f.ReadAt(raw, f.g.slotOff(s))
	if err != nil && !errors.Is(err, io.EOF) {
		return record{}, err
	}
	raw = raw[:n]
	if len(raw) < 4 {
		return record{}, fmt.Errorf("%w: empty slot", errFormat)
	}
	l := int64(binary.BigEndian.Uint32(raw))
	if l < overhead || 4+l > int64(len(raw)) {
		return record{}, fmt.Errorf("%w: bad slot length", errFormat)
	}
	plain, err := f.s.Open(nil, raw[4:4+l], metaIndex)
	if err != nil {
		return record{}, fmt.Errorf("%w: meta record", cipher.ErrAuth)
	}
	return parseRecord(plain, f.g)
}

// bufferBlock makes block i the write-back block, flushing the one held.
func (f *File) bufferBlock(i int64) error {
	if f.wb.holds(i) {
		return nil
	}
	if err := f.flushWB(); err != nil {
		return err
	}
	if need := f.g.blockLen(i, f.size); int64(len(f.wb.buf)) < need {
		f.releaseWB()
		f.wb.buf = f.allocWB(need)
	}
	if _, err := f.readBlock(f.wb.buf, i); err != nil {
		f.dropWB()
		return err
	}
	f.wb.index, f.wb.dirty = i, false
	return nil
}

// flushWB seals the write-back block to disk if it changed.
func (f *File) flushWB() error {
	if f.wb.buf == nil || !f.wb.dirty {
		return nil
	}
	if err := f.writeBlock(f.wb.buf[:f.g.blockLen(f.wb.index, f.size)], f.wb.index); err != nil {
		return err
	}
	f.wb.dirty = false
	return nil
}

func (f *File) dropWB() {
	f.releaseWB()
	f.wb = writeBack{}
}

// writeBlock seals plain as block i and writes it to its slot.
func (f *File) writeBlock(plain []byte, i int64) error {
	rp := f.dir.getRun(f.g.blockSize)
	defer f.dir.putRun(rp)
	sealed := f.s.Seal((*rp)[:0], plain, uint64(i))
	_, err := f.f.WriteAt(sealed, f.g.blockOff(i))
	return err
}

// writeWhole seals the whole blocks at the start of p (block first
// onwards) in runs of up to runBlocks per write, and returns the bytes
// consumed. Slots are contiguous, so a run is one write.
func (f *File) writeWhole(p []byte, first int64) (int, error) {
	rp := f.dir.getRun(f.g.blockSize)
	defer f.dir.putRun(rp)
	n := 0
	for {
		buf, start, i := (*rp)[:0], n, first
		for range runBlocks {
			blen := int(f.g.blockLen(i, f.size))
			if blen == 0 || len(p)-n < blen {
				break
			}
			buf = f.s.Seal(buf, p[n:n+blen], uint64(i))
			if f.wb.holds(i) {
				f.dropWB() // superseded by this write
			}
			n += blen
			i++
		}
		if n == start {
			return n, nil
		}
		if _, err := f.f.WriteAt(buf, f.g.blockOff(first)); err != nil {
			return start, err
		}
		first = i
	}
}

// readBlock reads and opens block i (at its length for the current size)
// into dst, zeroing the rest of dst. hole reports a never-written block.
func (f *File) readBlock(dst []byte, i int64) (hole bool, err error) {
	blen := f.g.blockLen(i, f.size)
	rp := f.dir.getRun(f.g.blockSize)
	defer f.dir.putRun(rp)
	slot := (*rp)[:blen+overhead]
	if err := f.readFull(slot, f.g.blockOff(i)); err != nil {
		return false, err
	}
	hole, err = f.openBlock(dst[:blen], slot, i)
	clear(dst[blen:])
	return hole, err
}

// readRange fills p with plaintext from off; off+len(p) <= size.
func (f *File) readRange(p []byte, off int64) (int, error) {
	var rp *[]byte
	var scratch *[]byte
	defer func() {
		if rp != nil {
			f.dir.putRun(rp)
		}
		if scratch != nil {
			f.dir.putBlock(scratch)
		}
	}()
	last, _ := f.g.blockOf(off + int64(len(p)) - 1)
	n := 0
	for n < len(p) {
		i, within := f.g.blockOf(off + int64(n))
		if f.wb.holds(i) {
			n += copy(p[n:], f.wb.buf[within:f.g.blockLen(i, f.size)])
			continue
		}
		j := i + 1 // blocks i..j-1 are read with one syscall
		for j <= last && j-i < runBlocks && !f.wb.holds(j) {
			j++
		}
		if rp == nil {
			rp = f.dir.getRun(f.g.blockSize)
		}
		start := f.g.blockOff(i)
		raw := (*rp)[:f.g.blockOff(j-1)+f.g.blockLen(j-1, f.size)+overhead-start]
		if err := f.readFull(raw, start); err != nil {
			return n, f.ioErr(err)
		}
		for b := i; b < j; b++ {
			blen := f.g.blockLen(b, f.size)
			so := (b - i) * f.g.slotSize()
			slot := raw[so : so+blen+overhead]
			_, within := f.g.blockOf(off + int64(n))
			want := min(blen-within, int64(len(p)-n))
			if within == 0 && want == blen {
				if _, err := f.openBlock(p[n:n+int(blen)], slot, b); err != nil {
					return n, f.ioErr(err)
				}
			} else {
				if scratch == nil {
					scratch = f.dir.getBlock(f.g.blockSize)
				}
				if _, err := f.openBlock((*scratch)[:blen], slot, b); err != nil {
					return n, f.ioErr(err)
				}
				copy(p[n:], (*scratch)[within:within+want])
			}
			n += int(want)
		}
	}
	return n, nil
}

// openBlock opens the sealed slot of block i into dst (len(dst) is the
// block's plaintext length). An all-zero slot is a hole and reads as
// zeros; a sealed block is never all zeros (its nonce and tag are random).
func (f *File) openBlock(dst, slot []byte, i int64) (hole bool, err error) {
	if isZero(slot[:12]) && isZero(slot) {
		clear(dst)
		return true, nil
	}
	out, err := f.s.Open(dst[:0:len(dst)], slot, uint64(i))
	if err != nil || len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
		clear(dst)
		return false, fmt.Errorf("block %d: %w", i, cipher.ErrAuth)
	}
	return false, nil
}

// readFull reads len(b) bytes at off; bytes past the end of the file read
// as zeros (trailing holes are not always materialised).
func (f *File) readFull(b []byte, off int64) error {
	n, err := f.f.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		clear(b[n:])
		return nil
	}
	return err
}
