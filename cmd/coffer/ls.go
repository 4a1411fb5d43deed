package main

import (
	"context"
	"fmt"
	"io"
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

With -l each entry shows its mode, link count (hard links; a directory 1),
owner, size, modification time and, for symbolic links, the target, and
for a file a writer key stored its origin ("[writer ID epoch ID]"); with
-R subdirectories are listed too.`,
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
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long listing: mode, links, owner, size, time, name (and link target)")
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
	if a.Origin.IsWriter() {
		name += "  [" + a.Origin.String() + "]" // stored by a writer key (coffer adopt makes it ordinary)
	}
	fmt.Fprintf(l.w, "%s %3d %5d %5d %12d %s %s\n", modeString(a.Mode), a.Nlink(), a.UID, a.GID, a.Size, a.Mtime.Local().Format(time.DateTime), name)
}

func joinVolumePath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// modeString is st_mode as ls -l shows it (drwxr-xr-x, -rwsr-xr-x).
func modeString(mode uint32) string {
	b := []byte("?rwxrwxrwx")
	switch mode & 0o170000 {
	case 0o100000:
		b[0] = '-'
	case 0o040000:
		b[0] = 'd'
	case 0o120000:
		b[0] = 'l'
	case 0o010000:
		b[0] = 'p'
	case 0o140000:
		b[0] = 's'
	case 0o020000:
		b[0] = 'c'
	case 0o060000:
		b[0] = 'b'
	}
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit uint32, at int, set, unset byte) {
		if mode&bit != 0 {
			if b[at] == '-' {
				b[at] = unset
			} else {
				b[at] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}
