package cache

import (
	"log/slog"
	"testing"
)

const benchChunk = 64 << 10

func BenchmarkPlain(b *testing.B) {
	c := mustNew(b, Options{MemBytes: 256 << 20})
	data := chunk(benchChunk, 1)
	const n = 1024
	b.Run("Put", func(b *testing.B) {
		b.SetBytes(benchChunk)
		i := 0
		for b.Loop() {
			c.PutPlain(BlockID{Object: obj(i % n), Index: int64(i)}, data)
			i++
		}
	})
	for i := range n {
		c.PutPlain(BlockID{Object: obj(1), Index: int64(i)}, data)
	}
	c.wait()
	b.Run("Get", func(b *testing.B) {
		b.SetBytes(benchChunk)
		i := 0
		for b.Loop() {
			c.GetPlain(BlockID{Object: obj(1), Index: int64(i % n)})
			i++
		}
	})
}

func BenchmarkStored(b *testing.B) {
	for _, m := range modes {
		c := mustNew(b, Options{Dir: b.TempDir(), DiskBytes: 64 << 20, SealSecret: m.secret, Logger: slog.New(slog.DiscardHandler)})
		data := chunk(benchChunk, 2)
		const n = 256
		b.Run(m.name+"/Put", func(b *testing.B) {
			// The caller's cost: queueing (and sealing, in sealed mode).
			b.SetBytes(benchChunk)
			i := 0
			for b.Loop() {
				c.PutStored(BlockID{Object: obj(i % n), Index: int64(i % n)}, data)
				i++
				if i%64 == 0 {
					b.StopTimer()
					c.wait()
					b.StartTimer()
				}
			}
		})
		b.Run(m.name+"/PutWritten", func(b *testing.B) {
			// Queueing plus the background write into the object's file.
			b.SetBytes(benchChunk)
			i := 0
			for b.Loop() {
				c.PutStored(BlockID{Object: obj(1000), Index: int64(i % 512)}, data)
				c.wait()
				i++
			}
		})
		for i := range n {
			c.PutStored(BlockID{Object: obj(i), Index: int64(i)}, data)
			c.wait()
		}
		b.Run(m.name+"/Get", func(b *testing.B) {
			b.SetBytes(benchChunk)
			i := 0
			for b.Loop() {
				if _, ok := c.GetStored(BlockID{Object: obj(i % n), Index: int64(i % n)}); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	}
}
