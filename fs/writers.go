package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Writer keys (DESIGN.md §2 "Writer keys"): the full-key commands that
// manage them (key export-writer, key list, key revoke-writer) and the
// reading of epoch objects every full-key user of writer objects shares.
// Like the root key commands they change the keyring only, with one
// conditional write of the config.

// epochObjectMax bounds what is read of an epoch object (1,200 bytes as
// built; cipher checks the exact size): anything in the bucket is the
// attacker's, and a huge object must not be read into memory.
const epochObjectMax = 4 << 10

// ExportedWriter is what ExportWriter made.
type ExportedWriter struct {
	Credential *cipher.WriterCredential
	// ScopePrefix is the object key prefix (relative to the volume's)
	// of the scope's objects, "" for "/": what the bucket policy of the
	// writer's S3 identity names (README).
	ScopePrefix string
}

// ExportWriter adds a writer key with path scope and label to the volume
// and hands its credential to save before the config is written: save
// must store it durably (or fail, and nothing is written). If the config
// write then fails the credential opens nothing (its writer is in no
// keyring) and the caller removes it.
func ExportWriter(ctx context.Context, store blobstore.Store, opts KeyOptions, scope, label string, save func(*cipher.WriterCredential) error) (ExportedWriter, error) {
	o, err := openConfig(ctx, store, opts)
	if err != nil {
		return ExportedWriter{}, err
	}
	cred, err := o.cfg.ExportWriter(o.kr, scope, label)
	if err != nil {
		return ExportedWriter{}, err
	}
	prefix, _, err := layoutKey(&clientLayout{names: o.kr.Names()}, scope)
	if err != nil {
		return ExportedWriter{}, fmt.Errorf("scope %s: %w", scope, err)
	}
	if prefix != "" {
		prefix += "/"
	}
	if err := save(cred); err != nil {
		return ExportedWriter{}, err
	}
	if err := o.write(ctx, store, "the new writer key"); err != nil {
		return ExportedWriter{}, err
	}
	return ExportedWriter{Credential: cred, ScopePrefix: prefix}, nil
}

// WriterListing is a writer key as ListKeys reports it.
type WriterListing struct {
	cipher.WriterInfo
	// Epochs counts the epoch objects stored under
	// .coffer/epochs/<writer ID>/: the mount sessions it started (as far
	// as anyone who can write the bucket lets it show).
	Epochs int
}

// listWriters lists the keyring's writers with their stored epochs.
func listWriters(ctx context.Context, store blobstore.Store, kr *cipher.Keyring) ([]WriterListing, error) {
	var out []WriterListing
	for _, w := range kr.Writers() {
		epochs, err := listEpochs(ctx, store, w.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, WriterListing{WriterInfo: w, Epochs: len(epochs)})
	}
	return out, nil
}

