package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// key add, key list and key remove: each opens the volume with any root
// key it lists (--key-file and --passphrase-file, repeatable, as for key
// reauth) and rewraps the keyring only, with one conditional write of
// the config (fs/keys.go).

// openKMSKeyFlag names the KMS key that opens the volume in key add,
// whose --kms-key-id names the KMS key to add (DESIGN.md §6).
const openKMSKeyFlag = "open-kms-key-id"

func newKeyAddCommand(e *env) *cobra.Command {
	var (
		vf                    volumeFlags
		newKeyFile, newPassFn string
		newKMSKey             string
	)
	cmd := &cobra.Command{
		Use:   "add (--new-key-file F | --new-passphrase-file F | --kms-key-id ID) [flags]",
		Short: "Add a root key (a key file, a passphrase or a KMS key) that opens the volume",
		Long: `Add a root key to the volume: a key file (create one with coffer keygen),
a passphrase (the first line of a file), or an AWS KMS key (--kms-key-id:
key ID, key ARN, alias name or alias ARN; a fresh root secret is
encrypted under it with one KMS Encrypt call). The volume is opened with
any root key it lists already (--key-file / --passphrase-file,
repeatable; a KMS key with --open-kms-key-id or COFFER_KMS_KEY_ID); the
keyring is rewrapped for the new key with one conditional write of the
config, so nothing else changes and running mounts go on.

Prints the new key's ID on stdout (the name coffer key remove takes).`,
		Example: `  coffer keygen --out ~/backup.key
  coffer key add --store s3://bucket/vol --key-file ~/vol.key --new-key-file ~/backup.key
  coffer key add --store s3://bucket/vol --key-file ~/vol.key --new-passphrase-file ~/vol.pass
  coffer key add --store s3://bucket/vol --open-kms-key-id alias/old --kms-key-id alias/new`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyAdd(cmd.Context(), e, &vf, newKeyFile, newPassFn, newKMSKey)
		},
	}
	f := cmd.Flags()
	vf.registerEveryWith(f, openKMSKeyFlag)
	f.StringVar(&newKeyFile, "new-key-file", "", "the key file to add (32 bytes or their base64, mode 0600; coffer keygen makes one)")
	f.StringVar(&newPassFn, "new-passphrase-file", "", "a file whose first line is the passphrase to add (mode 0600)")
	f.StringVar(&newKMSKey, kmsKeyFlag, "", "the AWS KMS key to add (key ID, key ARN, alias name or alias ARN)")
	return cmd
}

