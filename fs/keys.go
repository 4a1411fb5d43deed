package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// The root key commands (DESIGN.md §2, §6: key add, key list, key
// remove, passwd). Each opens the config with any root key it lists,
// changes the entries, and writes the config back with one conditional
// write (If-Match on the ETag it read): a config changed meanwhile by
// another command is never overwritten (ErrConfigChanged, nothing
// written). They rewrap the keyring only; no object is touched.

// KeyOptions are the inputs every root key command shares.
type KeyOptions struct {
	// Roots are the root keys given; any one the config lists opens it.
	Roots []*cipher.RootKey
	// SSE is the SSE mode the user gave; it must be the volume's.
	SSE blobstore.SSEConfig
}

// Errors of the root key commands, for callers to word.
var (
	// ErrConfigChanged: the config changed between its read and the
	// conditional write (another key command, rotate, reauth); nothing
	// was written.
	ErrConfigChanged = errors.New("the volume config changed while it was being updated")
	// ErrLastKey: removing the key would leave the volume without one.
	ErrLastKey = errors.New("it is the volume's last root key")
	// ErrKeyInUse: the key to remove is one given to open the volume.
	ErrKeyInUse = errors.New("it is a key given on the command line")
	// ErrNoSuchKey: the config lists no key with that ID.
	ErrNoSuchKey = errors.New("no such root key")
	// ErrNotPassphrase: passwd was given a key that is not a passphrase.
	ErrNotPassphrase = errors.New("not a passphrase")
)

// openedConfig is a volume's config as read (with its ETag) and opened.
type openedConfig struct {
	etag string
	cfg  *cipher.Config
	kr   *cipher.Keyring
}

// openConfig reads the config and opens it with opts.Roots; the volume
// must be a client-mode one of opts.SSE's mode.
func openConfig(ctx context.Context, store blobstore.Store, opts KeyOptions) (*openedConfig, error) {
	info, cfg, err := readConfig(ctx, store)
	if err != nil {
		return nil, err
	}
	if cfg.ClaimedEncryption() == EncryptionNone {
		return nil, errors.New("the volume has no root keys and no KEK (--encryption none)")
	}
	kr, err := cfg.Open(opts.Roots...)
	switch {
	case errors.Is(err, cipher.ErrNoKeyOpens):
		return nil, fmt.Errorf("wrong key: none of the given keys opens this volume: %w", err)
	case errors.Is(err, cipher.ErrConfigPreAuth):
		return nil, fmt.Errorf("the volume config predates entry authentication: re-authenticate it first (coffer key reauth): %w", err)
	case errors.Is(err, cipher.ErrConfigTampered):
		return nil, fmt.Errorf("the volume config failed authentication (changed, or not written by coffer): %w", err)
	case err != nil:
		return nil, fmt.Errorf("opening the volume config: %w", err)
	}
	if err := checkModes(cfg, EncryptionClient, opts.SSE); err != nil {
		return nil, err
	}
	return &openedConfig{etag: info.ETag, cfg: cfg, kr: kr}, nil
}

// write stores the config back, conditional on the ETag it was read
// with; what names the change for the error.
func (o *openedConfig) write(ctx context.Context, store blobstore.Store, what string) error {
	data, err := o.cfg.Marshal(o.kr)
	if err != nil {
		return err
	}
	info, err := store.Put(ctx, ConfigKey, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{IfMatch: o.etag})
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		return fmt.Errorf("%w (another key command, rotate or reauth?): %s was not written; run it again: %w", ErrConfigChanged, what, err)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", ConfigKey, err)
	}
	o.etag = info.ETag
	return nil
}

// AddRootKey adds newRoot (a key file or a passphrase) to the volume's
// config and returns its key ID.
func AddRootKey(ctx context.Context, store blobstore.Store, opts KeyOptions, newRoot *cipher.RootKey) (string, error) {
	o, err := openConfig(ctx, store, opts)
	if err != nil {
		return "", err
	}
	if id, ok := newRoot.SymID(); ok && slices.ContainsFunc(o.cfg.Keys(), func(k cipher.KeyInfo) bool { return k.ID == id }) {
		return "", fmt.Errorf("key %s is already a root key of this volume", id)
	}
	id, err := o.cfg.AddKey(o.kr, newRoot)
	if err != nil {
		return "", err
	}
	if err := o.write(ctx, store, "the new key"); err != nil {
		return "", err
	}
	return id, nil
}

// RemoveOptions are the inputs of RemoveRootKey.
type RemoveOptions struct {
	KeyOptions
	// Force removes a key given in Roots (the caller then keeps access
	// only through the volume's other keys).
	Force bool
}

