package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// A client-mode volume re-reads its config while it is open, so that a
// `coffer rotate` elsewhere reaches it: every refresh interval it HEADs
// the config and, when the ETag changed, reads it, authenticates it as at
// open (the same entry, cipher.EntryKey: entry auth, then the MAC; no
// Argon2id again) and adopts the keyring's KEK generations and nothing
// else (cipher.Keyring.AdoptGenerations: new ones, the current one, the
// retired ones dropped; rollbacks refused). Other changes (keys added or
// removed, a new anchor) need no action: the keyring's secrets do not
// change. A refresh that fails (store unreachable, the config no longer
// opens with the volume's key because it was removed or its passphrase
// changed, a forgery, a rollback) is logged and the keyring stays as it
// was; such a mount cannot follow a rotation until it is mounted again
// with a current key.
//
// Objects under a generation keep opening until the refreshed config no
// longer lists it (rotate retires a generation only once no object names
// it). An upload whose metadata was sealed under a generation that is no
// longer current when the upload completes (a long upload across a
// refresh) is rewrapped at once with a metadata-only copy (rewrapStale),
// so rotate, which may have listed the volume before that object
// appeared, leaves nothing on a generation it retires.

// ConfigRefreshMax is the longest a volume goes between two reads of its
// config: the interval is the metadata TTL, within [1 s, ConfigRefreshMax].
// rotate waits DefaultMountGrace, derived from it, before it rewraps.
const ConfigRefreshMax = 10 * time.Second

const (
	configRefreshMin = time.Second
	// configRefreshTimeout bounds one refresh (HEAD, GET, open).
	configRefreshTimeout = 5 * time.Second
)

// configRefreshInterval is how often a volume opened with o re-reads its
// config; 0 means never.
func configRefreshInterval(o Options) time.Duration {
	d := o.ConfigRefresh
	switch {
	case d < 0:
		return 0
	case d == 0 && o.MetadataTTL < 0:
		d = configRefreshMin
	case d == 0:
		d = max(o.MetadataTTL, configRefreshMin)
	}
	return min(d, ConfigRefreshMax)
}

// configWatch keeps a volume's keyring generations up to date.
type configWatch struct {
	v        *Volume
	ek       *cipher.EntryKey
	kr       *cipher.Keyring
	interval time.Duration

	mu      sync.Mutex // one refresh at a time; guards the fields below
	etag    string     // of the config last read ("": not read yet)
	judged  error      // what reading that config gave (nil: adopted)
	lastErr string     // the failure last logged, so a lasting one logs once
}

// startConfigWatch starts re-reading the config every interval, until
// the volume closes (v.bg).
func (v *Volume) startConfigWatch(cfg *cipher.Config, kr *cipher.Keyring) {
	interval := configRefreshInterval(v.opts)
	ek := cfg.EntryKey()
	if ek == nil {
		return
	}
	v.watch = &configWatch{v: v, ek: ek, kr: kr, interval: interval}
	if interval == 0 {
		return // refreshed only when asked (tests)
	}
	v.bg.Add(1)
	go func() {
		defer v.bg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-v.ctx.Done():
				return
			case <-t.C:
				v.watch.refresh(v.ctx)
			}
		}
	}()
}

// refresh re-reads the config once and reports whether the keyring
// changed; failures are logged (once while they last) and returned.
func (w *configWatch) refresh(ctx context.Context) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed, err := w.refreshLocked(ctx)
	v := w.v
	switch {
	case err != nil && ctx.Err() == nil:
		if msg := err.Error(); msg != w.lastErr {
			w.lastErr = msg
			v.log.LogAttrs(context.Background(), slog.LevelWarn, "re-reading the volume config failed; keeping the KEK generations as they are (a coffer rotate elsewhere will not reach this mount until it succeeds or the volume is mounted again with a current key)",
				slog.String("err", msg))
		}
	case err == nil && w.lastErr != "":
		w.lastErr = ""
		v.log.LogAttrs(context.Background(), slog.LevelInfo, "re-reading the volume config works again")
	}
	if changed {
		v.log.LogAttrs(context.Background(), slog.LevelInfo, "KEK generations updated from the volume config",
			slog.Any("current", w.kr.CurrentGeneration()), slog.Any("generations", w.kr.Generations()))
	}
	return changed, err
}

func (w *configWatch) refreshLocked(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, configRefreshTimeout)
	defer cancel()
	store := w.v.store
	head, err := store.Head(ctx, ConfigKey)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", ConfigKey, err)
	}
	if w.etag != "" && head.ETag == w.etag {
		return false, w.judged // the same bytes are not judged again
	}
	info, cfg, err := readConfig(ctx, store)
	if err != nil {
		return false, err
	}
	changed, err := w.adopt(cfg)
	w.etag, w.judged = info.ETag, err
	return changed, err
}

// adopt authenticates cfg and takes its keyring's generations.
func (w *configWatch) adopt(cfg *cipher.Config) (bool, error) {
	kr, err := w.ek.Open(cfg)
	if err != nil {
		return false, fmt.Errorf("the volume config no longer opens with this volume's key: %w", err)
	}
	if err := checkModes(cfg, EncryptionClient, w.v.opts.SSE); err != nil {
		return false, err
	}
	changed, err := w.kr.AdoptGenerations(kr)
	if err != nil {
		return false, fmt.Errorf("refusing the volume config's KEK generations: %w", err)
	}
	// Writers added or revoked since (a revoked writer's cached epochs
	// are refused on their next use anyway, cipher checks it each time).
	wchanged, err := w.kr.AdoptWriters(kr)
	if err != nil {
		return false, fmt.Errorf("refusing the volume config's writer keys: %w", err)
	}
	if wchanged {
		if l, ok := w.v.lay.(*clientLayout); ok {
			l.epochs.drop()
		}
	}
	return changed || wchanged, nil
}

// keyring is the volume's keyring (nil in "none" mode).
func (v *Volume) keyring() *cipher.Keyring {
	if l, ok := v.lay.(*clientLayout); ok {
		return l.kr
	}
	return nil
}

// rewrapStale rewraps the DEK of an object just stored at key with meta
// when meta's generation is no longer current (the config was refreshed
// during the upload): a metadata-only copy onto itself, conditional on
// the ETag just stored. It returns info as it then stands. A failure is
// logged and leaves the object as stored (rotate rewraps it while its
// generation is in the keyring).
func (v *Volume) rewrapStale(ctx context.Context, key string, okey *cipher.ObjectKey, meta map[string]string, info blobstore.ObjectInfo) blobstore.ObjectInfo {
	kr := v.keyring()
	if kr == nil || okey == nil {
		return info
	}
	gen, err := cipher.MetadataGeneration(meta)
	if err != nil || gen == kr.CurrentGeneration() {
		return info
	}
	newMeta, err := kr.RewrapObjectKey(meta, okey)
	if err == nil {
		var out blobstore.ObjectInfo
		out, err = v.store.Copy(ctx, key, key, blobstore.CopyOptions{Metadata: newMeta, IfMatch: info.ETag})
		if err == nil {
			if out.ETag != "" {
				info.ETag = out.ETag
			}
			return info
		}
	}
	if !errors.Is(err, blobstore.ErrPreconditionFailed) { // replaced meanwhile: nothing of ours to rewrap
		v.logEvent(slog.LevelWarn, "could not rewrap a new object onto the current KEK generation; coffer rotate will", "", key,
			"generation", gen, "err", err)
	}
	return info
}
