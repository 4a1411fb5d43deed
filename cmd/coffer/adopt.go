package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	cofferfs "github.com/cofferfs/coffer/fs"
)

func newAdoptCommand(e *env) *cobra.Command {
	var vf volumeFlags
	cmd := &cobra.Command{
		Use:   "adopt [flags] PATH...",
		Short: "Make files a writer key stored ordinary files of the volume",
		Long: `Reseal each PATH, a file, symbolic link or directory a writer key stored
(coffer ls -l and the coffer.origin xattr show its origin), as the full
key's own: its writer and session are no longer named, so revoking the
writer (coffer key revoke-writer --drop-epochs) leaves it readable. One
metadata-only copy per path; the content is not read or rewritten. Needs
a full root key.`,
		Example: `  coffer adopt --store s3://bucket/vault /backups/host1/2026-12-01.tar`,
		Args:    minArgs("PATH"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			v, err := vf.openOffline(ctx, e, true)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			fail := &failures{cmd: "adopt", w: e.stderr}
			for _, arg := range args {
				p, err := volumePath(arg)
				if err != nil {
					fail.add(err)
					continue
				}
				if err := v.Adopt(ctx, p); errors.Is(err, cofferfs.ErrNotWriters) {
					fail.add(fmt.Errorf("%s: %w", p, cofferfs.ErrNotWriters))
					continue
				} else if err != nil {
					fail.add(describe(p, err))
					continue
				}
				fmt.Fprintf(e.stdout, "adopted %s\n", p)
			}
			return fail.err()
		},
	}
	vf.register(cmd.Flags())
	return cmd
}
