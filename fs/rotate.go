package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Rotation of the KEK (DESIGN.md §2, `coffer rotate`), in four steps:
//
//  1. Generation: add a KEK generation and make it current, one
//     conditional config write. A rerun while older generations are
//     still in the keyring (an unfinished rotation: interrupted, or
//     objects it could not rewrap) resumes the current generation
//     instead of adding another, unless NewGeneration asks for one.
//  2. Grace: wait until MountGrace has passed since the generation was
//     added (the keyring records when), so that every running mount has
//     re-read the config (ConfigRefreshMax) and seals new objects under
//     it; a mount that sealed an upload before and stores it after
//     rewraps it itself (configwatch.go).
//  3. Rewrap: list every object (the config aside) and, up to
//     Concurrency at once, HEAD it and rewrap its DEK under the current
//     generation with a metadata-only copy onto itself, conditional on
//     the ETag the metadata came from (If-Match; a directory marker is
//     written afresh, empty, with If-Match, as fs does): no body byte
//     moves through coffer. A 412 or a vanished source re-reads the
//     object. Objects already on the generation are skipped, so a rerun
//     resumes. Above 5 GiB the store copies with UploadPartCopy
//     (blobstore.Copy), still server-side; such an object gets a new
//     ETag, so a mount reading it at that moment sees it changed.
//     A writer's object keeps its origin (RewrapAnyMetadata), its
//     epoch opened once per session.
//  4. Retire: drop from the keyring every other generation no object
//     names any more, one more conditional config write. Objects that
//     could not be rewrapped keep their generation in the keyring.
//
// A metadata change a mount makes between rotate's HEAD of an object and
// its copy (chmod, utimens: they keep the ETag) is overwritten by the
// copy, as between two mounts (DESIGN.md §5: v1 attributes carry no change
// counter); the window is one request long.

// DefaultMountGrace is how long rotate waits after adding a KEK
// generation before it rewraps: two refresh intervals of a mount
// (ConfigRefreshMax) plus one refresh's timeout (configRefreshTimeout)
// and a margin.
const DefaultMountGrace = 2*ConfigRefreshMax + configRefreshTimeout + 5*time.Second

// DefaultRotateConcurrency bounds rotate's parallel HEADs and copies.
const DefaultRotateConcurrency = 32

// RotateOptions are the inputs of RotateVolume.
type RotateOptions struct {
	KeyOptions
	// Concurrency bounds the objects rewrapped at once (0:
	// DefaultRotateConcurrency).
	Concurrency int
	// NewGeneration adds a generation even when an unfinished rotation
	// would be resumed (for instance after removing a key that saw the
	// keyring of that rotation).
	NewGeneration bool
	// MountGrace is the wait between adding the generation and
	// rewrapping (0: DefaultMountGrace; negative: no wait, for a volume
	// no mount uses).
	MountGrace time.Duration
	// Progress, when set, is called (never concurrently) at each step
	// and after each object.
	Progress func(RotateProgress)

	now   func() time.Time                           // nil: time.Now
	sleep func(context.Context, time.Duration) error // nil: a timer
}

// RotateProgress is where a rotation stands.
type RotateProgress struct {
	Step       RotateStep
	Generation uint32
	Wait       time.Duration // StepWait: how long
	Done       int           // StepRewrap: objects handled
	Total      int           // StepRewrap: objects listed
	Rewrapped  int           // StepRewrap: of Done, rewrapped now
}

// RotateStep names a step of RotateVolume.
type RotateStep int

const (
	StepGeneration RotateStep = iota // the generation was added or is resumed
	StepWait                         // waiting for running mounts
	StepList                         // listing the objects
	StepRewrap                       // rewrapping
	StepRetire                       // retiring old generations
)

// RotateResult says what RotateVolume did.
type RotateResult struct {
	VolumeID   string
	Generation uint32 // the current generation, every rewrapped object's
	Added      bool   // the generation was added by this run (else resumed)
	Objects    int    // objects listed
	Rewrapped  int    // rewrapped by this run
	Already    int    // on Generation already
	Other      int    // not coffer objects (no coffer metadata): left alone
	Failed     []ObjectFailure
	Retired    []uint32 // generations retired by this run
	Remaining  []uint32 // older generations kept: objects still name them
}

// ObjectFailure is an object rotation could not rewrap.
type ObjectFailure struct {
	Key        string
	Generation uint32 // the generation it names (0: unknown)
	Err        error
}

// ErrRotationIncomplete is returned (with the result) when some objects
// could not be rewrapped.
var ErrRotationIncomplete = errors.New("some objects could not be rewrapped")

// rotation is one run of RotateVolume.
type rotation struct {
	store blobstore.Store
	opts  RotateOptions
	kr    *cipher.Keyring
	gen   uint32
	// epochs opens the writers' objects not rewrapped yet.
	epochs *epochCache

	mu  sync.Mutex
	res RotateResult
	// named counts, per generation other than gen, the objects left on it.
	named map[uint32]int
	done  int
}

