package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

func newPasswdCommand(e *env) *cobra.Command {
	var (
		vf      volumeFlags
		newPass string
	)
	cmd := &cobra.Command{
		Use:   "passwd --passphrase-file OLD --new-passphrase-file NEW [flags]",
		Short: "Change a passphrase of a volume",
		Long: `Change the passphrase OLD opens the volume with to NEW (the first line of
each file), with one conditional write of the config. The key keeps its
ID; the keyring is resealed under a new wrapping key, so OLD opens no
config written from now on. Running mounts opened with OLD keep working
but no longer follow coffer rotate: mount them again with NEW.`,
		Example: `  coffer passwd --store s3://bucket/vol --passphrase-file ~/old.pass --new-passphrase-file ~/new.pass`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPasswd(cmd.Context(), e, &vf, newPass)
		},
	}
	f := cmd.Flags()
	vf.store.register(f)
	vf.keys.flags = f
	vf.keys.encryption = cipher.EncryptionClient
	f.StringVar(&vf.keys.passphraseFile, "passphrase-file", "", "file whose first line is the passphrase to change (env "+envPassphraseFile+")")
	vf.keys.registerSSE(f)
	f.StringVar(&newPass, "new-passphrase-file", "", "file whose first line is the new passphrase (mode 0600)")
	return cmd
}

func runPasswd(ctx context.Context, e *env, vf *volumeFlags, newPassFile string) error {
	p, err := vf.plan(e, func() error {
		if newPassFile == "" {
			return usagef("give the new passphrase: --new-passphrase-file FILE")
		}
		if vf.keys.passphraseFile == "" && e.getenv(envPassphraseFile) == "" {
			return usagef("give the passphrase to change: --passphrase-file FILE (or set %s)", envPassphraseFile)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Only the passphrase is the old key (a key file from the environment
	// is not the one to change).
	var old []*cipher.RootKey
	for _, r := range p.roots {
		if r.Kind() == cipher.KindPassphrase {
			old = append(old, r)
		}
	}
	p.roots = old
	newRoot, err := cipher.LoadPassphraseFile(newPassFile)
	if err != nil {
		return keyFileError(newPassFile, err)
	}
	store, _, err := p.openStore(ctx, cofferfs.DefaultListConcurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	id, err := cofferfs.ChangePassphrase(ctx, store, cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse}, newRoot)
	if err != nil {
		return keyCommandError(p.url, err)
	}
	fmt.Fprintf(e.stdout, "changed the passphrase of root key %s of the volume at %s\n", id, p.url)
	return nil
}
