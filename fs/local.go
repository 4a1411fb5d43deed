package fs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cofferfs/coffer/cache"
	"github.com/cofferfs/coffer/cache/staging"
)

// stagingFile is the part of cache/staging.File the core uses: a sealed
// local file holding the plaintext of a file being written.
type stagingFile interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Size() int64
	SetMeta(meta []byte) error
	NewReader() io.Reader
	Remove() error
}

// blockID names one chunk of one object version in the block cache.
type blockID = cache.BlockID

// blockCache is the part of cache.Blocks the core uses.
type blockCache interface {
	GetPlain(id blockID) ([]byte, bool)
	PutPlain(id blockID, plain []byte)
	GetStored(id blockID) ([]byte, bool)
	PutStored(id blockID, data []byte)
	DropObject(object [32]byte)
}

// dropCached drops the cached chunks of stored version n, which was
// deleted or replaced. The cache names a version by its file ID in
// client mode (a node listed with failed metadata has none, and nothing
// cached) and by its key and ETag in none mode.
func (v *Volume) dropCached(n *node) {
	if n.key == "" || (v.client && n.okey == nil) {
		return
	}
	v.local.blocks.DropObject(v.lay.blockObject(n.key, n.etag, n.okey))
}

// localState is everything the volume keeps on local disk.
type localState struct {
	newStaging func(meta []byte) (stagingFile, error)
	blocks     blockCache
	close      func() error
}

// openLocalState opens the staging directory and the block cache under
// the cache directory (a temporary one, removed by close, when empty).
func openLocalState(opts Options, secret []byte, client bool) (*localState, error) {
	dir := opts.CacheDir
	tmp := false
	if dir == "" {
		d, err := os.MkdirTemp("", "coffer-cache-")
		if err != nil {
			return nil, fmt.Errorf("cache directory: %w", err)
		}
		dir, tmp = d, true
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	sd, err := staging.OpenDir(filepath.Join(dir, "staging"), secret)
	if err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	blocks, closeBlocks, err := openBlocks(opts, filepath.Join(dir, "blocks"), secret, client, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &localState{
		newStaging: func(meta []byte) (stagingFile, error) { return sd.Create(meta) },
		blocks:     blocks,
		close: func() error {
			err := errors.Join(sd.Close(), closeBlocks())
			if tmp {
				if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
					err = rerr
				}
			}
			return err
		},
	}, nil
}

func randomSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

const localKeyFile = "local.key"

// loadOrCreateSecret reads dir/local.key, creating it (0600) when missing.
func loadOrCreateSecret(dir string) ([]byte, error) {
	p := filepath.Join(dir, localKeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("local key file %s: %d bytes, want 32 (remove it and the cache dir's contents to start afresh)", p, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local key file: %w", err)
	}
	b, err = randomSecret()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("local key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("local key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("local key file: %w", err)
	}
	return b, nil
}

// openBlocks opens the block cache: plaintext chunks in memory, chunks on
// disk as fetched (client mode: sealed under their object's key) or
// sealed with the local secret (other modes).
func openBlocks(opts Options, dir string, secret []byte, client bool, log *slog.Logger) (blockCache, func() error, error) {
	co := cache.Options{Dir: dir, MemBytes: opts.MemCacheSize, DiskBytes: opts.CacheSize, Logger: log}
	if !client {
		co.SealSecret = secret
	}
	b, err := cache.New(co)
	if err != nil {
		return nil, nil, fmt.Errorf("block cache: %w", err)
	}
	return b, b.Close, nil
}
