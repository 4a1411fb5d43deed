package main

import (
	"io"
	"os"
	"syscall"

	"github.com/spf13/cobra"
)

func newCatCommand(e *env) *cobra.Command {
	var vf volumeFlags
	cmd := &cobra.Command{
		Use:   "cat [flags] PATH...",
		Short: "Write files of a volume to standard output without mounting it",
		Long: `Write each PATH of the volume to standard output, in order, without FUSE.
Every chunk is authenticated before it is written; a file that fails is
named on stderr and the others are still written (exit status 1).`,
		Example: `  coffer cat --store s3://bucket/vault notes/todo.txt`,
		Args:    minArgs("PATH"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			v, err := vf.openOffline(ctx, e, false)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			fail := &failures{cmd: "cat", w: e.stderr}
			buf := make([]byte, copyBuffer)
			for _, arg := range args {
				p, err := volumePath(arg)
				if err != nil {
					fail.add(err)
					continue
				}
				a, err := v.Stat(ctx, p)
				if err == nil && a.IsDir() {
					err = syscall.EISDIR
				}
				if err != nil {
					fail.add(describe(p, err))
					continue
				}
				h, err := v.Open(ctx, p, os.O_RDONLY)
				if err != nil {
					fail.add(describe(p, err))
					continue
				}
				_, err = io.CopyBuffer(struct{ io.Writer }{e.stdout}, &volumeReader{ctx: ctx, h: h}, buf)
				h.Close(ctx)
				if err != nil {
					fail.add(describe(p, err))
				}
			}
			return fail.err()
		},
	}
	vf.register(cmd.Flags())
	return cmd
}
