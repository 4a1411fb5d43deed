package fs

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStagedRenameOverStored: a file staged here and never uploaded,
// renamed over a stored file and then unlinked, leaves nothing behind
// (the exerciser's staged-rename-over: the stored object was left for
// the upload to overwrite, which never came, so the old file came back).
func TestStagedRenameOverStored(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			writeFile(t, tv.Volume, "/a", []byte("old"))
			flush(t, tv.Volume)
			v := tv.reopen(t)
			h, _, err := v.Create(ctx, "/d", 0o644, syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(ctx, []byte("new"), 0); err != nil {
				t.Fatal(err)
			}
			if err := v.Rename(ctx, "/d", "/a", 0); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, v, "/a"); string(got) != "new" {
				t.Fatalf("/a after the rename: %q", got)
			}
			if err := v.Unlink(ctx, "/a"); err != nil {
				t.Fatal(err)
			}
			h.Close(ctx)
			flush(t, v)
			ents, err := v.ReadDir(ctx, "/")
			if err != nil || names(ents) != "" {
				t.Fatalf("root after the unlink: %q, %v", names(ents), err)
			}
			v2 := tv.reopen(t)
			_, err = v2.Stat(ctx, "/a")
			wantErrno(t, err, syscall.ENOENT)
		})
	}
}

// TestAttributesKept: the change counter, ctime, atime and xattrs
// survive every reseal (chmod, rename, a directory rename, an upload),
// and ctime moves with each change while atime stays.
func TestAttributesKept(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			v := tv.Volume
			ctx := context.Background()
			if _, err := v.Mkdir(ctx, "/d", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, v, "/d/f", []byte("data"))
			flush(t, v)
			if err := v.Setxattr(ctx, "/d/f", "user.k", []byte("v1"), 0); err != nil {
				t.Fatal(err)
			}
			atime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
			a0, err := v.SetAttr(ctx, "/d/f", SetAttr{Atime: &atime})
			if err != nil {
				t.Fatal(err)
			}
			last := a0
			check := func(what string, a Attr, moved bool) {
				t.Helper()
				if got, ok := a.Xattrs.Get("user.k"); !ok || string(got) != "v1" {
					t.Errorf("%s: user.k = %q, %v", what, got, ok)
				}
				if !a.Atime.Equal(atime) {
					t.Errorf("%s: atime %v, want %v", what, a.Atime, atime)
				}
				if moved && (a.Changes <= last.Changes || a.Ctime.Before(last.Ctime)) {
					t.Errorf("%s: change counter %d (was %d), ctime %v (was %v): want both moved", what, a.Changes, last.Changes, a.Ctime, last.Ctime)
				}
				if !moved && (a.Changes != last.Changes || !a.Ctime.Equal(last.Ctime)) {
					t.Errorf("%s: change counter %d, ctime %v; want %d, %v", what, a.Changes, a.Ctime, last.Changes, last.Ctime)
				}
				last = a
			}
			mode := uint32(0o600)
			a, err := v.SetAttr(ctx, "/d/f", SetAttr{Mode: &mode})
			if err != nil {
				t.Fatal(err)
			}
			check("chmod", a, true)
			if err := v.Rename(ctx, "/d/f", "/d/g", 0); err != nil {
				t.Fatal(err)
			}
			a, _ = v.Stat(ctx, "/d/g")
			check("rename", a, true)
			if err := v.Rename(ctx, "/d", "/e", 0); err != nil {
				t.Fatal(err)
			}
			a, _ = v.Stat(ctx, "/e/g")
			check("rename of its directory", a, false)
			h, err := v.Open(ctx, "/e/g", syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(ctx, []byte("more"), 4); err != nil {
				t.Fatal(err)
			}
			h.Close(ctx)
			flush(t, v)
			a, _ = v.Stat(ctx, "/e/g")
			check("write", a, true)
			a, err = tv.reopen(t).Stat(ctx, "/e/g")
			if err != nil {
				t.Fatal(err)
			}
			check("stored", a, false)
		})
	}
}

