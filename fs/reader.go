package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Read-ahead geometry: a sequential reader fetches whole segments of
// segChunks chunks, up to maxWindow segments ahead of its position, the
// window doubling while the reads stay sequential.
const (
	segChunks = 32 // 2 MiB of plaintext per ranged GET
	maxWindow = 8  // at most 16 MiB ahead per file
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

type segment struct {
	done   chan struct{}
	chunks [][]byte // plaintext
	err    error
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
	size := r.n.attr.Size
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	first, last := off/cipher.ChunkSize, (off+want-1)/cipher.ChunkSize

	// The kernel's read-ahead sends several reads at once, so they may
	// arrive slightly out of order: near the last end counts as
	// sequential.
	r.mu.Lock()
	const slack = 1 << 20
	sequential := off > 0 && off >= r.next-slack && off <= r.next+slack
	if sequential {
		r.window = min(max(r.window*2, 1), maxWindow)
		r.next = max(r.next, off+want)
	} else {
		r.window = 0
		r.next = off + want
	}
	window := r.window
	r.mu.Unlock()

	var chunks [][]byte
	var err error
	if window > 0 || r.hasSegments(first, last) {
		chunks, err = r.readAhead(ctx, first, last, window)
	} else {
		chunks, err = r.fetch(ctx, first, last)
	}
	if err != nil {
		return 0, err
	}
	n := 0
	pos := off
	for i, c := range chunks {
		start := first + int64(i)
		within := pos - start*cipher.ChunkSize
		if within >= int64(len(c)) {
			break
		}
		k := copy(p[n:want], c[within:])
		n += k
		pos += int64(k)
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
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
// segments of the window ahead and dropping the ones behind.
func (r *reader) readAhead(ctx context.Context, first, last int64, window int) ([][]byte, error) {
	lastSeg := (r.chunkCount() - 1) / segChunks
	cur := first / segChunks
	r.mu.Lock()
	for s := range r.segs {
		if s < cur {
			delete(r.segs, s)
		}
	}
	var need []*segment
	for s := cur; s <= min(last/segChunks+int64(window), lastSeg); s++ {
		seg := r.segs[s]
		if seg == nil {
			seg = &segment{done: make(chan struct{})}
			r.segs[s] = seg
			r.v.bg.Add(1)
			go r.fill(s, seg)
		}
		if s <= last/segChunks {
			need = append(need, seg)
		}
	}
	r.mu.Unlock()
	var out [][]byte
	for i, seg := range need {
		select {
		case <-seg.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if seg.err != nil {
			r.mu.Lock()
			if r.segs[cur+int64(i)] == seg {
				delete(r.segs, cur+int64(i))
			}
			r.mu.Unlock()
			return nil, seg.err
		}
		base := (cur + int64(i)) * segChunks
		for c := max(first, base); c <= min(last, base+int64(len(seg.chunks))-1); c++ {
			out = append(out, seg.chunks[c-base])
		}
	}
	return out, nil
}

func (r *reader) fill(s int64, seg *segment) {
	defer r.v.bg.Done()
	first := s * segChunks
	last := min(first+segChunks, r.chunkCount()) - 1
	seg.chunks, seg.err = r.fetch(r.v.ctx, first, last)
	close(seg.done)
}

// fetch returns the plaintext of chunks first..last: from the block
// cache where present, the rest with one ranged GET per run of missing
// chunks.
func (r *reader) fetch(ctx context.Context, first, last int64) ([][]byte, error) {
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
			if err := r.get(ctx, int64(missing), c-1, out[int64(missing)-first:]); err != nil {
				return nil, err
			}
			missing = -1
		}
	}
	return out, nil
}

// get fetches chunks first..last with one ranged GET into out.
func (r *reader) get(ctx context.Context, first, last int64, out [][]byte) error {
	v := r.v
	size := r.n.attr.Size
	off, _ := v.lay.chunkRange(first, size)
	lo, ln := v.lay.chunkRange(last, size)
	length := lo + ln - off
	select {
	case v.getSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-v.getSem }()
	body, _, err := v.store.Get(ctx, r.n.key, blobstore.GetOptions{Offset: off, Length: length, IfMatch: r.n.etag})
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		v.meta.invalidate(r.n.path)
		v.logEvent(slog.LevelWarn, "the file changed in the store while open: reopen it", r.n.path, r.n.key)
		return withErrno(syscall.ESTALE, err)
	}
	if err != nil {
		return err
	}
	buf := make([]byte, length)
	_, err = io.ReadFull(body, buf)
	body.Close()
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return v.authFailed(r.n.path, r.n.key, fmt.Errorf("%w: object shorter than its size", cipher.ErrAuth))
		}
		return err
	}
	for c := first; c <= last; c++ {
		co, cn := v.lay.chunkRange(c, size)
		stored := buf[co-off : co-off+cn : co-off+cn]
		plain, err := v.lay.openChunk(r.n.okey, nil, stored, c, size)
		if err != nil {
			return v.authFailed(r.n.path, r.n.key, err)
		}
		id := blockID{Object: r.object, Index: c}
		v.local.blocks.PutStored(id, stored)
		v.local.blocks.PutPlain(id, plain)
		out[c-first] = plain
	}
	return nil
}

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