// listEpochs lists the origins of the epoch objects stored for writer w;
// keys under its prefix that do not name an epoch are skipped (fsck
// reports them).
func listEpochs(ctx context.Context, store blobstore.Store, w cipher.WriterID) ([]cipher.Origin, error) {
	var out []cipher.Origin
	for e, err := range store.List(ctx, cipher.WriterEpochsPrefix(w), "") {
		if err != nil {
			return nil, fmt.Errorf("listing the epochs of writer %s: %w", w, err)
		}
		o, err := cipher.ParseEpochObjectKey(e.Key)
		if err != nil || o.Writer != w {
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// openEpoch fetches the epoch object of origin o and opens it with kr
// (cipher.Keyring.OpenEpoch checks the writer, the tag and the seal). A
// missing epoch object is cipher.ErrWriterRefused: a writer stores it
// before any of its session's objects, so its absence means the objects
// were not made by that session.
func openEpoch(ctx context.Context, store blobstore.Store, kr *cipher.Keyring, o cipher.Origin) (*cipher.Epoch, error) {
	rc, _, err := store.Get(ctx, cipher.EpochObjectKey(o), blobstore.GetOptions{Length: -1})
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: the epoch object of %s is missing", cipher.ErrWriterRefused, o)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the epoch object of %s: %w", o, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, epochObjectMax))
	if err != nil {
		return nil, fmt.Errorf("reading the epoch object of %s: %w", o, err)
	}
	return kr.OpenEpoch(o, data)
}

// RevokeOptions are the inputs of RevokeWriter.
type RevokeOptions struct {
	KeyOptions
	// DropEpochs refuses every file the writer stored (not adopted or
	// rotated yet); otherwise the epochs stored so far that open stay
	// readable and only those the writer starts afterwards are refused.
	DropEpochs bool
	// Now is the revocation time recorded (display only).
	Now time.Time
}

// RevokeResult is what RevokeWriter did.
type RevokeResult struct {
	// Kept are the epochs whose files stay readable.
	Kept []cipher.EpochID
	// Refused are stored epochs that did not open (forged, or of another
	// volume) and so were not kept, with why.
	Refused map[cipher.EpochID]error
}

// RevokeWriter revokes writer id: full-key mounts refuse the files of the
// epochs it starts from now on (and, with DropEpochs, of every epoch).
// The epochs to keep are those stored now that open under the keyring:
// the keyring records each with the hash of its epoch object, since
// nothing the writer stores can date an epoch.
func RevokeWriter(ctx context.Context, store blobstore.Store, opts RevokeOptions, id cipher.WriterID) (RevokeResult, error) {
	o, err := openConfig(ctx, store, opts.KeyOptions)
	if err != nil {
		return RevokeResult{}, err
	}
	res := RevokeResult{Refused: map[cipher.EpochID]error{}}
	var keep []*cipher.Epoch
	if !opts.DropEpochs {
		origins, err := listEpochs(ctx, store, id)
		if err != nil {
			return RevokeResult{}, err
		}
		for _, origin := range origins {
			ep, err := openEpoch(ctx, store, o.kr, origin)
			if errors.Is(err, cipher.ErrAuth) {
				res.Refused[origin.Epoch] = err
				continue
			}
			if err != nil {
				return RevokeResult{}, err
			}
			keep = append(keep, ep)
			res.Kept = append(res.Kept, origin.Epoch)
		}
	}
	if err := o.kr.RevokeWriter(id, keep, opts.Now); err != nil {
		return RevokeResult{}, err
	}
	if err := o.write(ctx, store, "the revocation"); err != nil {
		return RevokeResult{}, err
	}
	return res, nil
}

// Reading writer objects in a full-key volume (cipher/doc.go, "How fs
// uses it"). Every object whose metadata has a writer origin is opened
// with Keyring.OpenAnyMetadata, which checks the writer (in the keyring;
// if revoked, an epoch it kept), the epoch's tag and seal, the scope and
// the DEK; before that the object key must lie outside .coffer/
// (CheckWriterObjectKey). A refusal is EIO for that file and one log
// line (badMeta's callers), never a key.

// WritersPolicy says what a full-key volume does with writers' files.
type WritersPolicy string

const (
	// WritersRead (the default) opens writers' files after the checks.
	WritersRead WritersPolicy = "read"
	// WritersRefuse hides every writer-origin object: lookups see
	// nothing there and listings leave it out.
	WritersRefuse WritersPolicy = "refuse"
)

// ParseWritersPolicy reads --writers.
func ParseWritersPolicy(s string) (WritersPolicy, error) {
	switch p := WritersPolicy(s); p {
	case "", WritersRead:
		return WritersRead, nil
	case WritersRefuse:
		return p, nil
	}
	return "", fmt.Errorf("--writers %q: want read or refuse", s)
}

// errWriterHidden marks a writer-origin object under WritersRefuse: the
// callers treat it as absent.
var errWriterHidden = errors.New("a writer's object, hidden by --writers=refuse")

// epochFetchTimeout bounds the fetch of one epoch object: the layout's
// metadata calls carry no context.
const epochFetchTimeout = 30 * time.Second

// epochCache holds the epochs that opened, per origin (each is fetched
// once, however many of its objects are listed at once). Refusals are not
// cached: a refused epoch's objects are EIO each time they are read.
type epochCache struct {
	store blobstore.Store
	kr    *cipher.Keyring
	group singleflight.Group

	mu sync.Mutex
	m  map[cipher.Origin]*cipher.Epoch
}

func newEpochCache(store blobstore.Store, kr *cipher.Keyring) *epochCache {
	return &epochCache{store: store, kr: kr, m: map[cipher.Origin]*cipher.Epoch{}}
}

// epoch is the cache's cipher.EpochSource.
func (c *epochCache) epoch(o cipher.Origin) (*cipher.Epoch, error) {
	c.mu.Lock()
	ep := c.m[o]
	c.mu.Unlock()
	if ep != nil {
		return ep, nil
	}
	v, err, _ := c.group.Do(cipher.EpochObjectKey(o), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), epochFetchTimeout)
		defer cancel()
		ep, err := openEpoch(ctx, c.store, c.kr, o)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.m[o] = ep
		c.mu.Unlock()
		return ep, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cipher.Epoch), nil
}

