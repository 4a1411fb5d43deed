package main

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"time"

	"github.com/spf13/cobra"

	cofferfs "github.com/cofferfs/coffer/fs"
)

func newLsCommand(e *env) *cobra.Command {
	var (
		vf        volumeFlags
		long, rec bool
	)
	cmd := &cobra.Command{
		Use:   "ls [flags] [PATH...]",
		Short: "List a directory of a volume without mounting it",
		Long: `List the entries of each PATH of the volume (default: its root), as ls(1)
does, without FUSE. PATH is a path inside the volume ("/" or "docs/2026").

With -l each entry shows its mode, owner, size, modification time and, for
symbolic links, the target; with -R subdirectories are listed too.`,
		Example: `  coffer ls --store s3://bucket/vault -l /
  coffer ls -R docs`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if len(args) == 0 {
				args = []string{"/"}
			}
			ctx := cmd.Context()
			v, err := vf.openOffline(ctx, e, false)
			if err != nil {
				return err
			}
			defer closeVolume(ctx, v, &err)
			l := &lister{ctx: ctx, v: v.Volume, w: e.stdout, long: long, recursive: rec, fail: &failures{cmd: "ls", w: e.stderr}}
			l.run(args)
			return l.fail.err()
		},
	}
	vf.register(cmd.Flags())
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long listing: mode, owner, size, time, name (and link target)")
	cmd.Flags().BoolVarP(&rec, "recursive", "R", false, "list subdirectories recursively")
	return cmd
}

type lister struct {
	ctx       context.Context
	v         *cofferfs.Volume
	w         io.Writer
	long      bool
	recursive bool
	fail      *failures
}

func (l *lister) run(args []string) {
	headers := len(args) > 1 || l.recursive
	first := true
	for _, arg := range args {
		p, err := volumePath(arg)
		if err != nil {
			l.fail.add(err)
			continue
		}
		a, err := l.v.Stat(l.ctx, p)
		if err != nil {
			l.fail.add(describe(p, err))
			continue
		}
		if !a.IsDir() {
			l.entry(path.Dir(p), cofferfs.DirEntry{Name: path.Base(p), Attr: a}, p)
			continue
		}
		l.dir(p, headers, &first)
	}
}

// dir lists directory p (and with -R its subdirectories, depth first).
func (l *lister) dir(p string, header bool, first *bool) {
	ents, err := l.v.ReadDir(l.ctx, p)
	if err != nil {
		l.fail.add(describe(p, err))
		return
	}
	if header {
		if !*first {
			fmt.Fprintln(l.w)
		}
		fmt.Fprintf(l.w, "%s:\n", p)
	}
	*first = false
	for _, ent := range ents {
		l.entry(p, ent, ent.Name)
	}
	if !l.recursive {
		return
	}
	for _, ent := range ents {
		if ent.Attr.IsDir() {
			l.dir(joinVolumePath(p, ent.Name), true, first)
		}
	}
}

func (l *lister) entry(dir string, ent cofferfs.DirEntry, shown string) {
	if !l.long {
		fmt.Fprintln(l.w, shown)
		return
	}
	a := ent.Attr
	name := shown
	if a.IsSymlink() {
		if target, err := l.v.Readlink(l.ctx, joinVolumePath(dir, ent.Name)); err == nil {
			name += " -> " + target
		} else {
			l.fail.add(describe(joinVolumePath(dir, ent.Name), err))
		}
	}
	fmt.Fprintf(l.w, "%s %5d %5d %12d %s %s\n", modeString(a.Mode), a.UID, a.GID, a.Size, a.Mtime.Local().Format(time.DateTime), name)
}

func joinVolumePath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// modeString is st_mode as ls -l shows it (drwxr-xr-x).
func modeString(mode uint32) string {
	m := iofs.FileMode(mode & 0o777)
	switch mode & 0o170000 {
	case 0o040000:
		m |= iofs.ModeDir
	case 0o120000:
		m |= iofs.ModeSymlink
	}
	if mode&0o4000 != 0 {
		m |= iofs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= iofs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= iofs.ModeSticky
	}
	s := m.String()
	if s[0] == 'L' {
		s = "l" + s[1:]
	}
	return s
}
