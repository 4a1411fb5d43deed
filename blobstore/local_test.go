package blobstore_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/blobstore/storetest"
)

func newLocal(t testing.TB) blobstore.Store {
	l, err := blobstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func TestLocalConformance(t *testing.T) {
	s := &storetest.Suite{NewStore: newLocal}
	s.Run(t)
}

func openLocal(t *testing.T, dir string) *blobstore.Local {
	t.Helper()
	l, err := blobstore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func readKey(t *testing.T, st blobstore.Store, key string) string {
	t.Helper()
	rc, _, err := st.Get(context.Background(), key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func listKeys(t *testing.T, st blobstore.Store, prefix, delim string) []string {
	t.Helper()
	var out []string
	for e, err := range st.List(context.Background(), prefix, delim) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Key)
	}
	return out
}

// Keys S3 allows but a file system would mangle: empty segments, dot
// segments, case, escapes.
func TestLocalOddKeys(t *testing.T) {
	ctx := context.Background()
	l := openLocal(t, t.TempDir())
	keys := []string{"a//b", "/x", "x/", "x", ".", "..", "a/./b", "a/../b", "%41", "A", "a", "nul\x00byte", "a/b"}
	for _, k := range keys {
		if _, err := l.Put(ctx, k, strings.NewReader(k), int64(len(k)), blobstore.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for _, k := range keys {
		if got := readKey(t, l, k); got != k {
			t.Errorf("Get(%q) = %q", k, got)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := listKeys(t, l, "", ""); !slices.Equal(got, want) {
		t.Errorf("List = %q\nwant %q", got, want)
	}
	if got, want := listKeys(t, l, "a/", "/"), []string{"a/../", "a/./", "a//", "a/b"}; !slices.Equal(got, want) {
		t.Errorf("List(a/, /) = %q, want %q", got, want)
	}
}

func TestLocalRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := blobstore.NewLocal(dir); err == nil || !strings.Contains(err.Error(), "not a coffer store") {
		t.Fatalf("NewLocal of a non-empty foreign dir: %v", err)
	}
	// A store reopens, with its objects.
	store := filepath.Join(dir, "new", "store")
	l := openLocal(t, store)
	if _, err := l.Put(context.Background(), "k", strings.NewReader("v"), 1, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if got := readKey(t, openLocal(t, store), "k"); got != "v" {
		t.Fatalf("after reopen: %q", got)
	}
}

func tmpEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, "tmp"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// Temp files of a dead process go at the next open; a live instance's
// stay.
func TestLocalCleansStaleTemp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := openLocal(t, dir)
	mpu, err := live.Multipart(ctx, "big", blobstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mpu.UploadPart(ctx, 1, []byte("part one")); err != nil {
		t.Fatal(err)
	}
	// A crashed process: its lock file is not locked by anyone.
	stale := filepath.Join(dir, "tmp", "deadbeef")
	os.MkdirAll(stale, 0o700)
	os.WriteFile(stale+".lock", nil, 0o600)
	os.WriteFile(filepath.Join(stale, "obj-123"), []byte("half an object"), 0o600)
	// A cleaner that died between removing a dir and its lock.
	orphan := filepath.Join(dir, "tmp", "0rphan")
	os.MkdirAll(orphan, 0o700)
	os.WriteFile(filepath.Join(orphan, "obj-9"), []byte("x"), 0o600)

	second := openLocal(t, dir)
	for _, p := range []string{stale, stale + ".lock", orphan} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the open: %v", p, err)
		}
	}
	p, err := mpu.UploadPart(ctx, 2, []byte("part two"))
	if err != nil {
		t.Fatalf("live upload lost its temp dir: %v", err)
	}
	p1 := blobstore.Part{Number: 1, ETag: fmt.Sprintf("%x", md5.Sum([]byte("part one")))}
	if _, err := mpu.Complete(ctx, []blobstore.Part{p1, p}); err != nil {
		t.Fatal(err)
	}
	if got := readKey(t, second, "big"); got != "part onepart two" {
		t.Fatalf("object = %q", got)
	}
	second.Close()
	live.Close()
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Fatalf("temp files left after Close: %q", left)
	}
}

// Two instances on one directory (as two processes would be) still see
// conditional creates as atomic: the commit lock is a file lock.
func TestLocalTwoInstancesConditionalCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stores := []*blobstore.Local{openLocal(t, dir), openLocal(t, dir)}
	for round := range 20 {
		key := fmt.Sprintf("race/%d", round)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := stores[i%2].Put(ctx, key, strings.NewReader("x"), 1, blobstore.PutOptions{IfNoneMatch: true})
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, blobstore.ErrPreconditionFailed) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d winners", round, wins.Load())
		}
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestLocalFailedPutLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLocal(t, dir)
	if _, err := l.Put(ctx, "k", strings.NewReader("old"), 3, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := l.Put(ctx, "k", &failingReader{n: 1 << 20}, 2<<20, blobstore.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Put from a failing reader: %v", err)
	}
	_, err = l.Put(ctx, "k", strings.NewReader("short"), 10, blobstore.PutOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Put of a short body: %v", err)
	}
	if got := readKey(t, l, "k"); got != "old" {
		t.Fatalf("failed puts changed the object to %q", got)
	}
	var tmps []string
	for _, e := range tmpEntries(t, dir) {
		if !strings.HasSuffix(e, ".lock") {
			tmps = append(tmps, e)
		}
	}
	if len(tmps) != 0 {
		t.Fatalf("failed puts left temp files %q", tmps)
	}
}

func TestLocalDetectsCorruptFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLocal(t, dir)
	if _, err := l.Put(ctx, "k", strings.NewReader("hello world"), 11, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "objects", "k.o")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Head(ctx, "k"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Head of a truncated object: %v", err)
	}
	if _, _, err := l.Get(ctx, "k", blobstore.GetOptions{Length: -1}); err == nil {
		t.Fatal("Get of a truncated object succeeded")
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := l.Head(ctx, "k"); err == nil || errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Head of garbage: %v", err)
	}
}

func TestLocalPrunesEmptyDirs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLocal(t, dir)
	for _, k := range []string{"a/b/c", "a/b/d", "e"} {
		if _, err := l.Put(ctx, k, strings.NewReader(k), int64(len(k)), blobstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.DeleteMany(ctx, []string{"a/b/c", "a/b/d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "a.d")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directories stay after delete: %v", err)
	}
	// An empty dir left by a crash is no common prefix.
	os.MkdirAll(filepath.Join(dir, "objects", "ghost.d", "deeper.d"), 0o700)
	if got := listKeys(t, l, "", "/"); !slices.Equal(got, []string{"e"}) {
		t.Errorf("List(\"\", /) = %q, want [e]", got)
	}
}

func BenchmarkLocal(b *testing.B) {
	ctx := context.Background()
	l, err := blobstore.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const size = 64 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.Run("Put64MiB", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			if _, err := l.Put(ctx, fmt.Sprintf("put/%d", i%2), bytes.NewReader(data), size, blobstore.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Upload64MiB", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			_, err := blobstore.Upload(ctx, l, fmt.Sprintf("up/%d", i%2), bytes.NewReader(data), size, blobstore.UploadOptions{PartSize: 8 << 20})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get64MiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			rc, _, err := l.Get(ctx, "put/0", blobstore.GetOptions{Length: -1})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
				b.Fatal(n, err)
			}
			rc.Close()
		}
	})
	b.Run("SmallPut4KiB", func(b *testing.B) {
		b.SetBytes(4096)
		for i := 0; b.Loop(); i++ {
			if _, err := l.Put(ctx, fmt.Sprintf("small/%d", i%100), bytes.NewReader(data[:4096]), 4096, blobstore.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