// RotateVolume rotates the volume's KEK: see the comment above. It is
// safe while mounts read and write the volume. On ErrRotationIncomplete
// the result lists the objects that failed; run it again once they are
// fixed (or removed) to finish.
func RotateVolume(ctx context.Context, store blobstore.Store, opts RotateOptions) (RotateResult, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultRotateConcurrency
	}
	if opts.MountGrace == 0 {
		opts.MountGrace = DefaultMountGrace
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.sleep == nil {
		opts.sleep = sleepCtx
	}
	r := &rotation{store: store, opts: opts, named: map[uint32]int{}}
	if err := r.generation(ctx); err != nil {
		return r.res, err
	}
	if err := r.grace(ctx); err != nil {
		return r.res, err
	}
	r.epochs = newEpochCache(store, r.kr)
	if err := r.rewrapAll(ctx); err != nil {
		return r.res, err
	}
	if err := r.retire(ctx); err != nil {
		return r.res, err
	}
	if len(r.res.Failed) > 0 {
		return r.res, fmt.Errorf("%w: %d of %d objects", ErrRotationIncomplete, len(r.res.Failed), r.res.Objects)
	}
	return r.res, nil
}

func (r *rotation) progress(p RotateProgress) {
	if r.opts.Progress != nil {
		p.Generation = r.gen
		r.opts.Progress(p)
	}
}

// generation adds the new generation (or finds the one to resume), with
// up to configWriteAttempts conditional writes.
func (r *rotation) generation(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		o, err := openConfig(ctx, r.store, r.opts.KeyOptions)
		if err != nil {
			return err
		}
		r.res.VolumeID = VolumeID(o.cfg)
		if len(o.kr.Generations()) > 1 && !r.opts.NewGeneration {
			r.kr, r.gen = o.kr, o.kr.CurrentGeneration()
			r.progress(RotateProgress{Step: StepGeneration})
			return nil
		}
		if err := o.kr.AddGeneration(); err != nil {
			return err
		}
		err = o.write(ctx, r.store, "the new KEK generation")
		if errors.Is(err, ErrConfigChanged) && attempt < configWriteAttempts {
			r.opts.NewGeneration = false // someone else's write may be the rotation asked for: look again
			continue
		}
		if err != nil {
			return err
		}
		r.kr, r.gen, r.res.Added = o.kr, o.kr.CurrentGeneration(), true
		r.progress(RotateProgress{Step: StepGeneration})
		return nil
	}
}

// configWriteAttempts bounds rotate's conditional config writes, each
// after a fresh read, when other writers keep changing the config.
const configWriteAttempts = 3

