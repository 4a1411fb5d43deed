package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func localBackend(t *testing.T) *storeRef {
	requireFUSE(t)
	return newLocalStore(t)
}

// TestOrphanNode: fstat, ftruncate, fchmod and fgetxattr of an open file
// or directory that lost its name act on it, not on "/" (go-fuse's path
// of an orphaned node is "": the exerciser's orphan-node).
func TestOrphanNode(t *testing.T) {
	v := newVolume(t, localBackend(t))
	v.mount()
	writeFile(t, v.path("f"), []byte("some content"))
	f := openFile(t, v.path("f"), os.O_RDWR)
	defer f.Close()
	if err := unix.Setxattr(v.path("f"), "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(v.path("f")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4); err != nil {
		t.Fatalf("ftruncate of an unlinked file: %v", err)
	}
	if err := f.Chmod(0o600); err != nil {
		t.Fatalf("fchmod of an unlinked file: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Size != 4 || st.Nlink != 0 || st.Mode != unix.S_IFREG|0o600 {
		t.Errorf("fstat of the unlinked file: %v, size %d nlink %d mode 0%o; want 4, 0, 0100600", err, st.Size, st.Nlink, st.Mode)
	}
	buf := make([]byte, 16)
	if n, err := unix.Fgetxattr(int(f.Fd()), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("fgetxattr of the unlinked file: %q, %v", buf[:max(n, 0)], err)
	}
	got, _ := io.ReadAll(io.NewSectionReader(f, 0, 100))
	if string(got) != "some" {
		t.Errorf("unlinked file reads %q after ftruncate to 4", got)
	}
	if err := os.Mkdir(v.path("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	d := openFile(t, v.path("d"), os.O_RDONLY)
	defer d.Close()
	if err := os.Remove(v.path("d")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(d.Fd()), &st); err != nil || st.Mode != unix.S_IFDIR|0o700 || st.Nlink != 0 {
		t.Errorf("fstat of a removed directory: %v, mode 0%o nlink %d; want 040700, 0", err, st.Mode, st.Nlink)
	}
	if fi, err := os.Stat(v.path()); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the root after it all: %v, %v", fi.Mode(), err)
	}
}

// TestSpecialFilesOnMount: mkfifo, mknod of devices (root) and a bound
// unix socket make entries of their type (rdev kept) that are listed,
// stat'ed, chmod'ed, renamed and removed, survive a remount, and a fifo
// carries data between two processes (the kernel's, through the mount).
// In --encryption none the objects are what s3fs-fuse writes: a
// zero-byte object whose x-amz-meta-mode carries the type bits.
func TestSpecialFilesOnMount(t *testing.T) {
	for _, mode := range []string{"client", "none"} {
		t.Run(mode, func(t *testing.T) {
			var opts []volumeOption
			if mode == "none" {
				opts = append(opts, withModes("--encryption", "none"))
			}
			store := localBackend(t)
			v := newVolume(t, store, opts...)
			v.mount()
			if err := unix.Mkfifo(v.path("fifo"), 0o640); err != nil {
				t.Fatalf("mkfifo: %v", err)
			}
			dev := int(unix.Mkdev(250, 7))
			if err := unix.Mknod(v.path("chr"), unix.S_IFCHR|0o600, dev); err != nil {
				t.Fatalf("mknod c: %v", err)
			}
			if err := unix.Mknod(v.path("blk"), unix.S_IFBLK|0o640, dev+1); err != nil {
				t.Fatalf("mknod b: %v", err)
			}
			l, err := net.Listen("unix", v.path("sock"))
			if err != nil {
				t.Fatalf("bind of a unix socket: %v", err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
			// A fifo through the mount: a writer and a reader meet in the kernel.
			go func() {
				w, err := os.OpenFile(v.path("fifo"), os.O_WRONLY, 0)
				if err == nil {
					w.Write([]byte("through the fifo"))
					w.Close()
				}
			}()
			r := openFile(t, v.path("fifo"), os.O_RDONLY)
			got, _ := io.ReadAll(r)
			r.Close()
			if string(got) != "through the fifo" {
				t.Errorf("read from the fifo: %q", got)
			}
			if err := os.Chmod(v.path("fifo"), 0o604); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(v.path("chr"), v.path("chr2")); err != nil {
				t.Fatal(err)
			}
			want := map[string][2]uint64{
				"fifo": {unix.S_IFIFO | 0o604, 0}, "chr2": {unix.S_IFCHR | 0o600, uint64(dev)},
				"blk": {unix.S_IFBLK | 0o640, uint64(dev + 1)}, "sock": {unix.S_IFSOCK, 0},
			}
			check := func(when string) {
				t.Helper()
				for name, w := range want {
					var st unix.Stat_t
					if err := unix.Lstat(v.path(name), &st); err != nil {
						t.Errorf("%s: lstat %s: %v", when, name, err)
						continue
					}
					typeOnly := w[0]&0o7777 == 0
					if typeOnly && st.Mode&unix.S_IFMT != uint32(w[0]) || !typeOnly && st.Mode != uint32(w[0]) || st.Rdev != w[1] || st.Size != 0 {
						t.Errorf("%s: %s: mode 0%o rdev %d size %d, want 0%o %d 0", when, name, st.Mode, st.Rdev, st.Size, w[0], w[1])
					}
				}
				out := sh(t, "", "ls", "-l", v.path())
				for _, c := range []string{"\np", "\nc", "\nb", "\ns"} {
					if !strings.Contains("\n"+out, c) {
						t.Errorf("%s: ls -l shows no %q entry:\n%s", when, c[1:], out)
					}
				}
			}
			check("mounted")
			v.remount(true)
			check("after a remount")
			if mode == "none" {
				st := store.open(t)
				info, err := st.Head(context.Background(), "fifo")
				if err != nil {
					t.Fatal(err)
				}
				if info.Size != 0 || info.Metadata["mode"] != "4484" { // S_IFIFO|0604 in decimal, as s3fs writes it
					t.Errorf("the fifo's object: size %d, metadata %v; want 0 and mode 4484", info.Size, info.Metadata)
				}
			}
			for name := range want {
				if err := os.Remove(v.path(name)); err != nil {
					t.Errorf("rm %s: %v", name, err)
				}
			}
			if ents, _ := os.ReadDir(v.path()); len(ents) != 0 {
				t.Errorf("left after rm: %v", ents)
			}
		})
	}
}

// TestTimesOnMount: utimensat sets atime and mtime to the nanosecond
// (kept across a remount); reading and writing leave atime alone; ctime
// moves with every change and is never what utimensat asked for; the
// mount says noatime; a directory's mtime moves with its entries.
func TestTimesOnMount(t *testing.T) {
	v := newVolume(t, localBackend(t))
	v.mount()
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[1] == v.mnt && !strings.Contains(","+f[3]+",", ",noatime,") {
			t.Errorf("mount options %q lack noatime", f[3])
		}
	}
	writeFile(t, v.path("f"), []byte("content"))
	at := unix.Timespec{Sec: 1_000_000_000, Nsec: 123_456_789}
	mt := unix.Timespec{Sec: 1_100_000_000, Nsec: 987_654_321}
	before := time.Now().Add(-time.Second)
	if err := unix.UtimesNano(v.path("f"), []unix.Timespec{at, mt}); err != nil {
		t.Fatal(err)
	}
	stat := func(p string) unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := stat(v.path("f"))
	if st.Atim != at || st.Mtim != mt {
		t.Fatalf("after utimensat: atime %v mtime %v, want %v %v", st.Atim, st.Mtim, at, mt)
	}
	if time.Unix(st.Ctim.Unix()).Before(before) {
		t.Errorf("ctime %v after utimensat: want now (utimensat never sets ctime)", st.Ctim)
	}
	ctime := st.Ctim
	checkFile(t, v.path("f"), []byte("content"))
	if st := stat(v.path("f")); st.Atim != at || st.Ctim != ctime {
		t.Errorf("after a read: atime %v ctime %v, want %v %v", st.Atim, st.Ctim, at, ctime)
	}
	time.Sleep(10 * time.Millisecond)
	f := openFile(t, v.path("f"), os.O_WRONLY|os.O_APPEND)
	if _, err := f.Write([]byte(" more")); err != nil {
		t.Fatal(err)
	}
	closeFile(t, f)
	st = stat(v.path("f"))
	if st.Atim != at || st.Mtim == mt || st.Ctim == ctime {
		t.Errorf("after a write: atime %v (want %v), mtime %v and ctime %v (want moved)", st.Atim, at, st.Mtim, st.Ctim)
	}
	ctime = st.Ctim
	time.Sleep(10 * time.Millisecond)
	if err := os.Chmod(v.path("f"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := stat(v.path("f")); st.Ctim == ctime {
		t.Errorf("chmod kept ctime %v", ctime)
	}
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	now := unix.Timespec{Nsec: unix.UTIME_NOW}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, v.path("f"), []unix.Timespec{omit, now}, 0); err != nil {
		t.Fatal(err)
	}
	st = stat(v.path("f"))
	if st.Atim != at || time.Unix(st.Mtim.Unix()).Before(before) {
		t.Errorf("UTIME_OMIT, UTIME_NOW: atime %v (want %v kept), mtime %v (want now)", st.Atim, at, st.Mtim)
	}
	want := stat(v.path("f"))
	dirBefore := stat(v.path())
	time.Sleep(10 * time.Millisecond)
	if err := os.Mkdir(v.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := stat(v.path())
	if dir.Mtim == dirBefore.Mtim || dir.Ctim == dirBefore.Ctim {
		t.Errorf("the directory's mtime/ctime did not move with a new entry: %v %v", dir.Mtim, dir.Ctim)
	}
	if dir.Nlink != 1 {
		t.Errorf("directory nlink %d, want 1", dir.Nlink)
	}
	d := stat(v.path("d"))
	v.remount(true)
	if st := stat(v.path("f")); st.Atim != want.Atim || st.Mtim != want.Mtim || st.Ctim != want.Ctim {
		t.Errorf("after a remount: times %v %v %v, want %v %v %v", st.Atim, st.Mtim, st.Ctim, want.Atim, want.Mtim, want.Ctim)
	}
	if st := stat(v.path("d")); st.Mtim != d.Mtim || st.Ctim != d.Ctim {
		t.Errorf("directory times after a remount: %v %v, want %v %v", st.Mtim, st.Ctim, d.Mtim, d.Ctim)
	}
}

// TestXattrsOnMount: setfattr/getfattr of user.* attributes, kept across
// a remount and by cp -a; the budget (E2BIG past it); the other
// namespaces (ENOTSUP to set, ENODATA to read); the errnos POSIX tools
// rely on.
func TestXattrsOnMount(t *testing.T) {
	requireTool(t, "setfattr")
	v := newVolume(t, localBackend(t))
	v.mount()
	writeFile(t, v.path("f"), []byte("x"))
	sh(t, "", "setfattr", "-n", "user.mime_type", "-v", "text/plain", v.path("f"))
	sh(t, "", "setfattr", "-n", "user.empty", v.path("f"))
	p := v.path("f")
	buf := make([]byte, 4096)
	for _, c := range []struct {
		what string
		err  error
		want syscall.Errno
	}{
		{"set security.*", unix.Setxattr(p, "security.x", []byte("v"), 0), syscall.ENOTSUP},
		{"set trusted.*", unix.Setxattr(p, "trusted.x", []byte("v"), 0), syscall.ENOTSUP},
		{"set \"user.\"", unix.Setxattr(p, "user.", []byte("v"), 0), syscall.EINVAL},
		{"XATTR_CREATE of a set name", unix.Setxattr(p, "user.empty", []byte("v"), unix.XATTR_CREATE), syscall.EEXIST},
		{"XATTR_REPLACE of a missing name", unix.Setxattr(p, "user.nope", []byte("v"), unix.XATTR_REPLACE), syscall.ENODATA},
		{"a value past the budget", unix.Setxattr(p, "user.big", bytes.Repeat([]byte("b"), 1500), 0), syscall.E2BIG},
		{"remove of a missing name", unix.Removexattr(p, "user.nope"), syscall.ENODATA},
		{"get of a missing name", second(unix.Getxattr(p, "user.nope", buf)), syscall.ENODATA},
		{"get of security.selinux", second(unix.Getxattr(p, "security.selinux", buf)), syscall.ENODATA},
		{"get into a small buffer", second(unix.Getxattr(p, "user.mime_type", buf[:3])), syscall.ERANGE},
	} {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	if n, err := unix.Getxattr(p, "user.mime_type", nil); err != nil || n != len("text/plain") {
		t.Errorf("size probe: %d, %v", n, err)
	}
	dump := func(path string) string {
		t.Helper()
		return sh(t, "", "getfattr", "-d", "--absolute-names", path)
	}
	want := "# file: " + p + "\nuser.empty=\"\"\nuser.mime_type=\"text/plain\"\n\n"
	if got := dump(p); got != want {
		t.Errorf("getfattr -d: %q, want %q", got, want)
	}
	sh(t, "", "cp", "-a", p, v.path("g"))
	v.remount(true)
	if got := dump(p); got != want {
		t.Errorf("getfattr -d after a remount: %q", got)
	}
	if got := dump(v.path("g")); got != strings.Replace(want, p, v.path("g"), 1) {
		t.Errorf("cp -a kept: %q", got)
	}
	sh(t, "", "setfattr", "-x", "user.empty", p)
	if got := dump(p); strings.Contains(got, "user.empty") {
		t.Errorf("after setfattr -x: %q", got)
	}
}

func second(_ int, err error) error { return err }

// TestPermissionsOtherUser: with --allow-other, the kernel's
// default_permissions holds another user (uid 65534) to the modes coffer
// reports: no write to a file it may not write, no delete in a sticky
// directory of another's file, no chown away; its write clears the
// setuid bit; its files in a setgid directory take the directory's group.
func TestPermissionsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount for other users")
	}
	v := newVolume(t, localBackend(t), withMountArgs("--allow-other"))
	v.mount()
	for _, d := range []string{filepath.Dir(v.dir), v.dir} {
		if err := os.Chmod(d, 0o755); err != nil { // the way in, for uid 65534
			t.Fatal(err)
		}
	}
	as := func(script string) (string, error) {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = v.path()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if err := os.Chmod(v.path(), 0o777); err != nil {
		t.Fatal(err)
	}
	mkdir := func(name string, mode os.FileMode) {
		t.Helper()
		if err := os.Mkdir(v.path(name), 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(v.path(name), mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	writeFile(t, v.path("roots"), []byte("root's"))
	writeFile(t, v.path("shared"), nil)
	if err := os.Chmod(v.path("shared"), 0o666); err != nil {
		t.Fatal(err)
	}
	mkdir("sticky", 0o777|os.ModeSticky)
	writeFile(t, v.path("sticky", "roots"), []byte("root's"))
	mkdir("sgid", 0o777|os.ModeSetgid)
	if err := os.Chown(v.path("sgid"), 0, 4242); err != nil {
		t.Fatal(err)
	}
	writeFile(t, v.path("suid"), []byte("#!/bin/sh\n"))
	if err := os.Chmod(v.path("suid"), 0o777|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(v.path("suid")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("chmod u+s: %v, %v", fi.Mode(), err)
	}
	for _, c := range []struct {
		script string
		fails  string // what the failure says; "" for success
	}{
		{"echo x >> roots", "Permission denied"},
		{"rm -f sticky/roots", "Operation not permitted"},
		{"echo mine > sticky/mine && rm sticky/mine", ""},
		{"echo mine > mine && chown 0 mine", "Operation not permitted"},
		{"echo x >> suid", ""},
		{"mkdir sgid/sub && echo x > sgid/file", ""},
		{"cat roots", ""},
		{"touch roots", "Permission denied"},
		{"touch shared", ""},                                      // UTIME_NOW: write permission is enough
		{"touch -d 2001-01-01 shared", "Operation not permitted"}, // a given time: only the owner
		{"chmod 777 roots", "Operation not permitted"},
	} {
		out, err := as(c.script)
		if c.fails == "" && err != nil || c.fails != "" && (err == nil || !strings.Contains(out, c.fails)) {
			t.Errorf("as uid 65534: %q: %v %s (want %q)", c.script, err, out, c.fails)
		}
	}
	checkFile(t, v.path("roots"), []byte("root's"))
	checkFile(t, v.path("sticky", "roots"), []byte("root's"))
	fi, err := os.Stat(v.path("suid"))
	if err != nil || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("suid after another user's write: %v, %v", fi.Mode(), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(v.path("sgid", "file"), &st); err != nil || st.Gid != 4242 || st.Uid != 65534 {
		t.Errorf("a file in a setgid directory: %d:%d, %v; want 65534:4242", st.Uid, st.Gid, err)
	}
	if err := unix.Stat(v.path("sgid", "sub"), &st); err != nil || st.Gid != 4242 || st.Mode&unix.S_ISGID == 0 {
		t.Errorf("a directory in a setgid directory: gid %d mode 0%o, %v", st.Gid, st.Mode, err)
	}
	// Root's chown clears setuid too (Linux since 2.2.13), and setgid
	// when the group may execute.
	if err := os.Chmod(v.path("suid"), 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(v.path("suid")); err != nil || fi.Mode() != 0o755|os.ModeSetuid|os.ModeSetgid {
		t.Fatalf("chmod 6755 left %v, %v", fi.Mode(), err)
	}
	if err := os.Chown(v.path("suid"), 1, 1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(v.path("suid")); err != nil {
		t.Error(err)
	} else if fi.Mode() != 0o755 {
		t.Errorf("after chown: %v, want %v", fi.Mode(), os.FileMode(0o755))
	}

	// What each way of changing a file's content leaves of its set-ID
	// bits, as the FUSE protocol has it (coffer clears them itself:
	// fusefs killPriv). Another user's write, O_TRUNC open or truncate
	// clears setuid, and setgid when the group may execute; root's keeps
	// both. (ext4 since Linux 6.2 also drops a setgid bit without group
	// execute when the writer is not in the file's group; FUSE keeps it.)
	for _, c := range []struct {
		name   string
		mode   os.FileMode
		script string // %s: the file
		asRoot bool
		want   os.FileMode
	}{
		{"append", 0o777 | os.ModeSetuid, "echo x >> %s", false, 0o777},
		{"trunc-open", 0o777 | os.ModeSetuid, ": > %s", false, 0o777},
		{"ftruncate", 0o777 | os.ModeSetuid, "truncate -s 1 %s", false, 0o777},
		{"truncate", 0o777 | os.ModeSetuid, `perl -e 'truncate("%s", 1) or die "$!"'`, false, 0o777},
		{"sgid", 0o777 | os.ModeSetgid, "echo x >> %s", false, 0o777},
		{"sgid-no-exec", 0o767 | os.ModeSetgid, "echo x >> %s", false, 0o767 | os.ModeSetgid},
		{"root-append", 0o777 | os.ModeSetuid | os.ModeSetgid, "echo x >> %s", true, 0o777 | os.ModeSetuid | os.ModeSetgid},
		{"root-trunc-open", 0o777 | os.ModeSetuid, ": > %s", true, 0o777 | os.ModeSetuid},
	} {
		name := "setid-" + c.name
		writeFile(t, v.path(name), []byte("#!/bin/sh\n"))
		if err := os.Chmod(v.path(name), c.mode); err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf(c.script, name)
		var out string
		var err error
		if c.asRoot {
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = v.path()
			var b []byte
			b, err = cmd.CombinedOutput()
			out = string(b)
		} else {
			out, err = as(script)
		}
		if err != nil {
			t.Errorf("%s: %q: %v %s", c.name, script, err, out)
			continue
		}
		if fi, err := os.Stat(v.path(name)); err != nil {
			t.Error(err)
		} else if fi.Mode() != c.want {
			t.Errorf("%s: %q left %v, want %v", c.name, script, fi.Mode(), c.want)
		}
	}
	// And in the store, not only in the kernel's cache.
	v.unmount()
	v.mount()
	if fi, err := os.Stat(v.path("setid-trunc-open")); err != nil {
		t.Error(err)
	} else if fi.Mode() != 0o777 {
		t.Errorf("setid-trunc-open after a remount: %v, want -rwxrwxrwx", fi.Mode())
	}

	// A CREATE with O_TRUNC may meet a file: the kernel of this mount
	// holds the name as missing (for its 1 s negative timeout), another
	// mount made it meanwhile, and the core, which asks the store (no
	// metadata cache here), opens and truncates that file. Another user's
	// O_TRUNC clears its setuid bit there too.
	if err := os.Mkdir(v.path("both"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(v.path("both"), 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	flushFile(t, v.path("both"))
	b := v.sibling("b")
	b.mount("--metadata-ttl", "0")
	t.Cleanup(func() {
		if b.mounted {
			b.unmount()
		}
	})
	if _, err := os.Stat(b.path("both", "made")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a name not made yet: %v", err)
	}
	writeFile(t, v.path("both", "made"), []byte("#!/bin/sh\n"))
	if err := os.Chmod(v.path("both", "made"), 0o777|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	flushFile(t, v.path("both", "made"))
	cmd := exec.Command("sh", "-c", ": > made")
	cmd.Dir = b.path("both")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid 65534 on the second mount: : > made: %v %s", err, out)
	}
	if fi, err := os.Stat(b.path("both", "made")); err != nil {
		t.Error(err)
	} else if fi.Mode() != 0o777 || fi.Size() != 0 {
		t.Errorf("made, truncated by another user through a name held missing: %v, %d bytes; want -rwxrwxrwx, 0", fi.Mode(), fi.Size())
	}
	b.unmount()
	v.remount(true)
	if fi, err := os.Stat(v.path("both", "made")); err != nil {
		t.Error(err)
	} else if fi.Mode() != 0o777 {
		t.Errorf("made in the store: %v, want -rwxrwxrwx", fi.Mode())
	}
	if names, _ := filepath.Glob(v.path("both", "*")); len(names) != 1 {
		t.Errorf("both/ holds %q, want made alone", names)
	}
	if _, err := filepath.Glob(v.path("*")); err != nil {
		t.Fatal(err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// flushFile fsyncs p, so that what it holds is stored.
func flushFile(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}