// TestXattrs: the errnos of setxattr(2) and friends, and the budget.
func TestXattrs(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			v := tv.Volume
			ctx := context.Background()
			writeFile(t, v, "/f", nil)
			wantErrno(t, v.Setxattr(ctx, "/f", "user.", []byte("x"), 0), syscall.EINVAL)
			wantErrno(t, v.Setxattr(ctx, "/f", "security.selinux", []byte("x"), 0), syscall.ENOTSUP)
			wantErrno(t, v.Setxattr(ctx, "/f", "trusted.x", []byte("x"), 0), syscall.ENOTSUP)
			wantErrno(t, v.Setxattr(ctx, "/f", "user.a", []byte("x"), XattrReplace), syscall.ENODATA)
			if err := v.Setxattr(ctx, "/f", "user.a", []byte("1"), XattrCreate); err != nil {
				t.Fatal(err)
			}
			wantErrno(t, v.Setxattr(ctx, "/f", "user.a", []byte("2"), XattrCreate), syscall.EEXIST)
			if err := v.Setxattr(ctx, "/f", "user.a", []byte("2"), XattrReplace); err != nil {
				t.Fatal(err)
			}
			_, err := v.Getxattr(ctx, "/f", "user.b")
			wantErrno(t, err, syscall.ENODATA)
			_, err = v.Getxattr(ctx, "/f", "security.selinux")
			wantErrno(t, err, syscall.ENODATA)
			wantErrno(t, v.Removexattr(ctx, "/f", "user.b"), syscall.ENODATA)
			// The budget: a value that does not fit is E2BIG, staged or
			// stored, and changes nothing.
			big := bytes.Repeat([]byte("v"), 2000)
			wantErrno(t, v.Setxattr(ctx, "/f", "user.big", big, 0), syscall.E2BIG)
			flush(t, v)
			wantErrno(t, v.Setxattr(ctx, "/f", "user.big", big, 0), syscall.E2BIG)
			fits := bytes.Repeat([]byte("w"), 700)
			if err := v.Setxattr(ctx, "/f", "user.fits", fits, 0); err != nil {
				t.Fatalf("a 700-byte value: %v", err)
			}
			flush(t, v)
			v2 := tv.reopen(t)
			names, err := v2.Listxattr(ctx, "/f")
			if err != nil || strings.Join(names, ",") != "user.a,user.fits" {
				t.Fatalf("listxattr after reopen: %q, %v", names, err)
			}
			if got, err := v2.Getxattr(ctx, "/f", "user.a"); err != nil || string(got) != "2" {
				t.Fatalf("user.a after reopen: %q, %v", got, err)
			}
			if err := v2.Removexattr(ctx, "/f", "user.a"); err != nil {
				t.Fatal(err)
			}
			if names, _ := v2.Listxattr(ctx, "/f"); strings.Join(names, ",") != "user.fits" {
				t.Fatalf("after removexattr: %q", names)
			}
		})
	}
}

