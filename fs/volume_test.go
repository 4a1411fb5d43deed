package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

func TestBasicFileOps(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			data := make([]byte, 300<<10+17)
			rand.Read(data)
			writeFile(t, tv.Volume, "/f", data)
			if got := readFile(t, tv.Volume, "/f"); !bytes.Equal(got, data) {
				t.Fatalf("staged read differs (%d bytes)", len(got))
			}
			flush(t, tv.Volume)
			a, err := tv.Stat(ctx, "/f")
			if err != nil || a.Size != int64(len(data)) || !a.IsRegular() || a.Mode&0o777 != 0o644 {
				t.Fatalf("stat = %+v, %v", a, err)
			}
			v2 := tv.reopen(t)
			if got := readFile(t, v2, "/f"); !bytes.Equal(got, data) {
				t.Fatalf("stored read differs (%d bytes)", len(got))
			}
			ents, err := v2.ReadDir(ctx, "/")
			if err != nil || names(ents) != "f" || ents[0].Attr.Size != int64(len(data)) {
				t.Fatalf("readdir = %+v, %v", ents, err)
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			writeFile(t, tv.Volume, "/e", nil)
			flush(t, tv.Volume)
			v2 := tv.reopen(t)
			if got := readFile(t, v2, "/e"); len(got) != 0 {
				t.Fatalf("read %d bytes", len(got))
			}
		})
	}
}

func TestRandomWritesAndTruncate(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			model := make([]byte, 200<<10)
			rand.Read(model)
			writeFile(t, tv.Volume, "/r", model)
			flush(t, tv.Volume)
			v := tv.reopen(t)
			h, err := v.Open(ctx, "/r", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			patch := []byte("PATCHED")
			for _, off := range []int64{0, 65535, 65536, 150000, 250000} {
				if _, err := h.WriteAt(ctx, patch, off); err != nil {
					t.Fatal(err)
				}
				if end := off + int64(len(patch)); end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[off:], patch)
			}
			if err := h.Fsync(ctx); err != nil {
				t.Fatal(err)
			}
			h.Close(ctx)
			if err := v.Truncate(ctx, "/r", 70000); err != nil {
				t.Fatal(err)
			}
			model = model[:70000]
			if err := v.Truncate(ctx, "/r", 80000); err != nil {
				t.Fatal(err)
			}
			model = append(model, make([]byte, 10000)...)
			flush(t, v)
			v3 := tv.reopen(t)
			if got := readFile(t, v3, "/r"); !bytes.Equal(got, model) {
				t.Fatalf("content differs: %d vs %d bytes", len(got), len(model))
			}
			// Append.
			h, err = v3.Open(ctx, "/r", syscall.O_WRONLY|syscall.O_APPEND)
			if err != nil {
				t.Fatal(err)
			}
			h.WriteAt(ctx, []byte("tail"), 0)
			h.Close(ctx)
			if got := readFile(t, v3, "/r"); !bytes.Equal(got, append(model, "tail"...)) {
				t.Fatal("append differs")
			}
		})
	}
}

