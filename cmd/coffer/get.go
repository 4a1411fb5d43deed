package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	cofferfs "github.com/cofferfs/coffer/fs"
)

func newGetCommand(e *env) *cobra.Command {
	var vf volumeFlags
	cmd := &cobra.Command{
		Use:   "get [flags] SRC DEST",
		Short: "Copy a file or a directory tree out of a volume without mounting it",
		Long: `Copy SRC, a file or a directory of the volume, to DEST on the local disk, as
cp -a would: modes, modification times and symbolic links are kept, and the
owners too when run as root. A directory is copied with everything below
it; when DEST is an existing directory, SRC goes inside it.

Files are written to a temporary name next to their destination and renamed
once complete and authenticated, several at a time. A file that fails is
named on stderr and the others are still copied (exit status 1).`,
		Example: `  coffer get --store s3://bucket/vault /photos ./photos
  coffer get notes/todo.txt /tmp/`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{err: fmt.Errorf("want SRC and DEST, got %d arguments", len(args)), hint: c.CommandPath() + " --help"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			src, err := volumePath(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := vf.openOffline(ctx, e, false)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			g := &getter{ctx: ctx, v: v.Volume, fail: &failures{cmd: "get", w: e.stderr}, root: os.Geteuid() == 0}
			if err := g.run(src, args[1], e); err != nil {
				return err
			}
			return g.fail.err()
		},
	}
	vf.register(cmd.Flags())
	return cmd
}

type getter struct {
	ctx  context.Context
	v    *cofferfs.Volume
	fail *failures
	root bool // keep owners
	prog *transfer
}

func (g *getter) run(src, dest string, e *env) error {
	a, err := g.v.Stat(g.ctx, src)
	if err != nil {
		return describe(src, err)
	}
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() && src != "/" {
		dest = filepath.Join(dest, path.Base(src))
	}
	if !a.IsDir() {
		g.prog = newTransfer(e.stderr, "get", 1, a.Size)
		defer g.prog.finish()
		if err := g.entry(volumeEntry{path: src, attr: a}, dest); err != nil {
			return err
		}
		return nil
	}
	ents := walkVolume(g.ctx, g.v, src, g.fail)
	local := func(p string) string {
		rel := p[len(src):]
		if src == "/" {
			rel = p
		}
		return filepath.Join(dest, filepath.FromSlash(rel))
	}
	// Directories first, writable by us until their own attributes are
	// set last (deepest first: filling a directory moves its mtime).
	dirs := []volumeEntry{{path: src, attr: a}}
	files, bytes := 0, int64(0)
	for _, ent := range ents {
		switch {
		case ent.attr.IsDir():
			dirs = append(dirs, ent)
		case ent.attr.IsRegular():
			files++
			bytes += ent.attr.Size
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(local(d.path), 0o700); err != nil {
			if d.path == src {
				return err
			}
			g.fail.add(err)
		}
	}
	g.prog = newTransfer(e.stderr, "get", files, bytes)
	eg, _ := errgroup.WithContext(g.ctx)
	eg.SetLimit(offlineConcurrency)
	for _, ent := range ents {
		if ent.attr.IsDir() {
			continue
		}
		eg.Go(func() error {
			if err := g.entry(ent, local(ent.path)); err != nil {
				g.fail.add(err)
			}
			return nil
		})
	}
	eg.Wait()
	g.prog.finish()
	slices.SortStableFunc(dirs, func(a, b volumeEntry) int { return depth(b.path) - depth(a.path) })
	for _, d := range dirs {
		if err := g.setAttr(local(d.path), d.attr, false); err != nil {
			g.fail.add(err)
		}
	}
	return nil
}

// entry copies one file or symlink of the volume to dst.
func (g *getter) entry(ent volumeEntry, dst string) error {
	switch {
	case ent.attr.IsSymlink():
		target, err := g.v.Readlink(g.ctx, ent.path)
		if err != nil {
			return describe(ent.path, err)
		}
		if err := os.Remove(dst); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return g.setAttr(dst, ent.attr, true)
	case ent.attr.IsRegular():
		return g.file(ent, dst)
	}
	return fmt.Errorf("%s: mode %o: not a regular file, directory or symbolic link; skipped", ent.path, ent.attr.Mode)
}

// file copies a regular file through a temporary file next to dst,
// renamed over dst once every byte authenticated.
func (g *getter) file(ent volumeEntry, dst string) error {
	h, err := g.v.Open(g.ctx, ent.path, os.O_RDONLY)
	if err != nil {
		return describe(ent.path, err)
	}
	defer h.Close(g.ctx)
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".coffer-get-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	buf := make([]byte, copyBuffer)
	r := &volumeReader{ctx: g.ctx, h: h}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := tmp.Write(buf[:n]); werr != nil {
				return werr
			}
			g.prog.add(int64(n), false)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return describe(ent.path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := g.setAttr(tmp.Name(), ent.attr, false); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	done = true
	g.prog.add(0, true)
	return nil
}

// setAttr gives a local file the owner (as root), mode and mtime of a.
func (g *getter) setAttr(p string, a cofferfs.Attr, link bool) error {
	if g.root {
		if err := os.Lchown(p, int(a.UID), int(a.GID)); err != nil {
			return err
		}
	}
	if !link {
		// After chown, which clears the set-ID bits.
		if err := unix.Chmod(p, a.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(a.Mtime.UnixNano()), unix.NsecToTimespec(a.Mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}
