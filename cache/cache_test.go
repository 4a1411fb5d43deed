package cache

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func obj(n int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint("object ", n))) }

func chunk(n int, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + seed)
	}
	return b
}

func mustNew(t testing.TB, o Options) *Blocks {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// modes are the two disk modes every disk test runs in.
var modes = []struct {
	name   string
	secret []byte
}{{"client", nil}, {"sealed", secret}}

func TestPlainRoundTrip(t *testing.T) {
	b := mustNew(t, Options{MemBytes: 1 << 20})
	id := BlockID{Object: obj(1), Index: 3}
	src := chunk(1000, 1)
	b.PutPlain(id, src)
	b.PutPlain(BlockID{Object: obj(1), Index: 4}, []byte{})
	b.wait()
	src[0] ^= 0xff // the cache kept its own copy
	got, ok := b.GetPlain(id)
	if !ok || !bytes.Equal(got, chunk(1000, 1)) {
		t.Fatalf("GetPlain = %v, %v", ok, len(got))
	}
	if got, ok := b.GetPlain(BlockID{Object: obj(1), Index: 4}); !ok || len(got) != 0 {
		t.Fatalf("empty chunk: %v %v", got, ok)
	}
	if _, ok := b.GetPlain(BlockID{Object: obj(2), Index: 3}); ok {
		t.Fatal("hit for another object")
	}
	if _, ok := b.GetStored(id); ok {
		t.Fatal("plaintext reached the stored layer")
	}
	if s := b.Stats(); s.MemHits != 2 || s.MemMisses != 1 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestMemBound(t *testing.T) {
	const limit = 1 << 20
	b := mustNew(t, Options{MemBytes: limit})
	for i := range 200 {
		b.PutPlain(BlockID{Object: obj(i), Index: 0}, chunk(64<<10, i))
		b.wait()
	}
	held := 0
	for i := range 200 {
		if p, ok := b.GetPlain(BlockID{Object: obj(i), Index: 0}); ok {
			held += len(p)
			if !bytes.Equal(p, chunk(64<<10, i)) {
				t.Fatalf("chunk %d differs", i)
			}
		}
	}
	if held > limit || held == 0 {
		t.Fatalf("memory holds %d bytes, bound %d", held, limit)
	}
}

func TestStoredRoundTripAndReopen(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Dir: dir, DiskBytes: 10 << 20, SealSecret: m.secret}
			b := mustNew(t, o)
			want := map[BlockID][]byte{}
			for i := range 5 {
				for idx := range int64(3) {
					id := BlockID{Object: obj(i), Index: idx}
					want[id] = chunk(int(1000*idx+7), i)
					b.PutStored(id, want[id])
				}
			}
			check := func(b *Blocks) {
				for id, w := range want {
					got, ok := b.GetStored(id)
					if !ok || !bytes.Equal(got, w) {
						t.Fatalf("GetStored(%d) = %v, %d bytes", id.Index, ok, len(got))
					}
				}
				if _, ok := b.GetStored(BlockID{Object: obj(99)}); ok {
					t.Fatal("hit for an unknown chunk")
				}
			}
			check(b)
			b.Close()
			b2 := mustNew(t, o)
			if s := b2.Stats(); s.DiskEntries != int64(len(want)) {
				t.Fatalf("rebuilt index has %d entries, want %d", s.DiskEntries, len(want))
			}
			check(b2)
		})
	}
}

// Sealed mode never stores plaintext; client mode stores exactly what it
// was given (chunks already sealed under their object's key).
func TestOnDiskBytes(t *testing.T) {
	marker := []byte("COFFER-CACHE-PLAINTEXT-MARKER")
	data := bytes.Repeat(marker, 2000)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			b := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, MemBytes: 1 << 20, SealSecret: m.secret})
			id := BlockID{Object: obj(1), Index: 2}
			b.PutStored(id, data)
			b.PutPlain(id, data)
			b.wait()
			files := 0
			filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				files++
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(path, string(marker[:10])) {
					t.Fatalf("name %s holds plaintext", path)
				}
				has := bytes.Contains(raw, marker[:12])
				if m.secret != nil && has {
					t.Fatalf("sealed entry %s holds plaintext", path)
				}
				if m.secret == nil && !bytes.HasSuffix(raw, data) {
					t.Fatalf("client entry %s is not the bytes given", path)
				}
				return nil
			})
			if files != 1 {
				t.Fatalf("%d files on disk, want 1", files)
			}
		})
	}
}

