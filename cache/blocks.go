package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/cofferfs/coffer/cipher"
)

// Options configures a Blocks cache.
type Options struct {
	Dir        string // <cache-dir>/blocks; "" = memory only
	MemBytes   int64  // memory bound for plaintext chunks; <= 0 disables the memory layer
	DiskBytes  int64  // disk bound (evicts least recently used chunks); <= 0 disables the disk layer
	SealSecret []byte // nil in client mode (chunks stored as given); else disk entries sealed with a LocalSealer from this secret

	// Logger receives the disk errors the cache carries on after
	// (nil: slog.Default()). Nothing logged holds keys or plaintext.
	Logger *slog.Logger
}

// BlockID names one chunk of one object version.
type BlockID struct {
	Object [32]byte // client mode: the file ID (zero-padded); other modes: HMAC(local secret, key|etag) — never a plaintext name
	Index  int64
}

// Stats counts cache traffic since New.
type Stats struct {
	MemHits, MemMisses   int64
	DiskHits, DiskMisses int64
	DiskDropped          int64 // entries dropped because they failed to read or authenticate
	DiskEntries          int64 // chunks on disk now
	DiskBytes            int64 // their total size on disk
}

// Blocks caches object chunks: plaintext in memory, and on disk either as
// given (client mode) or sealed (other modes). Safe for concurrent use.
type Blocks struct {
	mem     *ristretto.Cache[uint64, *memEntry]
	memSeed maphash.Seed
	memMu   sync.Mutex
	memIdx  map[[32]byte]map[int64]*memEntry // what DropObject must delete

	disk *disk // nil when the disk layer is off

	memHits, memMisses atomic.Int64
}

type memEntry struct {
	id   BlockID
	data []byte
}

