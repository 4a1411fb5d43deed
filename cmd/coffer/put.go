package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	cofferfs "github.com/cofferfs/coffer/fs"
)

func newPutCommand(e *env) *cobra.Command {
	var vf volumeFlags
	cmd := &cobra.Command{
		Use:   "put [flags] SRC DEST",
		Short: "Copy a local file or directory tree into a volume without mounting it",
		Long: `Copy SRC, a local file or directory, to DEST in the volume, as cp -a would:
modes, modification times, symbolic links, hard links within SRC, fifos,
sockets and user.* extended attributes are kept, and the owners and device
nodes too when run as root (otherwise the files belong to the caller). A directory
is copied with everything below it; when DEST is an existing directory of
the volume, SRC goes inside it; existing files are replaced.

Each file is uploaded before the command counts it as done, several at a
time. A file that fails is named on stderr and the others are still copied
(exit status 1).`,
		Example: `  coffer put --store s3://bucket/vault ./photos /photos
  coffer put report.pdf docs/`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{err: fmt.Errorf("want SRC and DEST, got %d arguments", len(args)), hint: c.CommandPath() + " --help"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			dest, err := volumePath(args[1])
			if err != nil {
				return err
			}
			src := args[0]
			if _, err := os.Lstat(src); err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := vf.openOffline(ctx, e, true)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			p := &putter{ctx: ctx, v: v.Volume, fail: &failures{cmd: "put", w: e.stderr}, root: os.Geteuid() == 0}
			if err := p.run(src, dest, e); err != nil {
				return err
			}
			return p.fail.err()
		},
	}
	vf.register(cmd.Flags())
	return cmd
}

type putter struct {
	ctx  context.Context
	v    *cofferfs.Volume
	fail *failures
	root bool // keep owners
	prog *transfer
}

// localEntry is one entry of the local tree being copied.
type localEntry struct {
	local string // path on the local disk
	dst   string // canonical path in the volume
	fi    fs.FileInfo
}

func statMode(fi fs.FileInfo) (perm, uid, gid uint32) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Mode & 0o7777, st.Uid, st.Gid
	}
	return uint32(fi.Mode().Perm()), uint32(os.Getuid()), uint32(os.Getgid())
}

