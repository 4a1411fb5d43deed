package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// newKeyCommand is `coffer key`, the parent of the commands that manage a
// volume's root keys (reauth; add, list and remove come later).
func newKeyCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the root keys of a volume",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return &usageError{err: errors.New("missing subcommand"), hint: c.CommandPath() + " --help"}
		},
	}
	cmd.AddCommand(newKeyReauthCommand(e))
	return cmd
}

// reauthFlags are the flags of `coffer key reauth`: every root key, and
// the SSE flags the store needs.
type reauthFlags struct {
	keyFiles        []string
	passphraseFiles []string
	sse             keyFlags // only its SSE fields
	allowEmpty      bool
}

func newKeyReauthCommand(e *env) *cobra.Command {
	var (
		sf storeFlags
		rf reauthFlags
	)
	cmd := &cobra.Command{
		Use:   "reauth [flags]",
		Short: "Re-authenticate every root key of a volume under a new keyring anchor",
		Long: `Re-authenticate every root key entry of the volume's config under a new
keyring anchor, with one conditional write of the config.

Give every root key of the volume: a --key-file or --passphrase-file for
each (both repeatable). Run it after "coffer key remove" of a key whose
holder you no longer trust: until then, whoever kept the keyring that key
opened can still replace the volume's keyring with one of their own that
the remaining keys accept.

It also upgrades a volume created before entry authentication (the mount
refuses such a volume and names this command). Nothing in such a config
shows that its keyring is the volume's, so the upgrade first checks that
the volume's stored files open under it; a volume without files is
upgraded only with --allow-empty.`,
		Example: `  coffer key reauth --store s3://bucket/vol --key-file ~/vol.key --passphrase-file ~/vol.pass`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyReauth(cmd.Context(), e, &sf, &rf)
		},
	}
	f := cmd.Flags()
	sf.register(f)
	f.StringArrayVar(&rf.keyFiles, "key-file", nil, "a root key file of the volume (repeat for each; env "+envKeyFile+" when no key flag is given)")
	f.StringArrayVar(&rf.passphraseFiles, "passphrase-file", nil, "a file whose first line is a passphrase of the volume (repeat for each; env "+envPassphraseFile+")")
	f.StringVar(&rf.sse.sseCKeyFile, "sse-c-key-file", "", "SSE-C key file, for --sse sse-c (env "+envSSECKeyFile+")")
	f.StringVar(&rf.sse.sse, "sse", "", "the volume's server-side encryption: sse-s3, sse-kms or sse-c")
	f.StringVar(&rf.sse.sseKMSKeyID, "sse-kms-key-id", "", "KMS key ID or ARN for --sse sse-kms")
	f.BoolVar(&rf.allowEmpty, "allow-empty", false, "upgrade a volume from before entry authentication even though it holds no file to check its keyring against")
	return cmd
}

// roots loads every root key the flags name; without key flags, the one
// key mount would use (environment, then the default key file).
func (rf *reauthFlags) roots(e *env) ([]*cipher.RootKey, error) {
	if len(rf.keyFiles) == 0 && len(rf.passphraseFiles) == 0 {
		return (&keyFlags{}).loadRoots(e)
	}
	var roots []*cipher.RootKey
	for _, p := range rf.keyFiles {
		r, err := cipher.LoadKeyFile(p)
		if err != nil {
			return nil, keyFileError(p, err)
		}
		roots = append(roots, r)
	}
	for _, p := range rf.passphraseFiles {
		r, err := cipher.LoadPassphraseFile(p)
		if err != nil {
			return nil, keyFileError(p, err)
		}
		roots = append(roots, r)
	}
	return roots, nil
}

func runKeyReauth(ctx context.Context, e *env, sf *storeFlags, rf *reauthFlags) error {
	sse, err := rf.sse.sseConfig(e)
	if err != nil {
		return err
	}
	url, _, err := sf.resolve(e)
	if err != nil {
		return err
	}
	roots, err := rf.roots(e)
	if err != nil {
		return err
	}
	openCtx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	store, err := blobstore.Open(openCtx, url, sf.options(sse, 0))
	if err != nil {
		return storeError(url, err)
	}
	defer store.Close()
	res, err := cofferfs.ReauthVolume(ctx, store, cofferfs.ReauthOptions{Roots: roots, SSE: sse, AllowEmpty: rf.allowEmpty})
	if err != nil {
		return reauthError(url, err)
	}
	var ids []string
	for _, k := range res.Keys {
		ids = append(ids, fmt.Sprintf("%s (%s)", k.ID, k.Kind))
	}
	if res.Upgraded {
		checked := fmt.Sprintf("%d stored objects open under its keyring", res.Checked)
		if res.Checked == 1 {
			checked = "the one stored object opens under its keyring"
		}
		if res.Checked == 0 {
			checked = "no stored object to check its keyring against; --allow-empty"
		}
		fmt.Fprintf(e.stdout, "upgraded volume %s at %s to entry authentication (%s)\n", res.VolumeID, url, checked)
	}
	fmt.Fprintf(e.stdout, "re-authenticated the root keys of volume %s at %s under a new keyring anchor: %s\n", res.VolumeID, url, strings.Join(ids, ", "))
	return nil
}

// reauthError words the failures particular to key reauth; the rest are
// a store's.
func reauthError(url string, err error) error {
	switch {
	case errors.Is(err, cipher.ErrMissingRootKeys):
		return fmt.Errorf("%v: key reauth recomputes every key's entry, which needs that key: give a --key-file or --passphrase-file for each", err)
	case errors.Is(err, cofferfs.ErrNothingToCheck):
		return fmt.Errorf("the volume at %s predates entry authentication and holds no file to check its config against: if it should hold files, they were removed or hidden and its config may be forged, so do not use it; if it is really empty, run again with --allow-empty", url)
	case errors.Is(err, cofferfs.ErrKeyringNotTheVolumes):
		return fmt.Errorf("refusing to upgrade the volume at %s: %v; restore .coffer/config from a backup you trust", url, err)
	case errors.Is(err, cipher.ErrConfigTampered) && !errors.Is(err, cipher.ErrConfigPreAuth):
		return fmt.Errorf("the volume config at %s failed authentication (modified, or not written with these keys): refusing to re-authenticate it", url)
	case errors.Is(err, blobstore.ErrPreconditionFailed):
		return err
	}
	var storeErr *blobstore.Error
	if errors.As(err, &storeErr) || errors.Is(err, cipher.ErrNoKeyOpens) || errors.Is(err, cipher.ErrNotConfig) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return storeError(url, err)
	}
	return err // a mode mismatch, a given key of no entry: worded where they arose
}