func TestLRUEviction(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			const n, limit = 4096, 10 * 4300
			b := mustNew(t, Options{Dir: dir, DiskBytes: limit, SealSecret: m.secret})
			id := func(i int) BlockID { return BlockID{Object: obj(i), Index: int64(i)} }
			for i := range 30 {
				b.PutStored(id(i), chunk(n, i))
				b.wait()
				if i >= 5 {
					b.GetStored(id(0)) // keep chunk 0 recently used
				}
				if s := b.Stats(); s.DiskBytes > limit {
					t.Fatalf("after %d puts: %d bytes on disk, bound %d", i+1, s.DiskBytes, limit)
				}
			}
			if _, ok := b.GetStored(id(0)); !ok {
				t.Fatal("recently used chunk 0 was evicted")
			}
			if _, ok := b.GetStored(id(1)); ok {
				t.Fatal("least recently used chunk 1 survived")
			}
			if _, ok := b.GetStored(id(29)); !ok {
				t.Fatal("newest chunk was evicted")
			}
			var onDisk int64
			filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					info, _ := e.Info()
					onDisk += info.Size()
				}
				return err
			})
			if s := b.Stats(); onDisk != s.DiskBytes || onDisk > limit {
				t.Fatalf("files hold %d bytes, index says %d, bound %d", onDisk, s.DiskBytes, limit)
			}
			// A chunk larger than the whole bound is not cached.
			b.PutStored(BlockID{Object: obj(100)}, make([]byte, limit))
			b.wait()
			if _, ok := b.GetStored(BlockID{Object: obj(100)}); ok {
				t.Fatal("oversized chunk cached")
			}
			// Reopening with a smaller bound evicts down to it.
			b.Close()
			b2 := mustNew(t, Options{Dir: dir, DiskBytes: 3 * 4300, SealSecret: m.secret})
			if s := b2.Stats(); s.DiskBytes > 3*4300 || s.DiskEntries != 3 {
				t.Fatalf("after reopen with a smaller bound: %+v", s)
			}
		})
	}
}

func TestCorruptEntryDropped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secret  []byte
		edit    func(b []byte)
		dropped bool
	}{
		{"sealed payload", secret, func(b []byte) { b[len(b)-100] ^= 1 }, true},
		{"sealed tag", secret, func(b []byte) { b[len(b)-1] ^= 1 }, true},
		{"sealed salt", secret, func(b []byte) { b[entryHeader] ^= 1 }, true},
		{"sealed header index", secret, func(b []byte) { b[47] ^= 1 }, true},
		{"sealed mode byte", secret, func(b []byte) { b[7] = modeAsGiven }, true},
		{"client header object", nil, func(b []byte) { b[9] ^= 1 }, true},
		{"client magic", nil, func(b []byte) { b[0] = 'x' }, true},
		// Client-mode payloads are the caller's sealed chunks: it
		// authenticates them with the object's key.
		{"client payload", nil, func(b []byte) { b[len(b)-1] ^= 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, Options{Dir: t.TempDir(), DiskBytes: 1 << 20, SealSecret: tc.secret})
			id := BlockID{Object: obj(7), Index: 5}
			b.PutStored(id, chunk(5000, 3))
			b.wait()
			path := b.disk.entryPath(id)
			raw, _ := os.ReadFile(path)
			tc.edit(raw)
			os.WriteFile(path, raw, 0o600)
			got, ok := b.GetStored(id)
			if !tc.dropped {
				if !ok || bytes.Equal(got, chunk(5000, 3)) {
					t.Fatal("client payload not returned as stored")
				}
				return
			}
			if ok {
				t.Fatal("corrupt entry returned")
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("corrupt entry file kept: %v", err)
			}
			if s := b.Stats(); s.DiskDropped != 1 || s.DiskEntries != 0 || s.DiskBytes != 0 {
				t.Fatalf("Stats = %+v", s)
			}
		})
	}
}

