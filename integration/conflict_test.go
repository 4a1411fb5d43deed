package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sibling is a second mount of v's volume: the same store and key, its
// own cache dir and mountpoint.
func (v *volume) sibling(name string) *volume {
	v.t.Helper()
	w := &volume{
		t: v.t, store: v.store, dir: v.dir, keyFile: v.keyFile, modeArgs: v.modeArgs,
		mountArgs: slices.Clone(v.mountArgs),
		cacheDir:  filepath.Join(v.dir, "cache-"+name),
		mnt:       filepath.Join(v.dir, "mnt-"+name),
	}
	if err := os.Mkdir(w.mnt, 0o755); err != nil {
		v.t.Fatal(err)
	}
	return w
}

var conflictName = regexp.MustCompile(`^(.+)\.conflict-\d{8}-\d{6}$`)

// TestTwoMountsConflict: two mounts of one volume write the same file
// within the metadata TTL (each trusting what it saw of the file): both
// versions are kept, the late one under NAME.conflict-YYYYMMDD-HHMMSS with
// the attributes it had, and coffer unmount names the pair. The same for
// a file both create.
func TestTwoMountsConflict(t *testing.T) {
	requireFUSE(t)
	a := newVolume(t, newS3Store(t, "versitygw"), withMountArgs("--metadata-ttl", "1m"))
	b := a.sibling("b")
	a.mount()
	b.mount()
	if err := writeSynced(a.path("shared"), []byte("base"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkFile(t, b.path("shared"), []byte("base")) // b now trusts base for a minute
	if _, err := os.Stat(b.path("new")); !os.IsNotExist(err) {
		t.Fatalf("stat of new in b: %v", err) // and that new does not exist
	}

	if err := writeSynced(a.path("shared"), []byte("from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSynced(b.path("shared"), []byte("from b, later"), 0o644); err != nil {
		t.Fatalf("fsync of the late version: %v", err)
	}
	if err := writeSynced(a.path("new"), []byte("new from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSynced(b.path("new"), []byte("new from b, later"), 0o600); err != nil {
		t.Fatalf("fsync of the late new file: %v", err)
	}
	a.unmount()
	r := coffer(t, nil, "unmount", b.mnt)
	b.mounted = false
	if r.code != 0 || strings.Count(r.stderr, "conflict: another mount changed") != 2 ||
		!strings.Contains(r.stderr, "/shared.conflict-") || !strings.Contains(r.stderr, "/new.conflict-") {
		t.Fatalf("unmount of the mount that met the conflicts: %v; want exit 0 naming both pairs", r)
	}

	c := a.sibling("check")
	c.mount()
	ents, err := os.ReadDir(c.mnt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"shared": "from a", "new": "new from a"}
	late := map[string]string{"shared": "from b, later", "new": "new from b, later"}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
		if m := conflictName.FindStringSubmatch(e.Name()); m != nil {
			checkFile(t, c.path(e.Name()), []byte(late[m[1]]))
			if m[1] == "new" {
				if fi, err := os.Stat(c.path(e.Name())); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("conflict copy of new: %v, %v; want the late file's mode 0600", fi, err)
				}
			}
			delete(late, m[1])
		} else {
			checkFile(t, c.path(e.Name()), []byte(want[e.Name()]))
		}
	}
	if len(got) != 4 || len(late) != 0 {
		t.Fatalf("the volume holds %v; want shared, new and a conflict copy of each", got)
	}
	c.unmount()
}

// TestTwoMountsRacingMetadata: two mounts change the metadata of one file
// and one directory (chmod in one, utimens or chown in the other, which
// still trusts what it read before): both changes stand, neither silently
// undoes the other (a metadata copy keeps the ETag, so only the change
// counter of the sealed attributes shows the first).
func TestTwoMountsRacingMetadata(t *testing.T) {
	requireFUSE(t)
	a := newVolume(t, newS3Store(t, "versitygw"), withMountArgs("--metadata-ttl", "1m"))
	b := a.sibling("b")
	a.mount()
	b.mount()
	if err := writeSynced(a.path("f"), []byte("racing metadata"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.path("f"), b.path("d")} {
		if _, err := os.Stat(p); err != nil { // b now trusts these attributes
			t.Fatal(err)
		}
	}
	if err := os.Chmod(a.path("f"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.path("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(b.path("f"), when, when); err != nil {
		t.Fatalf("utimens in the other mount: %v", err)
	}
	if err := os.Chown(b.path("d"), 4242, 4243); err != nil {
		t.Fatalf("chown in the other mount: %v", err)
	}
	a.unmount()
	b.unmount()

	c := a.sibling("check")
	c.mount()
	fi, err := os.Stat(c.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(when) {
		t.Errorf("f: mode %o mtime %v; want the chmod (0600) and the utimens (%v)", fi.Mode().Perm(), fi.ModTime(), when)
	}
	di, err := os.Stat(c.path("d"))
	if err != nil {
		t.Fatal(err)
	}
	st := di.Sys().(*syscall.Stat_t)
	if di.Mode().Perm() != 0o700 || st.Uid != 4242 || st.Gid != 4243 {
		t.Errorf("d: mode %o owner %d:%d; want the chmod (0700) and the chown (4242:4243)", di.Mode().Perm(), st.Uid, st.Gid)
	}
	c.unmount()
}
