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
	"time"

	"github.com/cofferfs/coffer/cache"
	"github.com/cofferfs/coffer/cache/journal"
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
	// Commit commits buffered data, size and meta (no fsync) and returns
	// the Version the journal records; the next change makes a newer one.
	Commit() (staging.Version, error)
	// Version is the committed state (for a reopened file: as found).
	Version() staging.Version
	// Sync commits and fsyncs.
	Sync() error
	Meta() []byte
	Close() error
	// Evict drops [off, end) from the page cache (it stays on disk).
	Evict(off, end int64) error
}

// uploadJournal is the part of cache/journal.Journal the core uses: it
// records a closed file's staging version before close(2) returns, and
// forgets it once the file is stored or no longer needs to be.
type uploadJournal interface {
	Append(e journal.Entry) (journal.ID, error)
	Done(id journal.ID) error
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
	Shrink(n int64) bool
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

// localState is everything the volume keeps on local disk: under the
// cache dir, the upload journal (journal/, whose lock keeps a second
// mount out of the whole cache dir), the staging files (staging/), the
// block cache (blocks/) and the staging files recovery could not upload
// as whole (lost+found/).
type localState struct {
	dir        string
	newStaging func(meta []byte) (stagingFile, error)
	staging    *staging.Dir
	journal    uploadJournal
	recovery   journal.Recovery // what the journal held at open, for Volume.recover
	blocks     blockCache
	// closeJournal runs after the last upload and before the staging
	// directory closes; closeRest closes the staging directory and the
	// block cache (and removes a temporary cache dir).
	closeJournal func() error
	closeRest    func() error
}

// lostFound is the cache dir's subdirectory for staging files that must
// not be uploaded as whole (their journal record is missing, damaged, or
// describes another version): kept, still sealed, for coffer fsck
// --repair.
const lostFound = "lost+found"

// openLocalState opens the upload journal, the staging directory and the
// block cache under the cache directory (a temporary one, removed by
// close, when empty). The journal comes first: its lock is what keeps a
// second mount out of the cache dir.
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
	j, rec, err := journal.Open(filepath.Join(dir, "journal"), secret, journal.Options{SyncDelay: journalSyncDelay(opts)})
	if errors.Is(err, journal.ErrLocked) {
		return nil, fmt.Errorf("cache directory %s is in use by another coffer mount (%w): stop that mount, or give this one its own --cache-dir", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("upload journal: %w", err)
	}
	sd, err := staging.OpenDir(filepath.Join(dir, "staging"), secret)
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	blocks, closeBlocks, err := openBlocks(opts, filepath.Join(dir, "blocks"), secret, client, opts.Logger)
	if err != nil {
		sd.Close()
		j.Close()
		return nil, err
	}
	// On a full disk the cache gives way: staging holds what is not yet
	// stored, the cache only copies of what is.
	sd.SetReclaim(blocks.Shrink)
	return &localState{
		dir:          dir,
		newStaging:   func(meta []byte) (stagingFile, error) { return sd.Create(meta) },
		staging:      sd,
		journal:      j,
		recovery:     rec,
		blocks:       blocks,
		closeJournal: j.Close,
		closeRest: func() error {
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

// journalSyncDelay is how long a journal record waits for its batch
// fsync: a second more than the writeback delay, so that a small file
// uploaded on time is never fsynced here (journal.DefaultSyncDelay's
// reasoning); the window in which the loss of the machine, not of the
// process, can lose a closed file.
func journalSyncDelay(opts Options) time.Duration {
	if opts.WritebackDelay > 0 {
		return opts.WritebackDelay + time.Second
	}
	return time.Second
}

// close closes the journal, then the rest.
func (l *localState) close() error {
	return errors.Join(l.closeJournal(), l.closeRest())
}

// journalBytes is the size of the journal's segments on disk.
func (l *localState) journalBytes() int64 {
	ents, err := os.ReadDir(filepath.Join(l.dir, "journal"))
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && filepath.Ext(e.Name()) == ".jnl" {
			n += info.Size()
		}
	}
	return n
}

// openStaging reopens the staging file called name, as a previous run
// left it.
func (l *localState) openStaging(name string) (stagingFile, error) {
	return l.staging.Open(name)
}

// setAside moves the staging file called name (closed) to lost+found,
// still sealed, and returns where it went.
func (l *localState) setAside(name string) (string, error) {
	dst := filepath.Join(l.dir, lostFound)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", err
	}
	to := filepath.Join(dst, name)
	if err := os.Rename(filepath.Join(l.dir, "staging", name), to); err != nil {
		return "", err
	}
	return to, nil
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
