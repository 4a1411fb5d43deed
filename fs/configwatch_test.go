package fs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// logRecords collects a volume's log records.
type logRecords struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// addGeneration is the first step of a rotation run elsewhere: a new
// current generation in the stored config, nothing rewrapped yet.
func addGeneration(t *testing.T, st blobstore.Store, root *cipher.RootKey) {
	t.Helper()
	ctx := context.Background()
	o, err := openConfig(ctx, st, KeyOptions{Roots: []*cipher.RootKey{root}})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.kr.AddGeneration(); err != nil {
		t.Fatal(err)
	}
	if err := o.write(ctx, st, "test generation"); err != nil {
		t.Fatal(err)
	}
}

func storedGeneration(t *testing.T, v *Volume, p string) uint32 {
	t.Helper()
	key, _, err := v.objectKey(p)
	if err != nil {
		t.Fatal(err)
	}
	info, err := v.store.Head(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.MetadataGeneration(info.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestMountFollowsRotation: a mounted volume re-reads its config, seals
// new objects under the generation a rotation added, keeps opening the
// old one until it is retired and then refuses objects under it; a
// refresh that fails (garbage, a rolled-back config) keeps the keyring.
func TestMountFollowsRotation(t *testing.T) {
	ctx := context.Background()
	logs := &logRecords{}
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		o.WritebackDelay, o.MetadataTTL, o.ConfigRefresh = -1, -1, -1
		o.Logger = slog.New(logs)
	})
	writeFile(t, tv.Volume, "/old", []byte("written under generation 1"))
	flush(t, tv.Volume)
	oldKey, _, _ := tv.objectKey("/old")
	oldInfo, err := tv.store.Head(ctx, oldKey)
	if err != nil {
		t.Fatal(err)
	}

	addGeneration(t, tv.store, tv.root)
	if changed, err := tv.watch.refresh(ctx); err != nil || !changed {
		t.Fatalf("refresh after a new generation: changed %v, %v", changed, err)
	}
	if changed, _ := tv.watch.refresh(ctx); changed {
		t.Fatal("a second refresh of the same config changed the keyring")
	}
	writeFile(t, tv.Volume, "/new", []byte("written under generation 2"))
	flush(t, tv.Volume)
	if g := storedGeneration(t, tv.Volume, "/new"); g != 2 {
		t.Fatalf("a file written after the refresh is on generation %d, want 2", g)
	}
	if got, err := tryRead(tv.Volume, "/old"); err != nil || string(got) != "written under generation 1" {
		t.Fatalf("the old generation stopped opening before retirement: %q %v", got, err)
	}
	beforeRetire := getConfig(t, tv.store)

	res, err := RotateVolume(ctx, tv.store, RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1})
	if err != nil || res.Added || res.Rewrapped != 1 || res.Already != 1 {
		t.Fatalf("rotation resumed over the mount's volume: %+v %v", res, err)
	}
	// Put the generation-1 version of /old back, as a holder of the old
	// KEK could: the mount opens it until it learns of the retirement.
	if _, err := tv.store.Copy(ctx, oldKey, oldKey, blobstore.CopyOptions{Metadata: oldInfo.Metadata}); err != nil {
		t.Fatal(err)
	}
	if _, err := tryRead(tv.Volume, "/old"); err != nil {
		t.Fatalf("before its refresh the mount no longer opens generation 1: %v", err)
	}
	if _, err := tv.watch.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if gens := tv.keyring().Generations(); len(gens) != 1 || gens[0] != 2 {
		t.Fatalf("generations after the retirement %v, want [2]", gens)
	}
	if _, err := tryRead(tv.Volume, "/old"); Errno(err) != syscall.EIO {
		t.Fatalf("an object under the retired generation: %v, want EIO", err)
	}

	// Failures keep the keyring and log once while they last.
	for _, bad := range []struct {
		name, log string
		config    []byte
	}{
		{"garbage", "re-reading the volume config failed", []byte("not a config")},
		{"rolled back", "re-reading the volume config failed", beforeRetire},
	} {
		putConfig(t, tv.store, bad.config)
		for range 2 {
			if changed, err := tv.watch.refresh(ctx); err == nil || changed {
				t.Fatalf("refresh with a %s config: changed %v, %v", bad.name, changed, err)
			}
		}
		if gens := tv.keyring().Generations(); len(gens) != 1 || gens[0] != 2 || tv.keyring().CurrentGeneration() != 2 {
			t.Fatalf("a %s config changed the keyring: %v", bad.name, gens)
		}
	}
	if n := logs.count("re-reading the volume config failed"); n != 2 {
		t.Fatalf("%d failure records for two lasting failures, want 2: %q", n, logs.msgs)
	}
	if _, err := tv.watch.refresh(ctx); err == nil {
		t.Fatal("the refresh of an unchanged rolled-back config succeeded")
	}
}

// gateStore holds a Put of an object (not the config) until released.
type gateStore struct {
	blobstore.Store
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (s *gateStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	if s.armed && key != ConfigKey {
		s.armed = false
		data, err := io.ReadAll(body) // sealed before the hold, as an upload's is
		if err != nil {
			return blobstore.ObjectInfo{}, err
		}
		close(s.entered)
		<-s.release
		body = bytes.NewReader(data)
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

// TestUploadAcrossRefresh: an upload sealed under a generation that is no
// longer current when it completes is rewrapped onto the current one, so
// a rotation that listed the volume before it appeared leaves nothing
// behind.
func TestUploadAcrossRefresh(t *testing.T) {
	ctx := context.Background()
	var gs *gateStore
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		gs = &gateStore{Store: o.Store, entered: make(chan struct{}), release: make(chan struct{})}
		o.Store = gs
		o.WritebackDelay, o.ConfigRefresh = -1, -1
	})
	gs.armed = true
	done := make(chan error, 1)
	go func() {
		writeFile(t, tv.Volume, "/slow", []byte("sealed under generation 1"))
		done <- tv.Flush(ctx, nil)
	}()
	select {
	case <-gs.entered:
	case <-time.After(time.Minute):
		t.Fatal("the upload never reached the store")
	}
	addGeneration(t, tv.store, tv.root)
	if _, err := tv.watch.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	close(gs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g := storedGeneration(t, tv.Volume, "/slow"); g != 2 {
		t.Fatalf("an upload completed after the refresh is on generation %d, want 2", g)
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, nv, "/slow"); string(got) != "sealed under generation 1" {
		t.Fatalf("read %q", got)
	}
}

func TestConfigRefreshInterval(t *testing.T) {
	for _, tc := range []struct {
		refresh, ttl, want time.Duration
	}{
		{0, DefaultMetadataTTL, min(DefaultMetadataTTL, ConfigRefreshMax)},
		{0, time.Hour, ConfigRefreshMax},
		{0, 100 * time.Millisecond, time.Second},
		{0, -1, time.Second},
		{-1, time.Second, 0},
		{3 * time.Second, time.Hour, 3 * time.Second},
		{time.Hour, time.Second, ConfigRefreshMax},
	} {
		if got := configRefreshInterval(Options{ConfigRefresh: tc.refresh, MetadataTTL: tc.ttl}); got != tc.want {
			t.Errorf("refresh %v, TTL %v: interval %v, want %v", tc.refresh, tc.ttl, got, tc.want)
		}
	}
}
