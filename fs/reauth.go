package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// ReauthOptions are the inputs of ReauthVolume.
type ReauthOptions struct {
	// Roots must hold the root key of every entry of the config.
	Roots []*cipher.RootKey
	// SSE is the SSE mode the user gave; it must be the volume's.
	SSE blobstore.SSEConfig
	// AllowEmpty lets a config from before entry authentication be
	// upgraded when the volume holds no object to check its keyring
	// against.
	AllowEmpty bool
}

// ReauthResult says what ReauthVolume did.
type ReauthResult struct {
	VolumeID string
	Keys     []cipher.KeyInfo
	// Upgraded: the config predated entry authentication.
	Upgraded bool
	// Checked is how many stored objects were found to open under the
	// keyring of a config being upgraded.
	Checked int
}

// ErrNothingToCheck is returned when a config from before entry
// authentication is to be upgraded but the volume holds no object to
// check its keyring against, and ReauthOptions.AllowEmpty is not set.
var ErrNothingToCheck = errors.New("the volume holds no object to check the config's keyring against")

// ErrKeyringNotTheVolumes is returned when stored objects do not open
// under the keyring of a config being upgraded: the config is not the
// one those objects were written with.
var ErrKeyringNotTheVolumes = errors.New("stored objects do not open under the config's keyring")

// reauthCheckObjects bounds how many stored objects the upgrade of a
// config from before entry authentication checks against its keyring.
// Each costs one HEAD. A forger who wants its keyring accepted must hide
// every object of the volume from the first ones listed, which leaves
// the volume visibly empty.
const reauthCheckObjects = 64

// ReauthVolume re-authenticates every root key entry of the volume's
// config under a new keyring anchor (cipher.Config.Reauth; it needs every
// root key) and writes the config back with one conditional write
// (If-Match on the ETag it read). A config from before entry
// authentication is upgraded this way, but only once the keyring it holds
// is shown to be the volume's: nothing in such a config ties the keyring
// to the root keys (anyone can seal one to an entry's public key), so up
// to reauthCheckObjects stored objects must each unwrap their DEK under
// it (DESIGN.md §2: only the volume's KEKs do); a volume without objects
// is upgraded only with AllowEmpty.
func ReauthVolume(ctx context.Context, store blobstore.Store, opts ReauthOptions) (ReauthResult, error) {
	info, cfg, err := readConfig(ctx, store)
	if err != nil {
		return ReauthResult{}, err
	}
	if cfg.ClaimedEncryption() == EncryptionNone {
		return ReauthResult{}, errors.New("the volume has no root keys (--encryption none): there is nothing to re-authenticate")
	}
	res := ReauthResult{}
	kr, err := cfg.Open(opts.Roots...)
	if errors.Is(err, cipher.ErrConfigPreAuth) {
		res.Upgraded = true
		kr, err = cfg.OpenPreAuth(opts.Roots...)
	}
	switch {
	case errors.Is(err, cipher.ErrNoKeyOpens):
		return ReauthResult{}, fmt.Errorf("wrong key: none of the given keys opens this volume: %w", err)
	case errors.Is(err, cipher.ErrConfigTampered):
		return ReauthResult{}, fmt.Errorf("the volume config failed authentication (changed, or not written by coffer): %w", err)
	case err != nil:
		return ReauthResult{}, fmt.Errorf("opening the volume config: %w", err)
	}
	if err := checkModes(cfg, EncryptionClient, opts.SSE); err != nil {
		return ReauthResult{}, err
	}
	if res.Upgraded {
		if res.Checked, err = checkKeyring(ctx, store, kr); err != nil {
			return ReauthResult{}, err
		}
		if res.Checked == 0 && !opts.AllowEmpty {
			return ReauthResult{}, ErrNothingToCheck
		}
	}
	if err := cfg.Reauth(kr, opts.Roots...); err != nil {
		return ReauthResult{}, err
	}
	data, err := cfg.Marshal(kr)
	if err != nil {
		return ReauthResult{}, err
	}
	_, err = store.Put(ctx, ConfigKey, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{IfMatch: info.ETag})
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		return ReauthResult{}, fmt.Errorf("the volume config changed while it was re-authenticated (another key command, or rotate?): nothing was written; run it again: %w", err)
	}
	if err != nil {
		return ReauthResult{}, fmt.Errorf("writing %s: %w", ConfigKey, err)
	}
	res.VolumeID, res.Keys = VolumeID(cfg), cfg.Keys()
	return res, nil
}

// checkKeyring unwraps the DEK of up to reauthCheckObjects stored objects
// under kr and returns how many it checked; one that does not unwrap is
// ErrKeyringNotTheVolumes.
func checkKeyring(ctx context.Context, store blobstore.Store, kr *cipher.Keyring) (int, error) {
	var keys []string
	for e, err := range store.List(ctx, "", "") {
		if err != nil {
			return 0, fmt.Errorf("listing the volume: %w", err)
		}
		if strings.HasPrefix(e.Key, reservedName+"/") || e.IsPrefix {
			continue
		}
		if keys = append(keys, e.Key); len(keys) == reauthCheckObjects {
			break
		}
	}
	failed := make([]error, len(keys))
	seen := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, key := range keys {
		g.Go(func() error {
			info, err := store.Head(gctx, key)
			if errors.Is(err, blobstore.ErrNotFound) {
				return nil // gone since the listing
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", key, err)
			}
			_, failed[i] = kr.OpenObjectKey(info.Metadata)
			seen[i] = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	var bad []string
	checked := 0
	for i, err := range failed {
		if err != nil {
			bad = append(bad, keys[i])
		}
		if seen[i] {
			checked++
		}
	}
	if bad != nil {
		return 0, fmt.Errorf("%w: %d of the %d objects checked (first: %s): this config is not the one the volume's files were written with, so it may be forged",
			ErrKeyringNotTheVolumes, len(bad), checked, bad[0])
	}
	return checked, nil
}
