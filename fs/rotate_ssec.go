package fs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// SSE-C key rotation (DESIGN.md §4, `coffer rotate --sse-c-new-key-file`):
// every object, the config included, is re-encrypted server-side from the
// SSE-C key it is under to the store's newest key (a CopyObject onto
// itself carrying both key sets, metadata kept, conditional on the ETag;
// blobstore.S3.RekeySSEC). An object the newest key opens already (a HEAD
// with that key) is skipped, so a rerun resumes. Afterwards no object
// opens with the old keys. Mounts running with only the old key cannot
// read re-encrypted objects: give them the new key first (README).

// sseCRekeyer is the S3 backend's server-side SSE-C re-encryption.
type sseCRekeyer interface {
	RekeySSEC(ctx context.Context, key string) (bool, error)
}

// SSECRotateOptions are the inputs of RotateSSEC.
type SSECRotateOptions struct {
	// Roots open a client-mode volume's config (unused in "none" mode).
	Roots []*cipher.RootKey
	// Encryption is the mode the user gave ("" is client).
	Encryption string
	// SSE must be the store's: sse-c, the new key first, then the keys
	// objects may be under now.
	SSE blobstore.SSEConfig
	// Concurrency bounds the objects re-encrypted at once (0:
	// DefaultRotateConcurrency).
	Concurrency int
	// Progress, when set, is called (never concurrently) after each
	// object with the number done, the total and how many were
	// re-encrypted.
	Progress func(done, total, rekeyed int)
}

// SSECRotateResult says what RotateSSEC did.
type SSECRotateResult struct {
	Objects int // objects listed, the config included
	Rekeyed int // re-encrypted by this run
}

// RotateSSEC re-encrypts every object of store under its newest SSE-C
// key. store must be the S3 backend opened with opts.SSE; the config must
// open (with opts.Roots in client mode) and name the modes given.
func RotateSSEC(ctx context.Context, store blobstore.Store, opts SSECRotateOptions) (SSECRotateResult, error) {
	rk, ok := store.(sseCRekeyer)
	if !ok || opts.SSE.Mode != blobstore.SSEC {
		return SSECRotateResult{}, errors.New("SSE-C rotation needs an S3 store opened with --sse sse-c")
	}
	if len(opts.SSE.CKeys) < 2 {
		return SSECRotateResult{}, errors.New("SSE-C rotation needs the new key and the current one")
	}
	_, cfg, err := readConfig(ctx, store)
	if err != nil {
		return SSECRotateResult{}, err
	}
	// The config is under the old key or, on a rerun, the new one; either
	// opens it (the store tries its keys in turn). Its modes must be the
	// ones given: a none-mode config is not authenticated (see
	// checkEncryption), a client one only with a root key.
	if err := checkEncryption(cfg.ClaimedEncryption(), opts.Encryption); err != nil {
		return SSECRotateResult{}, err
	}
	if _, err := cfg.Open(opts.Roots...); err != nil {
		return SSECRotateResult{}, fmt.Errorf("opening the volume config: %w", err)
	}
	if err := checkModes(cfg, opts.Encryption, opts.SSE); err != nil {
		return SSECRotateResult{}, err
	}
	var keys []string
	for e, err := range store.List(ctx, "", "") {
		if err != nil {
			return SSECRotateResult{}, fmt.Errorf("listing the volume: %w", err)
		}
		if !e.IsPrefix {
			keys = append(keys, e.Key)
		}
	}
	res := SSECRotateResult{Objects: len(keys)}
	var mu sync.Mutex
	done := 0
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = DefaultRotateConcurrency
	}
	err = forEachKey(ctx, keys, concurrency, func(ctx context.Context, key string) error {
		rekeyed, err := rekeySSEC(ctx, rk, key)
		if err != nil {
			return fmt.Errorf("re-encrypting %s: %w", key, err)
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		if rekeyed {
			res.Rekeyed++
		}
		if opts.Progress != nil {
			opts.Progress(done, len(keys), res.Rekeyed)
		}
		return nil
	})
	return res, err
}

// rekeySSEC re-encrypts one object, reading it again when it changed
// between the HEAD and the copy; a vanished object is not an error.
func rekeySSEC(ctx context.Context, rk sseCRekeyer, key string) (bool, error) {
	var err error
	for range rewrapAttempts {
		var rekeyed bool
		rekeyed, err = rk.RekeySSEC(ctx, key)
		switch {
		case errors.Is(err, blobstore.ErrNotFound):
			return false, nil
		case errors.Is(err, blobstore.ErrPreconditionFailed):
			continue
		}
		return rekeyed, err
	}
	return false, err
}
