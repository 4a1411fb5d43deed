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
	"syscall"
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
			for idx := range int64(3) {
				id := BlockID{Object: obj(1), Index: idx}
				b.PutStored(id, data)
				b.PutPlain(id, data)
			}
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
				if m.secret == nil && bytes.Count(raw, data) != 3 {
					t.Fatalf("client file %s does not hold the bytes given", path)
				}
				return nil
			})
			if files != 1 {
				t.Fatalf("%d files on disk, want 1 per object", files)
			}
		})
	}
}

// allocated sums the disk blocks the files under dir use.
func allocated(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			info, _ := e.Info()
			n += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return err
	})
	return n
}

func TestLRUEviction(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			const n = 4096
			d := &disk{secret: m.secret}
			per := fileHeader + charge(d.entrySize(n)) // one chunk per object
			limit := 10 * per
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
			if s := b.Stats(); s.DiskEntries != 10 {
				t.Fatalf("Stats = %+v, want 10 entries", s)
			}
			b.wait()
			if a := allocated(t, dir); a > limit {
				t.Fatalf("files use %d bytes, bound %d", a, limit)
			}
			// A chunk larger than the whole bound is not cached.
			b.PutStored(BlockID{Object: obj(100)}, make([]byte, limit))
			b.wait()
			if _, ok := b.GetStored(BlockID{Object: obj(100)}); ok {
				t.Fatal("oversized chunk cached")
			}
			// Reopening with a smaller bound evicts down to it.
			b.Close()
			b2 := mustNew(t, Options{Dir: dir, DiskBytes: 3 * per, SealSecret: m.secret})
			if s := b2.Stats(); s.DiskBytes > 3*per || s.DiskEntries != 3 {
				t.Fatalf("after reopen with a smaller bound: %+v", s)
			}
			b2.wait()
			if a := allocated(t, dir); a > 3*per {
				t.Fatalf("after reopen: files use %d bytes, bound %d", a, 3*per)
			}
		})
	}
}

// Shrink, asked for room on a full disk, evicts least recently used
// chunks until the bytes asked for are free on disk, keeps the rest, and
// caps the disk layer at what is left; once nothing is left it says so.
func TestShrinkGivesSpaceBack(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			const n = 4096
			d := &disk{secret: m.secret}
			per := fileHeader + charge(d.entrySize(n)) // one chunk per object
			b := mustNew(t, Options{Dir: dir, DiskBytes: 100 * per, SealSecret: m.secret})
			id := func(i int) BlockID { return BlockID{Object: obj(i), Index: int64(i)} }
			for i := range 10 {
				b.PutStored(id(i), chunk(n, i))
				b.wait()
			}
			b.GetStored(id(0)) // chunk 0 is now the most recently used
			before := allocated(t, dir)
			if !b.Shrink(3 * per) {
				t.Fatal("Shrink freed nothing from a cache of 10 chunks")
			}
			// Shrink returns once the files are changed: no wait here.
			if a := allocated(t, dir); before-a < 3*per {
				t.Fatalf("Shrink(%d): files went from %d to %d bytes", 3*per, before, a)
			}
			for i, want := range map[int]bool{0: true, 1: false, 2: false, 3: false, 4: true, 9: true} {
				if _, ok := b.GetStored(id(i)); ok != want {
					t.Fatalf("after Shrink: chunk %d cached = %v, want %v", i, ok, want)
				}
			}
			// The cache does not grow back into the room it gave.
			for i := 10; i < 20; i++ {
				b.PutStored(id(i), chunk(n, i))
				b.wait()
			}
			if s := b.Stats(); s.DiskBytes > 7*per {
				t.Fatalf("after Shrink the cache grew to %d bytes, past the %d it kept", s.DiskBytes, 7*per)
			}
			if _, ok := b.GetStored(id(19)); !ok {
				t.Fatal("after Shrink the cache stopped caching new chunks")
			}
			for i := 0; b.Shrink(per); i++ {
				if i == 20 {
					t.Fatalf("Shrink still reports space freed after %d calls: %+v", i, b.Stats())
				}
			}
			b.wait()
			if s := b.Stats(); s.DiskEntries != 0 {
				t.Fatalf("Shrink reported nothing left to free with %+v", s)
			}
		})
	}
}

