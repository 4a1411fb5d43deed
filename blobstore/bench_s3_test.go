//go:build s3

package blobstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

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
	for _, signed := range []bool{false, true} {
		name := "single-put"
		if signed {
			name += "-signed"
		}
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, signed)
			b.SetBytes(benchBytes)
			for b.Loop() {
				if _, err := s.Put(ctx, "obj", bytes.NewReader(data), benchBytes, blobstore.PutOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, tc := range []struct {
		part   int64
		conc   int
		signed bool
	}{
		{8 << 20, 4, false}, {8 << 20, 8, false}, {16 << 20, 4, false}, {16 << 20, 8, false},
		{32 << 20, 4, false}, {64 << 20, 4, false}, {16 << 20, 8, true},
	} {
		name := fmt.Sprintf("multipart-part%dMiB-conc%d", tc.part>>20, tc.conc)
		if tc.signed {
			name += "-signed"
		}
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, tc.signed)
			b.SetBytes(benchBytes)
			for b.Loop() {
				if _, err := blobstore.Upload(ctx, s, "obj", bytes.NewReader(data), benchBytes,
					blobstore.UploadOptions{PartSize: tc.part, Concurrency: tc.conc}); err != nil {
					b.Fatal(err)
				}
			}
		})
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
	}{{4 << 20, 8}, {8 << 20, 4}, {8 << 20, 8}, {16 << 20, 8}} {
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