// drop forgets every cached epoch (the keyring's writers changed).
func (c *epochCache) drop() {
	c.mu.Lock()
	c.m = map[cipher.Origin]*cipher.Epoch{}
	c.mu.Unlock()
}

// openAny opens the metadata of the object at key, stored at canonical
// path, whatever its origin.
func (l *clientLayout) openAny(path, key string, meta map[string]string) (*cipher.ObjectKey, cipher.Attr, error) {
	origin, err := cipher.ObjectOrigin(meta)
	if err != nil {
		return nil, cipher.Attr{}, err
	}
	if origin.IsWriter() {
		if l.writers == WritersRefuse {
			return nil, cipher.Attr{}, errWriterHidden
		}
		if err := cipher.CheckWriterObjectKey(key); err != nil {
			return nil, cipher.Attr{}, err
		}
	}
	okey, a, _, err := l.kr.OpenAnyMetadata(meta, path, l.epochs.epoch)
	if err != nil {
		return nil, cipher.Attr{}, err
	}
	if a, err = writerAttr(origin, a); err != nil {
		return nil, cipher.Attr{}, err
	}
	return okey, a, nil
}

// writerAttr is what a full-key volume makes of the attributes a object
// of origin carries. A writer seals whatever mode it likes: no set-ID bit
// of its files takes effect before they are adopted, and a device node of
// its is refused (writers make none: writeonly.go).
func writerAttr(origin cipher.Origin, a cipher.Attr) (cipher.Attr, error) {
	if !origin.IsWriter() {
		return a, nil
	}
	if isDevice(a.Mode) {
		return cipher.Attr{}, fmt.Errorf("%w: a device node stored by %s", cipher.ErrWriterRefused, origin)
	}
	a.Mode &^= syscall.S_ISUID | syscall.S_ISGID
	return a, nil
}

func isDevice(mode uint32) bool {
	t := mode & syscall.S_IFMT
	return t == syscall.S_IFCHR || t == syscall.S_IFBLK
}

// originOf is the origin of an object's key (none mode has no key).
func originOf(okey *cipher.ObjectKey) cipher.Origin {
	if okey == nil {
		return cipher.Origin{}
	}
	return okey.Origin()
}

// ErrNotWriters: adopt of a file the full key stored (EINVAL).
var ErrNotWriters = errors.New("not a file a writer key stored")

// Adopt makes the writer's file (or directory marker) at p an ordinary
// one of the full key (`coffer adopt`): its metadata is resealed without
// the origin, same file ID and DEK, with one conditional metadata copy
// (cipher.Keyring.AdoptMetadata). Only a file not open here.
func (v *Volume) Adopt(ctx context.Context, p string) error {
	p, end, err := v.begin1(ctx, p)
	if err != nil {
		return v.finish("adopt", p, err)
	}
	defer end()
	return v.finish("adopt", p, v.adopt(ctx, p))
}

func (v *Volume) adopt(ctx context.Context, p string) error {
	if err := v.checkWritable(p); err != nil {
		return err
	}
	kr := v.keyring()
	if kr == nil || p == "/" {
		return withErrno(syscall.EINVAL, ErrNotWriters)
	}
	defer v.lockPaths(p)()
	v.mu.Lock()
	open := v.files[p] != nil
	v.mu.Unlock()
	if open {
		return withErrno(syscall.EBUSY, errors.New("the file is open or being uploaded: adopt it once it is stored"))
	}
	for attempt := 0; ; attempt++ {
		n, err := v.probe(ctx, p)
		if err != nil {
			return err
		}
		if n.bad != nil || n.okey == nil || !n.okey.Origin().IsWriter() {
			return withErrno(syscall.EINVAL, ErrNotWriters)
		}
		a := n.attr
		a.touch(v.now())
		a.Origin = cipher.Origin{}
		_, err = v.copyObjectAs(ctx, n, n.key, p, n.long, a, func() (map[string]string, error) {
			return kr.AdoptMetadata(n.okey, p, toCipherAttr(a))
		})
		v.meta.invalidate(p) // the node's key still names the writer: read it back
		if errors.Is(err, blobstore.ErrPreconditionFailed) && attempt < 3 {
			continue
		}
		return err
	}
}