func TestDirectories(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			v := tv.Volume
			if _, err := v.Mkdir(ctx, "/d", 0o750); err != nil {
				t.Fatal(err)
			}
			_, err := v.Mkdir(ctx, "/d", 0o750)
			wantErrno(t, err, syscall.EEXIST)
			if _, err := v.Mkdir(ctx, "/d/e", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, v, "/d/e/f", []byte("x"))
			flush(t, v)
			wantErrno(t, v.Rmdir(ctx, "/d"), syscall.ENOTEMPTY)
			_, err = v.Mkdir(ctx, "/nope/x", 0o755)
			wantErrno(t, err, syscall.ENOENT)
			_, err = v.Mkdir(ctx, "/d/e/f/x", 0o755)
			wantErrno(t, err, syscall.ENOTDIR)
			v2 := tv.reopen(t)
			a, err := v2.Stat(ctx, "/d")
			if err != nil || !a.IsDir() || a.Mode&0o777 != 0o750 {
				t.Fatalf("stat /d = %+v %v", a, err)
			}
			ents, err := v2.ReadDir(ctx, "/d")
			if err != nil || names(ents) != "e" || !ents[0].Attr.IsDir() {
				t.Fatalf("readdir = %+v %v", ents, err)
			}
			wantErrno(t, v2.Unlink(ctx, "/d/e"), syscall.EISDIR)
			if err := v2.Unlink(ctx, "/d/e/f"); err != nil {
				t.Fatal(err)
			}
			if err := v2.Rmdir(ctx, "/d/e"); err != nil {
				t.Fatal(err)
			}
			if err := v2.Rmdir(ctx, "/d"); err != nil {
				t.Fatal(err)
			}
			_, err = v2.Stat(ctx, "/d")
			wantErrno(t, err, syscall.ENOENT)
			v3 := tv.reopen(t)
			ents, err = v3.ReadDir(ctx, "/")
			if err != nil || len(ents) != 0 {
				t.Fatalf("root after rmdir = %+v %v", ents, err)
			}
		})
	}
}

func TestSymlink(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			target := strings.Repeat("t/", 2048)
			if _, err := tv.Symlink(ctx, target, "/l"); err != nil {
				t.Fatal(err)
			}
			v2 := tv.reopen(t)
			got, err := v2.Readlink(ctx, "/l")
			if err != nil || got != target {
				t.Fatalf("readlink = %d bytes, %v", len(got), err)
			}
			a, _ := v2.Stat(ctx, "/l")
			if !a.IsSymlink() || a.Size != int64(len(target)) {
				t.Fatalf("stat = %+v", a)
			}
		})
	}
}

func TestNameLimits(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			n255 := "/" + strings.Repeat("n", 255)
			writeFile(t, tv.Volume, n255, []byte("long"))
			_, _, err := tv.Create(ctx, "/"+strings.Repeat("n", 256), 0o644, 0)
			wantErrno(t, err, syscall.ENAMETOOLONG)
			if _, err := tv.Mkdir(ctx, n255+"d", 0o755); err == nil {
				t.Fatal("mkdir of a 256-byte name worked")
			}
			d := "/" + strings.Repeat("d", 250)
			if _, err := tv.Mkdir(ctx, d, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, tv.Volume, d+"/"+strings.Repeat("x", 255), []byte("deep"))
			flush(t, tv.Volume)
			v2 := tv.reopen(t)
			ents, err := v2.ReadDir(ctx, "/")
			if err != nil || len(ents) != 2 {
				t.Fatalf("readdir = %v %v", names(ents), err)
			}
			if got := readFile(t, v2, d+"/"+strings.Repeat("x", 255)); string(got) != "deep" {
				t.Fatalf("read %q", got)
			}
			// A path whose key exceeds 1024 bytes.
			p := ""
			for range 8 {
				p += "/" + strings.Repeat("k", 130)
			}
			_, err = tv.Stat(ctx, p)
			wantErrno(t, err, syscall.ENAMETOOLONG)
		})
	}
}

func TestReservedAndReadOnly(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	_, err := tv.Mkdir(ctx, "/.coffer", 0o755)
	wantErrno(t, err, syscall.EPERM)
	ents, err := tv.ReadDir(ctx, "/")
	if err != nil || len(ents) != 0 {
		t.Fatalf("root lists %v, %v", names(ents), err)
	}
	opts := tv.options
	opts.ReadOnly = true
	opts.CacheDir = t.TempDir()
	ro, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(ctx)
	_, _, err = ro.Create(ctx, "/x", 0o644, 0)
	wantErrno(t, err, syscall.EROFS)
}

