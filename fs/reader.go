package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Read-ahead geometry: a sequential reader is served whole segments of
// segChunks chunks, up to a window of segments ahead of its position, the
// window doubling (to maxWindow) while the reads stay sequential. Once
// half the window is consumed, the missing rest is fetched as one run:
// a single ranged GET (up to maxWindow segments) read progressively, each
// segment published as soon as it authenticated. A GET per 64 KiB chunk,
// or even per 2 MiB segment, costs more per byte on the store than one
// long stream (measured on versitygw: 2 MiB GETs x 8 reach about half of
// one GetObject's rate).
const (
	segChunks = 32 // 2 MiB of plaintext: the unit read-ahead delivers and drops
	maxWindow = 16 // at most 32 MiB ahead per file
)

// reader reads one stored object version. Every chunk is authenticated
// before any of its bytes is returned; every GET carries If-Match.
type reader struct {
	v      *Volume
	n      *node
	object [32]byte

	mu     sync.Mutex
	next   int64 // offset after the last read: sequential detection
	window int
	segs   map[int64]*segment // fetched or in flight, by segment index
}

// segment is one unit of read-ahead. Its chunks that came from the
// store were decrypted into buf, a buffer of the volume's pool (nil when
// the chunks live in the memory cache instead). buf goes back to the
// pool when the last reference is released: references are held by the
// reader's map, by the fetch filling it, and by every read using its
// chunks (a read given to FUSE without a copy holds it until the reply is
// written). A reader dropped with segments in its map leaves their
// buffers to the garbage collector, never to the pool.
type segment struct {
	done   chan struct{}
	chunks [][]byte // plaintext, once done is closed without err
	err    error
	buf    []byte
	refs   atomic.Int32
}

// newSegment returns a segment referenced by the reader's map and by its
// fetch; pooled says its chunks go to a buffer of the pool.
func (v *Volume) newSegment(pooled bool) *segment {
	seg := &segment{done: make(chan struct{})}
	seg.refs.Store(2)
	if pooled {
		seg.buf = v.getPlain()
	}
	return seg
}

// release drops one reference; the last one returns buf to the pool.
func (seg *segment) release(v *Volume) {
	if n := seg.refs.Add(-1); n == 0 && seg.buf != nil {
		v.putPlain(seg.buf)
	} else if n < 0 {
		panic("fs: segment released more often than referenced")
	}
}

func (v *Volume) newReader(n *node) *reader {
	return &reader{v: v, n: n, object: v.lay.blockObject(n.key, n.etag, n.okey), segs: map[int64]*segment{}}
}

func (r *reader) chunkCount() int64 {
	if r.v.client {
		return cipher.ChunkCount(r.n.attr.Size)
	}
	return (r.n.attr.Size + cipher.ChunkSize - 1) / cipher.ChunkSize
}

