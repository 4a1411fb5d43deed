package staging

import (
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
)

// benchBlockSizes are the block sizes compared when choosing
// DefaultBlockSize.
var benchBlockSizes = []int64{16 << 10, 64 << 10}

// BenchmarkWriteSequential writes 64 MiB per op in writes of the given size.
func BenchmarkWriteSequential(b *testing.B) {
	const total = 64 << 20
	for _, blockSize := range benchBlockSizes {
		for _, wsize := range []int{4 << 10, 128 << 10, 1 << 20} {
			b.Run("block="+kib(blockSize)+"/write="+kib(int64(wsize)), func(b *testing.B) {
				d := newTestDir(b, blockSize)
				buf := pattern(wsize, 1)
				b.SetBytes(total)
				for b.Loop() {
					f := mustCreate(b, d, nil)
					for off := int64(0); off < total; off += int64(wsize) {
						if _, err := f.WriteAt(buf, off); err != nil {
							b.Fatal(err)
						}
					}
					if err := f.Close(); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					f.Remove()
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkWriteRandom4K overwrites random 4 KiB pieces of a 64 MiB file.
func BenchmarkWriteRandom4K(b *testing.B) {
	const size = 64 << 20
	for _, blockSize := range benchBlockSizes {
		b.Run("block="+kib(blockSize), func(b *testing.B) {
			d := newTestDir(b, blockSize)
			f := mustCreate(b, d, nil)
			defer f.Remove()
			big := pattern(1<<20, 2)
			for off := int64(0); off < size; off += int64(len(big)) {
				f.WriteAt(big, off)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			buf := big[:4096]
			b.SetBytes(4096)
			for b.Loop() {
				if _, err := f.WriteAt(buf, rng.Int64N(size/4096)*4096); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadSequential reads a 64 MiB file with ReadAt and with the
// upload reader.
func BenchmarkReadSequential(b *testing.B) {
	const total = 64 << 20
	for _, blockSize := range benchBlockSizes {
		d := newTestDir(b, blockSize)
		f := mustCreate(b, d, nil)
		big := pattern(1<<20, 3)
		for off := int64(0); off < total; off += int64(len(big)) {
			f.WriteAt(big, off)
		}
		f.Sync()
		for _, rsize := range []int{128 << 10, 1 << 20} {
			b.Run("block="+kib(blockSize)+"/ReadAt="+kib(int64(rsize)), func(b *testing.B) {
				buf := make([]byte, rsize)
				b.SetBytes(total)
				for b.Loop() {
					for off := int64(0); off < total; off += int64(rsize) {
						if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
							b.Fatal(err)
						}
					}
				}
			})
		}
		b.Run("block="+kib(blockSize)+"/NewReader", func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				if _, err := io.Copy(io.Discard, f.NewReader()); err != nil {
					b.Fatal(err)
				}
			}
		})
		f.Remove()
	}
}

func kib(n int64) string { return strconv.FormatInt(n>>10, 10) + "K" }

// BenchmarkWrite1GiB is the target case: 1 GiB in 128 KiB writes (the
// default block size), Close included.
func BenchmarkWrite1GiB(b *testing.B) {
	const total = 1 << 30
	d := newTestDir(b, 0)
	buf := pattern(128<<10, 1)
	b.SetBytes(total)
	for b.Loop() {
		f := mustCreate(b, d, nil)
		for off := int64(0); off < total; off += int64(len(buf)) {
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Remove()
		b.StartTimer()
	}
}

// BenchmarkSmallFile is one small file's life: Create, a 4 KiB write,
// upload read, Remove (the life fs gives it); with removed files reused
// and without.
func BenchmarkSmallFile(b *testing.B) {
	for _, spares := range []int{maxSpares, 0} {
		b.Run("spares="+strconv.Itoa(spares), func(b *testing.B) {
			d := newTestDir(b, 0)
			d.spareCap = spares
			buf := pattern(4096, 1)
			for b.Loop() {
				f := mustCreate(b, d, []byte("/some/path"))
				f.WriteAt(buf, 0)
				if _, err := io.Copy(io.Discard, f.NewReader()); err != nil {
					b.Fatal(err)
				}
				if err := f.Remove(); err != nil {
					b.Fatal(err)
				}
			}
			d.Close()
		})
	}
}
