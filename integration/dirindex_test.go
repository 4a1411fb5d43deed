package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cofferfs/coffer/cipher"
)

// lsLong is `ls -l --time-style=+%s.%N` of dir without its "total" line.
func lsLong(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("ls", "-l", "--time-style=+%s.%N", dir).Output()
	if err != nil {
		t.Fatalf("ls -l %s: %v", dir, err)
	}
	_, rest, _ := strings.Cut(string(out), "\n")
	return rest
}

// TestDirIndexListing: after the mount that wrote a directory unmounts,
// the bucket holds the directory's index, and `ls -l` on a fresh mount
// shows exactly what the writing mount showed; after a chmod and a
// utimens on another mount (a metadata-only copy, which on versitygw
// keeps both the ETag and LastModified, so only that mount's rewrite of
// the index can tell), a fresh mount shows the new attributes.
func TestDirIndexListing(t *testing.T) {
	requireFUSE(t)
	store := newS3Store(t, "versitygw")
	a := newVolume(t, store)
	a.mount()
	dir := a.path("d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		p := a.path("d", fmt.Sprintf("f%02d", i))
		if err := os.WriteFile(p, []byte(strings.Repeat("x", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, os.FileMode(0o600+i%8)); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1_600_000_000+int64(i), int64(i))
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	a.unmount()
	a.mount()
	want := lsLong(t, dir)
	a.unmount()

	st := store.open(t)
	var indexes int
	for e, err := range st.List(context.Background(), cipher.DirIndexPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		_ = e
		indexes++
	}
	if indexes == 0 {
		t.Fatalf("no directory index under %s after the writing mount unmounted", cipher.DirIndexPrefix)
	}

	b := a.sibling("b")
	b.mount()
	if got := lsLong(t, b.path("d")); got != want || strings.Count(got, "\n") != 30 {
		t.Fatalf("ls -l on a fresh mount:\n%s\nwant (the writing mount's):\n%s", got, want)
	}
	b.unmount()

	c := a.sibling("c")
	c.mount()
	if err := os.Chmod(c.path("d", "f03"), 0o640); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_700_000_000, 7)
	if err := os.Chtimes(c.path("d", "f04"), mt, mt); err != nil {
		t.Fatal(err)
	}
	wantAfter := lsLong(t, c.path("d"))
	c.unmount()
	if wantAfter == want || !strings.Contains(wantAfter, "-rw-r----- ") || !strings.Contains(wantAfter, " 1700000000.000000007 f04") {
		t.Fatalf("the changing mount's ls -l does not show its chmod and utimens:\n%s", wantAfter)
	}
	b.cacheDir += "-fresh"
	b.mount()
	if got := lsLong(t, b.path("d")); got != wantAfter {
		t.Errorf("ls -l on a fresh mount after another mount's chmod and utimens:\n%s\nwant:\n%s", got, wantAfter)
	}
	b.unmount()
}