// A sealed entry moved to another chunk's name does not open there.
func TestSealedEntryBoundToID(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: secret})
	a, c := BlockID{Object: obj(1), Index: 1}, BlockID{Object: obj(2), Index: 1}
	b.PutStored(a, chunk(3000, 1))
	b.PutStored(c, chunk(3000, 2))
	b.wait()
	raw, _ := os.ReadFile(b.disk.entryPath(a))
	copy(raw[8:40], c.Object[:]) // make the header claim c
	os.WriteFile(b.disk.entryPath(c), raw, 0o600)
	if got, ok := b.GetStored(c); ok {
		t.Fatalf("moved entry opened as another chunk (%d bytes)", len(got))
	}
	// Another secret (another volume) opens nothing.
	b.Close()
	b2 := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: []byte("another secret, another volume..")})
	if _, ok := b2.GetStored(a); ok {
		t.Fatal("entry opened under another secret")
	}
	// Nor does a client-mode cache return a sealed entry as given.
	b2.Close()
	b.PutStored(a, chunk(3000, 1)) // closed: ignored
	b3 := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20})
	if _, ok := b3.GetStored(a); ok {
		t.Fatal("client mode returned a sealed-mode entry")
	}
}

func TestScanDropsJunk(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: secret})
	id := BlockID{Object: obj(1), Index: 1}
	b.PutStored(id, chunk(100, 1))
	b.Close()
	h := filepath.Base(b.disk.entryPath(id))
	junk := []string{
		filepath.Join(dir, tmpDir, "put-123"),                          // interrupted put
		filepath.Join(dir, h[:2], "not-an-entry"),                      // foreign name
		filepath.Join(dir, "ff", h),                                    // wrong fan-out directory
		filepath.Join(dir, h[:2], strings.Replace(h, "-", "-", 1)+"0"), // bad index length
		filepath.Join(dir, h[:2], h[:64]+"-0000000000000002"),          // shorter than a header
	}
	for _, j := range junk {
		os.MkdirAll(filepath.Dir(j), 0o700)
		os.WriteFile(j, []byte("junk"), 0o600)
	}
	b2 := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: secret})
	for _, j := range junk {
		if _, err := os.Stat(j); !os.IsNotExist(err) {
			t.Errorf("junk %s kept", j)
		}
	}
	if got, ok := b2.GetStored(id); !ok || !bytes.Equal(got, chunk(100, 1)) {
		t.Fatal("valid entry lost in the scan")
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode %v", st.Mode().Perm())
	}
}

func TestDropObject(t *testing.T) {
	b := mustNew(t, Options{Dir: t.TempDir(), DiskBytes: 1 << 20, MemBytes: 1 << 20, SealSecret: secret})
	for i := range 2 {
		for idx := range int64(4) {
			id := BlockID{Object: obj(i), Index: idx}
			b.PutPlain(id, chunk(100, i))
			b.PutStored(id, chunk(100, i))
		}
	}
	b.wait()
	b.DropObject(obj(0))
	b.wait()
	for idx := range int64(4) {
		gone, kept := BlockID{Object: obj(0), Index: idx}, BlockID{Object: obj(1), Index: idx}
		if _, ok := b.GetPlain(gone); ok {
			t.Fatal("dropped chunk still in memory")
		}
		if _, ok := b.GetStored(gone); ok {
			t.Fatal("dropped chunk still on disk")
		}
		if _, ok := b.GetPlain(kept); !ok {
			t.Fatal("other object's chunk lost from memory")
		}
		if _, ok := b.GetStored(kept); !ok {
			t.Fatal("other object's chunk lost from disk")
		}
	}
}

// PutStored copies its input, queued chunks are readable at once, and a
// DropObject while a chunk is queued keeps it off the disk.
func TestQueuedPuts(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			b := mustNew(t, Options{Dir: t.TempDir(), DiskBytes: 1 << 20, SealSecret: m.secret})
			id := BlockID{Object: obj(1), Index: 9}
			src := chunk(2000, 1)
			b.PutStored(id, src)
			src[0] ^= 0xff
			if got, ok := b.GetStored(id); !ok || !bytes.Equal(got, chunk(2000, 1)) {
				t.Fatal("queued chunk not readable as given")
			}
			b.PutStored(id, chunk(2000, 2)) // supersedes
			b.wait()
			if got, ok := b.GetStored(id); !ok || !bytes.Equal(got, chunk(2000, 2)) {
				t.Fatal("newest put does not win")
			}
			other := BlockID{Object: obj(2), Index: 1}
			b.PutStored(other, chunk(100, 3))
			b.DropObject(other.Object)
			b.wait()
			if _, ok := b.GetStored(other); ok {
				t.Fatal("chunk dropped while queued reached the disk")
			}
			if _, err := os.Stat(b.disk.entryPath(other)); !os.IsNotExist(err) {
				t.Fatalf("dropped chunk's file exists: %v", err)
			}
			if s := b.Stats(); s.DiskEntries != 1 {
				t.Fatalf("Stats = %+v", s)
			}
		})
	}
}