// TestSpecialFiles: fifos, sockets and devices are kept with their type
// and rdev, renamed, chmod'ed and removed like files, and opening one
// in the core is refused (the kernel opens them).
func TestSpecialFiles(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			v := tv.Volume
			ctx := context.Background()
			for _, c := range []struct {
				name string
				mode uint32
				rdev uint32
			}{{"/fifo", syscall.S_IFIFO | 0o640, 0}, {"/sock", syscall.S_IFSOCK | 0o755, 0}, {"/chr", syscall.S_IFCHR | 0o600, 0x1234_5678}, {"/blk", syscall.S_IFBLK | 0o660, 8<<8 | 1}} {
				if _, err := v.Mknod(ctx, c.name, c.mode, c.rdev); err != nil {
					t.Fatalf("mknod %s: %v", c.name, err)
				}
				_, err := v.Mknod(ctx, c.name, c.mode, c.rdev)
				wantErrno(t, err, syscall.EEXIST)
				_, err = v.Open(ctx, c.name, syscall.O_RDONLY)
				wantErrno(t, err, syscall.EINVAL)
			}
			perm := uint32(0o604)
			if _, err := v.SetAttr(ctx, "/fifo", SetAttr{Mode: &perm}); err != nil {
				t.Fatal(err)
			}
			if err := v.Rename(ctx, "/chr", "/chr2", 0); err != nil {
				t.Fatal(err)
			}
			if err := v.Unlink(ctx, "/sock"); err != nil {
				t.Fatal(err)
			}
			v2 := tv.reopen(t)
			ents, err := v2.ReadDir(ctx, "/")
			if err != nil || names(ents) != "blk,chr2,fifo" {
				t.Fatalf("listing: %q, %v", names(ents), err)
			}
			for _, c := range []struct {
				name string
				mode uint32
				rdev uint32
			}{{"/fifo", syscall.S_IFIFO | 0o604, 0}, {"/chr2", syscall.S_IFCHR | 0o600, 0x1234_5678}, {"/blk", syscall.S_IFBLK | 0o660, 8<<8 | 1}} {
				a, err := v2.Stat(ctx, c.name)
				if err != nil || a.Mode != c.mode || a.Rdev != c.rdev || a.Size != 0 {
					t.Errorf("%s: mode 0%o rdev %#x size %d (%v), want 0%o %#x 0", c.name, a.Mode, a.Rdev, a.Size, err, c.mode, c.rdev)
				}
			}
		})
	}
}

// TestDirectoryTimesAndSetgid: a directory's mtime and ctime move with
// its entries and are stored (flush); a setgid directory hands its group
// to new entries and its bit to new directories.
func TestDirectoryTimesAndSetgid(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			v := tv.Volume
			ctx := context.Background()
			if _, err := v.Mkdir(ctx, "/d", 0o2775); err != nil {
				t.Fatal(err)
			}
			gid := uint32(4242)
			old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			if _, err := v.SetAttr(ctx, "/d", SetAttr{GID: &gid, Mtime: &old}); err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			mctx := WithCaller(ctx, 1000, 1000)
			if _, err := v.Mkdir(mctx, "/d/sub", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, v, "/d/f", []byte("x"))
			a, _ := v.Stat(ctx, "/d")
			if a.Mtime.Before(before) || a.Ctime.Before(before) {
				t.Errorf("/d after two new entries: mtime %v ctime %v, want after %v", a.Mtime, a.Ctime, before)
			}
			flush(t, v)
			v2 := tv.reopen(t)
			s, _ := v2.Stat(ctx, "/d")
			if !s.Mtime.Equal(a.Mtime) {
				t.Errorf("stored mtime of /d %v, want %v", s.Mtime, a.Mtime)
			}
			sub, _ := v2.Stat(ctx, "/d/sub")
			if sub.GID != gid || sub.Mode != syscall.S_IFDIR|0o2755 {
				t.Errorf("/d/sub: gid %d mode 0%o, want %d and 02755", sub.GID, sub.Mode, gid)
			}
			f, _ := v2.Stat(ctx, "/d/f")
			if f.GID != gid || f.Mode&syscall.S_ISGID != 0 {
				t.Errorf("/d/f: gid %d mode 0%o, want %d without setgid", f.GID, f.Mode, gid)
			}
		})
	}
}

