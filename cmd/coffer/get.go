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
	"sync"
	"sync/atomic"

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
cp -a would: modes, modification times, symbolic links, hard links within
SRC, fifos, sockets and user.* extended attributes are kept, and the owners
and device nodes too when run as root. A directory is copied with everything
below it; when DEST is an existing directory, SRC goes inside it.

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
	root bool // keep owners, make devices
	prog *transfer
	// noXattrs: DEST's filesystem refused user.* extended attributes.
	noXattrs atomic.Bool
}

// hardLink is a name of the volume to make as a hard link to the first
// name of its inode, once that one is copied.
type hardLink struct {
	ent volumeEntry
	to  string // volume path of the inode's copied name
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
	// The first name of each hard-linked inode is copied; its other
	// names are linked to that copy afterwards, as cp -a does.
	var copies []volumeEntry
	var links []hardLink
	first := map[uint64]string{}
	files, bytes := 0, int64(0)
	for _, ent := range ents {
		if ent.attr.IsDir() {
			dirs = append(dirs, ent)
			continue
		}
		if ent.attr.IsRegular() {
			files++
		}
		if ent.attr.Links > 1 && ent.attr.Ino != 0 {
			if to, ok := first[ent.attr.Ino]; ok {
				links = append(links, hardLink{ent: ent, to: to})
				continue
			}
			first[ent.attr.Ino] = ent.path
		}
		copies = append(copies, ent)
		bytes += ent.attr.Size
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
	var copied sync.Map // volume path → struct{}: copied whole
	eg, _ := errgroup.WithContext(g.ctx)
	eg.SetLimit(offlineConcurrency)
	for _, ent := range copies {
		eg.Go(func() error {
			if err := g.entry(ent, local(ent.path)); err != nil {
				g.fail.add(err)
				return nil
			}
			copied.Store(ent.path, struct{}{})
			return nil
		})
	}
	eg.Wait()
	for _, l := range links {
		var err error
		if _, ok := copied.Load(l.to); ok {
			err = g.link(local(l.to), local(l.ent.path))
		} else {
			// Its first name failed (and was named): copy this one on
			// its own rather than lose it too.
			err = g.entry(l.ent, local(l.ent.path))
		}
		if err != nil {
			g.fail.add(err)
		}
	}
	g.prog.finish()
	slices.SortStableFunc(dirs, func(a, b volumeEntry) int { return depth(b.path) - depth(a.path) })
	for _, d := range dirs {
		if err := g.setAttr(local(d.path), d.attr, false); err != nil {
			g.fail.add(err)
		}
	}
	if g.noXattrs.Load() {
		fmt.Fprintf(e.stderr, "coffer get: warning: %s does not keep user.* extended attributes; they were not copied\n", dest)
	}
	return nil
}

// link makes dst a hard link to the local file at to, replacing what
// dst was.
func (g *getter) link(to, dst string) error {
	if err := removeNonDir(dst); err != nil {
		return err
	}
	if err := os.Link(to, dst); err != nil {
		return err
	}
	g.prog.add(0, true)
	return nil
}

// removeNonDir removes the file, symlink or special file at p, if any.
func removeNonDir(p string) error {
	if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
		return os.Remove(p)
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
	case ent.attr.IsSpecial():
		return g.special(ent, dst)
	}
	return fmt.Errorf("%s: mode %o: not a file type coffer get knows; skipped", ent.path, ent.attr.Mode)
}

// special makes the fifo, socket or (as root) device node ent at dst.
func (g *getter) special(ent volumeEntry, dst string) error {
	typ := ent.attr.Mode & unix.S_IFMT
	if (typ == unix.S_IFCHR || typ == unix.S_IFBLK) && !g.root {
		return fmt.Errorf("%s: a device node; only root can make one, skipped", ent.path)
	}
	if err := removeNonDir(dst); err != nil {
		return err
	}
	if err := unix.Mknod(dst, typ|0o600, int(localDev(ent.attr.Rdev))); err != nil {
		return &os.PathError{Op: "mknod", Path: dst, Err: err}
	}
	if err := g.setAttr(dst, ent.attr, false); err != nil {
		return err
	}
	g.prog.add(0, true)
	return nil
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

// setAttr gives a local file the owner (as root), mode, user.*
// extended attributes and mtime of a.
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
		// Linux keeps no user.* attributes on symlinks.
		for name, value := range a.Xattrs.All() {
			err := unix.Lsetxattr(p, name, value, 0)
			if errors.Is(err, unix.ENOTSUP) {
				g.noXattrs.Store(true)
				break
			}
			if err != nil {
				return &os.PathError{Op: "setxattr " + name, Path: p, Err: err}
			}
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(a.Mtime.UnixNano()), unix.NsecToTimespec(a.Mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}
