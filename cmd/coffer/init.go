package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

func newInitCommand(e *env) *cobra.Command {
	var (
		sf storeFlags
		kf keyFlags
	)
	cmd := &cobra.Command{
		Use:   "init [flags]",
		Short: "Create a new coffer volume in a store",
		Long: `Create a new coffer volume: write its config object (.coffer/config) to the store.

Without --key-file, --passphrase-file or --kms-key-id, init uses the
default key file ($XDG_CONFIG_HOME/coffer/key), creating it when it does
not exist yet. Keep that file safe: without it the volume cannot be opened.

With --kms-key-id (or COFFER_KMS_KEY_ID) the volume's root secret is
encrypted by AWS KMS under that key (one Encrypt call) and stored in the
config: mounts and commands then name the same key and need no key file.`,
		Example: `  coffer init                                        # local store, new default key
  coffer init --store s3://bucket/vol --key-file ~/vol.key
  coffer init --store s3://bucket/vol --kms-key-id alias/coffer-root
  coffer init --store s3://bucket --encryption none --sse sse-c --sse-c-key-file ~/ssec.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(cmd.Context(), e, &sf, &kf)
		},
	}
	sf.register(cmd.Flags())
	kf.register(cmd.Flags())
	return cmd
}

func runInit(ctx context.Context, e *env, sf *storeFlags, kf *keyFlags) error {
	mode, err := kf.mode()
	if err != nil {
		return err
	}
	sse, err := kf.sseConfig(e)
	if err != nil {
		return err
	}
	if mode == cipher.EncryptionNone {
		if f := kf.explicitKeyFlag(); f != "" {
			return usagef("%s has no use with --encryption none: drop it, or use --encryption client", f)
		}
		if sse.Mode == blobstore.SSENone {
			fmt.Fprintln(e.stderr, "WARNING: --encryption none without --sse: file contents and names will be stored in the clear, readable by anyone who can read the store")
		}
	}
	url, loc, err := sf.resolve(e)
	if err != nil {
		return err
	}
	// Read the keys the flags name before touching the store, so a bad key
	// file leaves nothing behind.
	var kmsKey *kmsPlan
	if mode == cipher.EncryptionClient {
		if kmsKey, err = kf.kms.plan(e, sf); err != nil {
			return err
		}
		if src, err := kf.sources(e); err != nil {
			return err
		} else if !src.defaulted {
			if _, err := kf.loadRoots(e); err != nil {
				return err
			}
		}
	}
	if loc.Scheme == "file" {
		if err := ensureDir(loc.Path, 0o700); err != nil {
			return err
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	store, err := blobstore.Open(openCtx, url, sf.options(sse, 0))
	if err != nil {
		return storeError(url, err)
	}
	defer store.Close()
	// Refuse early, before creating a key for a volume that cannot be made.
	if _, err := store.Head(openCtx, cofferfs.ConfigKey); err == nil {
		return fmt.Errorf("a coffer volume already exists at %s: mount it, or choose another --store", url)
	} else if !errors.Is(err, blobstore.ErrNotFound) {
		return storeError(url, err)
	}

	var kr *cipher.Keyring
	if mode == cipher.EncryptionClient {
		if kr, err = cipher.NewKeyring(); err != nil {
			return fmt.Errorf("making the keyring: %w", err)
		}
	}
	roots, created, err := initRoots(e, kf, mode)
	if err != nil {
		return err
	}
	if kmsKey != nil {
		r, err := kmsKey.newRootKey(ctx, kr.VolumeID())
		if err != nil {
			return err
		}
		roots = append(roots, r)
	}
	var first *cipher.RootKey
	if len(roots) > 0 {
		first = roots[0]
	}
	cfg, err := cipher.NewConfig(mode, string(sse.Mode), sse.KMSKeyID, kr, first)
	if err != nil {
		return fmt.Errorf("making the volume config: %w", err)
	}
	for _, r := range roots[min(1, len(roots)):] {
		if _, err := cfg.AddKey(kr, r); err != nil {
			return fmt.Errorf("adding the second root key: %w", err)
		}
	}
	if err := cofferfs.InitVolume(ctx, store, cfg, kr); err != nil {
		return storeError(url, err)
	}
	fmt.Fprintf(e.stdout, "initialised coffer volume %s at %s (encryption %s, sse %s)\n",
		cofferfs.VolumeID(cfg), url, mode, sse.Mode.Name())
	if kmsKey != nil {
		fmt.Fprintf(e.stdout, "its root secret is encrypted by KMS key %s: open it with --kms-key-id %s (or %s)\n", kmsKey.keyID, kmsKey.keyID, envKMSKeyID)
	}
	if created != "" {
		fmt.Fprintf(e.stdout, "created key file %s: it is the only way to open this volume; if you lose it, you lose the data, so back it up somewhere safe\n", created)
	}
	return nil
}

// initRoots loads the root keys named by the flags; with none named and
// no default key file yet, it creates the default key file.
func initRoots(e *env, kf *keyFlags, mode string) (roots []*cipher.RootKey, created string, err error) {
	if mode != cipher.EncryptionClient {
		return nil, "", nil
	}
	src, err := kf.sources(e)
	if err != nil {
		return nil, "", err
	}
	if src.defaulted {
		if _, err := os.Stat(src.keyFile); errors.Is(err, fs.ErrNotExist) {
			if err := ensureDir(filepath.Dir(src.keyFile), 0o700); err != nil {
				return nil, "", err
			}
			if err := cipher.WriteKeyFile(src.keyFile); err != nil {
				return nil, "", fmt.Errorf("creating key file %s: %w", src.keyFile, err)
			}
			created = src.keyFile
		}
	}
	roots, err = kf.loadRoots(e)
	return roots, created, err
}