func runKeyAdd(ctx context.Context, e *env, vf *volumeFlags, newKeyFile, newPassFile, newKMSKey string) error {
	var newKMS *kmsPlan
	p, err := vf.plan(e, func() error {
		given := 0
		for _, s := range []string{newKeyFile, newPassFile, newKMSKey} {
			if s != "" {
				given++
			}
		}
		if given != 1 {
			return usagef("give the key to add: --new-key-file FILE, --new-passphrase-file FILE or --kms-key-id ID (one of them)")
		}
		if newKMSKey != "" {
			kf := kmsFlags{keyID: newKMSKey, endpoint: vf.keys.kms.endpoint, name: kmsKeyFlag}
			var err error
			newKMS, err = kf.plan(e, &vf.store)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	var newRoot *cipher.RootKey
	switch {
	case newKeyFile != "":
		newRoot, err = cipher.LoadKeyFile(newKeyFile)
		err = keyFileErrorOr(newKeyFile, err)
	case newPassFile != "":
		newRoot, err = cipher.LoadPassphraseFile(newPassFile)
		err = keyFileErrorOr(newPassFile, err)
	}
	if err != nil {
		return err
	}
	store, cfg, err := p.openStore(ctx, cofferfs.DefaultListConcurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	if newKMS != nil {
		// Bound to the volume ID the config claims: AddKey refuses the key
		// unless that is the ID the opened keyring authenticates.
		if newRoot, err = newKMS.newRootKey(ctx, cfg.VolumeID()); err != nil {
			return err
		}
	}
	id, err := cofferfs.AddRootKey(ctx, store, cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse}, newRoot)
	if err != nil {
		return keyCommandError(p.url, err)
	}
	fmt.Fprintln(e.stdout, id)
	fmt.Fprintf(e.stderr, "added root key %s (%s) to the volume at %s\n", id, newRoot.Kind(), p.url)
	return nil
}

func keyFileErrorOr(path string, err error) error {
	if err == nil {
		return nil
	}
	return keyFileError(path, err)
}

func newKeyListCommand(e *env) *cobra.Command {
	var (
		vf          volumeFlags
		count       bool
		concurrency int
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the root keys, KEK generations and writer keys of a volume",
		Long: `List the volume's root keys (ID, kind, when added), then its KEK
generations with the number of objects each wraps, then its writer keys
(ID, scope, label, revoked or not, epochs: the mount sessions stored
under .coffer/epochs/<writer ID>/). Listings carry no
object metadata, so counting costs one HEAD request per object
(--count=false skips it).`,
		Example: `  coffer key list --store s3://bucket/vol --key-file ~/vol.key`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyList(cmd.Context(), e, &vf, count, concurrency)
		},
	}
	f := cmd.Flags()
	vf.registerEvery(f)
	f.BoolVar(&count, "count", true, "count the objects each KEK generation wraps (one HEAD per object)")
	f.IntVar(&concurrency, "concurrency", cofferfs.DefaultListConcurrency, "HEAD requests in flight at once while counting")
	return cmd
}

func runKeyList(ctx context.Context, e *env, vf *volumeFlags, count bool, concurrency int) error {
	p, err := vf.plan(e, func() error { return checkConcurrency(concurrency) })
	if err != nil {
		return err
	}
	store, _, err := p.openStore(ctx, concurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	pr := newCountProgress(e.stderr, "counting objects")
	l, err := cofferfs.ListKeys(ctx, store, cofferfs.ListOptions{
		KeyOptions: cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse}, Count: count, Concurrency: concurrency,
		Progress: pr.update,
	})
	pr.finish()
	if err != nil {
		return keyCommandError(p.url, err)
	}
	printKeyList(e.stdout, p.url, l)
	return nil
}

func printKeyList(w io.Writer, url string, l cofferfs.KeyList) {
	fmt.Fprintf(w, "volume %s at %s\n", l.VolumeID, url)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOT KEY\tKIND\tADDED")
	for _, k := range l.Keys {
		kind := string(k.Kind)
		if k.KMSKeyARN != "" {
			kind += " " + k.KMSKeyARN
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, kind, showTime(k.Added))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	if l.Counted {
		fmt.Fprintln(tw, "KEK GENERATION\tADDED\tOBJECTS")
	} else {
		fmt.Fprintln(tw, "KEK GENERATION\tADDED")
	}
	for _, g := range l.Generations {
		name := fmt.Sprint(g.Generation)
		if g.Current {
			name += " (current)"
		}
		if l.Counted {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", name, showTime(g.Added), g.Objects)
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", name, showTime(g.Added))
		}
	}
	tw.Flush()
	if l.EpochWrapped > 0 {
		fmt.Fprintf(w, "%s stored by writers are wrapped under their epoch keys only (coffer rotate rewraps them)\n", objects(l.EpochWrapped))
	}
	for g, n := range l.Unknown {
		fmt.Fprintf(w, "%s name KEK generation %d, which the keyring does not hold (coffer fsck reports them)\n", objects(n), g)
	}
	if l.Malformed > 0 {
		fmt.Fprintf(w, "%s have malformed coffer metadata (coffer fsck reports them)\n", objects(l.Malformed))
	}
	if l.Other > 0 {
		fmt.Fprintf(w, "%s without coffer metadata (not coffer's)\n", objects(l.Other))
	}
	printWriters(w, l.Writers)
}

func showTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func objects(n int) string {
	if n == 1 {
		return "1 object"
	}
	return fmt.Sprintf("%d objects", n)
}

func newKeyRemoveCommand(e *env) *cobra.Command {
	var (
		vf    volumeFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "remove KEYID [flags]",
		Short: "Remove a root key from a volume",
		Long: `Remove root key KEYID (as coffer key list shows it) from the volume, with
one conditional write of the config: the keyring is resealed under a new
wrapping key for the remaining keys, so the removed key opens no config
written from now on.

Refused for the volume's last key, and for a key given on this command
line (the one that opened the volume) unless --force.

A removed key's holder may have kept the keyring it opened. If you no
longer trust them, run coffer key reauth (with every remaining key) and
coffer rotate afterwards (README, threat model).`,
		Example: `  coffer key remove --store s3://bucket/vol --key-file ~/new.key 5a0f985e82486461`,
		Args:    oneArg("KEYID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyRemove(cmd.Context(), e, &vf, args[0], force)
		},
	}
	f := cmd.Flags()
	vf.registerEvery(f)
	f.BoolVar(&force, "force", false, "remove the key even though it is one given on this command line")
	return cmd
}

func runKeyRemove(ctx context.Context, e *env, vf *volumeFlags, id string, force bool) error {
	p, err := vf.plan(e, nil)
	if err != nil {
		return err
	}
	store, _, err := p.openStore(ctx, cofferfs.DefaultListConcurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	err = cofferfs.RemoveRootKey(ctx, store, cofferfs.RemoveOptions{KeyOptions: cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse}, Force: force}, id)
	if err != nil {
		return keyCommandError(p.url, err)
	}
	fmt.Fprintf(e.stdout, "removed root key %s from the volume at %s; if its holder may have kept the keyring, run coffer key reauth and coffer rotate\n", id, p.url)
	return nil
}

// keyCommandError words the failures of the key commands, passwd and
// rotate: their own errors read as they are, the store's and the
// config's go through storeError.
func keyCommandError(url string, err error) error {
	switch {
	case errors.Is(err, cofferfs.ErrConfigChanged), errors.Is(err, cofferfs.ErrLastKey), errors.Is(err, cofferfs.ErrKeyInUse),
		errors.Is(err, cofferfs.ErrNoSuchKey), errors.Is(err, cofferfs.ErrNotPassphrase), errors.Is(err, cofferfs.ErrModeMismatch):
		return err
	case errors.Is(err, cipher.ErrConfigPreAuth):
		return fmt.Errorf("the volume config at %s predates entry authentication: upgrade it first with coffer key reauth --store %s and every root key of the volume", url, url)
	case errors.Is(err, cipher.ErrConfigTampered):
		return fmt.Errorf("the volume config at %s failed authentication (modified, or not written with this key): refusing to use it", url)
	}
	var storeErr *blobstore.Error
	if errors.As(err, &storeErr) || errors.Is(err, cipher.ErrNoKeyOpens) || errors.Is(err, cipher.ErrNotConfig) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return storeError(url, err)
	}
	return err
}

func checkConcurrency(n int) error {
	if n < 1 || n > 1024 {
		return usagef("--concurrency %d: want 1 to 1024", n)
	}
	return nil
}
