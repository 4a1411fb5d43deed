package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	cofferfs "github.com/cofferfs/coffer/fs"
)

func newFsckCommand(e *env) *cobra.Command {
	var (
		vf   volumeFlags
		opts cofferfs.FsckOptions
	)
	cmd := &cobra.Command{
		Use:   "fsck [flags]",
		Short: "Check every object of a volume",
		Long: `Check every object of the volume: its name decodes, its size is a valid
envelope size, its KEK generation is in the keyring, its wrapped data key
opens, and its attributes open under its path. With --deep every object is
downloaded and every chunk authenticated. Multipart uploads older than
--upload-age are reported as orphaned; with --cache-dir the leftovers of
a mount that died there (stale staging files, torn journal tails) too.

Each problem is printed on its own line, by path (by object key where the
name does not decode), then a summary; the exit status is 1 when there is
any finding (repaired or not), 0 when the volume is clean.

Directory indexes (caches of a directory's attributes) whose directory
was removed or renamed are counted in the summary; they are no problem.

Nothing is changed unless --repair is given, and then only what holds no
file's data: orphaned multipart uploads are aborted, hard-link leftovers
(a link its inode does not list, an inode no link names) and the indexes
of directories that are gone are removed, and stale leftovers in
--cache-dir (never used by a running mount) are removed. No other object
is removed: objects that fail their checks are reported for you to
restore or delete.`,
		Example: `  coffer fsck --store s3://bucket/vault
  coffer fsck --deep
  coffer fsck --repair --cache-dir ~/.cache/coffer/VOLUME-ID`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			if opts.UploadAge == 0 {
				opts.UploadAge = time.Nanosecond // every upload in progress
			}
			if opts.CacheDir != "" {
				if opts.CacheDir, err = filepath.Abs(opts.CacheDir); err != nil {
					return err
				}
				opts.LiveMount = e.liveMountUses
			}
			v, err := vf.openOffline(ctx, e, false)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			bar := newProgressBar(e.stderr, 0, "checking")
			last := time.Now()
			opts.Progress = func(done, total int) {
				if bar.plain() {
					if time.Since(last) >= 3*time.Second {
						last = time.Now()
						fmt.Fprintf(e.stderr, "coffer fsck: %d of %d objects read\n", done, total)
					}
					return
				}
				bar.setTotal(total)
				bar.set(done)
			}
			rep, err := v.Fsck(ctx, opts)
			bar.finish()
			if err != nil {
				return err
			}
			repaired := 0
			for _, f := range rep.Findings {
				fmt.Fprintln(e.stdout, f.String())
				if f.Repaired {
					repaired++
				}
			}
			deep := ""
			if opts.Deep {
				deep = fmt.Sprintf(", %d chunks authenticated", rep.Chunks)
			}
			fmt.Fprintf(e.stdout, "%d objects: %d files (%s), %d directory markers, %d reserved%s; %d multipart uploads in progress\n",
				rep.Objects, rep.Files, humanBytes(rep.Bytes), rep.Dirs, rep.Reserved, deep, rep.Uploads)
			switch n := len(rep.OrphanIndexes); {
			case n > 0 && opts.Repair:
				fmt.Fprintf(e.stdout, "%d directory indexes of directories that are gone, %d removed\n", n, rep.IndexesRemoved)
			case n > 0:
				fmt.Fprintf(e.stdout, "%d directory indexes of directories that are gone (caches: --repair removes them)\n", n)
			}
			switch {
			case len(rep.Findings) == 0:
				fmt.Fprintln(e.stdout, "no problems found")
				return nil
			case opts.Repair:
				fmt.Fprintf(e.stdout, "%d problems found, %d repaired\n", len(rep.Findings), repaired)
			default:
				fmt.Fprintf(e.stdout, "%d problems found\n", len(rep.Findings))
			}
			return errReported{fmt.Sprintf("%d problems found (listed on stdout)", len(rep.Findings))}
		},
	}
	vf.register(cmd.Flags())
	f := cmd.Flags()
	f.BoolVar(&opts.Deep, "deep", false, "download every object and authenticate every chunk")
	f.BoolVar(&opts.Repair, "repair", false, "abort orphaned multipart uploads and remove stale leftovers in --cache-dir (never an object)")
	f.StringVar(&opts.CacheDir, "cache-dir", "", "also check this mount cache dir for leftovers of a mount that died")
	f.DurationVar(&opts.UploadAge, "upload-age", cofferfs.DefaultUploadAge, "age from which a multipart upload in progress counts as orphaned (0: every one; stop the mounts first)")
	f.IntVar(&opts.Concurrency, "concurrency", 0, "parallel requests (default: 64 for metadata, 8 with --deep)")
	return cmd
}