// grace waits until MountGrace has passed since the generation was added.
func (r *rotation) grace(ctx context.Context) error {
	r.res.Generation = r.gen
	added, ok := r.kr.GenerationAdded(r.gen)
	if !ok || r.opts.MountGrace < 0 {
		return nil
	}
	wait := added.Add(r.opts.MountGrace).Sub(r.opts.now())
	if wait <= 0 {
		return nil
	}
	r.progress(RotateProgress{Step: StepWait, Wait: wait})
	return r.opts.sleep(ctx, wait)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *rotation) rewrapAll(ctx context.Context) error {
	r.progress(RotateProgress{Step: StepList})
	keys, err := listObjects(ctx, r.store)
	if err != nil {
		return err
	}
	r.res.Objects = len(keys)
	r.progress(RotateProgress{Step: StepRewrap, Total: len(keys)})
	return forEachKey(ctx, keys, r.opts.Concurrency, func(ctx context.Context, key string) error {
		out, err := r.rewrap(ctx, key)
		if err != nil && ctx.Err() == nil && !isStoreFailure(err) {
			// The object itself is the problem: note it, go on.
			r.record(key, out, err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("rewrapping %s: %w", key, err)
		}
		r.record(key, out, nil)
		return nil
	})
}

// isStoreFailure tells a failure of the store (stop: a rerun resumes)
// from a failure of one object's metadata (note it and go on).
func isStoreFailure(err error) bool {
	return !errors.Is(err, cipher.ErrBadMetadata) && !errors.Is(err, cipher.ErrAuth) && !errors.Is(err, errKeptChanging)
}

var errKeptChanging = errors.New("the object kept changing")

// rewrapOutcome is what became of one object.
type rewrapOutcome struct {
	kind rewrapKind
	gen  uint32 // the generation it names (before rewrapping)
}

type rewrapKind int

const (
	rewrapGone rewrapKind = iota
	rewrapDone
	rewrapAlready
	rewrapOther
	rewrapFailed
)

// rewrapAttempts bounds how often one object is read again after its
// conditional copy failed because it changed.
const rewrapAttempts = 5

func (r *rotation) rewrap(ctx context.Context, key string) (rewrapOutcome, error) {
	for range rewrapAttempts {
		info, err := r.store.Head(ctx, key)
		if errors.Is(err, blobstore.ErrNotFound) {
			return rewrapOutcome{kind: rewrapGone}, nil
		}
		if err != nil {
			return rewrapOutcome{}, err
		}
		if info.Metadata == nil || info.Metadata[cipher.MetaVersion] == "" {
			return rewrapOutcome{kind: rewrapOther}, nil
		}
		gen, err := cipher.MetadataGeneration(info.Metadata)
		if err != nil {
			return rewrapOutcome{kind: rewrapFailed}, err
		}
		if gen == r.gen {
			return rewrapOutcome{kind: rewrapAlready, gen: gen}, nil
		}
		meta, err := r.rewrapMeta(key, info.Metadata)
		if err != nil {
			return rewrapOutcome{kind: rewrapFailed, gen: gen}, err
		}
		if isMarkerKey(key) && info.Size == 0 {
			// Some servers (versitygw) refuse to copy onto a directory
			// object; an empty body is written afresh, as fs does.
			_, err = r.store.Put(ctx, key, bytes.NewReader(nil), 0, blobstore.PutOptions{Metadata: meta, IfMatch: info.ETag})
		} else {
			_, err = r.store.Copy(ctx, key, key, blobstore.CopyOptions{Metadata: meta, IfMatch: info.ETag})
		}
		if errors.Is(err, blobstore.ErrPreconditionFailed) || errors.Is(err, blobstore.ErrNotFound) {
			continue // changed or gone since the HEAD: read it again
		}
		if err != nil {
			return rewrapOutcome{}, err
		}
		return rewrapOutcome{kind: rewrapDone, gen: gen}, nil
	}
	return rewrapOutcome{kind: rewrapFailed}, fmt.Errorf("%w: %d conditional copies failed", errKeptChanging, rewrapAttempts)
}

// rewrapMeta rewraps the DEK of the object at key under the current
// generation. A writer's object keeps its origin (RewrapAnyMetadata binds
// the new wrap to it) and opens through its epoch, once; one under
// .coffer/ is refused, as every reader refuses it.
func (r *rotation) rewrapMeta(key string, meta map[string]string) (map[string]string, error) {
	origin, err := cipher.ObjectOrigin(meta)
	if err != nil {
		return nil, err
	}
	if origin.IsWriter() {
		if err := cipher.CheckWriterObjectKey(key); err != nil {
			return nil, err
		}
	}
	return r.kr.RewrapAnyMetadata(meta, r.epochs.epoch)
}

func isMarkerKey(key string) bool { return len(key) > 0 && key[len(key)-1] == '/' }

func (r *rotation) record(key string, out rewrapOutcome, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.res.Failed = append(r.res.Failed, ObjectFailure{Key: key, Generation: out.gen, Err: err})
		if out.gen != 0 && out.gen != r.gen {
			r.named[out.gen]++
		}
	case out.kind == rewrapDone:
		r.res.Rewrapped++
	case out.kind == rewrapAlready:
		r.res.Already++
	case out.kind == rewrapOther:
		r.res.Other++
	}
	r.done++
	r.progress(RotateProgress{Step: StepRewrap, Done: r.done, Total: r.res.Objects, Rewrapped: r.res.Rewrapped})
}

// retire drops every generation but the current one that no object
// names any more, with a conditional write after a fresh read.
func (r *rotation) retire(ctx context.Context) error {
	slices.SortFunc(r.res.Failed, func(a, b ObjectFailure) int {
		if a.Key < b.Key {
			return -1
		}
		return 1
	})
	r.progress(RotateProgress{Step: StepRetire})
	for attempt := 1; ; attempt++ {
		o, err := openConfig(ctx, r.store, r.opts.KeyOptions)
		if err != nil {
			return err
		}
		if cur := o.kr.CurrentGeneration(); cur != r.gen {
			return fmt.Errorf("KEK generation %d was added while this rotation rewrapped onto %d (another coffer rotate?): nothing retired; run coffer rotate again", cur, r.gen)
		}
		var retire, keep []uint32
		for _, g := range o.kr.Generations() {
			switch {
			case g == r.gen:
			case r.named[g] > 0:
				keep = append(keep, g)
			default:
				retire = append(retire, g)
			}
		}
		r.res.Remaining = keep
		if len(retire) == 0 {
			return nil
		}
		for _, g := range retire {
			if err := o.kr.RetireGeneration(g); err != nil {
				return err
			}
		}
		err = o.write(ctx, r.store, "the retirement of the old KEK generations")
		if errors.Is(err, ErrConfigChanged) && attempt < configWriteAttempts {
			continue
		}
		if err != nil {
			return err
		}
		r.res.Retired = retire
		return nil
	}
}