// Disk failures are logged, never returned: the cache just misses.
func TestDiskErrorsOnlyLogged(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer
	b := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: secret,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	// Make every put fail: the temporary directory becomes a file.
	os.RemoveAll(filepath.Join(dir, tmpDir))
	os.WriteFile(filepath.Join(dir, tmpDir), nil, 0o600)
	id := BlockID{Object: obj(1)}
	b.PutStored(id, chunk(100, 1))
	b.wait()
	if _, ok := b.GetStored(id); ok {
		t.Fatal("failed put is readable")
	}
	if !strings.Contains(logged.String(), "cache: writing entry") {
		t.Fatalf("failure not logged: %q", logged.String())
	}
	if strings.Contains(logged.String(), string(secret)) {
		t.Fatal("log holds the secret")
	}
}

func TestLayersOff(t *testing.T) {
	b := mustNew(t, Options{Dir: t.TempDir()}) // no bounds: both layers off
	id := BlockID{Object: obj(1)}
	b.PutPlain(id, []byte("x"))
	b.PutStored(id, []byte("x"))
	b.DropObject(id.Object)
	if _, ok := b.GetPlain(id); ok {
		t.Fatal("memory layer on")
	}
	if _, ok := b.GetStored(id); ok {
		t.Fatal("disk layer on")
	}
	if _, err := New(Options{SealSecret: []byte{}}); err == nil {
		t.Fatal("empty seal secret accepted")
	}
}

func TestConcurrent(t *testing.T) {
	b := mustNew(t, Options{Dir: t.TempDir(), DiskBytes: 200 << 10, MemBytes: 200 << 10, SealSecret: secret})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := BlockID{Object: obj(i % 7), Index: int64(i % 5)}
				want := chunk(2000, int(id.Index)+int(id.Object[0]))
				switch (i + w) % 4 {
				case 0:
					b.PutStored(id, want)
					b.PutPlain(id, want)
				case 1:
					if got, ok := b.GetStored(id); ok && !bytes.Equal(got, want) {
						t.Error("wrong stored bytes")
					}
				case 2:
					if got, ok := b.GetPlain(id); ok && !bytes.Equal(got, want) {
						t.Error("wrong plain bytes")
					}
				case 3:
					if i%20 == 3 {
						b.DropObject(id.Object)
					}
				}
			}
		})
	}
	wg.Wait()
	if s := b.Stats(); s.DiskBytes > 200<<10 {
		t.Fatalf("disk bound exceeded: %+v", s)
	}
}

func FuzzParseEntryName(f *testing.F) {
	f.Add(strings.Repeat("ab", 32) + "-0000000000000001")
	f.Add("x-y")
	f.Fuzz(func(t *testing.T, name string) {
		id, ok := parseEntryName(name)
		if !ok {
			return
		}
		d := &disk{dir: "/d"}
		if filepath.Base(d.entryPath(id)) != name {
			t.Fatalf("%q parses but does not round trip", name)
		}
	})
}

// Arbitrary bytes never decode as a sealed entry; in client mode only a
// matching header passes, and the payload comes back unchanged. The seed
// is sealed under another secret: a mutation of a genuine entry could
// turn back into it.
func FuzzDecodeEntry(f *testing.F) {
	id := BlockID{Object: obj(1), Index: 2}
	sealed := &disk{secret: secret}
	client := &disk{}
	foreign, _ := (&disk{secret: []byte("another secret, another volume..")}).encode(id, []byte("chunk"))
	f.Add(foreign)
	f.Add(append(client.header(id), "chunk"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := sealed.decode(id, b); err == nil {
			t.Fatal("forged sealed entry accepted")
		}
		if p, err := client.decode(id, b); err == nil && !bytes.Equal(append(client.header(id), p...), b) {
			t.Fatal("client entry altered")
		}
	})
}