func TestOpenVolumeErrors(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	opts := tv.options
	opts.Roots = []*cipher.RootKey{testRoot(t, 9)}
	if _, err := OpenVolume(ctx, opts); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("wrong key: %v", err)
	}
	opts = tv.options
	opts.SSE = blobstore.SSEConfig{Mode: blobstore.SSES3}
	if _, err := OpenVolume(ctx, opts); err == nil || !strings.Contains(err.Error(), "--sse") {
		t.Fatalf("sse mismatch: %v", err)
	}
	kr, _ := cipher.NewKeyring()
	cfg, _ := cipher.NewConfig(EncryptionClient, "", "", kr, tv.root)
	if err := InitVolume(ctx, tv.store, cfg, kr); !errors.Is(err, blobstore.ErrPreconditionFailed) {
		t.Fatalf("second init: %v", err)
	}
}

func TestChmodChownUtimensKeepFileID(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			writeFile(t, tv.Volume, "/f", []byte("content"))
			flush(t, tv.Volume)
			n0, _ := tv.lookup(ctx, "/f")
			tv.store.reset()
			m, uid := uint32(0o600), uint32(42)
			mt := n0.attr.Mtime.Add(-3600e9).Truncate(1e9)
			a, err := tv.SetAttr(ctx, "/f", SetAttr{Mode: &m, UID: &uid, Mtime: &mt})
			if err != nil || a.Mode&0o777 != 0o600 || a.UID != 42 || !a.Mtime.Equal(mt) {
				t.Fatalf("setattr = %+v, %v", a, err)
			}
			if tv.store.count("put") != 0 || tv.store.count("copy") != 1 {
				t.Fatalf("setattr made %v", tv.store.counts)
			}
			v2 := tv.reopen(t)
			n1, err := v2.lookup(ctx, "/f")
			if err != nil || n1.attr.Mode&0o777 != 0o600 || n1.attr.UID != 42 || !n1.attr.Mtime.Equal(mt) {
				t.Fatalf("after remount: %+v %v", n1, err)
			}
			if mode == EncryptionClient && n1.okey.FileID() != n0.okey.FileID() {
				t.Fatal("chmod changed the file ID")
			}
			if got := readFile(t, v2, "/f"); string(got) != "content" {
				t.Fatalf("read %q", got)
			}
		})
	}
}

func TestExclusiveCreate(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/x", []byte("1"))
	_, _, err := tv.Create(ctx, "/x", 0o644, syscall.O_EXCL|syscall.O_WRONLY)
	wantErrno(t, err, syscall.EEXIST)
	flush(t, tv.Volume)
	_, _, err = tv.reopen(t).Create(ctx, "/x", 0o644, syscall.O_EXCL|syscall.O_WRONLY)
	wantErrno(t, err, syscall.EEXIST)
}

