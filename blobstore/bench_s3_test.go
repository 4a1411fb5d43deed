//go:build s3

package blobstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cofferfs/coffer/blobstore"
)

// Throughput against versitygw on loopback: `make bench` runs these.
// Each operation moves benchBytes; compare the single-stream put/get
// with the parallel multipart upload and ranged download of the same
// bytes. The figures chose DefaultPartSize and DefaultUploadConcurrency.

const benchBytes = 256 << 20

func benchStore(b *testing.B, signed bool) *blobstore.S3 {
	b.Helper()
	srv := server(b, "versitygw")
	s, _ := srv.newStore(b, "", func(o *blobstore.Options) { o.Concurrency = 16 })
	blobstore.SetUnsignedPayload(s, !signed)
	return s
}

func benchData(b *testing.B) []byte {
	b.Helper()
	data := make([]byte, benchBytes)
	if _, err := io.ReadFull(newPattern(9, benchBytes), data); err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkS3Upload(b *testing.B) {
	data := benchData(b)
	ctx := context.Background()
	b.Run("single-put", func(b *testing.B) {
		s := benchStore(b, false)
		b.SetBytes(benchBytes)
		for b.Loop() {
			if _, err := s.Put(ctx, "obj", bytes.NewReader(data), benchBytes, blobstore.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("multipart-default-part%dMiB-conc%d", blobstore.DefaultPartSize>>20, blobstore.DefaultUploadConcurrency), func(b *testing.B) {
		s := benchStore(b, false)
		b.SetBytes(benchBytes)
		for b.Loop() {
			if _, err := blobstore.Upload(ctx, s, "obj", bytes.NewReader(data), benchBytes, blobstore.UploadOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// uploadConfig is one way of uploading benchBytes.
type uploadConfig struct {
	name   string
	part   int64 // 0: a single PutObject
	conc   int
	signed bool
}

// BenchmarkS3UploadGrid compares part sizes and concurrencies in
// interleaved rounds, so load from other processes on a shared machine
// falls on every configuration alike; it reports each one's median.
func BenchmarkS3UploadGrid(b *testing.B) {
	const rounds = 5
	data := benchData(b)
	ctx := context.Background()
	configs := []uploadConfig{
		{name: "single-put"},
		{name: "single-put-signed", signed: true},
		{name: "part8MiB-conc4", part: 8 << 20, conc: 4},
		{name: "part8MiB-conc8", part: 8 << 20, conc: 8},
		{name: "part16MiB-conc4", part: 16 << 20, conc: 4},
		{name: "part16MiB-conc8", part: 16 << 20, conc: 8},
		{name: "part32MiB-conc4", part: 32 << 20, conc: 4},
		{name: "part16MiB-conc8-signed", part: 16 << 20, conc: 8, signed: true},
	}
	unsigned, signed := benchStore(b, false), benchStore(b, true)
	for b.Loop() {
		times := make([][]time.Duration, len(configs))
		for range rounds {
			for i, c := range configs {
				s := unsigned
				if c.signed {
					s = signed
				}
				start := time.Now()
				var err error
				if c.part == 0 {
					_, err = s.Put(ctx, "obj", bytes.NewReader(data), benchBytes, blobstore.PutOptions{})
				} else {
					_, err = blobstore.Upload(ctx, s, "obj", bytes.NewReader(data), benchBytes,
						blobstore.UploadOptions{PartSize: c.part, Concurrency: c.conc})
				}
				if err != nil {
					b.Fatal(err)
				}
				times[i] = append(times[i], time.Since(start))
			}
		}
		for i, c := range configs {
			slices.Sort(times[i])
			b.ReportMetric(benchBytes/times[i][rounds/2].Seconds()/1e6, "MB/s:"+c.name)
		}
	}
}

func BenchmarkS3Download(b *testing.B) {
	data := benchData(b)
	ctx := context.Background()
	s := benchStore(b, false)
	if _, err := s.Put(ctx, "obj", bytes.NewReader(data), benchBytes, blobstore.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, benchBytes)
	b.Run("single-get", func(b *testing.B) {
		b.SetBytes(benchBytes)
		for b.Loop() {
			rc, _, err := s.Get(ctx, "obj", blobstore.GetOptions{Length: -1})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(rc, dst); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	for _, tc := range []struct {
		chunk int64
		conc  int
	}{{8 << 20, 4}, {8 << 20, 8}, {16 << 20, 8}} {
		b.Run(fmt.Sprintf("ranged-chunk%dMiB-conc%d", tc.chunk>>20, tc.conc), func(b *testing.B) {
			b.SetBytes(benchBytes)
			for b.Loop() {
				g, gctx := errgroup.WithContext(ctx)
				g.SetLimit(tc.conc)
				for off := int64(0); off < benchBytes; off += tc.chunk {
					g.Go(func() error {
						n := min(tc.chunk, benchBytes-off)
						rc, _, err := s.Get(gctx, "obj", blobstore.GetOptions{Offset: off, Length: n})
						if err != nil {
							return err
						}
						defer rc.Close()
						_, err = io.ReadFull(rc, dst[off:off+n])
						return err
					})
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			if !bytes.Equal(dst, data) {
				b.Fatal("ranged download differs")
			}
		})
	}
}

// BenchmarkS3SmallPuts stores 2000 objects of 4 KiB at several
// concurrencies: the floor under `make bench`'s small-file create row,
// which uploads each closed file as one PUT.
func BenchmarkS3SmallPuts(b *testing.B) {
	const files, size = 2000, 4 << 10
	data := make([]byte, size)
	ctx := context.Background()
	s := benchStore(b, false)
	for _, conc := range []int{8, 16, 32} {
		b.Run(fmt.Sprintf("conc%d", conc), func(b *testing.B) {
			for b.Loop() {
				g, gctx := errgroup.WithContext(ctx)
				g.SetLimit(conc)
				for i := range files {
					g.Go(func() error {
						_, err := s.Put(gctx, fmt.Sprintf("small/%04d", i), bytes.NewReader(data), size, blobstore.PutOptions{})
						return err
					})
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
