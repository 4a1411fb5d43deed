//go:build !cachelanded

package fs

// Temporary: until cache.Blocks lands, the block cache lives in memory
// (never on disk). Replaced by local_blocks.go.

import "sync"

func openBlocks(opts Options, dir string, secret []byte, client bool) (blockCache, func() error, error) {
	return &memBlocks{m: map[blockID][]byte{}, s: map[blockID][]byte{}}, func() error { return nil }, nil
}

type memBlocks struct {
	mu   sync.Mutex
	m, s map[blockID][]byte
}

func (b *memBlocks) GetPlain(id blockID) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.m[id]
	return d, ok
}
func (b *memBlocks) PutPlain(id blockID, p []byte) {
	b.mu.Lock()
	if len(b.m) > 256 {
		clear(b.m)
	}
	b.m[id] = p
	b.mu.Unlock()
}
func (b *memBlocks) GetStored(id blockID) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.s[id]
	return d, ok
}
func (b *memBlocks) PutStored(id blockID, p []byte) {
	b.mu.Lock()
	if len(b.s) > 256 {
		clear(b.s)
	}
	b.s[id] = p
	b.mu.Unlock()
}
func (b *memBlocks) DropObject(o [32]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.m {
		if id.object == o {
			delete(b.m, id)
		}
	}
	for id := range b.s {
		if id.object == o {
			delete(b.s, id)
		}
	}
}
