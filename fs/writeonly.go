package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Write-only volumes (DESIGN.md §2 "Writer keys"): opened with a writer
// credential (Options.Writer) instead of a root key. Each opening is one
// session: a fresh epoch key, its epoch object stored (If-None-Match)
// before anything else, every object sealed by the session
// (cipher.WriterSession) and so carrying its origin.
//
// What the session may do:
//
//	object                          lookup / stat   read, write, chmod, unlink, rename
//	stored by this session          yes             yes (inside the scope)
//	any other file, link, special   EACCES          EACCES (nothing changes)
//	any other directory             yes (0755)      create entries inside the scope;
//	                                                rmdir, rename, chmod... EACCES
//	the scope and its ancestors     yes, even with no object there
//	new name outside the scope      -               EACCES
//	new device node                 -               EPERM (fifos, sockets are kept)
//
// Listings show every name and, for files, the stored size (ReadDir); a
// lookup of a file not of this session is EACCES, so through FUSE its
// name shows and nothing else. A writer only creates objects (the bucket
// policy of README gives it PutObject with If-None-Match and nothing
// else): the implicit moves of directory times are never stored, since
// they would rewrite markers, and its own new directories are held until
// Flush and stored once with their last attributes (held markers, below). The volume config is not authenticated (the writer holds no key
// that could): only its volume ID is compared with the credential's, and
// the modes, names and keys come from the credential (cipher/doc.go).
// The cache dir's local secret is a random file of its own.

// Held markers: a writer's mkdir stores no marker at once. The bucket
// policy of README lets a writer create an object once and never change
// it, and tar x (like cp -a, rsync -a) sets a directory's times after
// filling it, and a chmod may follow a mkdir: rewriting the marker then
// failed ("Cannot utime"). So the session holds the directory (v.held):
// lookups, listings, chmod and utimens see and change the held
// attributes, its entries are stored below it as usual (the store shows
// it as an implicit directory meanwhile), and Flush (unmount) stores each
// held marker once, If-None-Match, with the attributes it has then. A
// rename of a held directory stores it first. The price: until the
// unmount other mounts see such a directory with the implicit mode and
// times (an empty one not at all), and a crash of the writer loses the
// held attributes (and empty directories); files are safe as ever. A
// marker another session stored meanwhile wins (the directory exists,
// which both wanted), and the writer's attributes are dropped with a
// notice.

// SyncDir stores the held markers (writeonly.go) of directory p and the
// directories below it: fsync(2) of a directory. Every other namespace
// change is stored when the call that made it returns.
func (v *Volume) SyncDir(ctx context.Context, p string) error {
	if p == "/" {
		p = ""
	}
	return v.finish("fsync", p, v.storeHeld(ctx, p))
}

// holdMarker keeps the new directory n (a writer's) until Flush.
func (v *Volume) holdMarker(n *node) {
	v.mu.Lock()
	if v.held == nil {
		v.held = map[string]*node{}
	}
	v.held[n.path] = n
	v.mu.Unlock()
}

// heldDir is the held directory at p, if any.
func (v *Volume) heldDir(p string) *node {
	v.mu.Lock()
	defer v.mu.Unlock()
	if n := v.held[p]; n != nil {
		c := *n
		return &c
	}
	return nil
}

// heldChildren are the held directories directly below dir, by name.
func (v *Volume) heldChildren(dir string) map[string]*node {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out map[string]*node
	for p, n := range v.held {
		if p != "/" && parentOf(p) == dir {
			if out == nil {
				out = map[string]*node{}
			}
			c := *n
			out[nameOf(p)] = &c
		}
	}
	return out
}

// setHeld sets the attributes of the held directory at p, if it is
// still held.
func (v *Volume) setHeld(p string, a Attr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if n := v.held[p]; n != nil {
		n.attr = a
	}
}

// dropHeld forgets the held directory at p (rmdir).
func (v *Volume) dropHeld(p string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.held[p]
	delete(v.held, p)
	return ok
}

// storeHeld stores the marker of every held directory at or below p
// ("": all), parents first, each with the attributes it has now.
func (v *Volume) storeHeld(ctx context.Context, p string) error {
	v.mu.Lock()
	var todo []string
	for hp := range v.held {
		if p == "" || hp == p || isUnder(hp, p) {
			todo = append(todo, hp)
		}
	}
	v.mu.Unlock()
	slices.Sort(todo)
	var errs []error
	for _, hp := range todo {
		if err := v.storeHeldOne(ctx, hp); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", hp, err))
		}
	}
	return errors.Join(errs...)
}

func (v *Volume) storeHeldOne(ctx context.Context, p string) error {
	defer v.lockPaths(p)()
	n := v.heldDir(p)
	if n == nil {
		return nil // removed meanwhile
	}
	gen := v.dirs.current(p)
	a := v.dirs.overlay(n).attr
	stored, err := v.putMarker(ctx, p, n.key, n.long, a)
	if errors.Is(err, syscall.EEXIST) {
		v.logEvent(slog.LevelInfo, "another session stored this directory first: its attributes stay, this session's are dropped", p, n.key)
		v.meta.invalidate(p)
		err = nil
	}
	if err != nil {
		return err
	}
	if stored != nil {
		v.meta.put(stored)
	}
	v.dirs.stored(p, gen)
	v.dropHeld(p)
	return nil
}

