package staging

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/cipher"
)

const bs = 4096 // small blocks make block-boundary cases cheap

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed + byte(i>>12)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	d := newTestDir(t, bs)
	for _, size := range []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 17, 40 * bs} {
		for _, wsize := range []int{1 << 10, bs, 3*bs + 5, 1 << 20} {
			want := pattern(size, byte(wsize))
			f := mustCreate(t, d, []byte("m"))
			for off := 0; off < size; off += wsize {
				end := min(off+wsize, size)
				if n, err := f.WriteAt(want[off:end], int64(off)); err != nil || n != end-off {
					t.Fatalf("size %d wsize %d: WriteAt = %d, %v", size, wsize, n, err)
				}
			}
			if f.Size() != int64(size) {
				t.Fatalf("Size = %d, want %d", f.Size(), size)
			}
			for _, rsize := range []int{7, bs, 100000} {
				if got := readAll(t, f, rsize); !bytes.Equal(got, want) {
					t.Fatalf("size %d wsize %d rsize %d: read back differs", size, wsize, rsize)
				}
			}
			got, err := io.ReadAll(f.NewReader())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("size %d wsize %d: NewReader differs (%v)", size, wsize, err)
			}
			if err := f.Remove(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestReaderShapes(t *testing.T) {
	d := newTestDir(t, bs)
	want := pattern(50*bs+123, 9)
	f := mustCreate(t, d, nil)
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 1000, bs, 5 * bs, 64 * bs} {
		var got bytes.Buffer
		r := f.NewReader()
		buf := make([]byte, n)
		for {
			k, err := r.Read(buf)
			got.Write(buf[:k])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("reads of %d: differ", n)
		}
	}
	var got bytes.Buffer
	if _, err := io.Copy(&got, f.NewReader()); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("io.Copy: differs (%v)", err)
	}
}

func TestHoles(t *testing.T) {
	d := newTestDir(t, bs)
	f := mustCreate(t, d, nil)
	data := []byte("tail")
	off := int64(5*bs + 100)
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, off+4)
	copy(want[off:], data)
	if got := readAll(t, f, 3000); !bytes.Equal(got, want) {
		t.Fatal("hole does not read as zeros")
	}
	if err := f.Truncate(9 * bs); err != nil {
		t.Fatal(err)
	}
	want = append(want, make([]byte, 9*bs-len(want))...)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := d.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := readAll(t, g, bs); !bytes.Equal(got, want) {
		t.Fatal("holes after reopen differ")
	}
}

func TestTruncate(t *testing.T) {
	d := newTestDir(t, bs)
	for _, tc := range []struct {
		name  string
		sizes []int64
	}{
		{"down within block", []int64{100}},
		{"down to boundary", []int64{bs}},
		{"down to zero", []int64{0}},
		{"up within block", []int64{3*bs + 200}},
		{"up far", []int64{20*bs + 1}},
		{"down then up", []int64{bs + 10, 4 * bs}},
		{"up then down", []int64{10 * bs, 2*bs + 1}},
		{"same", []int64{3*bs + 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := pattern(3*bs+7, 1)
			f := mustCreate(t, d, nil)
			defer f.Remove()
			f.WriteAt(model, 0)
			for _, s := range tc.sizes {
				if err := f.Truncate(s); err != nil {
					t.Fatal(err)
				}
				if s < int64(len(model)) {
					model = model[:s]
				} else {
					model = append(model, make([]byte, s-int64(len(model)))...)
				}
				if got := readAll(t, f, 1000); !bytes.Equal(got, model) {
					t.Fatalf("after truncate to %d: content differs", s)
				}
			}
			// Extend by writing after the truncation: the gap is zeros.
			tail := []byte("after")
			at := int64(len(model)) + 10
			f.WriteAt(tail, at)
			model = append(model, make([]byte, 10)...)
			model = append(model, tail...)
			if got := readAll(t, f, bs); !bytes.Equal(got, model) {
				t.Fatal("write after truncate differs")
			}
		})
	}
}