// Within one object, chunks are evicted one by one: their slots are
// punched out and the file shrinks on disk.
func TestEvictChunksOfOneObject(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			d := &disk{secret: m.secret}
			limit := fileHeader + 4*charge(d.entrySize(64<<10))
			b := mustNew(t, Options{Dir: dir, DiskBytes: limit, SealSecret: m.secret})
			for i := range int64(10) {
				b.PutStored(BlockID{Object: obj(1), Index: i}, chunk(64<<10, int(i)))
				b.wait()
			}
			for i := range int64(10) {
				got, ok := b.GetStored(BlockID{Object: obj(1), Index: i})
				if ok != (i >= 6) || ok && !bytes.Equal(got, chunk(64<<10, int(i))) {
					t.Fatalf("chunk %d: cached %v", i, ok)
				}
			}
			if a := allocated(t, dir); a > limit {
				t.Fatalf("file uses %d bytes, bound %d", a, limit)
			}
			b.Close()
			b2 := mustNew(t, Options{Dir: dir, DiskBytes: limit, SealSecret: m.secret})
			if s := b2.Stats(); s.DiskEntries != 4 {
				t.Fatalf("rescan found %d chunks, want 4", s.DiskEntries)
			}
			for i := int64(6); i < 10; i++ {
				if got, ok := b2.GetStored(BlockID{Object: obj(1), Index: i}); !ok || !bytes.Equal(got, chunk(64<<10, int(i))) {
					t.Fatalf("chunk %d lost in the rescan", i)
				}
			}
		})
	}
}

func TestCorruptEntryDropped(t *testing.T) {
	id := BlockID{Object: obj(7), Index: 5}
	payload := slotOff(id.Index) + slotHeader
	for _, tc := range []struct {
		name    string
		secret  []byte
		edit    func(b []byte)
		dropped bool
	}{
		{"sealed payload", secret, func(b []byte) { b[payload+100] ^= 1 }, true},
		{"sealed tag", secret, func(b []byte) { b[len(b)-1] ^= 1 }, true},
		{"sealed slot length", secret, func(b []byte) { b[payload-5] ^= 1 }, true},
		{"sealed salt", secret, func(b []byte) { b[50] ^= 1 }, true},
		{"sealed header object", secret, func(b []byte) { b[9] ^= 1 }, true},
		{"sealed mode byte", secret, func(b []byte) { b[7] = modeAsGiven }, true},
		{"client header object", nil, func(b []byte) { b[9] ^= 1 }, true},
		{"client magic", nil, func(b []byte) { b[0] = 'x' }, true},
		{"client slot size", nil, func(b []byte) { b[42] ^= 1 }, true},
		// Client-mode payloads are the caller's sealed chunks: it
		// authenticates them with the object's key.
		{"client payload", nil, func(b []byte) { b[len(b)-1] ^= 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: tc.secret}
			b := mustNew(t, o)
			b.PutStored(id, chunk(5000, 3))
			path := b.disk.path(id.Object)
			b.Close()
			raw, _ := os.ReadFile(path)
			tc.edit(raw)
			os.WriteFile(path, raw, 0o600)
			b = mustNew(t, o)
			got, ok := b.GetStored(id)
			b.wait()
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
				t.Fatalf("corrupt file kept: %v", err)
			}
			if s := b.Stats(); s.DiskEntries != 0 || s.DiskBytes != 0 {
				t.Fatalf("Stats = %+v", s)
			}
		})
	}
}

// A damaged chunk found by a read is dropped on the spot; the object's
// other chunks stay.
func TestDamagedChunkDroppedOnRead(t *testing.T) {
	b := mustNew(t, Options{Dir: t.TempDir(), DiskBytes: 1 << 20, SealSecret: secret})
	a, c := BlockID{Object: obj(1), Index: 0}, BlockID{Object: obj(1), Index: 1}
	b.PutStored(a, chunk(3000, 1))
	b.PutStored(c, chunk(3000, 2))
	b.wait()
	f, err := os.OpenFile(b.disk.path(a.Object), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, slotOff(1)+slotHeader+10)
	f.Close()
	if _, ok := b.GetStored(c); ok {
		t.Fatal("damaged chunk returned")
	}
	b.wait()
	if got, ok := b.GetStored(a); !ok || !bytes.Equal(got, chunk(3000, 1)) {
		t.Fatal("intact chunk lost")
	}
	if s := b.Stats(); s.DiskDropped != 1 || s.DiskEntries != 1 {
		t.Fatalf("Stats = %+v", s)
	}
}

