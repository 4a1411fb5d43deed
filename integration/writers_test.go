package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Write-only mounts (DESIGN.md §2 "Writer keys") on versitygw: a backup
// host's mount with a writer credential, and the full-key mount that
// reads what it wrote afterwards.

// exportWriter creates a writer key of scope for v and returns the
// credential's path and the writer's ID.
func exportWriter(t *testing.T, v *volume, scope string) (string, string) {
	t.Helper()
	cred := filepath.Join(t.TempDir(), "writer")
	r := coffer(t, v.store.env, append([]string{"key"}, v.args("export-writer", "--out", cred, "--scope", scope)...)...)
	if r.code != 0 {
		t.Fatalf("export-writer: %v", r)
	}
	return cred, strings.TrimSpace(r.stdout)
}

// writerVolume is a write-only mount of v's store with credential cred.
func writerVolume(t *testing.T, v *volume, cred string) *volume {
	dir := t.TempDir()
	w := &volume{
		t: t, store: v.store, dir: dir, keyFile: cred,
		cacheDir: filepath.Join(dir, "cache"), mnt: filepath.Join(dir, "mnt"),
		mountArgs: v.mountArgs, modeArgs: v.modeArgs,
	}
	if err := os.Mkdir(w.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			w.dumpLog()
		}
	})
	return w
}

// makeWriterTree fills dir with a tree of directories, files of several sizes
// (one above the 5 MiB part size) and a symbolic link.
func makeWriterTree(t *testing.T, dir string) {
	t.Helper()
	for name, size := range map[string]int{
		"empty": 0, "one": 1, "a/small": 700, "a/b/chunks": 200 << 10, "a/b/c/parts": 6<<20 + 123,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		rand.Read(data)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 16 {
		if err := os.WriteFile(filepath.Join(dir, "a", "many-"+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a/small", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// mountFresh mounts the unmounted v with an empty cache dir: every read
// comes from the store.
func mountFresh(v *volume) {
	v.t.Helper()
	v.cacheDir = filepath.Join(v.dir, "cache-"+randomHex(4))
	v.mount()
}

func shell(t *testing.T, script string) (string, error) {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	return string(out), err
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// epochObjects lists the epoch objects writer id stored.
func epochObjects(t *testing.T, st blobstore.Store, id string) []string {
	t.Helper()
	w, err := cipher.ParseWriterID(id)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for e, err := range st.List(context.Background(), cipher.WriterEpochsPrefix(w), "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Key)
	}
	return keys
}

func TestWriteOnlyMount(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newS3Store(t, "versitygw"))
	v.mount()
	if err := os.MkdirAll(v.path("in", "olddir"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := []byte("the full key's file\n")
	if err := os.WriteFile(v.path("in", "old"), old, 0o640); err != nil {
		t.Fatal(err)
	}
	v.unmount()
	cred, id := exportWriter(t, v, "/in")

	src := filepath.Join(t.TempDir(), "src")
	makeWriterTree(t, src)
	w := writerVolume(t, v, cred)
	w.mount()
	if out, err := shell(t, "cp -r "+src+" "+w.path("in", "copied")); err != nil {
		t.Fatalf("cp -r into the write-only mount: %v: %s", err, out)
	}
	if err := os.Mkdir(w.path("in", "tarred"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := shell(t, "tar -C "+src+" --format=posix -cf - . | tar -C "+w.path("in", "tarred")+" -xf -"); err != nil {
		t.Fatalf("tar c | tar x into the write-only mount: %v: %s", err, out)
	}

	// The file it did not write: nothing of it can be read or changed.
	_, err := os.ReadFile(w.path("in", "old"))
	wantErrno(t, "read", err, syscall.EACCES)
	for _, cmd := range []string{
		"cat " + w.path("in", "old"),
		"cp " + w.path("in", "old") + " " + filepath.Join(t.TempDir(), "out"),
		"stat -c %a " + w.path("in", "old"),
		"rm -f " + w.path("in", "old"),
		"mv -f " + w.path("in", "copied", "one") + " " + w.path("in", "old"),
		"truncate -s 0 " + w.path("in", "old"),
		"chmod 600 " + w.path("in", "old"),
		"ln " + w.path("in", "old") + " " + w.path("in", "hardlink"),
		"rmdir " + w.path("in", "olddir"),
	} {
		out, err := shell(t, cmd)
		if err == nil || !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
			t.Errorf("%s: %v, %q: want it refused", cmd, err, out)
		}
	}
	wantErrno(t, "remove", os.Remove(w.path("in", "old")), syscall.EACCES)
	wantErrno(t, "rename over", os.Rename(w.path("in", "copied", "one"), w.path("in", "old")), syscall.EACCES)
	wantErrno(t, "truncate", os.Truncate(w.path("in", "old"), 0), syscall.EACCES)
	wantErrno(t, "create outside the scope", os.WriteFile(w.path("elsewhere"), []byte("x"), 0o644), syscall.EACCES)
	// Its name stays visible.
	if ents, err := os.ReadDir(w.path("in")); err != nil || len(ents) != 4 {
		t.Errorf("readdir in: %v, %v", ents, err)
	}
	w.unmount()

	mountFresh(v)
	sh(t, "", "diff", "-r", "--no-dereference", src, v.path("in", "copied")) // byte for byte, no name more or less
	sameTree(t, src, v.path("in", "tarred"))                                 // modes, mtimes and owners too
	if got, err := os.ReadFile(v.path("in", "old")); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("in/old after the writer: %q, %v", got, err)
	}
	if fi, err := os.Stat(v.path("in", "old")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("in/old mode after the writer: %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(v.path("in", "copied", "one")); err != nil {
		t.Fatalf("the refused mv moved its source: %v", err)
	}
	buf := make([]byte, 200)
	n, err := syscall.Getxattr(v.path("in", "copied", "one"), "coffer.origin", buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "writer "+id+" epoch ") {
		t.Fatalf("coffer.origin = %q, %v", buf[:n], err)
	}
	v.unmount()

	// A second writer's epoch object replaced by the first's: the second's
	// files are refused.
	cred2, id2 := exportWriter(t, v, "/in")
	w2 := writerVolume(t, v, cred2)
	w2.mount()
	if err := os.WriteFile(w2.path("in", "second"), []byte("second writer"), 0o644); err != nil {
		t.Fatal(err)
	}
	w2.unmount()
	st := v.store.open(t)
	first, second := epochObjects(t, st, id), epochObjects(t, st, id2)
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("epochs %v, %v", first, second)
	}
	ctx := context.Background()
	rc, _, err := st.Get(ctx, first[0], blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	swapped, _ := io.ReadAll(rc)
	rc.Close()
	if _, err := st.Put(ctx, second[0], bytes.NewReader(swapped), int64(len(swapped)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	// The first writer is revoked, then starts another session.
	if r := coffer(t, v.store.env, append([]string{"key"}, v.args("revoke-writer", id)...)...); r.code != 0 {
		t.Fatalf("revoke-writer: %v", r)
	}
	w.mount()
	if err := os.WriteFile(w.path("in", "after"), []byte("after the revocation"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.unmount()

	mountFresh(v)
	_, err = os.ReadFile(v.path("in", "second"))
	wantErrno(t, "the second writer's file under a swapped epoch", err, syscall.EIO)
	_, err = os.ReadFile(v.path("in", "after"))
	wantErrno(t, "the revoked writer's new file", err, syscall.EIO)
	sh(t, "", "diff", "-r", "--no-dereference", src, v.path("in", "copied")) // its sessions before the revocation are kept
}
