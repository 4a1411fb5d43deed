package staging

import (
	"testing"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newTestDir opens a Dir with the given block size (0 = default).
func newTestDir(t testing.TB, blockSize int64) *Dir {
	t.Helper()
	d, err := OpenDir(t.TempDir()+"/staging", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if blockSize != 0 {
		d.blockSize = blockSize
	}
	// Before the TempDir's removal: the refill may still be making spares.
	t.Cleanup(func() { d.Close() })
	return d
}

func mustCreate(t testing.TB, d *Dir, meta []byte) *File {
	t.Helper()
	f, err := d.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readAll reads the whole file through ReadAt in pieces of n bytes.
func readAll(t testing.TB, f *File, n int) []byte {
	t.Helper()
	out := make([]byte, 0, f.Size())
	buf := make([]byte, n)
	for off := int64(0); ; {
		k, err := f.ReadAt(buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err != nil {
			if off != f.Size() {
				t.Fatalf("ReadAt stopped at %d of %d: %v", off, f.Size(), err)
			}
			return out
		}
	}
}