// TestModelTable replays fixed write/truncate sequences against a byte
// slice model.
func TestModelTable(t *testing.T) {
	type op struct {
		trunc bool
		off   int64
		n     int // bytes to write, or the new size for truncate
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"overwrite middle", []op{{off: 0, n: 3 * bs}, {off: bs - 5, n: 10}}},
		{"backwards", []op{{off: 2 * bs, n: 100}, {off: bs, n: 100}, {off: 0, n: 100}}},
		{"append unaligned", []op{{off: 0, n: 100}, {off: 100, n: bs}, {off: 100 + bs, n: 2 * bs}}},
		{"extend partial last", []op{{off: 0, n: 10}, {off: 3 * bs, n: 10}}},
		{"whole block over buffered", []op{{off: 0, n: 10}, {off: 0, n: bs}, {off: 5, n: 2}}},
		{"truncate into buffered", []op{{off: 0, n: 2*bs + 50}, {trunc: true, n: bs + 3}, {off: bs + 1, n: 4}}},
		{"full last block write", []op{{off: 0, n: bs + 10}, {off: bs, n: 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDir(t, bs)
			f := mustCreate(t, d, nil)
			defer f.Remove()
			var model []byte
			for k, o := range tc.ops {
				if o.trunc {
					f.Truncate(int64(o.n))
					model = resizeModel(model, int64(o.n))
					continue
				}
				p := pattern(o.n, byte(k+1))
				if _, err := f.WriteAt(p, o.off); err != nil {
					t.Fatal(err)
				}
				if end := o.off + int64(o.n); end > int64(len(model)) {
					model = resizeModel(model, end)
				}
				copy(model[o.off:], p)
			}
			if got := readAll(t, f, 777); !bytes.Equal(got, model) {
				t.Fatal("content differs from model")
			}
		})
	}
}

func resizeModel(m []byte, n int64) []byte {
	if n <= int64(len(m)) {
		return m[:n]
	}
	return append(m, make([]byte, n-int64(len(m)))...)
}

// TestModelRandom runs random writes, truncates, reads, syncs and reopens
// against an in-memory model with a fixed seed.
func TestModelRandom(t *testing.T) {
	for _, blockSize := range []int64{bs, 16 << 10, DefaultBlockSize} {
		d := newTestDir(t, blockSize)
		rng := rand.New(rand.NewPCG(1, uint64(blockSize)))
		f := mustCreate(t, d, nil)
		var model []byte
		maxSize := 12 * blockSize
		for step := range 1500 {
			switch r := rng.IntN(100); {
			case r < 60:
				off := rng.Int64N(maxSize)
				n := rng.IntN(int(blockSize)*2) + 1
				if rng.IntN(4) == 0 {
					n = rng.IntN(16) + 1
				}
				p := pattern(n, byte(step))
				if _, err := f.WriteAt(p, off); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if end := off + int64(n); end > int64(len(model)) {
					model = resizeModel(model, end)
				}
				copy(model[off:], p)
			case r < 70:
				s := rng.Int64N(maxSize)
				if err := f.Truncate(s); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				model = resizeModel(model, s)
			case r < 92:
				off := rng.Int64N(maxSize)
				p := make([]byte, rng.IntN(int(blockSize)*3)+1)
				n, err := f.ReadAt(p, off)
				want := 0
				if off < int64(len(model)) {
					want = min(len(p), len(model)-int(off))
				}
				if n != want || (err == nil) != (n == len(p)) || (err != nil && err != io.EOF) {
					t.Fatalf("step %d: ReadAt(%d, %d) = %d, %v; want %d", step, len(p), off, n, err, want)
				}
				if want > 0 && !bytes.Equal(p[:n], model[off:off+int64(n)]) {
					t.Fatalf("step %d: ReadAt(%d, %d) differs from model", step, len(p), off)
				}
			case r < 95:
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			default:
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				var err error
				if f, err = d.Open(f.Name()); err != nil {
					t.Fatalf("step %d: reopen: %v", step, err)
				}
			}
			if f.Size() != int64(len(model)) {
				t.Fatalf("step %d: Size %d, model %d", step, f.Size(), len(model))
			}
		}
		if got := readAll(t, f, 5000); !bytes.Equal(got, model) {
			t.Fatal("final content differs from model")
		}
		f.Close()
	}
}