// TestPlainS3fsMetadata: in none mode the xattrs and times are what
// s3fs-fuse writes and reads: x-amz-meta-xattr is the url-encoded JSON
// {"name":"base64 of value"} (s3fs's own encoding below, as its
// urlEncode leaves letters, digits and ".-_*~"), times "sec[.nsec]".
func TestPlainS3fsMetadata(t *testing.T) {
	const s3fs = "%7B%22user.a%22%3A%22dGVzdA%3D%3D%22%2C%22user.mime_type%22%3A%22dGV4dC9wbGFpbg%3D%3D%22%7D"
	x := decodePlainXattrs(s3fs)
	if v, _ := x.Get("user.a"); string(v) != "test" || x.Len() != 2 {
		t.Fatalf("decoded %d attributes, user.a = %q", x.Len(), v)
	}
	if v, _ := x.Get("user.mime_type"); string(v) != "text/plain" {
		t.Fatalf("user.mime_type = %q", v)
	}
	if got := encodePlainXattrs(x); got != s3fs {
		t.Fatalf("encoded as %q, s3fs writes %q", got, s3fs)
	}
	// security.* (s3fs keeps every namespace) is skipped, not an error.
	if y := decodePlainXattrs("%7B%22security.selinux%22%3A%22eA%3D%3D%22%7D"); y.Len() != 0 {
		t.Fatalf("kept %d foreign attributes", y.Len())
	}
	for _, c := range []struct {
		s  string
		ns int64
	}{{"1700000000", 1700000000e9}, {"1700000000.000000005", 1700000000e9 + 5}, {"1700000000.5", 1700000000e9 + 5e8}, {"-1", -1e9}} {
		if ns, ok := parsePlainTime(c.s); !ok || ns != c.ns {
			t.Errorf("parsePlainTime(%q) = %d, %v; want %d", c.s, ns, ok, c.ns)
		}
	}
	if got := plainTime(1700000000e9 + 5); got != "1700000000.000000005" {
		t.Errorf("plainTime = %q", got)
	}
	if got := plainTime(1700000000e9); got != "1700000000" {
		t.Errorf("plainTime = %q", got)
	}
}

// TestFileSizeLimit: a truncate past the largest file the volume can
// store, stored or staged, by path or by handle, is EFBIG and leaves the
// size and the content as they were; a write that starts at the limit is
// EFBIG, one across it is cut short there (pjdfstest truncate/12.t: the
// cache disk refused the staging file with EIO after the size had moved).
func TestFileSizeLimit(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode, func(o *Options) { o.PartSize = 5 << 20 })
			v := tv.Volume
			ctx := context.Background()
			limit := v.maxFileSize()
			if want := int64(10000 * 5 << 20); mode == EncryptionNone && limit != want {
				t.Fatalf("limit %d, want %d", limit, want)
			}
			writeFile(t, v, "/f", []byte("hello"))
			flush(t, v)
			huge := int64(999999999999999)
			for _, size := range []int64{limit + 1, huge} {
				wantErrno(t, v.Truncate(ctx, "/f", size), syscall.EFBIG)
			}
			h, err := v.Open(ctx, "/f", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.SetAttr(ctx, SetAttr{Size: &huge})
			wantErrno(t, err, syscall.EFBIG)
			_, err = h.WriteAt(ctx, []byte("x"), limit)
			wantErrno(t, err, syscall.EFBIG)
			if err := h.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if a, err := v.Stat(ctx, "/f"); err != nil || a.Size != 5 {
				t.Fatalf("size %d (%v), want 5", a.Size, err)
			}
			if got := readFile(t, v, "/f"); string(got) != "hello" {
				t.Fatalf("content %q", got)
			}
			// A write across the limit stops at it (sparse staging file).
			h, err = v.Open(ctx, "/f", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			n, err := h.WriteAt(ctx, []byte("abcd"), limit-2)
			if err != nil || n != 2 {
				t.Fatalf("write across the limit: %d, %v; want 2 bytes", n, err)
			}
			if a := h.Stat(); a.Size != limit {
				t.Fatalf("size %d, want %d", a.Size, limit)
			}
			if err := v.Truncate(ctx, "/f", 5); err != nil {
				t.Fatal(err)
			}
			h.Close(ctx)
		})
	}
}
