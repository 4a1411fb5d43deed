package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// versitygwVolume is a mounted volume on versitygw (the real tools run
// against the S3 server coffer is measured on).
func versitygwVolume(t *testing.T) *volume {
	t.Helper()
	requireFUSE(t)
	v := newVolume(t, newS3Store(t, "versitygw"))
	v.mount()
	return v
}

// specialTree makes a tree with what backup tools must carry: regular
// files with modes, mtimes and user.* xattrs, a subdirectory, a symlink,
// a fifo and (withSocket) a bound unix socket.
func specialTree(t *testing.T, withSocket bool) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "sub", "deeper"), 0o750); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a.txt", "sub/b.bin", "sub/deeper/c"} {
		p := filepath.Join(src, name)
		writeFile(t, p, pseudoRandom(uint64(60+i), 1000+i*70000))
		if err := unix.Setxattr(p, "user.origin", []byte(fmt.Sprintf("file %d", i)), 0); err != nil {
			t.Fatalf("setxattr on the source (its filesystem must keep user.*): %v", err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "sub/b.bin"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(src, "sub"), "user.dir", []byte("a directory's"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/b.bin", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "sub", "fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if withSocket {
		l, err := net.Listen("unix", filepath.Join(src, "sock"))
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	// Times in the past, to the nanosecond: a tool that finds a time equal
	// to the second to what it just made (rsync, for special files) would
	// leave it.
	for i, name := range []string{"a.txt", "sub/b.bin", "sub/deeper/c", "sub/fifo", "link", "sub/deeper", "sub", "."} {
		ts := unix.Timespec{Sec: 1_200_000_000 + int64(i)*86400, Nsec: int64(i)*111_111_111 + 7}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, name), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// sameSpecialTree fails unless b holds what a holds: names, types, modes, sizes,
// mtimes (not of symlinks), symlink targets, contents (diff -r) and user.*
// xattrs.
func sameSpecialTree(t *testing.T, a, b string) {
	t.Helper()
	// diff -r compares contents; special files it only names, by type
	// ("File A is a fifo while file B is a fifo", exit 1), which the walk
	// below checks itself.
	out, _ := exec.Command("diff", "-r", "--no-dereference", a, b).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !sameTypeLine.MatchString(line) {
			t.Fatalf("diff -r %s %s:\n%s", a, b, out)
		}
	}
	err := filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		q := filepath.Join(b, rel)
		var sa, sb unix.Stat_t
		if err := unix.Lstat(p, &sa); err != nil {
			return err
		}
		if err := unix.Lstat(q, &sb); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if rel == "." {
			return nil
		}
		if sa.Mode != sb.Mode || sa.Mode&unix.S_IFMT == unix.S_IFREG && sa.Size != sb.Size {
			t.Errorf("%s: mode 0%o size %d, copy 0%o %d", rel, sa.Mode, sa.Size, sb.Mode, sb.Size)
		}
		if sa.Mode&unix.S_IFMT != unix.S_IFLNK && sa.Mtim != sb.Mtim && sa.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("%s: mtime %v, copy %v", rel, sa.Mtim, sb.Mtim)
		}
		if sa.Mode&unix.S_IFMT == unix.S_IFREG || sa.Mode&unix.S_IFMT == unix.S_IFDIR {
			xa, _ := listXattrs(p, true)
			xb, _ := listXattrs(q, true)
			if strings.Join(xa, ",") != strings.Join(xb, ",") {
				t.Errorf("%s: xattrs %q, copy %q", rel, xa, xb)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var sameTypeLine = regexp.MustCompile(`^File .* is a (fifo|socket) while file .* is a (fifo|socket)$`)

// TestRsyncArchive: rsync -aAX of a tree with symlinks, a fifo and xattrs
// into the mount, diff -r clean and every attribute kept, and a second
// pass transfers nothing (its stats say so), also after a remount.
func TestRsyncArchive(t *testing.T) {
	requireTool(t, "rsync")
	src := specialTree(t, false)
	v := versitygwVolume(t)
	dst := v.path("dst")
	sh(t, "", "rsync", "-aAX", src+"/", dst)
	sameSpecialTree(t, src, dst)
	transferred := regexp.MustCompile(`Number of regular files transferred: (\d+)`)
	for _, when := range []string{"second pass", "after a remount"} {
		if when == "after a remount" {
			v.remount(true)
		}
		out := sh(t, "", "rsync", "-aAX", "--stats", "--itemize-changes", src+"/", dst)
		m := transferred.FindStringSubmatch(out)
		if m == nil || m[1] != "0" {
			t.Errorf("%s: rsync transferred files:\n%s", when, out)
		}
		for _, line := range strings.Split(out, "\n") {
			// --itemize-changes lists every entry it changed in any way.
			if len(line) > 11 && line[11] == ' ' && strings.ContainsAny(line[:11], "<>ch.") && !strings.HasPrefix(line, "Number") && strings.Trim(line[2:11], ".") != "" {
				t.Errorf("%s: rsync changed %q", when, line)
			}
		}
	}
	sameSpecialTree(t, src, dst)
}

// TestTarFifo: a tar archive of a tree with a fifo, symlink and xattrs
// extracted into the mount compares equal (tar --compare, and the tree).
func TestTarFifo(t *testing.T) {
	src := specialTree(t, false)
	v := versitygwVolume(t)
	archive := filepath.Join(t.TempDir(), "tree.tar")
	sh(t, "", "tar", "--xattrs", "--xattrs-include=user.*", "-C", src, "-cf", archive, ".")
	if err := os.Mkdir(v.path("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "", "tar", "--xattrs", "--xattrs-include=user.*", "-C", v.path("x"), "-xpf", archive)
	sh(t, "", "tar", "--xattrs", "-C", v.path("x"), "--compare", "-f", archive)
	sameSpecialTree(t, src, v.path("x"))
}

// TestCopySocket: cp -a of a tree with a unix socket (and a fifo) keeps
// them as what they are.
func TestCopySocket(t *testing.T) {
	src := specialTree(t, true)
	v := versitygwVolume(t)
	sh(t, "", "cp", "-a", src, v.path("copy"))
	sameSpecialTree(t, src, v.path("copy"))
	var st unix.Stat_t
	if err := unix.Lstat(v.path("copy", "sock"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		t.Errorf("the socket's copy: mode 0%o, %v", st.Mode, err)
	}
	v.remount(true)
	sameSpecialTree(t, src, v.path("copy"))
}

// TestBorg: a borg repository in the mount: init, create, check (with
// the repository's data verified), list, and extract what it stored.
func TestBorg(t *testing.T) {
	requireTool(t, "borg")
	src := specialTree(t, false)
	v := versitygwVolume(t)
	base := t.TempDir()
	env := []string{"BORG_BASE_DIR=" + base, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "BORG_PASSPHRASE="}
	repo := v.path("repo")
	shEnv(t, env, "", "borg", "init", "--encryption=none", repo)
	shEnv(t, env, src, "borg", "create", repo+"::first", ".")
	shEnv(t, env, src, "borg", "create", repo+"::second", ".")
	v.remount(true)
	shEnv(t, env, "", "borg", "check", "--verify-data", repo)
	if out := shEnv(t, env, "", "borg", "list", "--short", repo); out != "first\nsecond\n" {
		t.Errorf("borg list: %q", out)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shEnv(t, env, out, "borg", "extract", repo+"::second")
	sameSpecialTree(t, src, out)
}

// TestSQLite: sqlite3 writes 10,000 rows in transactions (its journal
// files come and go in the mount), and the database checks whole after a
// remount.
func TestSQLite(t *testing.T) {
	requireTool(t, "sqlite3")
	v := versitygwVolume(t)
	db := v.path("test.db")
	var script strings.Builder
	script.WriteString("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER);\nCREATE INDEX t_n ON t(n);\n")
	for tx := range 10 {
		script.WriteString("BEGIN;\n")
		for i := range 1000 {
			id := tx*1000 + i
			fmt.Fprintf(&script, "INSERT INTO t VALUES (%d, '%s', %d);\n", id, strings.Repeat("x", id%97), id*7%1013)
		}
		script.WriteString("COMMIT;\n")
	}
	script.WriteString("UPDATE t SET v = 'updated' WHERE id % 10 = 0;\nDELETE FROM t WHERE id % 100 = 1;\n")
	scriptFile := filepath.Join(t.TempDir(), "script.sql")
	writeFile(t, scriptFile, []byte(script.String()))
	sh(t, "", "sqlite3", db, ".read "+scriptFile)
	v.remount(true)
	if out := sh(t, "", "sqlite3", db, "PRAGMA integrity_check;"); out != "ok\n" {
		t.Fatalf("integrity_check after a remount: %q", out)
	}
	if out := sh(t, "", "sqlite3", db, "SELECT count(*), sum(n), count(CASE WHEN v = 'updated' THEN 1 END) FROM t;"); out != expectedSQLite() {
		t.Errorf("the rows after a remount: %q, want %q", out, expectedSQLite())
	}
}

func expectedSQLite() string {
	count, sum, updated := 0, 0, 0
	for id := range 10000 {
		if id%100 == 1 {
			continue
		}
		count++
		sum += id * 7 % 1013
		if id%10 == 0 {
			updated++
		}
	}
	return fmt.Sprintf("%d|%d|%d\n", count, sum, updated)
}
