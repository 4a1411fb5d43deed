package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	"golang.org/x/sync/errgroup"
)

// Volume is a mounted (or offline-opened) coffer volume. Its methods are
// safe for concurrent use.
type Volume struct {
	store  blobstore.Store
	opts   Options
	log    *slog.Logger
	lay    layout
	client bool
	meta   *metaCache
	dirs   *dirTimes  // directory times not stored yet (dirtimes.go)
	inodes inodeViews // hard-linked files' latest versions (link.go)
	local  *localState
	mount  time.Time

	// ctx lives as long as the volume: background uploads and read-ahead
	// run under it.
	ctx    context.Context
	cancel context.CancelFunc

	headSem   chan struct{} // bounds the parallel requests (GETs, HEADs) of listings
	rangeKeys int           // indexed names per range of a ranged listing (listBounds)
	getSem    chan struct{} // bounds parallel ranged GETs
	bufs      sync.Pool     // *[]byte of segmentBufSize: stored bytes of read-ahead GETs
	plains    sync.Pool     // *[]byte of a segment's plaintext (reader.go)

	// The upload pipeline (writeback.go).
	upSem chan struct{} // bounds parallel uploads
	pool  *blobstore.PartPool
	clock clock            // arms delayed uploads (time.AfterFunc)
	now   func() time.Time // names conflict copies (time.Now)

	watch *configWatch // client mode: re-reads the config (configwatch.go)
	idx   *dirIndexes  // full-key client mode: directory indexes (dirindex.go)
	ahead *dirAhead    // with idx: read-ahead of listed small files (dirahead.go)

	writer *cipher.WriterSession // a write-only volume's session (writeonly.go)

	// paths serialises, per canonical path (striped by hash), the
	// registration of an opened file in files with the removal or
	// replacement of the object at that path (see lockPaths). Always
	// taken before every other lock, and never while holding a stripe.
	paths [pathStripes]sync.Mutex
	// pathWait, when set (by tests), is called each time lockPaths is
	// about to wait for a stripe another holder has.
	pathWait func()
	// upWait, when set (by tests), is called when a rename is about to
	// wait for an upload, in flight, of the file it replaces.
	upWait func()
	// renameWait, when set (by tests), is called when an upload or a
	// metadata rewrite is about to wait for a directory rename above its
	// path (holdUploadsBelow, waitRenameAbove).
	renameWait func()
	// renameStep, when set (by tests), is called by renameDir once the
	// copies are made, before the sources go.
	renameStep func()
	// renameHeld, when set (by tests), is called by renameDir once it
	// holds the uploads below the directory (holdUploadsBelow).
	renameHeld func()
	// drainWait, when set (by tests), is called each time a directory
	// rename is about to wait for operations active below it (gate.go).
	drainWait func()

	errnos      errnoCounts  // failed operations, for Stats
	journalSize func() int64 // the upload journal's size (nil: no journal); see Stats

	mu        sync.Mutex
	rootAttr  Attr             // "/" once changed (chmod of the mountpoint): kept while mounted
	held      map[string]*node // a writer's directories whose marker waits for Flush (writeonly.go), by path
	files     map[string]*file // open or staged files by current path
	bg        sync.WaitGroup   // background uploads
	closed    bool
	conflicts []Conflict     // conflict copies stored (conflict.go)
	recovered RecoveryReport // what OpenVolume's recovery did (recover.go)
	// renaming holds, by old path, the directories being renamed; each
	// channel closes when its rename ends. Uploads of files below one
	// wait for it (holdUploadsBelow).
	renaming map[string]chan struct{}
	// uploading holds the files whose upload is running (past
	// lockUpload; upMu makes it one per file); uploadEnded (on mu) is
	// signalled when one ends.
	uploading   map[*file]struct{}
	uploadEnded sync.Cond
	// ops holds the operations waiting at or past their gate (gate.go),
	// gates the directory renames in progress by their two paths, and
	// dirRenames (capacity 1) is held by the directory rename running;
	// opEnded (on mu) is signalled when an operation ends or parks.
	ops        map[*op]struct{}
	gates      map[string]*gate
	dirRenames chan struct{}
	opEnded    sync.Cond
}