func (p *putter) run(src, dest string, e *env) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if a, err := p.v.Stat(p.ctx, dest); err == nil && a.IsDir() {
		if base := filepath.Base(filepath.Clean(src)); base != "/" && base != "." {
			dest = joinVolumePath(dest, base)
		}
	}
	if !fi.IsDir() {
		p.prog = newTransfer(e.stderr, "put", 1, fi.Size())
		defer p.prog.finish()
		return p.entry(localEntry{local: src, dst: dest, fi: fi})
	}
	// The first name of each local inode with several names is copied;
	// the others become hard links to it in the volume.
	type inode struct{ dev, ino uint64 }
	first := map[inode]string{}
	var dirs, others []localEntry
	var links []putLink
	var bytes int64
	err = filepath.WalkDir(src, func(lp string, d fs.DirEntry, err error) error {
		if err != nil {
			p.fail.add(err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			p.fail.add(err)
			return nil
		}
		rel, _ := filepath.Rel(src, lp)
		dst := dest
		if rel != "." {
			dst = path.Join(dest, filepath.ToSlash(rel))
		}
		ent := localEntry{local: lp, dst: dst, fi: info}
		if d.IsDir() {
			dirs = append(dirs, ent)
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode().IsRegular() && st.Nlink > 1 {
			id := inode{uint64(st.Dev), st.Ino}
			if to, ok := first[id]; ok {
				links = append(links, putLink{ent: ent, to: to})
				return nil
			}
			first[id] = dst
		}
		others = append(others, ent)
		if info.Mode().IsRegular() {
			bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range dirs { // parents first, as WalkDir found them
		if err := p.mkdir(d); err != nil {
			if d.dst == dest {
				return err
			}
			p.fail.add(err)
		}
	}
	p.prog = newTransfer(e.stderr, "put", len(others)+len(links), bytes)
	var copied sync.Map // volume path → struct{}: stored whole
	eg, _ := errgroup.WithContext(p.ctx)
	eg.SetLimit(offlineConcurrency)
	for _, ent := range others {
		eg.Go(func() error {
			if err := p.entry(ent); err != nil {
				p.fail.add(err)
				return nil
			}
			copied.Store(ent.dst, struct{}{})
			return nil
		})
	}
	eg.Wait()
	for _, l := range links {
		var err error
		if _, ok := copied.Load(l.to); ok {
			err = p.link(l)
		} else {
			// Its first name failed (and was named): copy this one on
			// its own rather than lose it too.
			err = p.entry(l.ent)
		}
		if err != nil {
			p.fail.add(err)
		}
	}
	p.prog.finish()
	// Times last, deepest first: filling a directory moves its mtime.
	slices.SortStableFunc(dirs, func(a, b localEntry) int { return depth(b.dst) - depth(a.dst) })
	for _, d := range dirs {
		if err := p.setAttr(d); err != nil {
			p.fail.add(err)
		}
	}
	return nil
}

// localXattrs reads the user.* extended attributes of a local file (none
// where its filesystem keeps none).
func localXattrs(p string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
	}
	out := map[string][]byte{}
	for name := range strings.SplitSeq(string(buf[:size]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		value := make([]byte, 64<<10)
		n, err := unix.Lgetxattr(p, name, value)
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: p, Err: err}
		}
		out[name] = value[:n]
	}
	return out, nil
}

// caller is the context whose caller owns what is created for ent: its
// local owner as root, else the user running coffer.
func (p *putter) caller(fi fs.FileInfo) context.Context {
	if !p.root {
		return p.ctx
	}
	_, uid, gid := statMode(fi)
	return cofferfs.WithCaller(p.ctx, uid, gid)
}

func (p *putter) mkdir(d localEntry) error {
	perm, _, _ := statMode(d.fi)
	_, err := p.v.Mkdir(p.caller(d.fi), d.dst, perm)
	if errors.Is(err, syscall.EEXIST) {
		if a, serr := p.v.Stat(p.ctx, d.dst); serr == nil && a.IsDir() {
			return nil
		}
	}
	if err != nil {
		return describe(d.dst, err)
	}
	return nil
}

// setAttr gives a volume entry the mode, owner (as root), user.*
// extended attributes and mtime of its local source.
func (p *putter) setAttr(ent localEntry) error {
	names, err := localXattrs(ent.local)
	if err != nil {
		return err
	}
	for name, value := range names {
		if err := p.v.Setxattr(p.ctx, ent.dst, name, value, 0); err != nil {
			return describe(ent.dst, fmt.Errorf("setxattr %s: %w", name, err))
		}
	}
	perm, uid, gid := statMode(ent.fi)
	mtime := ent.fi.ModTime()
	s := cofferfs.SetAttr{Mode: &perm, Mtime: &mtime}
	if p.root {
		s.UID, s.GID = &uid, &gid
	}
	if _, err := p.v.SetAttr(p.ctx, ent.dst, s); err != nil {
		return describe(ent.dst, err)
	}
	return nil
}

// putLink is a local name to store as a hard link to the volume path
// its inode's first name was copied to.
type putLink struct {
	ent localEntry
	to  string
}

func (p *putter) link(l putLink) error {
	if err := p.replace(l.ent.dst); err != nil {
		return err
	}
	if _, err := p.v.Link(p.ctx, l.to, l.ent.dst); err != nil {
		return describe(l.ent.dst, err)
	}
	p.prog.add(0, true)
	return nil
}

// replace removes what is not a directory at volume path dst, so that a
// symlink, link or special file can take the name.
func (p *putter) replace(dst string) error {
	if a, err := p.v.Stat(p.ctx, dst); err == nil && !a.IsDir() {
		if err := p.v.Unlink(p.ctx, dst); err != nil {
			return describe(dst, err)
		}
	}
	return nil
}

// entry copies one local file, symlink or special file into the volume.
func (p *putter) entry(ent localEntry) error {
	switch {
	case ent.fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(ent.local)
		if err != nil {
			return err
		}
		if err := p.replace(ent.dst); err != nil {
			return err
		}
		if _, err := p.v.Symlink(p.caller(ent.fi), target, ent.dst); err != nil {
			return describe(ent.dst, err)
		}
		mtime := ent.fi.ModTime()
		if _, err := p.v.SetAttr(p.ctx, ent.dst, cofferfs.SetAttr{Mtime: &mtime}); err != nil {
			return describe(ent.dst, err)
		}
		p.prog.add(0, true)
		return nil
	case ent.fi.Mode().IsRegular():
		return p.file(ent)
	}
	return p.special(ent)
}

// special stores a local fifo, socket or (as root) device node.
func (p *putter) special(ent localEntry) error {
	st, ok := ent.fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: %v: not a file type coffer put knows; skipped", ent.local, ent.fi.Mode().Type())
	}
	typ := st.Mode & syscall.S_IFMT
	var rdev uint32
	switch typ {
	case syscall.S_IFIFO, syscall.S_IFSOCK:
	case syscall.S_IFCHR, syscall.S_IFBLK:
		if !p.root {
			return fmt.Errorf("%s: a device node; only root can store one, skipped", ent.local)
		}
		var err error
		if rdev, err = fuseDev(uint64(st.Rdev)); err != nil {
			return fmt.Errorf("%s: %w; skipped", ent.local, err)
		}
	default:
		return fmt.Errorf("%s: %v: not a file type coffer put knows; skipped", ent.local, ent.fi.Mode().Type())
	}
	if err := p.replace(ent.dst); err != nil {
		return err
	}
	if _, err := p.v.Mknod(p.caller(ent.fi), ent.dst, typ|st.Mode&0o7777, rdev); err != nil {
		return describe(ent.dst, err)
	}
	if err := p.setAttr(ent); err != nil {
		return err
	}
	p.prog.add(0, true)
	return nil
}

// file uploads one regular file: its attributes are set before the
// upload, which must succeed before it counts as copied.
func (p *putter) file(ent localEntry) error {
	f, err := os.Open(ent.local)
	if err != nil {
		return err
	}
	defer f.Close()
	perm, _, _ := statMode(ent.fi)
	h, _, err := p.v.Create(p.caller(ent.fi), ent.dst, perm, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return describe(ent.dst, err)
	}
	defer h.Close(p.ctx)
	buf := make([]byte, copyBuffer)
	var off int64
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if _, err := h.WriteAt(p.ctx, buf[:n], off); err != nil {
				return describe(ent.dst, err)
			}
			off += int64(n)
			p.prog.add(int64(n), false)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if err := p.setAttr(ent); err != nil {
		return err
	}
	if err := h.Fsync(p.ctx); err != nil {
		return describe(ent.dst, err)
	}
	p.prog.add(0, true)
	return nil
}