// errForeign marks an object this session did not store.
var errForeign = errors.New("not stored by this write-only session")

// checkWriter checks what a writer trusts of the store's config: its
// volume ID. The modes asked for must be the credential's.
func checkWriter(cfg *cipher.Config, opts Options) error {
	cred := opts.Writer
	if len(opts.Roots) > 0 {
		return errors.New("open volume: a writer credential and root keys together")
	}
	if err := cred.CheckConfig(cfg); err != nil {
		return err
	}
	if err := checkEncryption(cred.Encryption, opts.Encryption); err != nil {
		return err
	}
	if cred.SSE != string(opts.SSE.Mode) {
		return &modeError{fmt.Sprintf("the writer credential says --sse %s but --sse %s was given", blobstore.SSEMode(cred.SSE).Name(), opts.SSE.Mode.Name())}
	}
	if cred.SSEKMSKeyID != "" && opts.SSE.KMSKeyID != "" && cred.SSEKMSKeyID != opts.SSE.KMSKeyID {
		return &modeError{fmt.Sprintf("the writer credential says --sse-kms-key-id %s but %s was given", cred.SSEKMSKeyID, opts.SSE.KMSKeyID)}
	}
	return nil
}

// startWriterSession draws the session's epoch and sets the layout; it
// returns the local secret of the cache dir.
func (v *Volume) startWriterSession(opts Options) ([]byte, error) {
	s, err := opts.Writer.NewSession()
	if err != nil {
		return nil, err
	}
	v.writer, v.client = s, true
	v.lay = &writerLayout{clientLayout: clientLayout{names: s.Names()}, s: s}
	if opts.CacheDir == "" {
		return randomSecret()
	}
	return loadOrCreateSecret(opts.CacheDir)
}

// storeEpoch stores the session's epoch object, once: an epoch ID is
// never reused, so If-None-Match.
func (v *Volume) storeEpoch(ctx context.Context) error {
	key, data := v.writer.EpochObject()
	_, err := v.store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{IfNoneMatch: true})
	if err != nil {
		return fmt.Errorf("storing the epoch of this write-only session: %w", err)
	}
	return nil
}

// Writer is the session of a write-only volume (nil otherwise).
func (v *Volume) Writer() *cipher.WriterSession { return v.writer }

// writerLayout is clientLayout with the session's keys: it seals what the
// session stores and opens only that.
type writerLayout struct {
	clientLayout
	s *cipher.WriterSession
}

func (l *writerLayout) newObjectKey() (*cipher.ObjectKey, error) { return l.s.NewObjectKey() }

func (l *writerLayout) sealMeta(path string, ok *cipher.ObjectKey, a cipher.Attr, _ string) (map[string]string, error) {
	if isDevice(a.Mode) {
		// A full-key mount would refuse it (writers.go): say so now.
		return nil, withErrno(syscall.EPERM, errors.New("a write-only mount makes no device nodes"))
	}
	meta, err := l.s.SealMetadata(ok, path, a)
	if errors.Is(err, cipher.ErrOutOfScope) || errors.Is(err, cipher.ErrNotThisSession) {
		return nil, withErrno(syscall.EACCES, err)
	}
	return meta, err
}

func (l *writerLayout) openMeta(path, _ string, meta map[string]string, _ time.Time) (*cipher.ObjectKey, cipher.Attr, error) {
	okey, a, err := l.s.OpenMetadata(meta, path)
	if errors.Is(err, cipher.ErrNotThisSession) {
		return nil, cipher.Attr{}, fmt.Errorf("%w: %w", errForeign, err)
	}
	return okey, a, err
}

// writerScopeDir reports a path a write-only volume shows as a directory
// even without an object: the scope and its ancestors (they need no
// marker, and the writer may create none outside the scope).
func (v *Volume) writerScopeDir(p string) bool {
	if v.writer == nil {
		return false
	}
	scope := v.writer.Credential().Scope()
	return p == scope || cipher.InScope(scope, p)
}

// checkWriterScope refuses, in a write-only volume, any change at p
// outside the scope (or in /.coffer): everything the session may change
// it created there.
func (v *Volume) checkWriterScope(p string) error {
	if v.writer != nil && !v.writer.InScope(p) {
		return withErrno(syscall.EACCES, fmt.Errorf("%w: a write-only mount changes nothing outside its scope", cipher.ErrOutOfScope))
	}
	return nil
}

// checkOwn refuses, in a write-only volume, a change to n unless this
// session stored it (or has it staged).
func checkOwn(n *node) error {
	if n.foreign {
		return withErrno(syscall.EACCES, errForeign)
	}
	return nil
}

// foreignDir is the node of a directory a write-only volume may enter
// but not read: its marker is another's, or there is none.
func (v *Volume) foreignDir(p string) *node {
	n := v.implicitDir(p)
	n.attr.Mode = syscall.S_IFDIR | 0o755
	n.foreign = true
	return n
}
