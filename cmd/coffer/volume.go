package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/pflag"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// Opening a volume from the command line, the one path that `coffer
// mount` and every offline command (ls, cat, get, put, rm, fsck, key,
// rotate) share, in three steps:
//
//  1. volumeFlags.plan: the flags alone, no network. The modes, the SSE-C
//     keys, the store URL and the endpoint rule, the root keys (none in
//     --encryption none, where a key flag is a usage error).
//  2. volumePlan.openStore: open the store and read the volume config,
//     within storeCheckTimeout; with a KMS key named, decrypt the root
//     secret of the config's kms entry it opens (one KMS Decrypt call,
//     kms.go) and add that root key to the plan's.
//  3. volumePlan.openVolume: authenticate the config with the root keys
//     and compare its modes with the flags (fs.OpenVolume).
//
// Every failure is one line naming what to do (storeError). A command with
// nothing to do between the steps calls volumeFlags.open.

// volumeFlags are the store and key flags of a command that opens a volume.
type volumeFlags struct {
	store storeFlags
	keys  keyFlags
	// writerOK lets the key file be a writer credential (coffer mount:
	// a write-only mount); every other command refuses one.
	writerOK bool
}

func (f *volumeFlags) register(fl *pflag.FlagSet) {
	f.store.register(fl)
	f.keys.register(fl)
}

// registerEvery registers the flags of a command that takes every root
// key of a client-mode volume (keyFlags.registerEvery).
func (f *volumeFlags) registerEvery(fl *pflag.FlagSet) {
	f.store.register(fl)
	f.keys.registerEvery(fl)
}

// registerEveryWith is registerEvery with the opening KMS key's flag named
// kmsFlag (keyFlags.registerEveryWith).
func (f *volumeFlags) registerEveryWith(fl *pflag.FlagSet, kmsFlag string) {
	f.store.register(fl)
	f.keys.registerEveryWith(fl, kmsFlag)
}

// volumePlan is what the flags resolve to before any network I/O.
type volumePlan struct {
	url        string
	store      blobstore.Options // Concurrency is set by openStore
	encryption string
	sse        blobstore.SSEConfig
	roots      []*cipher.RootKey
	writer     *cipher.WriterCredential // a write-only mount: instead of roots
	kms        *kmsPlan                 // a KMS key named: its root key joins roots in openStore
	kmsDone    bool
}

// plan resolves the flags: the mode flags first, then check (the
// command's own flags, when set), then the store and the root keys, so a
// usage error is reported before any key file is read.
func (f *volumeFlags) plan(e *env, check func() error) (*volumePlan, error) {
	p := &volumePlan{}
	var err error
	if p.encryption, err = f.keys.mode(); err != nil {
		return nil, err
	}
	if p.sse, err = f.keys.sseConfig(e); err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, err
		}
	}
	if p.url, _, err = f.store.resolve(e); err != nil {
		return nil, err
	}
	p.store = f.store.options(p.sse, 0)
	if p.encryption == cipher.EncryptionNone {
		if fl := f.keys.explicitKeyFlag(); fl != "" {
			return nil, usagef("%s has no use with --encryption none: drop it, or use --encryption client", fl)
		}
		return p, nil
	}
	if f.writerOK {
		if p.writer, err = f.keys.writerCredential(e); err != nil || p.writer != nil {
			return p, err
		}
	}
	if p.kms, err = f.keys.kms.plan(e, &f.store); err != nil {
		return nil, err
	}
	if p.roots, err = f.keys.loadRoots(e); err != nil {
		return nil, err
	}
	return p, nil
}

// storeConcurrency is the request concurrency to open a store with for a
// volume that runs uploadConcurrency uploads (0: the default): fs lists
// with up to DefaultListConcurrency metadata requests at once and reads
// ahead with 4 ranged GETs per upload slot, so the HTTP pool must not
// serialise them.
func storeConcurrency(uploadConcurrency int) int {
	if uploadConcurrency <= 0 {
		uploadConcurrency = cofferfs.DefaultUploadConcurrency
	}
	return max(cofferfs.DefaultListConcurrency, 4*uploadConcurrency)
}

// openStore opens the store and reads the volume config, bounded by
// storeCheckTimeout so a wrong endpoint, missing volume or denied
// credentials fail within seconds with one clear line.
func (p *volumePlan) openStore(ctx context.Context, concurrency int) (blobstore.Store, *cipher.Config, error) {
	loc, _ := blobstore.ParseURL(p.url)
	if loc.Scheme == "file" {
		if _, err := os.Stat(loc.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no coffer volume at %s (no such directory): run coffer init --store %s first", p.url, p.url)
		}
	}
	checkCtx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	opts := p.store
	opts.Concurrency = concurrency
	store, err := blobstore.Open(checkCtx, p.url, opts)
	if err != nil {
		return nil, nil, storeError(p.url, err)
	}
	cfg, err := cofferfs.ReadConfig(checkCtx, store)
	if err != nil {
		store.Close()
		return nil, nil, storeError(p.url, err)
	}
	if p.kms != nil && !p.kmsDone {
		root, err := p.kms.rootKey(ctx, cfg, p.url)
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		p.roots, p.kmsDone = append(p.roots, root), true
	}
	return store, cfg, nil
}

// openVolume opens the volume in store (whose config openStore read):
// the config is authenticated with the plan's root keys and its modes
// compared with the flags. opts holds the command's own settings; the
// store, keys, modes and config are the plan's.
func (p *volumePlan) openVolume(ctx context.Context, store blobstore.Store, cfg *cipher.Config, opts cofferfs.Options) (*cofferfs.Volume, error) {
	opts.Store, opts.Config = store, cfg
	opts.Roots, opts.Writer, opts.Encryption, opts.SSE = p.roots, p.writer, p.encryption, p.sse
	vol, err := cofferfs.OpenVolume(ctx, opts)
	if err != nil {
		return nil, storeError(p.url, err)
	}
	return vol, nil
}

// openedVolume is a volume an offline command opened, with its store.
type openedVolume struct {
	*cofferfs.Volume
	store blobstore.Store
	url   string
}

// Close closes the volume (uploading what it still holds) and the store.
func (v *openedVolume) Close(ctx context.Context) error {
	err := v.Volume.Close(ctx)
	v.store.Close()
	return err
}

// open runs the three steps for a command with nothing to do between
// them: the flags, the store, the volume with the settings in opts.
func (f *volumeFlags) open(ctx context.Context, e *env, opts cofferfs.Options) (*openedVolume, error) {
	p, err := f.plan(e, nil)
	if err != nil {
		return nil, err
	}
	store, cfg, err := p.openStore(ctx, storeConcurrency(opts.UploadConcurrency))
	if err != nil {
		return nil, err
	}
	vol, err := p.openVolume(ctx, store, cfg, opts)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &openedVolume{Volume: vol, store: store, url: p.url}, nil
}

// storePrefix is where the volume's objects lie in an s3 store, as a
// bucket policy's resource ARN names them ("BUCKET/PREFIX/"); "" for
// another store.
func (p *volumePlan) storePrefix() string {
	loc, err := blobstore.ParseURL(p.url)
	if err != nil || loc.Scheme != "s3" {
		return ""
	}
	if loc.Prefix == "" {
		return loc.Bucket + "/"
	}
	return loc.Bucket + "/" + loc.Prefix + "/"
}
