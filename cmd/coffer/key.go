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
// volume's root keys: add, list, remove, reauth, and its writer keys:
// export-writer, revoke-writer (passwd and rotate are
// top-level commands, DESIGN.md §6).
func newKeyCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the root keys and writer keys of a volume",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return &usageError{err: errors.New("missing subcommand"), hint: c.CommandPath() + " --help"}
		},
	}
	cmd.AddCommand(newKeyAddCommand(e), newKeyListCommand(e), newKeyRemoveCommand(e), newKeyReauthCommand(e),
		newKeyExportWriterCommand(e), newKeyRevokeWriterCommand(e))
	return cmd
}

func newKeyReauthCommand(e *env) *cobra.Command {
	var (
		vf         volumeFlags
		allowEmpty bool
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
			return runKeyReauth(cmd.Context(), e, &vf, allowEmpty)
		},
	}
	f := cmd.Flags()
	vf.registerEvery(f)
	f.BoolVar(&allowEmpty, "allow-empty", false, "upgrade a volume from before entry authentication even though it holds no file to check its keyring against")
	return cmd
}

func runKeyReauth(ctx context.Context, e *env, vf *volumeFlags, allowEmpty bool) error {
	p, err := vf.plan(e, nil)
	if err != nil {
		return err
	}
	store, _, err := p.openStore(ctx, cofferfs.DefaultListConcurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := cofferfs.ReauthVolume(ctx, store, cofferfs.ReauthOptions{Roots: p.roots, SSE: p.sse, AllowEmpty: allowEmpty})
	if err != nil {
		return reauthError(p.url, err)
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
		fmt.Fprintf(e.stdout, "upgraded volume %s at %s to entry authentication (%s)\n", res.VolumeID, p.url, checked)
	}
	fmt.Fprintf(e.stdout, "re-authenticated the root keys of volume %s at %s under a new keyring anchor: %s\n", res.VolumeID, p.url, strings.Join(ids, ", "))
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