// RemoveRootKey removes root key id from the volume's config. It refuses
// the last key (ErrLastKey), an ID the config does not list
// (ErrNoSuchKey) and, unless opts.Force, a key given in opts.Roots: the
// one that opened the config, or a given key file of that ID
// (ErrKeyInUse). The keyring-wrapping key and the config secret are
// replaced, so the removed key opens no config written from now on; the
// anchor stays (run ReauthVolume after removing a key you no longer
// trust, and RotateVolume: the removed key's holder may have kept the
// keyring it opened).
func RemoveRootKey(ctx context.Context, store blobstore.Store, opts RemoveOptions, id string) error {
	o, err := openConfig(ctx, store, opts.KeyOptions)
	if err != nil {
		return err
	}
	keys := o.cfg.Keys()
	if !slices.ContainsFunc(keys, func(k cipher.KeyInfo) bool { return k.ID == id }) {
		var listed []string
		for _, k := range keys {
			listed = append(listed, k.ID)
		}
		return fmt.Errorf("%w %q: the volume lists %s", ErrNoSuchKey, id, strings.Join(listed, ", "))
	}
	if len(keys) == 1 {
		return fmt.Errorf("refusing to remove key %s: %w (add another with coffer key add first)", id, ErrLastKey)
	}
	if !opts.Force && givenKey(o.cfg, opts.Roots, id) {
		return fmt.Errorf("refusing to remove key %s: %w, so this command line would lose its access; open the volume with another of its keys, or give --force", id, ErrKeyInUse)
	}
	if err := o.cfg.RemoveKey(id); err != nil {
		return err
	}
	return o.write(ctx, store, "the key removal")
}

// givenKey reports whether id is the entry that opened cfg or the ID of
// a sym key among roots.
func givenKey(cfg *cipher.Config, roots []*cipher.RootKey, id string) bool {
	if cfg.OpenedBy() == id {
		return true
	}
	for _, r := range roots {
		if sid, ok := r.SymID(); ok && sid == id {
			return true
		}
	}
	return false
}

// ChangePassphrase replaces the passphrase that opens the volume
// (opts.Roots must hold it, and nothing else is tried: the entry it opens
// is the one changed) with newPassphrase, keeping the entry's key ID. It
// returns that ID.
func ChangePassphrase(ctx context.Context, store blobstore.Store, opts KeyOptions, newPassphrase *cipher.RootKey) (string, error) {
	for _, r := range opts.Roots {
		if r.Kind() != cipher.KindPassphrase {
			return "", fmt.Errorf("the old key is a %s key: %w", r.Kind(), ErrNotPassphrase)
		}
	}
	if newPassphrase.Kind() != cipher.KindPassphrase {
		return "", fmt.Errorf("the new key is a %s key: %w", newPassphrase.Kind(), ErrNotPassphrase)
	}
	o, err := openConfig(ctx, store, opts)
	if err != nil {
		return "", err
	}
	id := o.cfg.OpenedBy()
	if err := o.cfg.ChangePassphrase(o.kr, id, newPassphrase); err != nil {
		return "", err
	}
	if err := o.write(ctx, store, "the new passphrase"); err != nil {
		return "", err
	}
	return id, nil
}

// KeyList is what ListKeys reports.
type KeyList struct {
	VolumeID    string
	Keys        []cipher.KeyInfo
	Generations []GenerationInfo // oldest first
	Writers     []WriterListing  // by ID
	// Counted says the object counts below were taken.
	Counted bool
	// Unknown counts objects naming a KEK generation the keyring lacks,
	// by generation.
	Unknown map[uint32]int
	// Malformed counts objects with coffer metadata whose generation does
	// not parse; Other, objects that are not coffer's (no coffer-v, epoch
	// objects among them).
	Malformed, Other int
	// EpochWrapped counts writer objects whose DEK no KEK wraps yet (only
	// their epoch key: coffer rotate rewraps them).
	EpochWrapped int
}

// GenerationInfo is one KEK generation of the keyring.
type GenerationInfo struct {
	Generation uint32
	Current    bool
	Added      time.Time // zero when not recorded
	Objects    int       // objects whose DEK it wraps (when counted)
}

// ListOptions are the inputs of ListKeys.
type ListOptions struct {
	KeyOptions
	// Count counts the objects each generation wraps: one HEAD per
	// object (listings carry no user metadata).
	Count bool
	// Concurrency bounds the HEADs (0: DefaultListConcurrency).
	Concurrency int
	// Progress, when set, is called (never concurrently) as objects are
	// counted, with the number done and the total listed so far.
	Progress func(done, total int)
}