func TestReopen(t *testing.T) {
	d := newTestDir(t, bs)
	f := mustCreate(t, d, []byte("meta one"))
	want := pattern(2*bs+300, 3)
	f.WriteAt(want, 0)
	if err := f.SetMeta([]byte("meta two")); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("xy"), int64(len(want)))
	want = append(want, "xy"...)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("z"), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	names, err := d.List()
	if err != nil || !slices.Equal(names, []string{f.Name()}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	g, err := d.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if g.Size() != int64(len(want)) || string(g.Meta()) != "meta two" {
		t.Fatalf("reopened: size %d meta %q", g.Size(), g.Meta())
	}
	if got := readAll(t, g, 1000); !bytes.Equal(got, want) {
		t.Fatal("reopened content differs")
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if names, _ := d.List(); len(names) != 0 {
		t.Fatalf("after Remove, List = %v", names)
	}
}

// TestReopenEmpty: a file never written (its data area never reached)
// reopens as the empty file it is, meta included.
func TestReopenEmpty(t *testing.T) {
	d := newTestDir(t, bs)
	f := mustCreate(t, d, []byte("touched"))
	if _, err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	g, err := d.Open(f.Name())
	if err != nil {
		t.Fatalf("reopening an empty file: %v", err)
	}
	if g.Size() != 0 || string(g.Meta()) != "touched" || g.Version() != f.Version() {
		t.Fatalf("reopened: size %d meta %q version %+v, want %+v", g.Size(), g.Meta(), g.Version(), f.Version())
	}
	if _, err := g.WriteAt([]byte("later"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g, 100); string(got) != "later" {
		t.Fatalf("after a write: %q", got)
	}
}

// Removed files are emptied and reused by Create; an empty file is no
// staging file, and a new Dir adopts the empty files an old one left.
func TestSpareReuse(t *testing.T) {
	d := newTestDir(t, bs)
	f := mustCreate(t, d, []byte("old meta"))
	d.refills.Wait() // the spares made ahead of demand, kept before this one
	f.WriteAt(pattern(3*bs, 1), 0)
	name := f.Name()
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err == nil {
		t.Fatal("second Remove succeeded")
	}
	if st, err := os.Stat(filepath.Join(d.path, name)); err != nil || st.Size() != 0 {
		t.Fatalf("removed file not kept empty: %v", err)
	}
	if names, _ := d.List(); len(names) != 0 {
		t.Fatalf("List shows a spare: %v", names)
	}
	if _, err := d.Open(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a spare: %v", err)
	}
	g := mustCreate(t, d, []byte("new meta"))
	if g.Name() != name || g.Size() != 0 || string(g.Meta()) != "new meta" {
		t.Fatalf("reused file: name %s size %d meta %q", g.Name(), g.Size(), g.Meta())
	}
	g.WriteAt([]byte("fresh"), 0)
	g.Close()
	h, err := d.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, h, 100); string(got) != "fresh" {
		t.Fatalf("reused file reads %q", got)
	}
	h.Remove()
	// A new Dir (after a run that never called Close) adopts the spares
	// (this one and those made ahead of demand); Close deletes them.
	empty := map[string]bool{}
	ents, _ := os.ReadDir(d.path)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Size() == 0 {
			empty[e.Name()] = true
		}
	}
	if !empty[name] || len(empty) != spareHigh+1 {
		t.Fatalf("%d empty files (spare %s among them: %v), want %d", len(empty), name, empty[name], spareHigh+1)
	}
	d2, err := OpenDir(d.path, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	d2.blockSize, d2.newSealer = d.blockSize, d.newSealer
	k := mustCreate(t, d2, nil)
	if !empty[k.Name()] {
		t.Fatalf("new Dir made %s instead of adopting a spare", k.Name())
	}
	name = k.Name()
	k.Close()
	if err := k.Remove(); err != nil { // closed first: still emptied and kept
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(d.path, name)); err != nil || st.Size() != 0 {
		t.Fatalf("closed-then-removed file not kept empty: %v", err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(d.path); len(ents) != 0 {
		t.Fatalf("Close left %d files", len(ents))
	}
}

func TestMetaLimits(t *testing.T) {
	d := newTestDir(t, 0)
	if _, err := d.Create(make([]byte, MaxMetaSize+1)); err == nil {
		t.Fatal("oversized meta accepted")
	}
	big := pattern(MaxMetaSize, 5)
	f := mustCreate(t, d, big)
	f.Close()
	g, err := d.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	if !bytes.Equal(g.Meta(), big) {
		t.Fatal("max-size meta does not round trip")
	}
	if err := g.SetMeta(nil); err != nil || len(g.Meta()) != 0 {
		t.Fatalf("SetMeta(nil): %v", err)
	}
}

func TestOpenRejects(t *testing.T) {
	d := newTestDir(t, bs)
	for _, name := range []string{"", "../x.stg", "0123.stg", "0123456789abcdef0123456789ABCDEF.stg", "0123456789abcdef0123456789abcdef"} {
		if _, err := d.Open(name); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	// Another secret cannot open the file.
	f := mustCreate(t, d, []byte("m"))
	f.Close()
	other, err := OpenDir(d.path, []byte("another secret, another volume.."))
	if err != nil {
		t.Fatal(err)
	}
	other.blockSize, other.newSealer = d.blockSize, d.newSealer
	if _, err := other.Open(f.Name()); !errors.Is(err, cipher.ErrAuth) {
		t.Fatalf("Open with another secret: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	d := newTestDir(t, bs)
	f := mustCreate(t, d, nil)
	defer f.Remove()
	for path, want := range map[string]os.FileMode{d.path: 0o700, filepath.Join(d.path, f.Name()): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
}

// corrupt opens the file at path and applies fn to its bytes.
func corrupt(t *testing.T, path string, fn func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTamper(t *testing.T) {
	g := defaultGeometry(bs)
	size := int64(3*bs + 100)
	for _, tc := range []struct {
		name     string
		edit     func(b []byte) []byte
		openFail bool // else: reading fails
	}{
		{"block 0 first byte", func(b []byte) []byte { b[g.blockOff(0)] ^= 1; return b }, false},
		{"block 1 ciphertext", func(b []byte) []byte { b[g.blockOff(1)+500] ^= 0x80; return b }, false},
		{"last block tag", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, false},
		{"swap blocks 0 and 1", func(b []byte) []byte {
			s := g.slotSize()
			b0 := bytes.Clone(b[g.blockOff(0) : g.blockOff(0)+s])
			copy(b[g.blockOff(0):], b[g.blockOff(1):g.blockOff(1)+s])
			copy(b[g.blockOff(1):], b0)
			return b
		}, false},
		{"duplicate block", func(b []byte) []byte {
			copy(b[g.blockOff(2):], b[g.blockOff(0):g.blockOff(0)+g.slotSize()])
			return b
		}, false},
		{"truncated by a block", func(b []byte) []byte { return b[:g.blockOff(3)] }, true},
		{"truncated by a byte", func(b []byte) []byte { return b[:len(b)-1] }, true},
		{"header block size", func(b []byte) []byte { b[10] ^= 0x20; return b }, true},
		{"header salt", func(b []byte) []byte { b[saltOff] ^= 1; return b }, true},
		{"header magic", func(b []byte) []byte { b[0] = 'X'; return b }, true},
		{"both meta slots", func(b []byte) []byte {
			b[g.slotOff(0)+20] ^= 1
			b[g.slotOff(1)+20] ^= 1
			return b
		}, true},
		{"short header", func(b []byte) []byte { return b[:10] }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDir(t, bs)
			f := mustCreate(t, d, []byte("meta"))
			f.WriteAt(pattern(int(size), 4), 0)
			f.SetMeta([]byte("meta2")) // both slots hold a record
			f.Close()
			corrupt(t, filepath.Join(d.path, f.Name()), tc.edit)
			h, err := d.Open(f.Name())
			if tc.openFail {
				if !errors.Is(err, cipher.ErrAuth) {
					t.Fatalf("Open: %v, want ErrAuth", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer h.Close()
			p := make([]byte, size)
			n, err := h.ReadAt(p, 0)
			if !errors.Is(err, cipher.ErrAuth) {
				t.Fatalf("ReadAt: %v, want ErrAuth", err)
			}
			if !bytes.Equal(p[:n], pattern(int(size), 4)[:n]) {
				t.Fatal("bytes before the failing block are wrong")
			}
			if _, err := io.ReadAll(h.NewReader()); !errors.Is(err, cipher.ErrAuth) {
				t.Fatalf("NewReader: %v, want ErrAuth", err)
			}
			// A partial write into a damaged block must read-modify-write
			// it, so it fails too rather than resealing garbage.
			failed := 0
			for off := int64(1); off < size; off += bs {
				if _, err := h.WriteAt([]byte{1}, off); errors.Is(err, cipher.ErrAuth) {
					failed++
				}
			}
			if failed == 0 {
				t.Fatal("no partial write noticed the damaged block")
			}
		})
	}
}

// A torn or damaged newest meta record falls back to the previous one.
func TestMetaSlotFallback(t *testing.T) {
	d := newTestDir(t, bs)
	g := defaultGeometry(bs)
	f := mustCreate(t, d, []byte("first"))              // record 1 in slot 1
	if err := f.SetMeta([]byte("second")); err != nil { // record 2 in slot 0
		t.Fatal(err)
	}
	f.Close() // not dirty: no new record
	corrupt(t, filepath.Join(d.path, f.Name()), func(b []byte) []byte { b[g.slotOff(0)+30] ^= 1; return b })
	h, err := d.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if string(h.Meta()) != "first" {
		t.Fatalf("Meta = %q, want the older record", h.Meta())
	}
}

// The plaintext of data and meta never appears on disk.
func TestNoPlaintextOnDisk(t *testing.T) {
	for _, blockSize := range []int64{bs, DefaultBlockSize} {
		d := newTestDir(t, blockSize)
		marker := []byte("COFFER-PLAINTEXT-MARKER-7f3a")
		data := bytes.Repeat(marker, 20000)
		f := mustCreate(t, d, append([]byte("/secret/path/"), marker...))
		f.WriteAt(data, 0)
		f.WriteAt(marker, 12345) // partial block write
		f.Truncate(int64(len(data)) + 999)
		f.SetMeta(marker)
		f.Sync()
		g := mustCreate(t, d, marker)
		g.WriteAt(marker, 0)
		g.Close()
		defer f.Close()
		// A scan of nothing proves nothing: the staged bytes must be
		// found on disk (sealed), in at least the open file.
		files, onDisk := 0, 0
		err := filepath.WalkDir(d.path, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			files++
			onDisk += len(b)
			if bytes.Contains(b, marker[:12]) || bytes.Contains([]byte(path), []byte("secret")) {
				t.Fatalf("%s holds plaintext", path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scanning %s: %v", d.path, err)
		}
		if files == 0 || onDisk < len(data) {
			t.Fatalf("scanned %d files, %d bytes, under %s: the %d staged bytes are not there", files, onDisk, d.path, len(data))
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	d := newTestDir(t, bs)
	f := mustCreate(t, d, nil)
	defer f.Remove()
	const writers, per = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			// Each writer owns a disjoint region of 10 blocks.
			for k := range per {
				off := int64(w*10*bs + (k*97)%(10*bs-64))
				f.WriteAt(bytes.Repeat([]byte{byte(w + 1)}, 64), off)
			}
		})
		wg.Go(func() {
			p := make([]byte, 3*bs)
			for range per {
				if _, err := f.ReadAt(p, int64(w*bs)); err != nil && err != io.EOF {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := readAll(t, f, bs)
	for i, c := range got {
		if c != 0 && int(c) != i/(10*bs)+1 {
			t.Fatalf("byte %d = %d: writers mixed", i, c)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(encodeHeader(defaultGeometry(DefaultBlockSize), make([]byte, 32)))
	f.Add([]byte("CFRSTG\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, salt, err := parseHeader(b)
		if err != nil {
			return
		}
		if len(salt) != 32 || g.physicalSize(g.maxSize()) < g.dataOff {
			t.Fatalf("accepted bad geometry %+v", g)
		}
		h := encodeHeader(g, salt)
		if !bytes.Equal(h, b[:headerSize]) {
			t.Fatal("header does not re-encode to itself")
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	g := defaultGeometry(DefaultBlockSize)
	f.Add(record{seq: 3, size: 12345, meta: []byte("meta")}.encode(g))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b, g)
		if err != nil {
			return
		}
		if r.size < 0 || !bytes.Equal(r.encode(g), b) {
			t.Fatalf("accepted record does not re-encode: %+v", r)
		}
	})
}

// TestSparesMadeAheadOfDemand: a Create that leaves fewer than spareLow
// spares starts a refill up to spareHigh empty files (0600, never
// listed), which the next Creates take instead of making their own, and
// Close waits for a refill under way and deletes what it made.
func TestSparesMadeAheadOfDemand(t *testing.T) {
	d := newTestDir(t, bs)
	first := mustCreate(t, d, []byte("m"))
	d.refills.Wait()
	spares := map[string]bool{}
	for _, s := range d.spares {
		spares[s.name] = true
		st, err := os.Stat(filepath.Join(d.path, s.name))
		if err != nil || st.Size() != 0 || st.Mode().Perm() != 0o600 {
			t.Fatalf("spare %s: %v, %v", s.name, st, err)
		}
	}
	if len(spares) != spareHigh {
		t.Fatalf("%d spares after the first Create, want %d", len(spares), spareHigh)
	}
	if names, err := d.List(); err != nil || len(names) != 1 || names[0] != first.Name() {
		t.Fatalf("List: %v, %v; want only %s", names, err, first.Name())
	}
	// The last of these leaves spareLow-1 spares: a refill.
	for i := range spareHigh - spareLow + 1 {
		if f := mustCreate(t, d, nil); !spares[f.Name()] {
			t.Fatalf("create %d made %s instead of taking a spare", i, f.Name())
		}
	}
	d.refills.Wait()
	if len(d.spares) != spareHigh {
		t.Fatalf("%d spares after the refill, want %d", len(d.spares), spareHigh)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(d.path)
	if want := 2 + spareHigh - spareLow; len(ents) != want {
		t.Fatalf("Close left %d files, want the %d created", len(ents), want)
	}

	// Closed while the refill may still run: nothing it made is left.
	d2 := newTestDir(t, bs)
	mustCreate(t, d2, nil)
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(d2.path); len(ents) != 1 {
		t.Fatalf("Close during a refill left %d files, want 1", len(ents))
	}
}

// TestEvict: Evict drops the blocks of a range from the page cache
// (mincore(2) on a mapping of the file sees them gone) and keeps the
// data: a read afterwards returns the same bytes, from disk.
func TestEvict(t *testing.T) {
	d := newTestDir(t, 0)
	var sfs unix.Statfs_t
	if err := unix.Statfs(d.path, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type == unix.TMPFS_MAGIC {
		t.Skip("tmpfs keeps its pages: nothing to evict")
	}
	f := mustCreate(t, d, []byte("m"))
	data := make([]byte, 64*d.blockSize+1000)
	rand.NewChaCha8([32]byte{1}).Read(data)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	resident := func(from, to int64) (in, all int) {
		t.Helper()
		in, all, err := ResidentPages(f.path, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return in, all
	}
	g := f.g
	lo, hi := g.blockOff(8), g.blockOff(40) // the blocks evicted below
	if in, all := resident(lo, hi); in != all || all == 0 {
		t.Fatalf("before Evict: %d of %d pages resident, want all", in, all)
	}
	// A range that starts and ends inside blocks: blocks 8 to 39 go.
	if err := f.Evict(7*d.blockSize+5, 40*d.blockSize+7); err != nil {
		t.Fatal(err)
	}
	// fadvise(2) is best effort: a page still in another CPU's LRU batch
	// stays (5 of 511 here at times).
	if in, all := resident(lo, hi); in > all/10 {
		t.Errorf("after Evict: %d of %d pages of blocks 8-39 resident, want (almost) none", in, all)
	}
	if in, all := resident(g.blockOff(41), g.blockOff(63)); in != all {
		t.Errorf("after Evict: %d of %d pages past the range resident, want all", in, all)
	}
	// The next call drops the stragglers of the one before.
	if err := f.Evict(40*d.blockSize+7, 48*d.blockSize); err != nil {
		t.Fatal(err)
	}
	if in, all := resident(lo, g.blockOff(44)); in != 0 {
		t.Errorf("after a second Evict: %d of %d pages of blocks 8-43 resident, want none", in, all)
	}
	if in, all := resident(g.blockOff(49), g.blockOff(63)); in != all {
		t.Errorf("after a second Evict: %d of %d pages past its range resident, want all", in, all)
	}
	if got := readAll(t, f, 1<<20); !bytes.Equal(got, data) {
		t.Fatal("data read after Evict differs from what was written")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Evict(0, int64(len(data))); err != nil {
		t.Errorf("Evict of a closed file: %v, want nil", err)
	}
}
