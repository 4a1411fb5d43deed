package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// System integration: coffer called as mount.coffer (mount(8)'s helper
// for fstab type "coffer") or as umount.fuse.coffer (umount(8)'s helper
// for the mounted type "fuse.coffer").
//
//	/sbin/mount.coffer SOURCE TARGET [-sfnv] [-N NS] [-o OPTIONS] [-t coffer]
//
// becomes coffer mount --daemon --store SOURCE [--OPTION[=VALUE]...] TARGET:
// each fstab option is the mount flag of the same name ('_' may stand for
// '-': allow_other), "ro" is --read-only, the options mount(8) keeps for
// itself (_netdev, nofail, noauto, x-systemd.*, ...) are dropped, and any
// other is an error naming it (ignored with -s, as mount(8) asks). The
// daemon returns once the mount is ready, as mount(8) expects.
//
//	/sbin/umount.fuse.coffer TARGET [-flnrv] [-t TYPE]
//
// is coffer unmount TARGET: it returns once the mount process uploaded
// every pending file and exited, so umount(8) returning means stored.

const (
	mountHelperName   = "mount.coffer"
	unmountHelperName = "umount.fuse.coffer"
)

// mountOnlyOptions are fstab options for mount(8) itself, or generic VFS
// options a FUSE mount of coffer has no use for: never passed on.
var mountOnlyOptions = []string{
	"defaults", "rw", "auto", "noauto", "user", "nouser", "users", "owner", "group",
	"nofail", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "async",
	"atime", "noatime", "relatime", "strictatime", "nodiratime", "diratime",
	"loud", "silent", "lazytime", "nolazytime",
}

// mountOnlyPrefixes mark options for mount(8), systemd or comments.
var mountOnlyPrefixes = []string{"_", "x-", "comment=", "X-"}

// noFstabFlags are mount flags that make no sense from fstab.
var noFstabFlags = []string{"daemon", "help", "store"}

// helperArgs translates a helper's command line (argv[0] named name) into
// coffer's arguments. ok is false when name is not a helper's.
func helperArgs(name string, args []string, mountFlags *pflag.FlagSet) (out []string, ok bool, err error) {
	switch filepath.Base(name) {
	case mountHelperName:
		out, err = fstabMountArgs(args, mountFlags)
		return out, true, err
	case unmountHelperName:
		out, err = fstabUnmountArgs(args)
		return out, true, err
	}
	return nil, false, nil
}

// fstabMountArgs translates mount(8)'s call of mount.coffer.
func fstabMountArgs(args []string, mountFlags *pflag.FlagSet) ([]string, error) {
	var pos, opts []string
	sloppy, fake := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 >= len(args) {
				return nil, usagef("%s: %s needs a value", mountHelperName, a)
			}
			if a == "-o" {
				opts = append(opts, strings.Split(args[i+1], ",")...)
			}
			i++
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, strings.Split(a[2:], ",")...)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 's':
					sloppy = true
				case 'f':
					fake = true
				case 'n', 'v':
				default:
					return nil, usagef("%s: unknown flag -%c (mount(8) passes -s, -f, -n, -v, -o, -t, -N)", mountHelperName, c)
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, usagef("%s: want SOURCE TARGET [-o OPTIONS], got %d arguments; it is called by mount(8) for fstab lines of type coffer", mountHelperName, len(pos))
	}
	out := []string{"mount", "--daemon", "--store", pos[0]}
	for _, o := range opts {
		o = strings.TrimSpace(o)
		if o == "" || slices.Contains(mountOnlyOptions, o) || slices.ContainsFunc(mountOnlyPrefixes, func(p string) bool { return strings.HasPrefix(o, p) }) {
			continue
		}
		if o == "ro" {
			out = append(out, "--read-only")
			continue
		}
		name, value, hasValue := strings.Cut(o, "=")
		flag := strings.ReplaceAll(name, "_", "-")
		fl := mountFlags.Lookup(flag)
		if fl == nil || slices.Contains(noFstabFlags, flag) {
			if sloppy {
				continue
			}
			return nil, usagef("%s: unknown mount option %q: fstab options are coffer mount's flags without the dashes (key-file=/etc/coffer/vault.key, allow_other, cache-dir=...; see coffer mount --help)", mountHelperName, name)
		}
		isBool := fl.Value.Type() == "bool"
		switch {
		case isBool && !hasValue:
			out = append(out, "--"+flag)
		case !hasValue:
			return nil, usagef("%s: mount option %s needs a value (%s=...)", mountHelperName, name, name)
		default:
			out = append(out, "--"+flag+"="+value)
		}
	}
	if fake {
		return []string{"version"}, nil // mount -f: do everything but mount
	}
	return append(out, pos[1]), nil
}

// fstabUnmountArgs translates umount(8)'s call of umount.fuse.coffer.
func fstabUnmountArgs(args []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-t" || a == "-N":
			i++
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// -f, -l, -n, -r, -v, -i: coffer unmount waits regardless.
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 1 {
		return nil, usagef("%s: want the mount point, got %d arguments", unmountHelperName, len(pos))
	}
	return []string{"unmount", pos[0]}, nil
}

// helperCommandLine is how main sees argv: coffer's own arguments, after
// translating a helper's call.
func helperCommandLine(e *env, argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, nil
	}
	if e.getenv(envDaemonChild) != "" {
		// The daemon child re-executes with coffer's arguments already.
		return argv[1:], nil
	}
	root := newRootCommand(e)
	mountCmd, _, err := root.Find([]string{"mount"})
	if err != nil {
		return nil, fmt.Errorf("no mount command: %w", err)
	}
	out, ok, err := helperArgs(argv[0], argv[1:], mountCmd.Flags())
	if !ok {
		return argv[1:], nil
	}
	if e.getenv("HOME") == "" {
		// mount(8) from systemd or init: no home. System places instead,
		// so key-file may default to /etc/coffer/key.
		for v, dir := range map[string]string{"XDG_CONFIG_HOME": "/etc", "XDG_CACHE_HOME": "/var/cache", "XDG_DATA_HOME": "/var/lib"} {
			if e.getenv(v) == "" {
				os.Setenv(v, dir)
			}
		}
	}
	return out, err
}