// ListKeys lists the volume's root keys and KEK generations and, with
// opts.Count, how many objects each generation wraps.
func ListKeys(ctx context.Context, store blobstore.Store, opts ListOptions) (KeyList, error) {
	o, err := openConfig(ctx, store, opts.KeyOptions)
	if err != nil {
		return KeyList{}, err
	}
	l := KeyList{VolumeID: VolumeID(o.cfg), Keys: o.cfg.Keys(), Unknown: map[uint32]int{}}
	cur := o.kr.CurrentGeneration()
	for _, g := range o.kr.Generations() {
		added, _ := o.kr.GenerationAdded(g)
		l.Generations = append(l.Generations, GenerationInfo{Generation: g, Current: g == cur, Added: added})
	}
	if l.Writers, err = listWriters(ctx, store, o.kr); err != nil {
		return KeyList{}, err
	}
	if !opts.Count {
		return l, nil
	}
	counts, err := CountGenerations(ctx, store, opts.Concurrency, opts.Progress)
	if err != nil {
		return KeyList{}, err
	}
	l.EpochWrapped = counts.ByGeneration[0]
	delete(counts.ByGeneration, 0)
	for i := range l.Generations {
		g := &l.Generations[i]
		g.Objects = counts.ByGeneration[g.Generation]
		delete(counts.ByGeneration, g.Generation)
	}
	l.Unknown, l.Malformed, l.Other, l.Counted = counts.ByGeneration, counts.Malformed, counts.Other, true
	return l, nil
}

// GenerationCounts is what CountGenerations found.
type GenerationCounts struct {
	ByGeneration map[uint32]int
	Malformed    int // coffer metadata whose coffer-kek does not parse
	Other        int // objects without coffer metadata
}

// CountGenerations counts the objects of the store (the config aside) by
// the KEK generation their coffer-kek names (0: a writer object wrapped
// under its epoch key only), with one HEAD per object and
// up to concurrency at once: S3 listings carry no user metadata, and a
// HEAD is the cheapest request that returns it. Measured on versitygw
// (4,000 objects of 400 bytes, loopback, a loaded 2-core machine): HEAD
// 1,700 a second at 16 or 64 at once, a ranged GET of the first chunk
// (what fs's listings use, to have the chunk at hand for a read) 1,500 to
// 2,200, and it moves up to 64 KiB per object that a count does not need.
func CountGenerations(ctx context.Context, store blobstore.Store, concurrency int, progress func(done, total int)) (GenerationCounts, error) {
	keys, err := listObjects(ctx, store)
	if err != nil {
		return GenerationCounts{}, err
	}
	c := GenerationCounts{ByGeneration: map[uint32]int{}}
	var mu sync.Mutex
	done := 0
	err = forEachKey(ctx, keys, concurrency, func(ctx context.Context, key string) error {
		info, err := store.Head(ctx, key)
		if errors.Is(err, blobstore.ErrNotFound) {
			err = nil // removed since the listing
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case info.Metadata == nil || info.Metadata[cipher.MetaVersion] == "":
			c.Other++
		default:
			if g, err := cipher.MetadataGeneration(info.Metadata); err != nil {
				c.Malformed++
			} else {
				c.ByGeneration[g]++
			}
		}
		done++
		if progress != nil {
			progress(done, len(keys))
		}
		return nil
	})
	return c, err
}

// listObjects lists every object key of the store but the config, the
// writers' epoch objects (sealed to a writer key, no KEK wraps them) and
// directory indexes (caches: one sealed under a retired generation no
// longer opens, and is rebuilt).
func listObjects(ctx context.Context, store blobstore.Store) ([]string, error) {
	var keys []string
	for e, err := range store.List(ctx, "", "") {
		if err != nil {
			return nil, fmt.Errorf("listing the volume: %w", err)
		}
		if e.IsPrefix || e.Key == ConfigKey || strings.HasPrefix(e.Key, cipher.EpochsPrefix) || strings.HasPrefix(e.Key, cipher.DirIndexPrefix) {
			continue
		}
		keys = append(keys, e.Key)
	}
	return keys, nil
}

// forEachKey runs fn for every key, up to concurrency at once (0:
// DefaultListConcurrency); the first error cancels the rest.
func forEachKey(ctx context.Context, keys []string, concurrency int, fn func(context.Context, string) error) error {
	if concurrency <= 0 {
		concurrency = DefaultListConcurrency
	}
	return fanOut(ctx, concurrency, len(keys), func(ctx context.Context, i int) error { return fn(ctx, keys[i]) })
}
