package integration

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
)

const (
	chunk = 64 << 10 // cipher chunk size
	part  = 5 << 20  // --part-size the tests mount with
)

// TestReadWriteSizes writes files whose sizes straddle chunk and part
// boundaries and reads them back byte-exact: from the live mount, then
// after a remount with an empty cache (so from the store).
func TestReadWriteSizes(t *testing.T) {
	sizes := []int{0, 1, 100, chunk - 1, chunk, chunk + 1, 3*chunk + 17,
		part - 1, part, part + 1, 2*part + chunk + 5}
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		for i, n := range sizes {
			writeFile(t, v.path(fmt.Sprintf("f%d", n)), pseudoRandom(uint64(i), n))
		}
		// One 200 MiB file per backend, streamed so the test holds one copy.
		const big = 200 << 20
		bigData := pseudoRandom(1000, big)
		writeFile(t, v.path("big"), bigData)
		for i, n := range sizes {
			checkFile(t, v.path(fmt.Sprintf("f%d", n)), pseudoRandom(uint64(i), n))
		}
		v.remount(true)
		for i, n := range sizes {
			name := v.path(fmt.Sprintf("f%d", n))
			checkFile(t, name, pseudoRandom(uint64(i), n))
			fi, err := os.Stat(name)
			if err != nil || fi.Size() != int64(n) {
				t.Fatalf("stat %s: %v, size %d, want %d", name, err, fi.Size(), n)
			}
		}
		checkFile(t, v.path("big"), bigData)
		// Ranged reads at chunk and part edges come from the right place.
		f, err := os.Open(v.path("big"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, off := range []int64{0, chunk - 3, chunk, part - 5, part, 3*part + 1, big - 10} {
			buf := make([]byte, 20)
			n, err := f.ReadAt(buf, off)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("ReadAt %d: %v", off, err)
			}
			if err := sameBytes(buf[:n], bigData[off:min(off+20, big)]); err != nil {
				t.Fatalf("ReadAt %d: %v", off, err)
			}
		}
	})
}

// TestModify covers overwrite, O_TRUNC, append, truncate up and down and
// sparse files, checked live and after a remount.
func TestModify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		want := map[string][]byte{}

		// Overwrite in place (no O_TRUNC) and replace (O_TRUNC).
		base := pseudoRandom(1, 3*chunk)
		writeFile(t, v.path("inplace"), base)
		patch := pseudoRandom(2, 1000)
		f := openFile(t, v.path("inplace"), os.O_WRONLY)
		writeAt(t, f, patch, chunk-500)
		closeFile(t, f)
		copy(base[chunk-500:], patch)
		want["inplace"] = base
		writeFile(t, v.path("replaced"), pseudoRandom(3, 2*chunk))
		writeFile(t, v.path("replaced"), []byte("short"))
		want["replaced"] = []byte("short")

		// Append, in several opens.
		var appended []byte
		for i := range 4 {
			part := pseudoRandom(uint64(10+i), chunk/2+i)
			f := openFile(t, v.path("appended"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
			if _, err := f.Write(part); err != nil {
				t.Fatal(err)
			}
			closeFile(t, f)
			appended = append(appended, part...)
		}
		want["appended"] = appended

		// Truncate down across a chunk boundary, then up (zeros).
		tr := pseudoRandom(4, 3*chunk+100)
		writeFile(t, v.path("truncated"), tr)
		if err := os.Truncate(v.path("truncated"), chunk+7); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(v.path("truncated"), 2*chunk); err != nil {
			t.Fatal(err)
		}
		want["truncated"] = append(tr[:chunk+7:chunk+7], make([]byte, chunk-7)...)
		// Truncate of a stored (uploaded) file.
		writeFile(t, v.path("stored"), pseudoRandom(5, 2*chunk))
		v.remount(false)
		if err := os.Truncate(v.path("stored"), 10); err != nil {
			t.Fatal(err)
		}
		want["stored"] = pseudoRandom(5, 2*chunk)[:10]

		// Sparse: a write far beyond the end leaves a hole of zeros.
		f = openFile(t, v.path("sparse"), os.O_WRONLY|os.O_CREATE)
		writeAt(t, f, []byte("head"), 0)
		writeAt(t, f, []byte("tail"), 10<<20)
		closeFile(t, f)
		sparse := make([]byte, 10<<20+4)
		copy(sparse, "head")
		copy(sparse[10<<20:], "tail")
		want["sparse"] = sparse

		check := func() {
			for name, data := range want {
				checkFile(t, v.path(name), data)
			}
		}
		check()
		v.remount(true)
		check()
	})
}

// TestRandomWrites applies random writes, truncates and reopenings to one
// file and checks it against an in-memory model.
func TestRandomWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		rng := rand.New(rand.NewPCG(42, uint64(len(b.name))))
		model := pseudoRandom(7, 700_000)
		name := v.path("model")
		writeFile(t, name, model)
		f := openFile(t, name, os.O_RDWR)
		for i := range 300 {
			switch op := rng.IntN(20); {
			case op == 0: // truncate
				size := rng.IntN(1_200_000)
				if err := f.Truncate(int64(size)); err != nil {
					t.Fatal(err)
				}
				model = resize(model, size)
			case op == 1: // close and reopen
				closeFile(t, f)
				f = openFile(t, name, os.O_RDWR)
			case op == 2: // read back a random range
				off := rng.IntN(len(model) + 1)
				n := rng.IntN(200_000)
				buf := make([]byte, n)
				got, err := f.ReadAt(buf, int64(off))
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("op %d: ReadAt: %v", i, err)
				}
				if err := sameBytes(buf[:got], model[off:min(off+n, len(model))]); err != nil {
					t.Fatalf("op %d: ReadAt %d+%d: %v", i, off, n, err)
				}
			default: // write at a random offset, sometimes past the end
				off := rng.IntN(len(model) + 100_000)
				data := pseudoRandom(uint64(100+i), 1+rng.IntN(200_000))
				writeAt(t, f, data, int64(off))
				if end := off + len(data); end > len(model) {
					model = resize(model, end)
				}
				copy(model[off:], data)
			}
		}
		closeFile(t, f)
		checkFile(t, name, model)
		v.remount(true)
		checkFile(t, name, model)
	})
}

func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

func openFile(t *testing.T, path string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return f
}

func writeAt(t *testing.T, f *os.File, p []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatalf("write %s at %d: %v", f.Name(), off, err)
	}
}

func closeFile(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", f.Name(), err)
	}
}

// errnoOf extracts the errno of a failed os call.
func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}
