package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// key export-writer and key revoke-writer (DESIGN.md §2 "Writer keys"):
// full-key commands that change the keyring with one conditional write of
// the config (fs/writers.go). key list shows the writers.

func newKeyExportWriterCommand(e *env) *cobra.Command {
	var (
		vf           volumeFlags
		out          string
		scope, label string
	)
	cmd := &cobra.Command{
		Use:   "export-writer --out FILE [--scope PATH] [--label TEXT] [flags]",
		Short: "Create a writer key and write its credential, for a write-only mount",
		Long: `Create a writer key in the volume's keyring and write its credential to
--out (mode 0600; never overwritten). coffer mount --key-file FILE mounts
the volume write-only with it: new files, directories and symlinks inside
--scope (a directory path of the volume, "/" by default), and nothing it
did not write itself can be read, changed or removed. A full-key mount
reads what the writer stored and shows its origin (xattr coffer.origin).

The credential holds no key that opens stored data; a stolen one lets its
holder add files inside the scope, until coffer key revoke-writer. Give
the writer host an S3 identity limited as README shows.

Prints the writer's ID on stdout (the name coffer key revoke-writer takes).`,
		Example: `  coffer key export-writer --store s3://bucket/vol --key-file ~/vol.key --out host1.writer --scope /backups/host1 --label host1`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyExportWriter(cmd.Context(), e, &vf, out, scope, label)
		},
	}
	f := cmd.Flags()
	vf.registerEvery(f)
	f.StringVar(&out, "out", "", "path of the writer credential to create (refuses to overwrite)")
	f.StringVar(&scope, "scope", "/", "the directory the writer may add files to (a canonical path of the volume)")
	f.StringVar(&label, "label", "", "a name for the writer, shown by coffer key list")
	return cmd
}

func runKeyExportWriter(ctx context.Context, e *env, vf *volumeFlags, out, scope, label string) error {
	p, err := vf.plan(e, func() error {
		if out == "" {
			return usagef("--out FILE is required: the writer credential to create")
		}
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s already exists: export-writer never overwrites a file; choose another --out", out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	store, _, err := p.openStore(ctx, cofferfs.DefaultListConcurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	saved := false
	ex, err := cofferfs.ExportWriter(ctx, store, cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse}, scope, label,
		func(c *cipher.WriterCredential) error {
			err := cipher.WriteWriterCredential(out, c)
			if errors.Is(err, iofs.ErrExist) {
				return fmt.Errorf("%s already exists: export-writer never overwrites a file; choose another --out", out)
			}
			saved = err == nil
			return err
		})
	if err != nil {
		if saved {
			// Its writer is in no keyring: the credential opens nothing.
			os.Remove(out)
		}
		return keyCommandError(p.url, err)
	}
	cred := ex.Credential
	fmt.Fprintln(e.stdout, cred.Writer())
	fmt.Fprintf(e.stderr, "added writer %s (scope %s) to the volume at %s and wrote its credential to %s (mode 0600); mount it with coffer mount --key-file %s\n",
		cred.Writer(), cred.Scope(), p.url, out, out)
	fmt.Fprintf(e.stderr, "its S3 identity needs PutObject (with If-None-Match) under %s and %s only (README, write-only mounts)\n",
		p.storePrefix()+ex.ScopePrefix+"*", p.storePrefix()+cipher.WriterEpochsPrefix(cred.Writer())+"*")
	return nil
}

func newKeyRevokeWriterCommand(e *env) *cobra.Command {
	var (
		vf   volumeFlags
		drop bool
	)
	cmd := &cobra.Command{
		Use:   "revoke-writer WRITERID [flags]",
		Short: "Revoke a writer key: refuse the files of the sessions it starts from now on",
		Long: `Revoke writer WRITERID (as coffer key list shows it), with one conditional
write of the config. Full-key mounts go on reading the files of the mount
sessions (epochs) the writer stored so far, and refuse those of any
session it starts afterwards. With --drop-epochs they refuse every file
the writer stored that was not adopted (coffer adopt) or rotated before.

The writer's bucket credentials are the other half: take them away too.`,
		Example: `  coffer key revoke-writer --store s3://bucket/vol --key-file ~/vol.key 3f9a0c1d2e4b5a69`,
		Args:    oneArg("WRITERID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyRevokeWriter(cmd.Context(), e, &vf, args[0], drop)
		},
	}
	f := cmd.Flags()
	vf.registerEvery(f)
	f.BoolVar(&drop, "drop-epochs", false, "also refuse the files of the writer's sessions so far")
	return cmd
}

func runKeyRevokeWriter(ctx context.Context, e *env, vf *volumeFlags, arg string, drop bool) error {
	var id cipher.WriterID
	p, err := vf.plan(e, func() error {
		var err error
		if id, err = cipher.ParseWriterID(arg); err != nil {
			return usagef("%v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	store, _, err := p.openStore(ctx, cofferfs.DefaultListConcurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := cofferfs.RevokeWriter(ctx, store, cofferfs.RevokeOptions{
		KeyOptions: cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse}, DropEpochs: drop, Now: time.Now(),
	}, id)
	if err != nil {
		return keyCommandError(p.url, err)
	}
	for ep, why := range res.Refused {
		fmt.Fprintf(e.stderr, "epoch %s of writer %s does not open (%v): its files stay refused\n", ep, id, why)
	}
	fmt.Fprintf(e.stdout, "revoked writer %s of the volume at %s; the files of %s stay readable\n", id, p.url, epochCount(len(res.Kept)))
	return nil
}

func epochCount(n int) string {
	if n == 1 {
		return "1 session"
	}
	return fmt.Sprintf("%d sessions", n)
}

// printWriters is key list's table of writer keys.
func printWriters(w io.Writer, ws []cofferfs.WriterListing) {
	if len(ws) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "WRITER\tSCOPE\tLABEL\tSTATE\tEPOCHS")
	for _, wr := range ws {
		state := "active"
		if wr.Revoked {
			state = fmt.Sprintf("revoked %s, %s kept", showTime(wr.RevokedAt), epochCount(len(wr.KnownEpochs)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", wr.ID, wr.Scope, printableLabel(wr.Label), state, wr.Epochs)
	}
	tw.Flush()
}

// printableLabel keeps a label one table cell (cipher allows printable
// UTF-8 only, spaces included).
func printableLabel(l string) string {
	if l == "" {
		return "-"
	}
	return strings.Join(strings.Fields(l), "_")
}