func TestCreateExistingWithoutTrunc(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/x", []byte("keep me"))
	flush(t, tv.Volume)
	v := tv.reopen(t)
	h, _, err := v.Create(ctx, "/x", 0o644, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	h.WriteAt(ctx, []byte("K"), 0)
	h.Close(ctx)
	if got := readFile(t, v, "/x"); string(got) != "Keep me" {
		t.Fatalf("got %q", got)
	}
}

func TestConcurrentHandlesShareState(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	w, _, err := tv.Create(ctx, "/s", 0o644, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tv.Open(ctx, "/s", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt(ctx, []byte("shared"), 0)
	buf := make([]byte, 10)
	n, _ := r.ReadAt(ctx, buf, 0)
	if string(buf[:n]) != "shared" {
		t.Fatalf("reader saw %q", buf[:n])
	}
	if err := w.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)
	// Unlinked while open: the handle still reads; nothing is uploaded.
	if err := tv.Unlink(ctx, "/s"); err != nil {
		t.Fatal(err)
	}
	n, _ = r.ReadAt(ctx, buf, 0)
	if string(buf[:n]) != "shared" {
		t.Fatalf("after unlink reader saw %q", buf[:n])
	}
	r.Close(ctx)
	flush(t, tv.Volume)
	if _, err := tv.reopen(t).Stat(ctx, "/s"); Errno(err) != syscall.ENOENT {
		t.Fatalf("unlinked file: %v", err)
	}
}

// TestExpiredListingRefreshedByNames: once a directory's listing
// expired, a lookup of a new name costs one names-only LIST, and hashed
// long names in it still count as present.
func TestExpiredListingRefreshedByNames(t *testing.T) {
	const ttl = 10 * time.Second
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MetadataTTL = ttl })
	now := &manualTime{t: time.Now()}
	tv.meta.now = now.Now
	ctx := context.Background()
	v := tv.Volume
	v.Mkdir(ctx, "/d", 0o755)
	long := "/d/" + strings.Repeat("l", 250)
	writeFile(t, v, long, []byte("x"))
	writeFile(t, v, "/d/short", []byte("y"))
	flush(t, v)
	now.advance(ttl + time.Millisecond)
	tv.store.reset()
	h, _, err := v.Create(ctx, "/d/new", 0o644, syscall.O_EXCL|syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	h.Close(ctx)
	if g, hd, l := tv.store.count("get"), tv.store.count("head"), tv.store.count("list"); g > 1 || hd > 1 || l != 1 {
		t.Fatalf("get %d head %d list %d", g, hd, l)
	}
	v.meta.invalidate(long)
	_, _, err = v.Create(ctx, long, 0o644, syscall.O_EXCL|syscall.O_WRONLY)
	wantErrno(t, err, syscall.EEXIST)
}

func TestChmodDirectory(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			if _, err := tv.Mkdir(ctx, "/d", 0o755); err != nil {
				t.Fatal(err)
			}
			m := uint32(0o700)
			if _, err := tv.SetAttr(ctx, "/d", SetAttr{Mode: &m}); err != nil {
				t.Fatal(err)
			}
			a, err := tv.reopen(t).Stat(ctx, "/d")
			if err != nil || a.Mode != syscall.S_IFDIR|0o700 {
				t.Fatalf("stat = %o, %v", a.Mode, err)
			}
		})
	}
}

// TestModeMismatch: the modes are compared before any root key is tried,
// so asking for the other encryption mode says so (with or without keys),
// never "wrong key".
func TestModeMismatch(t *testing.T) {
	const (
		clientAsNone = "volume uses --encryption client but --encryption none was given: mount it with --encryption client and the key it was initialised with"
		noneAsClient = "volume uses --encryption none but --encryption client was given: mount it with --encryption none if it was created so; if it was created with client-side encryption, its config was replaced by someone who can write the bucket (a config without client-side encryption is not authenticated): do not mount it"
	)
	tests := []struct {
		name   string
		volume string // the volume's mode
		asked  string
		roots  func(tv *testVol) []*cipher.RootKey
		want   string
	}{
		{"client volume, none asked, no keys", EncryptionClient, EncryptionNone, func(*testVol) []*cipher.RootKey { return nil }, clientAsNone},
		{"client volume, none asked, its key", EncryptionClient, EncryptionNone, func(tv *testVol) []*cipher.RootKey { return []*cipher.RootKey{tv.root} }, clientAsNone},
		{"client volume, none asked, another key", EncryptionClient, EncryptionNone, func(*testVol) []*cipher.RootKey { return []*cipher.RootKey{testRoot(t, 9)} }, clientAsNone},
		{"none volume, client asked, a key", EncryptionNone, EncryptionClient, func(*testVol) []*cipher.RootKey { return []*cipher.RootKey{testRoot(t, 9)} }, noneAsClient},
		{"none volume, default mode, no keys", EncryptionNone, "", func(*testVol) []*cipher.RootKey { return nil }, noneAsClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tv := newTestVolume(t, tc.volume)
			for _, withConfig := range []bool{false, true} {
				opts := tv.options
				opts.Encryption, opts.Roots, opts.Config = tc.asked, tc.roots(tv), nil
				if withConfig {
					cfg, err := ReadConfig(context.Background(), tv.store)
					if err != nil {
						t.Fatal(err)
					}
					opts.Config = cfg
				}
				v, err := OpenVolume(context.Background(), opts)
				if err == nil {
					v.Close(context.Background())
					t.Fatalf("config given %v: opened", withConfig)
				}
				if err.Error() != tc.want || !errors.Is(err, ErrModeMismatch) || errors.Is(err, cipher.ErrNoKeyOpens) {
					t.Fatalf("config given %v: err = %q, want %q (wrapping ErrModeMismatch)", withConfig, err, tc.want)
				}
			}
		})
	}
}

