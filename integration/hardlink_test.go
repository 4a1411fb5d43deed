package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"golang.org/x/sys/unix"
)

// linkTree is a tree with hard links: a.txt and sub/a-again one file,
// sub/b, sub/deeper/b2 and b3 another (three names), c a file of one
// name.
func linkTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "a.txt"), pseudoRandom(81, 300_000))
	writeFile(t, filepath.Join(src, "sub", "b"), pseudoRandom(82, 5000))
	writeFile(t, filepath.Join(src, "c"), pseudoRandom(83, 100))
	for _, l := range [][2]string{{"a.txt", "sub/a-again"}, {"sub/b", "sub/deeper/b2"}, {"sub/b", "b3"}} {
		if err := os.Link(filepath.Join(src, l[0]), filepath.Join(src, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// sameLinks fails unless the names of each group in dir are one inode
// with nlink the group's size, and the groups are distinct inodes.
func sameLinks(t *testing.T, dir string, groups ...[]string) {
	t.Helper()
	seen := map[uint64]string{}
	for _, g := range groups {
		first := lstat(t, filepath.Join(dir, g[0]))
		if prev, dup := seen[first.Ino]; dup {
			t.Errorf("%s shares inode %d with %s", g[0], first.Ino, prev)
		}
		seen[first.Ino] = g[0]
		for _, name := range g {
			st := lstat(t, filepath.Join(dir, name))
			if st.Ino != first.Ino {
				t.Errorf("%s: inode %d, %s has %d", name, st.Ino, g[0], first.Ino)
			}
			if int(st.Nlink) != len(g) {
				t.Errorf("%s: nlink %d, want %d", name, st.Nlink, len(g))
			}
		}
	}
}

var linkGroups = [][]string{{"a.txt", "sub/a-again"}, {"sub/b", "sub/deeper/b2", "b3"}, {"c"}}

// TestRsyncHardLinks: rsync -aH of a tree with hard links into the
// mount keeps them (one inode per group, nlink right), also after a
// remount, and a second pass transfers nothing.
func TestRsyncHardLinks(t *testing.T) {
	requireTool(t, "rsync")
	src := linkTree(t)
	v := versitygwVolume(t)
	dst := v.path("dst")
	sh(t, "", "rsync", "-aH", src+"/", dst)
	sh(t, "", "diff", "-r", src, dst)
	sameLinks(t, dst, linkGroups...)
	v.remount(true)
	sameLinks(t, dst, linkGroups...)
	out := sh(t, "", "rsync", "-aH", "--stats", src+"/", dst)
	if m := regexp.MustCompile(`Number of regular files transferred: (\d+)`).FindStringSubmatch(out); m == nil || m[1] != "0" {
		t.Errorf("second pass transferred files:\n%s", out)
	}
	sh(t, "", "diff", "-r", src, dst)
}

// TestRsyncLinkDest: two rsync --link-dest snapshots in the mount; the
// files unchanged between them are hard links of the first snapshot's
// (one inode, nlink 2), the changed one is not, and the second snapshot
// transfers only what changed.
func TestRsyncLinkDest(t *testing.T) {
	requireTool(t, "rsync")
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"one", "two", "d/three"} {
		writeFile(t, filepath.Join(src, name), pseudoRandom(uint64(90+i), 20_000+i*1000))
	}
	v := versitygwVolume(t)
	sh(t, "", "rsync", "-a", src+"/", v.path("snap1"))
	writeFile(t, filepath.Join(src, "two"), []byte("changed since the first snapshot"))
	out := sh(t, "", "rsync", "-a", "--stats", "--link-dest="+v.path("snap1"), src+"/", v.path("snap2"))
	if m := regexp.MustCompile(`Number of regular files transferred: (\d+)`).FindStringSubmatch(out); m == nil || m[1] != "1" {
		t.Errorf("the second snapshot transferred more than the changed file:\n%s", out)
	}
	check := func() {
		t.Helper()
		for _, name := range []string{"one", "d/three"} {
			a, b := lstat(t, v.path("snap1", name)), lstat(t, v.path("snap2", name))
			if a.Ino != b.Ino || a.Nlink != 2 || b.Nlink != 2 {
				t.Errorf("%s: inodes %d/%d nlink %d/%d, want one inode, nlink 2", name, a.Ino, b.Ino, a.Nlink, b.Nlink)
			}
		}
		a, b := lstat(t, v.path("snap1", "two")), lstat(t, v.path("snap2", "two"))
		if a.Ino == b.Ino || a.Nlink != 1 || b.Nlink != 1 {
			t.Errorf("two (changed): inodes %d/%d nlink %d/%d, want two files", a.Ino, b.Ino, a.Nlink, b.Nlink)
		}
		sh(t, "", "diff", "-r", src, v.path("snap2"))
	}
	check()
	v.remount(true)
	check()
	// The first snapshot goes; the second keeps its data.
	sh(t, "", "rm", "-rf", v.path("snap1"))
	sh(t, "", "diff", "-r", src, v.path("snap2"))
	if st := lstat(t, v.path("snap2", "one")); st.Nlink != 1 {
		t.Errorf("nlink %d once the first snapshot is gone", st.Nlink)
	}
}

// TestTarHardLinks: a tar archive of a tree with hard links extracted
// into the mount compares equal and keeps the links.
func TestTarHardLinks(t *testing.T) {
	src := linkTree(t)
	v := versitygwVolume(t)
	archive := filepath.Join(t.TempDir(), "tree.tar")
	sh(t, "", "tar", "-C", src, "-cf", archive, ".")
	if err := os.Mkdir(v.path("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "", "tar", "-C", v.path("x"), "-xpf", archive)
	sh(t, "", "tar", "-C", v.path("x"), "--compare", "-f", archive)
	sh(t, "", "diff", "-r", src, v.path("x"))
	sameLinks(t, v.path("x"), linkGroups...)
	v.remount(true)
	sameLinks(t, v.path("x"), linkGroups...)
	sh(t, "", "tar", "-C", v.path("x"), "--compare", "-f", archive)
}

// TestOfflineHardLinks: the offline commands over hard links made on a
// mount: ls -l shows the link count, cat and get read through every
// name, rm removes one name at a time (the last one the inode: fsck
// finds nothing left over).
func TestOfflineHardLinks(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t))
	v.mount()
	data := pseudoRandom(97, 200_000)
	writeFile(t, v.path("f"), data)
	if err := os.Mkdir(v.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(v.path("f"), v.path("d", "g")); err != nil {
		t.Fatal(err)
	}
	v.unmount()
	nlinkOf := regexp.MustCompile(`(?m)^-\S+\s+(\d+)\s.* (\S+)$`)
	links := func(p string) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, m := range nlinkOf.FindAllStringSubmatch(v.mustRun("ls", "-l", p).stdout, -1) {
			out[m[2]] = m[1]
		}
		return out
	}
	if got := links("/"); got["f"] != "2" {
		t.Errorf("ls -l /: %v, want f with 2 links", got)
	}
	if got := links("/d"); got["g"] != "2" {
		t.Errorf("ls -l /d: %v, want g with 2 links", got)
	}
	for _, p := range []string{"/f", "/d/g"} {
		if got := v.mustRun("cat", p).stdout; got != string(data) {
			t.Errorf("cat %s: %d bytes, want %d", p, len(got), len(data))
		}
	}
	out := t.TempDir()
	v.mustRun("get", "/d/g", out)
	checkFile(t, filepath.Join(out, "g"), data)
	v.mustRun("rm", "/f")
	if got := links("/d"); got["g"] != "1" {
		t.Errorf("ls -l /d after rm /f: %v, want g with 1 link", got)
	}
	if got := v.mustRun("cat", "/d/g").stdout; got != string(data) {
		t.Errorf("cat /d/g after rm /f: %d bytes", len(got))
	}
	v.mustRun("fsck") // exit 0: no findings
	v.mustRun("rm", "/d/g")
	var left []string
	filepath.Walk(v.store.dataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && regexp.MustCompile(`inodes`).MatchString(p) {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("the last rm left inode objects: %v", left)
	}
}