// ReadAt reads plaintext at off.
func (r *reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	rv, err := r.view(ctx, int64(len(p)), off)
	if err != nil {
		return 0, err
	}
	n := rv.copyTo(p)
	rv.Release()
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// view returns the plaintext of up to n bytes at off (fewer at the end
// of the file) without copying it.
func (r *reader) view(ctx context.Context, n, off int64) (*ReadView, error) {
	size := r.n.attr.Size
	if off >= size || n <= 0 {
		return &ReadView{}, nil
	}
	want := min(n, size-off)
	first, last := off/cipher.ChunkSize, (off+want-1)/cipher.ChunkSize

	// The kernel's read-ahead sends several reads at once, so they may
	// arrive slightly out of order: near the last end counts as
	// sequential. A read at 0 that leaves more of the file starts a
	// sequential run: the kernel reads a file from its start as one.
	r.mu.Lock()
	const slack = 1 << 20
	sequential := off > 0 && off >= r.next-slack && off <= r.next+slack || off == 0 && want < size
	if sequential {
		r.window = min(max(r.window*2, 1), maxWindow)
		r.next = max(r.next, off+want)
	} else {
		r.window = 0
		r.next = off + want
	}
	window := r.window
	r.mu.Unlock()

	rv := &ReadView{v: r.v}
	var chunks [][]byte
	var err error
	if window > 0 || r.hasSegments(first, last) {
		chunks, rv.segs, err = r.readAhead(ctx, first, last, window)
	} else {
		chunks, err = r.fetch(ctx, first, last, allCaches, nil)
	}
	if err != nil {
		return nil, err
	}
	pos := off
	for i, c := range chunks {
		within := pos - (first+int64(i))*cipher.ChunkSize
		if within >= int64(len(c)) || pos >= off+want {
			break
		}
		b := c[within:min(int64(len(c)), within+off+want-pos)]
		rv.add(b)
		pos += int64(len(b))
	}
	return rv, nil
}

// ReadView is the plaintext a read returned, as slices of the file's
// buffers: valid until Release, and never to be modified.
type ReadView struct {
	Slices [][]byte
	v      *Volume
	segs   []*segment // references held until Release
	done   atomic.Bool
}

// Len is the number of bytes in the view.
func (rv *ReadView) Len() int {
	n := 0
	for _, b := range rv.Slices {
		n += len(b)
	}
	return n
}

// Release gives the view's buffers back; the slices must not be used
// after it. Calling it again does nothing.
func (rv *ReadView) Release() {
	if rv.done.Swap(true) {
		return
	}
	rv.Slices = nil
	for _, seg := range rv.segs {
		seg.release(rv.v)
	}
	rv.segs = nil
}

// add appends b, merged with the last slice when it continues it in
// memory (consecutive chunks of one segment buffer).
func (rv *ReadView) add(b []byte) {
	if len(b) == 0 {
		return
	}
	if k := len(rv.Slices) - 1; k >= 0 {
		last := rv.Slices[k]
		if cap(last) > len(last) && &last[:len(last)+1][len(last)] == &b[0] {
			rv.Slices[k] = last[:len(last)+len(b)]
			return
		}
	}
	rv.Slices = append(rv.Slices, b)
}

// copyTo copies the view into p (which it may already be) and returns
// the number of bytes copied.
func (rv *ReadView) copyTo(p []byte) int {
	n := 0
	for _, b := range rv.Slices {
		n += copy(p[n:], b)
	}
	return n
}

func (r *reader) hasSegments(first, last int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := first / segChunks; s <= last/segChunks; s++ {
		if r.segs[s] == nil {
			return false
		}
	}
	return true
}

// readAhead serves chunks first..last from segments, starting the
// segments of the window ahead and dropping the ones behind. It returns
// the segments the chunks belong to, each with a reference the caller
// must release.
func (r *reader) readAhead(ctx context.Context, first, last int64, window int) ([][]byte, []*segment, error) {
	v := r.v
	lastSeg := (r.chunkCount() - 1) / segChunks
	cur, needed := first/segChunks, last/segChunks
	end := min(needed+int64(window), lastSeg)
	pol := r.streamCaches()
	r.mu.Lock()
	for s, seg := range r.segs {
		if s < cur {
			delete(r.segs, s)
			seg.release(v)
		}
	}
	// The first missing segment of the window: everything before it is
	// fetched or in flight.
	m := cur
	for m <= end && r.segs[m] != nil {
		m++
	}
	// Refill only once half the window is consumed, so that a streamed
	// file is fetched in runs of about half a window per GET.
	if m <= end && (m <= needed || 2*(m-needed-1) < int64(window)) {
		var run []*segment
		for s := m; s <= end && r.segs[s] == nil && len(run) < maxWindow; s++ {
			seg := v.newSegment(!pol.mem)
			r.segs[s] = seg
			run = append(run, seg)
		}
		if pol.cached() && r.inCache(m*segChunks) {
			// Read before: each segment from the caches (and the store
			// for what they lost).
			for i, seg := range run {
				v.bg.Add(1)
				go r.fill(m+int64(i), seg, pol)
			}
		} else {
			v.bg.Add(1)
			go r.stream(m, run, pol)
		}
	}
	need := make([]*segment, 0, needed-cur+1)
	for s := cur; s <= needed; s++ {
		seg := r.segs[s]
		if seg == nil { // a hole left by a failed segment
			seg = v.newSegment(!pol.mem)
			r.segs[s] = seg
			v.bg.Add(1)
			go r.fill(s, seg, pol)
		}
		seg.refs.Add(1) // the map holds one: never back from 0
		need = append(need, seg)
	}
	r.mu.Unlock()
	fail := func(err error) ([][]byte, []*segment, error) {
		for _, seg := range need {
			seg.release(v)
		}
		return nil, nil, err
	}
	var out [][]byte
	for i, seg := range need {
		select {
		case <-seg.done:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		if seg.err != nil {
			r.mu.Lock()
			if r.segs[cur+int64(i)] == seg {
				delete(r.segs, cur+int64(i))
				seg.release(v)
			}
			r.mu.Unlock()
			return fail(seg.err)
		}
		base := (cur + int64(i)) * segChunks
		for c := max(first, base); c <= min(last, base+int64(len(seg.chunks))-1); c++ {
			out = append(out, seg.chunks[c-base])
		}
	}
	return out, need, nil
}

// inCache reports whether chunk c is in the block cache.
func (r *reader) inCache(c int64) bool {
	id := blockID{Object: r.object, Index: c}
	if _, ok := r.v.local.blocks.GetPlain(id); ok {
		return true
	}
	_, ok := r.v.local.blocks.GetStored(id)
	return ok
}

// fill fetches segment s through the caches.
func (r *reader) fill(s int64, seg *segment, pol cachePolicy) {
	defer r.v.bg.Done()
	first := s * segChunks
	last := min(first+segChunks, r.chunkCount()) - 1
	seg.chunks, seg.err = r.fetch(r.v.ctx, first, last, pol, seg.buf)
	close(seg.done)
	seg.release(r.v)
}

// stream fetches the consecutive segments run (the first is s0) with
// one ranged GET, publishing each segment as soon as its bytes arrived
// and authenticated, so the reader consumes the first while the rest
// stream in.
func (r *reader) stream(s0 int64, run []*segment, pol cachePolicy) {
	defer r.v.bg.Done()
	v := r.v
	size := r.n.attr.Size
	first := s0 * segChunks
	last := min((s0+int64(len(run)))*segChunks, r.chunkCount()) - 1
	off, _ := v.lay.chunkRange(first, size)
	lo, ln := v.lay.chunkRange(last, size)
	body, err := r.open(v.ctx, off, lo+ln-off)
	i := 0
	if err == nil {
		defer body.Close()
		for ; i < len(run); i++ {
			sf := first + int64(i)*segChunks
			sl := min(sf+segChunks-1, last)
			chunks := make([][]byte, sl-sf+1)
			if err = r.read(body, sf, sl, chunks, pol, run[i].buf); err != nil {
				break
			}
			run[i].chunks = chunks
			close(run[i].done)
			run[i].release(v)
		}
	}
	for ; i < len(run); i++ {
		run[i].err = err
		close(run[i].done)
		run[i].release(v)
	}
}

// cachePolicy says which caches the chunks a GET fetched go to.
type cachePolicy struct{ disk, mem bool }

var allCaches = cachePolicy{disk: true, mem: true}

// cached reports a policy that keeps chunks in some cache.
func (p cachePolicy) cached() bool { return p.disk || p.mem }

// streamCaches is where read-ahead puts what it fetches. Streaming a
// large file through a cache would mostly flush it (each chunk written,
// then evicted unread) and cost the writes, for a file that is most
// likely read once: on a cold sequential read of a 256 MiB file through
// the default 1 GiB disk cache the mount spent 2.2-2.7x the CPU of the
// same read around it (versitygw, 2 cores). So read-ahead keeps a file in
// the disk cache only up to a sixteenth of its size (64 MiB by default),
// in the memory cache up to a quarter of its size; larger files are read
// ahead around the caches, into reused buffers. Random reads cache
// whatever they fetch.
func (r *reader) streamCaches() cachePolicy {
	size := r.n.attr.Size
	return cachePolicy{disk: size <= r.v.opts.CacheSize/16, mem: size <= r.v.opts.MemCacheSize/4}
}

// fetch returns the plaintext of chunks first..last: from the block
// cache where present, the rest with one ranged GET per run of missing
// chunks, decrypted into plain (see read).
func (r *reader) fetch(ctx context.Context, first, last int64, pol cachePolicy, plain []byte) ([][]byte, error) {
	out := make([][]byte, last-first+1)
	blocks := r.v.local.blocks
	missing := -1
	for c := first; c <= last+1; c++ {
		if c <= last {
			id := blockID{Object: r.object, Index: c}
			if b, ok := blocks.GetPlain(id); ok {
				out[c-first] = b
			} else if s, ok := blocks.GetStored(id); ok {
				plain, err := r.v.lay.openChunk(r.n.okey, nil, s, c, r.n.attr.Size)
				if err == nil {
					out[c-first] = plain
					blocks.PutPlain(id, plain)
				}
			}
			if out[c-first] == nil {
				if missing < 0 {
					missing = int(c)
				}
				continue
			}
		}
		if missing >= 0 {
			var dst []byte
			if plain != nil {
				dst = plain[(int64(missing)-first)*cipher.ChunkSize:]
			}
			if err := r.get(ctx, int64(missing), c-1, out[int64(missing)-first:], pol, dst); err != nil {
				return nil, err
			}
			missing = -1
		}
	}
	return out, nil
}

// get fetches chunks first..last with one ranged GET into out (see read).
func (r *reader) get(ctx context.Context, first, last int64, out [][]byte, pol cachePolicy, plain []byte) error {
	size := r.n.attr.Size
	off, _ := r.v.lay.chunkRange(first, size)
	lo, ln := r.v.lay.chunkRange(last, size)
	body, err := r.open(ctx, off, lo+ln-off)
	if err != nil {
		return err
	}
	defer body.Close()
	return r.read(body, first, last, out, pol, plain)
}

// open starts a ranged GET of the version's stored bytes (If-Match on
// its ETag), holding a slot of getSem until the body is closed.
func (r *reader) open(ctx context.Context, off, length int64) (io.ReadCloser, error) {
	v := r.v
	select {
	case v.getSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	body, _, err := v.store.Get(ctx, r.n.key, blobstore.GetOptions{Offset: off, Length: length, IfMatch: r.n.etag})
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		<-v.getSem
		v.meta.invalidate(r.n.path)
		v.logEvent(slog.LevelWarn, "the file changed in the store while open: reopen it", r.n.path, r.n.key)
		return nil, withErrno(syscall.ESTALE, err)
	}
	if err != nil {
		<-v.getSem
		return nil, err
	}
	return &slotBody{ReadCloser: body, release: func() { <-v.getSem }}, nil
}

// slotBody releases its getSem slot when closed.
type slotBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// read reads the stored bytes of chunks first..last from body,
// authenticates them into out and puts them in the caches pol names.
// Each chunk is opened as soon as its bytes arrived, while they are in
// the CPU's cache. Chunks kept out of the memory cache are decrypted
// into plain (chunk first at 0, each at a multiple of the chunk size),
// or into one new buffer when plain is nil; without the disk cache the
// stored bytes' buffer is reused.
func (r *reader) read(body io.Reader, first, last int64, out [][]byte, pol cachePolicy, plain []byte) error {
	v := r.v
	size := r.n.attr.Size
	off, _ := v.lay.chunkRange(first, size)
	lo, ln := v.lay.chunkRange(last, size)
	length := lo + ln - off
	var buf []byte
	if pol.disk {
		buf = make([]byte, length) // the disk cache keeps slices of it
	} else {
		buf = v.getBuffer(length)
		defer v.putBuffer(buf)
	}
	if !pol.mem && plain == nil {
		// One buffer for all: the memory cache never holds these, so
		// no small chunk can keep the whole buffer alive there.
		plain = make([]byte, (last+1-first)*cipher.ChunkSize)
	}
	got := int64(0) // bytes of buf read
	for c := first; c <= last; c++ {
		co, cn := v.lay.chunkRange(c, size)
		end := co - off + cn
		for got < end {
			// As much as has arrived (one read of the socket), so that
			// a fast stream costs few system calls.
			n, err := body.Read(buf[got:])
			got += int64(n)
			if errors.Is(err, io.EOF) && got < length {
				return v.authFailed(r.n.path, r.n.key, fmt.Errorf("%w: object shorter than its size", cipher.ErrAuth))
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
		stored := buf[co-off : end : end]
		var dst []byte
		if plain != nil {
			at := (c - first) * cipher.ChunkSize
			dst = plain[at:at:min(at+cipher.ChunkSize, int64(len(plain)))]
		}
		p, err := v.lay.openChunk(r.n.okey, dst, stored, c, size)
		if err != nil {
			return v.authFailed(r.n.path, r.n.key, err)
		}
		if dst != nil {
			// The same bytes, with plain's capacity beyond them: a
			// view merges consecutive chunks into one slice.
			at := (c - first) * cipher.ChunkSize
			p = plain[at : at+int64(len(p))]
		}
		id := blockID{Object: r.object, Index: c}
		if pol.disk {
			v.local.blocks.PutStored(id, stored)
		}
		if pol.mem {
			v.local.blocks.PutPlain(id, p)
		}
		out[c-first] = p
	}
	return nil
}

// getBuffer returns a buffer of n bytes for the stored bytes of a GET:
// a reused one when n fits a read-ahead segment.
func (v *Volume) getBuffer(n int64) []byte {
	if n <= segmentBufSize {
		if b, ok := v.bufs.Get().(*[]byte); ok {
			return (*b)[:n]
		}
		b := make([]byte, segmentBufSize)
		return b[:n]
	}
	return make([]byte, n)
}

// putBuffer hands a buffer of getBuffer back for reuse.
func (v *Volume) putBuffer(b []byte) {
	if cap(b) == segmentBufSize {
		b = b[:cap(b)]
		v.bufs.Put(&b)
	}
}

// getPlain returns a buffer for the plaintext of a whole segment.
func (v *Volume) getPlain() []byte {
	if b, ok := v.plains.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, segChunks*cipher.ChunkSize)
}

// putPlain hands a buffer of getPlain back for reuse.
func (v *Volume) putPlain(b []byte) { v.plains.Put(&b) }

// segmentBufSize holds the stored bytes of a whole read-ahead segment
// (header included).
const segmentBufSize = cipher.HeaderSize + segChunks*(cipher.ChunkSize+cipher.ChunkOverhead)

// copyTo copies the first size bytes of the version into a staging file.
func (r *reader) copyTo(ctx context.Context, st stagingFile, size int64) error {
	const step = segChunks * cipher.ChunkSize
	buf := make([]byte, step)
	for off := int64(0); off < size; off += step {
		n, err := r.ReadAt(ctx, buf[:min(step, size-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := st.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	return nil
}