// TestModeCheckedAfterOpen: a config whose claimed mode was edited to
// match the flags still fails: Open refuses it, so the unauthenticated
// claim never decides anything.
func TestModeCheckedAfterOpen(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	rc, _, err := tv.store.Get(ctx, ConfigKey, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	var outer struct {
		Format int    `json:"format"`
		Body   string `json:"body"`
		MAC    string `json:"mac"`
	}
	if err := json.Unmarshal(raw, &outer); err != nil {
		t.Fatal(err)
	}
	body, err := base64.RawURLEncoding.DecodeString(outer.Body)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(body, []byte(`"client"`), []byte(`"none"`), 1)
	if bytes.Equal(edited, body) {
		t.Fatalf("config body does not name its mode as expected: %s", body)
	}
	outer.Body = base64.RawURLEncoding.EncodeToString(edited)
	forged, _ := json.Marshal(outer)
	cfg, err := cipher.ParseConfig(forged)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClaimedEncryption() != EncryptionNone {
		t.Fatalf("claimed %q after the edit", cfg.ClaimedEncryption())
	}
	opts := tv.options
	opts.Encryption, opts.Config = EncryptionNone, cfg
	v, err := OpenVolume(ctx, opts)
	if err == nil {
		v.Close(ctx)
		t.Fatal("a config edited to claim none mode opened")
	}
	if !errors.Is(err, cipher.ErrConfigTampered) {
		t.Fatalf("err = %v, want the config refused as tampered", err)
	}
}

// recordingBlocks records the versions dropped from the block cache.
type recordingBlocks struct {
	blockCache
	mu      sync.Mutex
	dropped map[[32]byte]bool
}

func (r *recordingBlocks) DropObject(object [32]byte) {
	r.mu.Lock()
	r.dropped[object] = true
	r.mu.Unlock()
	r.blockCache.DropObject(object)
}

// TestReplacedVersionsLeaveTheCache: a version replaced by an upload, a
// deleted one and one a rename replaced are dropped from the block
// cache, in both modes.
func TestReplacedVersionsLeaveTheCache(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			rb := &recordingBlocks{blockCache: tv.local.blocks, dropped: map[[32]byte]bool{}}
			tv.local.blocks = rb
			ctx := context.Background()
			version := func(p string) [32]byte {
				t.Helper()
				n, err := tv.lookup(ctx, p)
				if err != nil || n.key == "" {
					t.Fatalf("lookup %s: %+v, %v", p, n, err)
				}
				return tv.lay.blockObject(n.key, n.etag, n.okey)
			}
			wantDropped := func(what string, id [32]byte) {
				t.Helper()
				rb.mu.Lock()
				defer rb.mu.Unlock()
				if !rb.dropped[id] {
					t.Fatalf("the version %s is still cached", what)
				}
			}
			writeFile(t, tv.Volume, "/a", []byte("version 1"))
			flush(t, tv.Volume)
			readFile(t, tv.Volume, "/a")
			v1 := version("/a")
			writeFile(t, tv.Volume, "/a", []byte("version 2"))
			flush(t, tv.Volume)
			wantDropped("an upload replaced", v1)
			v2 := version("/a")
			if err := tv.Unlink(ctx, "/a"); err != nil {
				t.Fatal(err)
			}
			wantDropped("unlinked", v2)
			writeFile(t, tv.Volume, "/b", []byte("b"))
			writeFile(t, tv.Volume, "/c", []byte("c"))
			flush(t, tv.Volume)
			c := version("/c")
			if err := tv.Rename(ctx, "/b", "/c", 0); err != nil {
				t.Fatal(err)
			}
			wantDropped("a rename replaced", c)
		})
	}
}
