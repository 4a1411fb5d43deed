package fs

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// bodyStore counts the body bytes that cross the Store interface (what a
// GET returns, what a PUT or part sends; the config aside) and lets a
// test fail or interleave a copy.
type bodyStore struct {
	blobstore.Store
	down, up atomic.Int64
	copies   atomic.Int64
	// beforeCopy runs before every Copy; an error fails it.
	beforeCopy func(key string) error
}

type countReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (s *bodyStore) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, key, opts)
	if err == nil && key != ConfigKey {
		rc = countReader{rc, &s.down}
	}
	return rc, info, err
}

func (s *bodyStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	if key != ConfigKey {
		s.up.Add(size)
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

func (s *bodyStore) Copy(ctx context.Context, src, dst string, opts blobstore.CopyOptions) (blobstore.ObjectInfo, error) {
	if s.beforeCopy != nil {
		if err := s.beforeCopy(src); err != nil {
			return blobstore.ObjectInfo{}, err
		}
	}
	s.copies.Add(1)
	return s.Store.Copy(ctx, src, dst, opts)
}

// populate writes files (some empty, one with a long hashed name), a few
// directories with markers, and a symlink, and returns the files'
// contents by path.
func populate(t *testing.T, v *Volume, files int) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	want := map[string][]byte{}
	for _, d := range []string{"/a", "/a/b", "/c"} {
		if _, err := v.Mkdir(ctx, d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dirs := []string{"/", "/a", "/a/b", "/c"}
	for i := range files {
		p := joinPath(dirs[i%len(dirs)], fmt.Sprintf("f%03d", i))
		data := bytes.Repeat([]byte{byte(i)}, i*37%3000)
		writeFile(t, v, p, data)
		want[p] = data
	}
	long := "/c/" + strings.Repeat("long-name-", 20)
	writeFile(t, v, long, []byte("long"))
	want[long] = []byte("long")
	if _, err := v.Symlink(ctx, "a/b/f002", "/link"); err != nil {
		t.Fatal(err)
	}
	flush(t, v)
	return want
}

// generations counts the store's objects by generation.
func generations(t *testing.T, st blobstore.Store) map[uint32]int {
	t.Helper()
	c, err := CountGenerations(context.Background(), st, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.ByGeneration
}

func checkContents(t *testing.T, v *Volume, want map[string][]byte) {
	t.Helper()
	for p, data := range want {
		got, err := tryRead(v, p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s after rotation: %d bytes, %v; want %d bytes", p, len(got), err, len(data))
		}
	}
	if target, err := v.Readlink(context.Background(), "/link"); err != nil || target != "a/b/f002" {
		t.Fatalf("readlink after rotation: %q %v", target, err)
	}
	ents, err := v.ReadDir(context.Background(), "/a")
	if err != nil || len(ents) == 0 {
		t.Fatalf("readdir /a after rotation: %v", err)
	}
}

// TestRotate: every object (files, markers, a symlink, a hashed name)
// moves to the new generation with metadata-only copies and no body
// byte read or written; the old generation is retired; everything reads
// back the same.
func TestRotate(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = -1 })
	want := populate(t, tv.Volume, 60)
	objects := 0
	for range generations(t, tv.store) {
		objects++
	}
	bs := &bodyStore{Store: tv.store}
	var steps []RotateStep
	res, err := RotateVolume(ctx, bs, RotateOptions{
		KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1, Concurrency: 4,
		Progress: func(p RotateProgress) {
			if len(steps) == 0 || steps[len(steps)-1] != p.Step {
				steps = append(steps, p.Step)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	gens := generations(t, tv.store)
	if len(gens) != 1 || gens[2] != res.Objects || res.Rewrapped != res.Objects || res.Already != 0 {
		t.Fatalf("after rotate: generations %v, result %+v", gens, res)
	}
	if !res.Added || res.Generation != 2 || fmt.Sprint(res.Retired) != "[1]" || len(res.Remaining) != 0 {
		t.Fatalf("result %+v: want generation 2 added and 1 retired", res)
	}
	if bs.down.Load() != 0 || bs.up.Load() != 0 {
		t.Fatalf("rotate moved body bytes: %d down, %d up", bs.down.Load(), bs.up.Load())
	}
	if fmt.Sprint(steps) != fmt.Sprint([]RotateStep{StepGeneration, StepList, StepRewrap, StepRetire}) {
		t.Fatalf("progress steps %v", steps)
	}
	l, err := ListKeys(ctx, tv.store, ListOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, Count: true})
	if err != nil || len(l.Generations) != 1 || l.Generations[0].Generation != 2 || !l.Generations[0].Current || l.Generations[0].Objects != res.Objects {
		t.Fatalf("key list after rotate: %+v %v", l, err)
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	checkContents(t, nv, want)

	// A rerun is a new rotation: generation 3.
	res, err = RotateVolume(ctx, tv.store, RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1})
	if err != nil || !res.Added || res.Generation != 3 || fmt.Sprint(res.Retired) != "[2]" {
		t.Fatalf("second rotation: %+v %v", res, err)
	}
}

// TestRotateResumes: a rotation stopped half-way by a store failure
// resumes on the next run: the same generation (none added), objects
// already on it skipped, the rest rewrapped, the old generation retired.
func TestRotateResumes(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = -1 })
	want := populate(t, tv.Volume, 40)
	var n atomic.Int64
	bs := &bodyStore{Store: tv.store, beforeCopy: func(string) error {
		if n.Add(1) > 20 {
			return &blobstore.Error{Op: "copy", Err: blobstore.ErrTransient}
		}
		return nil
	}}
	opts := RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1, Concurrency: 1}
	if _, err := RotateVolume(ctx, bs, opts); !errors.Is(err, blobstore.ErrTransient) {
		t.Fatalf("interrupted rotation: %v", err)
	}
	half := generations(t, tv.store)
	if half[2] == 0 || half[1] == 0 {
		t.Fatalf("after the interruption: %v, want objects on both generations", half)
	}
	res, err := RotateVolume(ctx, tv.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added || res.Generation != 2 || res.Already != half[2] || res.Rewrapped != half[1] || fmt.Sprint(res.Retired) != "[1]" {
		t.Fatalf("resumed rotation %+v; before it %v", res, half)
	}
	if gens := generations(t, tv.store); len(gens) != 1 || gens[2] == 0 {
		t.Fatalf("after resuming: %v", gens)
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	checkContents(t, nv, want)

	// Asked for, an unfinished rotation gets a new generation instead.
	bs.Store, n = tv.store, atomic.Int64{}
	if _, err := RotateVolume(ctx, bs, opts); err == nil {
		t.Fatal("the injected failure did not stop the rotation")
	}
	opts.NewGeneration = true
	res, err = RotateVolume(ctx, tv.store, opts)
	if err != nil || !res.Added || res.Generation != 4 || fmt.Sprint(res.Retired) != "[2 3]" {
		t.Fatalf("--new-generation over an unfinished rotation: %+v %v", res, err)
	}
}

// TestRotateWaitsForMounts: the rewrap starts MountGrace after the
// generation was added, also when a rerun resumes it.
func TestRotateWaitsForMounts(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = -1 })
	writeFile(t, tv.Volume, "/f", []byte("x"))
	flush(t, tv.Volume)
	now := time.Now()
	var waited []time.Duration
	opts := RotateOptions{
		KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: time.Minute,
		now: func() time.Time { return now },
		sleep: func(_ context.Context, d time.Duration) error {
			waited = append(waited, d)
			return context.Canceled // interrupted during the wait
		},
	}
	if _, err := RotateVolume(ctx, tv.store, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("rotation interrupted in its wait: %v", err)
	}
	if len(waited) != 1 || waited[0] < 58*time.Second || waited[0] > time.Minute+time.Second {
		t.Fatalf("waits %v, want one of about a minute", waited)
	}
	if g := generations(t, tv.store); g[1] != 1 {
		t.Fatalf("objects rewrapped before the grace ended: %v", g)
	}
	// 40 s later the rerun waits the remaining 20 s, then rewraps.
	now = now.Add(40 * time.Second)
	waited = nil
	opts.sleep = func(_ context.Context, d time.Duration) error { waited = append(waited, d); return nil }
	res, err := RotateVolume(ctx, tv.store, opts)
	if err != nil || res.Added || res.Rewrapped != 1 {
		t.Fatalf("resumed: %+v %v", res, err)
	}
	if len(waited) != 1 || waited[0] < 18*time.Second || waited[0] > 21*time.Second {
		t.Fatalf("waits %v, want one of about 20 s", waited)
	}
}

// TestRotateBadObjects: objects whose metadata is damaged are reported
// and keep their generation in the keyring; others are not touched.
func TestRotateBadObjects(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = -1 })
	for _, p := range []string{"/good", "/bad-dek", "/unknown-gen"} {
		writeFile(t, tv.Volume, p, []byte(p))
	}
	flush(t, tv.Volume)
	tamper := func(p string, f func(map[string]string)) string {
		key, _, err := tv.objectKey(p)
		if err != nil {
			t.Fatal(err)
		}
		info, err := tv.store.Head(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		f(info.Metadata)
		if _, err := tv.store.Copy(ctx, key, key, blobstore.CopyOptions{Metadata: info.Metadata}); err != nil {
			t.Fatal(err)
		}
		return key
	}
	badDEK := tamper("/bad-dek", func(m map[string]string) {
		// Well-formed but not authentic: one byte of the sealed DEK flipped.
		b, err := base64.RawURLEncoding.DecodeString(m[cipher.MetaDEK])
		if err != nil {
			t.Fatal(err)
		}
		b[20] ^= 1
		m[cipher.MetaDEK] = base64.RawURLEncoding.EncodeToString(b)
	})
	unknown := tamper("/unknown-gen", func(m map[string]string) { m[cipher.MetaKEK] = "99" })
	if _, err := tv.store.Put(ctx, "foreign-object", strings.NewReader("not coffer's"), 12, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := RotateVolume(ctx, tv.store, RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1})
	if !errors.Is(err, ErrRotationIncomplete) {
		t.Fatalf("rotation over damaged objects: %v", err)
	}
	var failed []string
	for _, f := range res.Failed {
		failed = append(failed, fmt.Sprintf("%s@%d", f.Key, f.Generation))
	}
	if fmt.Sprint(failed) != fmt.Sprint(sortedStrings(badDEK+"@1", unknown+"@99")) {
		t.Fatalf("failed %v", failed)
	}
	for _, f := range res.Failed {
		if f.Key == badDEK && !errors.Is(f.Err, cipher.ErrAuth) {
			t.Fatalf("the damaged DEK failed with %v, want ErrAuth", f.Err)
		}
	}
	if res.Rewrapped != 1 || res.Other != 1 || fmt.Sprint(res.Remaining) != "[1]" || len(res.Retired) != 0 {
		t.Fatalf("result %+v: want the good file rewrapped, the foreign object left, generation 1 kept", res)
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	if string(readFile(t, nv, "/good")) != "/good" {
		t.Fatal("the good file changed")
	}
	if _, err := tryRead(nv, "/bad-dek"); Errno(err) != syscall.EIO {
		t.Fatalf("the damaged file: %v, want EIO", err)
	}
}

func sortedStrings(s ...string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestRotateConcurrentChanges: an object replaced between rotate's HEAD
// and its copy (a 412) is read again and rewrapped as it now is; a
// config write racing the generation's is retried, and one racing the
// retirement too.
func TestRotateConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = -1 })
	writeFile(t, tv.Volume, "/f", []byte("first version"))
	writeFile(t, tv.Volume, "/g", []byte("other"))
	flush(t, tv.Volume)
	key, _, _ := tv.objectKey("/f")
	var once sync.Once
	bs := &bodyStore{Store: tv.store, beforeCopy: func(src string) error {
		if src == key {
			once.Do(func() {
				writeFile(t, tv.Volume, "/f", []byte("second version"))
				flush(t, tv.Volume)
			})
		}
		return nil
	}}
	// Config writes: 1 the generation (raced), 2 its retry, 3 the
	// retirement (raced), 4 its retry.
	races := 0
	rs := &raceStore{Store: bs, at: []int{1, 3}}
	rs.race = func() {
		races++
		if _, err := AddRootKey(ctx, bs, KeyOptions{Roots: []*cipher.RootKey{tv.root}}, testRoot(t, byte(20+races))); err != nil {
			t.Error(err)
		}
	}
	res, err := RotateVolume(ctx, rs, RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if races != 2 || !res.Added || res.Generation != 2 || fmt.Sprint(res.Retired) != "[1]" {
		t.Fatalf("result %+v after %d racing config writes", res, races)
	}
	if g := generations(t, tv.store); len(g) != 1 || g[2] != 2 {
		t.Fatalf("generations %v", g)
	}
	l, _ := ListKeys(ctx, tv.store, ListOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}})
	if len(l.Keys) != 3 {
		t.Fatalf("rotate lost a racing key add: %d keys", len(l.Keys))
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, nv, "/f"); string(got) != "second version" {
		t.Fatalf("/f = %q, want the version written during the rotation", got)
	}
}
