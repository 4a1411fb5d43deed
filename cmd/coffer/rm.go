package main

import (
	"context"
	"errors"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	cofferfs "github.com/cofferfs/coffer/fs"
)

func newRmCommand(e *env) *cobra.Command {
	var (
		vf        volumeFlags
		recursive bool
	)
	cmd := &cobra.Command{
		Use:   "rm [flags] PATH...",
		Short: "Remove files or directory trees from a volume without mounting it",
		Long: `Remove each PATH of the volume: a file or symbolic link, or with -r a
directory and everything below it. A failure is named on stderr and the
others are still removed (exit status 1).`,
		Example: `  coffer rm --store s3://bucket/vault old/report.pdf
  coffer rm -r tmp`,
		Args: minArgs("PATH"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			v, err := vf.openOffline(ctx, e, true)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			fail := &failures{cmd: "rm", w: e.stderr}
			for _, arg := range args {
				p, err := volumePath(arg)
				if err != nil {
					fail.add(err)
					continue
				}
				removePath(ctx, v.Volume, p, recursive, fail)
			}
			return fail.err()
		},
	}
	vf.register(cmd.Flags())
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove directories and everything below them")
	return cmd
}

var errRmRoot = errors.New("refusing to remove the root of the volume")

func removePath(ctx context.Context, v *cofferfs.Volume, p string, recursive bool, fail *failures) {
	if p == "/" {
		fail.add(errRmRoot)
		return
	}
	a, err := v.Stat(ctx, p)
	if err != nil {
		fail.add(describe(p, err))
		return
	}
	if !a.IsDir() {
		if err := v.Unlink(ctx, p); err != nil {
			fail.add(describe(p, err))
		}
		return
	}
	if !recursive {
		fail.add(usagef("%s: is a directory (use -r to remove it and everything below it)", p))
		return
	}
	ents := walkVolume(ctx, v, p, fail)
	eg, _ := errgroup.WithContext(ctx)
	eg.SetLimit(offlineConcurrency)
	dirs := []string{p}
	for _, ent := range ents {
		if ent.attr.IsDir() {
			dirs = append(dirs, ent.path)
			continue
		}
		eg.Go(func() error {
			if err := v.Unlink(ctx, ent.path); err != nil {
				fail.add(describe(ent.path, err))
			}
			return nil
		})
	}
	eg.Wait()
	slices.SortStableFunc(dirs, func(a, b string) int { return depth(b) - depth(a) })
	for _, d := range dirs {
		if err := v.Rmdir(ctx, d); err != nil {
			fail.add(describe(d, err))
		}
	}
}
