package journal

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var testSecret = bytes.Repeat([]byte{7}, 32)

// testEntry is entry i: a staging name, salt and blob derived from i.
func testEntry(i int) Entry {
	e := Entry{
		Staging: Staging{Name: fmt.Sprintf("%032x.stg", i), Seq: uint64(i%5 + 1), Size: int64(i * 100)},
		Blob:    fmt.Appendf(nil, `{"path":"/dir/secret-name-%d","mode":420}`, i),
	}
	e.Staging.Salt = sha256.Sum256(fmt.Appendf(nil, "salt %d", i))
	return e
}

func openTest(t testing.TB, dir string, opts Options) (*Journal, Recovery) {
	t.Helper()
	j, rec, err := Open(dir, testSecret, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, rec
}

func mustAppend(t testing.TB, j *Journal, e Entry) ID {
	t.Helper()
	id, err := j.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pendingOf reopens dir and returns what replay found, closing again.
func pendingOf(t testing.TB, dir string, opts Options) Recovery {
	t.Helper()
	j, rec, err := Open(dir, testSecret, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return rec
}

// wantPending checks that rec holds exactly the entries of ids (in that
// order) with the given indexes' contents.
func wantPending(t testing.TB, rec Recovery, ids []ID, idx []int) {
	t.Helper()
	if len(rec.Pending) != len(ids) {
		t.Fatalf("%d records pending, want %d (%v)", len(rec.Pending), len(ids), ids)
	}
	for k, r := range rec.Pending {
		want := testEntry(idx[k])
		if r.ID != ids[k] || r.Staging != want.Staging || !bytes.Equal(r.Blob, want.Blob) {
			t.Fatalf("pending[%d] = %d %+v %q, want %d %+v %q", k, r.ID, r.Staging, r.Blob, ids[k], want.Staging, want.Blob)
		}
	}
}

// segments lists dir's segment files.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	paths, _, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// framesOf scans one segment file.
func framesOf(t testing.TB, path string) ([]byte, scanned) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, ok := parseSegName(filepath.Base(path))
	if !ok {
		t.Fatalf("%s is not a segment", path)
	}
	return data, scanSegment(data, testSecret, first)
}