// New opens a cache. With a Dir and DiskBytes > 0 it creates the
// directory (0700) or rebuilds its index from the chunks already there.
func New(opts Options) (*Blocks, error) {
	if opts.SealSecret != nil && len(opts.SealSecret) == 0 {
		return nil, errors.New("cache: empty seal secret")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Blocks{memSeed: maphash.MakeSeed(), memIdx: make(map[[32]byte]map[int64]*memEntry)}
	if opts.MemBytes > 0 {
		counters := max(1000, 10*opts.MemBytes/cipher.ChunkSize)
		mem, err := ristretto.NewCache(&ristretto.Config[uint64, *memEntry]{
			NumCounters: counters,
			MaxCost:     opts.MemBytes,
			BufferItems: 64,
			KeyToHash:   func(k uint64) (uint64, uint64) { return k, 0 },
			OnExit:      b.memExit,
		})
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		b.mem = mem
	}
	if opts.Dir != "" && opts.DiskBytes > 0 {
		d, err := openDisk(opts.Dir, opts.DiskBytes, opts.SealSecret, log)
		if err != nil {
			if b.mem != nil {
				b.mem.Close()
			}
			return nil, err
		}
		b.disk = d
	}
	return b, nil
}

func (b *Blocks) memKey(id BlockID) uint64 { return maphash.Comparable(b.memSeed, id) }

// GetPlain returns the plaintext of a chunk from memory. Callers must not
// modify the returned slice.
func (b *Blocks) GetPlain(id BlockID) ([]byte, bool) {
	if b.mem == nil {
		return nil, false
	}
	e, ok := b.mem.Get(b.memKey(id))
	// Keys are 64-bit hashes: a colliding entry is a miss, never wrong bytes.
	if !ok || e.id != id {
		b.memMisses.Add(1)
		return nil, false
	}
	b.memHits.Add(1)
	return e.data, true
}

// PutPlain keeps a chunk's plaintext in memory (never on disk). The cache
// takes plain over: the caller must not modify it afterwards (a copy per
// chunk would cost as much as decrypting it). Admission is asynchronous
// and may be refused by the cache's policy.
func (b *Blocks) PutPlain(id BlockID, plain []byte) {
	if b.mem == nil {
		return
	}
	if plain == nil {
		plain = []byte{}
	}
	e := &memEntry{id: id, data: plain}
	b.memMu.Lock()
	byIndex := b.memIdx[id.Object]
	if byIndex == nil {
		byIndex = make(map[int64]*memEntry)
		b.memIdx[id.Object] = byIndex
	}
	byIndex[id.Index] = e
	b.memMu.Unlock()
	// Set calls memExit synchronously for a replaced entry: memMu must be free.
	if !b.mem.Set(b.memKey(id), e, int64(len(e.data))) {
		b.memExit(e)
	}
}

// memExit forgets an entry ristretto evicted, rejected, replaced or deleted.
func (b *Blocks) memExit(e *memEntry) {
	if e == nil {
		return
	}
	b.memMu.Lock()
	defer b.memMu.Unlock()
	byIndex := b.memIdx[e.id.Object]
	if byIndex[e.id.Index] == e {
		delete(byIndex, e.id.Index)
		if len(byIndex) == 0 {
			delete(b.memIdx, e.id.Object)
		}
	}
}

// GetStored returns a chunk from disk: exactly the bytes given to
// PutStored. Callers must not modify the returned slice. In sealed mode they were authenticated against the local
// seal (an entry that fails is dropped, never returned); in client mode
// they are returned as stored and the caller must authenticate them with
// the object's key, as it does chunks fetched from the store.
func (b *Blocks) GetStored(id BlockID) ([]byte, bool) {
	if b.disk == nil {
		return nil, false
	}
	return b.disk.get(id)
}

// PutStored queues a chunk for the disk and returns without waiting for
// the disk: a background writer stores it, and GetStored finds it
// meanwhile. In sealed mode the chunk is sealed before PutStored returns
// and data is not kept; in client mode data is kept until written (it
// should not be modified: what comes back is authenticated by the caller,
// so a change makes a miss, never wrong bytes). It is best-effort: when
// 32 MiB are queued the chunk is not cached, and disk errors (disk full,
// I/O errors) are logged, never returned. Safe from any goroutine.
func (b *Blocks) PutStored(id BlockID, data []byte) {
	if b.disk != nil {
		b.disk.put(id, data)
	}
}

// DropObject forgets every chunk of an object (overwritten or deleted), in
// memory and on disk.
func (b *Blocks) DropObject(object [32]byte) {
	if b.mem != nil {
		b.memMu.Lock()
		var ids []BlockID
		for idx := range b.memIdx[object] {
			ids = append(ids, BlockID{Object: object, Index: idx})
		}
		delete(b.memIdx, object)
		b.memMu.Unlock()
		for _, id := range ids {
			b.mem.Del(b.memKey(id))
		}
	}
	if b.disk != nil {
		b.disk.dropObject(object)
	}
}

// Shrink gives disk space back when a write that must not lose to a
// cache finds the disk full: it evicts at least n bytes of chunks from
// disk (fewer if the cache holds fewer), never lets the disk layer grow
// past what is left, and returns once the space is free. It reports
// whether it freed anything, so that the writer knows a retry can help.
func (b *Blocks) Shrink(n int64) bool {
	return b.disk != nil && b.disk.shrink(n)
}

// Stats returns traffic counters and the disk layer's size.
func (b *Blocks) Stats() Stats {
	s := Stats{MemHits: b.memHits.Load(), MemMisses: b.memMisses.Load()}
	if b.disk != nil {
		b.disk.stats(&s)
	}
	return s
}

// wait applies pending memory admissions (ristretto's Set is
// asynchronous) and disk writes; tests use it for determinism.
func (b *Blocks) wait() {
	if b.mem != nil {
		b.mem.Wait()
	}
	if b.disk != nil {
		b.disk.flush()
	}
}

// Close stores the chunks still queued for the disk and releases the
// memory layer; chunks on disk stay for the next New. No other method may
// run during or after Close.
func (b *Blocks) Close() error {
	if b.mem != nil {
		b.mem.Close()
	}
	if b.disk != nil {
		b.disk.close()
	}
	return nil
}