// A sealed object file moved to another object's name does not open
// there, nor under another secret or in client mode.
func TestSealedEntryBoundToID(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: secret}
	b := mustNew(t, o)
	a, c := BlockID{Object: obj(1), Index: 1}, BlockID{Object: obj(2), Index: 1}
	b.PutStored(a, chunk(3000, 1))
	b.PutStored(c, chunk(3000, 2))
	b.Close()
	raw, _ := os.ReadFile(b.disk.path(a.Object))
	copy(raw[8:40], c.Object[:]) // make the header claim c
	os.WriteFile(b.disk.path(c.Object), raw, 0o600)
	b = mustNew(t, o)
	if got, ok := b.GetStored(c); ok {
		t.Fatalf("moved file opened as another object (%d bytes)", len(got))
	}
	if _, ok := b.GetStored(a); !ok {
		t.Fatal("original lost")
	}
	b.Close()
	b2 := mustNew(t, Options{Dir: dir, DiskBytes: 1 << 20, SealSecret: []byte("another secret, another volume..")})
	if _, ok := b2.GetStored(a); ok {
		t.Fatal("entry opened under another secret")
	}
	b2.Close()
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
	path := b.disk.path(id.Object)
	h := filepath.Base(path)
	junk := []string{
		filepath.Join(dir, "stray"),               // a file among the fan-out directories
		filepath.Join(dir, h[:2], "not-an-entry"), // foreign name
		filepath.Join(dir, "ff", h),               // wrong fan-out directory
		filepath.Join(dir, h[:2], strings.ToUpper(h)),
		filepath.Join(dir, h[:2], h[:63]+"0"), // shorter than a header
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
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v", st.Mode().Perm())
	}
}

// Queued chunks are readable at once, the newest put wins, and a
// DropObject while a chunk is queued keeps it off the disk.
func TestQueuedPuts(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			b := mustNew(t, Options{Dir: t.TempDir(), DiskBytes: 1 << 20, SealSecret: m.secret})
			id := BlockID{Object: obj(1), Index: 9}
			b.PutStored(id, chunk(2000, 1))
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
			if _, err := os.Stat(b.disk.path(other.Object)); !os.IsNotExist(err) {
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
	id := BlockID{Object: obj(1)}
	// Make the put fail: a file stands where its directory must go.
	os.WriteFile(filepath.Dir(b.disk.path(id.Object)), nil, 0o600)
	b.PutStored(id, chunk(100, 1))
	b.wait()
	if _, ok := b.GetStored(id); ok {
		t.Fatal("failed put is readable")
	}
	if !strings.Contains(logged.String(), "cache: writing chunk") {
		t.Fatalf("failure not logged: %q", logged.String())
	}
	if strings.Contains(logged.String(), string(secret)) {
		t.Fatal("log holds the secret")
	}
	// The next put of another object works.
	other := BlockID{Object: obj(3)}
	b.PutStored(other, chunk(100, 2))
	b.wait()
	if _, ok := b.GetStored(other); !ok {
		t.Fatal("cache stuck after a failure")
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
	b.wait()
	s := b.Stats()
	if s.DiskBytes > 200<<10 {
		t.Fatalf("disk bound exceeded: %+v", s)
	}
	if a := allocated(t, b.disk.dir); a > 200<<10 {
		t.Fatalf("files use %d bytes, bound %d", a, 200<<10)
	}
	// Every indexed chunk reads back right.
	hits := 0
	for i := range 7 {
		for idx := range int64(5) {
			id := BlockID{Object: obj(i), Index: idx}
			if got, ok := b.GetStored(id); ok {
				hits++
				if !bytes.Equal(got, chunk(2000, int(idx)+int(id.Object[0]))) {
					t.Fatal("wrong stored bytes at the end")
				}
			}
		}
	}
	if int64(hits) != s.DiskEntries {
		t.Fatalf("%d chunks read back, index holds %d", hits, s.DiskEntries)
	}
}

// Arbitrary headers either fail or re-encode to themselves, and arbitrary
// payloads never open in sealed mode. The seed payload is sealed under
// another secret: a mutation of a genuine one could turn back into it.
func FuzzParseHeader(f *testing.F) {
	object := obj(1)
	sealed := &disk{secret: secret}
	foreign := &disk{secret: []byte("another secret, another volume..")}
	o, _ := foreign.newObjFile(object)
	f.Add(foreign.header(o), o.sealer.Seal(nil, []byte("chunk"), 3))
	f.Add((&disk{}).header(o), []byte{})
	f.Fuzz(func(t *testing.T, h, payload []byte) {
		for _, d := range []*disk{sealed, {}} {
			o, err := d.parseHeader(object, h)
			if err != nil {
				continue
			}
			if !bytes.Equal(d.header(o), h[:headerUsed]) {
				t.Fatal("accepted header does not re-encode to itself")
			}
			if _, err := d.open(o, BlockID{Object: object, Index: 3}, payload); d.secret != nil && err == nil {
				t.Fatal("forged sealed payload accepted")
			}
		}
	})
}