// OpenVolume authenticates the volume's config with opts.Roots, checks
// the modes against opts, and prepares caches and staging.
func OpenVolume(ctx context.Context, opts Options) (*Volume, error) {
	if opts.Store == nil {
		return nil, errors.New("open volume: no store")
	}
	opts = withDefaults(opts)
	cfg := opts.Config
	if cfg == nil {
		var err error
		if _, cfg, err = readConfig(ctx, opts.Store); err != nil {
			return nil, err
		}
	}
	var kr *cipher.Keyring
	var err error
	if opts.Writer != nil {
		err = checkWriter(cfg, opts)
	} else {
		kr, err = openKeyring(cfg, opts)
	}
	if err != nil {
		return nil, err
	}
	v := &Volume{
		store:      opts.Store,
		opts:       opts,
		log:        opts.Logger,
		meta:       newMetaCache(opts.MetadataTTL),
		dirs:       newDirTimes(),
		mount:      time.Now(),
		headSem:    make(chan struct{}, opts.ListConcurrency),
		rangeKeys:  defaultRangeKeys,
		getSem:     make(chan struct{}, 4*opts.UploadConcurrency),
		upSem:      make(chan struct{}, opts.UploadConcurrency),
		files:      map[string]*file{},
		uploading:  map[*file]struct{}{},
		renaming:   map[string]chan struct{}{},
		ops:        map[*op]struct{}{},
		gates:      map[string]*gate{},
		dirRenames: make(chan struct{}, 1),
		pool:       blobstore.NewPartPool(opts.PartSize, opts.UploadConcurrency+2),
		clock:      opts.clock,
		now:        opts.now,
	}
	v.uploadEnded.L = &v.mu
	v.opEnded.L = &v.mu
	var secret []byte
	if opts.Writer != nil {
		if secret, err = v.startWriterSession(opts); err != nil {
			return nil, err
		}
	} else if cfg.Encryption == EncryptionClient {
		if kr == nil {
			return nil, errors.New("open volume: client mode config returned no keyring")
		}
		v.client = true
		v.lay = &clientLayout{kr: kr, names: kr.Names(), epochs: newEpochCache(opts.Store, kr), writers: opts.Writers}
		v.idx, v.ahead = newDirIndexes(), newDirAhead()
		v.idx.settle = v.settleIndexes
		v.store = recordingStore{Store: v.store, idx: v.idx}
		secret = kr.LocalSecret()
	} else {
		if secret, err = plainLocalSecret(opts); err != nil {
			return nil, err
		}
		v.lay = &plainLayout{secret: secret}
	}
	if v.local, err = openLocalState(opts, secret, v.client); err != nil {
		return nil, err
	}
	v.journalSize = v.local.journalBytes
	v.ctx, v.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if v.writer != nil {
		if err := v.storeEpoch(ctx); err != nil {
			v.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	} else if v.client {
		v.startConfigWatch(cfg, kr)
	}
	if err := v.recover(ctx); err != nil {
		v.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return v, nil
}

// openKeyring authenticates cfg with opts.Roots and checks its modes.
func openKeyring(cfg *cipher.Config, opts Options) (*cipher.Keyring, error) {
	// The claimed mode is not authenticated yet: it only picks the
	// precise error for a mode mismatch (trying root keys on a volume of
	// the other mode would report a wrong key). The authenticated mode is
	// compared again after Open.
	if claimed := cfg.ClaimedEncryption(); claimed == EncryptionClient || claimed == EncryptionNone {
		if err := checkEncryption(claimed, opts.Encryption); err != nil {
			return nil, err
		}
	}
	kr, err := cfg.Open(opts.Roots...)
	switch {
	case errors.Is(err, cipher.ErrNoKeyOpens):
		return nil, fmt.Errorf("wrong key: none of the given keys opens this volume: %w", err)
	case errors.Is(err, cipher.ErrConfigPreAuth):
		return nil, fmt.Errorf("the volume config predates entry authentication, so nothing shows its keyring is the volume's: re-authenticate it with every root key of the volume (coffer key reauth): %w", err)
	case errors.Is(err, cipher.ErrConfigTampered):
		return nil, fmt.Errorf("the volume config failed authentication (changed, or not written by coffer): %w", err)
	case err != nil:
		return nil, fmt.Errorf("opening the volume config: %w", err)
	}
	if err := checkModes(cfg, opts.Encryption, opts.SSE); err != nil {
		return nil, err
	}
	return kr, nil
}

func withDefaults(o Options) Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Encryption == "" {
		o.Encryption = EncryptionClient
	}
	if o.WritebackDelay == 0 {
		o.WritebackDelay = DefaultWritebackDelay
	}
	if o.UploadConcurrency <= 0 {
		o.UploadConcurrency = DefaultUploadConcurrency
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.MetadataTTL == 0 {
		o.MetadataTTL = DefaultMetadataTTL
	}
	if o.ListConcurrency <= 0 {
		o.ListConcurrency = DefaultListConcurrency
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemCacheSize <= 0 {
		o.MemCacheSize = 64 << 20
	}
	if o.RetryBudget <= 0 {
		o.RetryBudget = DefaultRetryBudget
	}
	if o.clock == nil {
		o.clock = realClock{}
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Encryption is the volume's mode ("client" or "none").
func (v *Volume) Encryption() string {
	if v.client {
		return EncryptionClient
	}
	return EncryptionNone
}

// ReadOnly reports a volume opened read-only.
func (v *Volume) ReadOnly() bool { return v.opts.ReadOnly }

// Close flushes, then releases the journal, caches and staging. Files
// still open are uploaded as they are. Files whose upload failed stay
// journalled (with their staging files) for the next mount of this
// cache dir, which uploads them first.
func (v *Volume) Close(ctx context.Context) error {
	v.mu.Lock()
	closed := v.closed
	v.mu.Unlock()
	if closed {
		return nil
	}
	err := v.Flush(ctx, nil)
	if cerr := v.CloseKeepingPending(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// CloseKeepingPending closes the volume without uploading: every file not
// stored stays journalled, with its staging file, for the next mount of
// the cache dir (which uploads it first). It is what Close does after its
// Flush.
func (v *Volume) CloseKeepingPending() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.bg.Wait()
	v.mu.Lock()
	for _, f := range v.files {
		f.mu.Lock()
		if rerr := f.recordLocked(); rerr != nil {
			v.journalFailed(f.path, rerr)
		}
		f.mu.Unlock()
	}
	v.mu.Unlock()
	return v.local.close()
}

// Pending lists the paths of the files with changes not stored yet.
func (v *Volume) Pending() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for p, f := range v.files {
		if !strings.HasPrefix(p, "/") {
			p = "(a hard-linked file without a name here)"
		}
		f.mu.Lock()
		if f.dirty && !f.removed {
			out = append(out, p)
		}
		f.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// checkWritable refuses changes on a read-only volume and to the
// reserved .coffer entry.
func (v *Volume) checkWritable(p string) error {
	if v.opts.ReadOnly {
		return syscall.EROFS
	}
	if p == "/"+reservedName || isUnder(p, "/"+reservedName) {
		return withErrno(syscall.EPERM, errors.New(".coffer is reserved"))
	}
	return v.checkWriterScope(p)
}

// objectKey is the object key of canonical path p (not "/"), with the
// coffer-name of its last segment when hashed.
func (v *Volume) objectKey(p string) (key, long string, err error) {
	key, long, err = layoutKey(v.lay, p)
	if err == nil {
		v.idx.noteKey(p, key)
	}
	return key, long, err
}

// layoutKey is the object key of canonical path p under layout lay.
func layoutKey(lay layout, p string) (key, long string, err error) {
	if p == "/" {
		return "", "", nil
	}
	var b []byte
	parent := "/"
	rest := p[1:]
	for {
		name, tail, more := cut(rest)
		if !validName(name) {
			if len(name) > cipher.NameMax {
				return "", "", withErrno(syscall.ENAMETOOLONG, cipher.ErrNameTooLong)
			}
			return "", "", withErrno(syscall.EINVAL, fmt.Errorf("invalid name %q", name))
		}
		seg, l, err := lay.segment(parent, name)
		if errors.Is(err, cipher.ErrNameTooLong) {
			return "", "", withErrno(syscall.ENAMETOOLONG, err)
		}
		if err != nil {
			return "", "", err
		}
		if len(b) > 0 {
			b = append(b, '/')
		}
		b = append(b, seg...)
		if !more {
			long = l
			break
		}
		parent = joinPath(parent, name)
		rest = tail
	}
	if len(b)+1 > cipher.KeyMax { // +1: a directory's marker key
		return "", "", withErrno(syscall.ENAMETOOLONG, fmt.Errorf("object key of %d bytes exceeds %d", len(b), cipher.KeyMax))
	}
	return string(b), long, nil
}

func cut(s string) (head, tail string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// dirPrefix is the listing prefix of directory p's children.
func (v *Volume) dirPrefix(p string) (string, error) {
	if p == "/" {
		return "", nil
	}
	k, _, err := v.objectKey(p)
	if err != nil {
		return "", err
	}
	return k + "/", nil
}

// authFailed logs a stored object (p at key) that failed authentication
// and returns the EIO the caller reports.
func (v *Volume) authFailed(p, key string, err error) error {
	return v.failEIO("stored object failed authentication", p, key, err)
}

// plainLocalSecret is the local secret of a "none" volume: derived from
// the SSE-C key when there is one, else a random key file in the cache
// directory.
func plainLocalSecret(opts Options) ([]byte, error) {
	if len(opts.SSE.CKeys) > 0 {
		return cipher.LocalSecretFromKey(opts.SSE.CKeys[0]), nil
	}
	if opts.CacheDir == "" {
		return randomSecret()
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	return loadOrCreateSecret(opts.CacheDir)
}

// fanOut calls fn(ctx, i) for every i below n, at most limit at once.
// The first error cancels the ctx given to the calls still running,
// starts no more of them, and is what fanOut returns (ctx's error when
// it ended first).
func fanOut(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
