package cipher

import (
	"errors"
	"testing"
)

func TestPlainSizeInvertsCipherSize(t *testing.T) {
	for plain := int64(0); plain < 4*ChunkSize+100; plain++ {
		c := CipherSize(plain)
		got, err := PlainSize(c)
		if err != nil || got != plain {
			t.Fatalf("PlainSize(CipherSize(%d) = %d) = %d, %v", plain, c, got, err)
		}
	}
}

// TestEveryInvalidSize checks the validity rule of DESIGN.md §3 for every
// object size up to four chunks: a size is valid iff some plaintext has it.
func TestEveryInvalidSize(t *testing.T) {
	const limit = HeaderSize + 4*cipherChunkSize + 64
	valid := make(map[int64]bool)
	for plain := int64(0); CipherSize(plain) <= limit; plain++ {
		valid[CipherSize(plain)] = true
	}
	invalid := 0
	for s := int64(-1); s <= limit; s++ {
		_, err := PlainSize(s)
		rule := s == 48 || (s > 48 && ((s-20)%65564 < 1 || (s-20)%65564 > 28))
		if rule != valid[s] {
			t.Fatalf("size %d: rule says %v, CipherSize says %v", s, rule, valid[s])
		}
		if valid[s] != (err == nil) {
			t.Fatalf("size %d: valid %v, PlainSize error %v", s, valid[s], err)
		}
		if err != nil {
			invalid++
			if !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("size %d: error %v is not ErrInvalidSize", s, err)
			}
		}
	}
	if invalid < 49+4*28 {
		t.Fatalf("only %d invalid sizes seen", invalid)
	}
}

func TestChunkGeometry(t *testing.T) {
	for _, tc := range []struct {
		plain, count, lastPlain int64
	}{
		{0, 1, 0}, {1, 1, 1}, {ChunkSize, 1, ChunkSize}, {ChunkSize + 1, 2, 1}, {3 * ChunkSize, 3, ChunkSize},
	} {
		if got := ChunkCount(tc.plain); got != tc.count {
			t.Errorf("ChunkCount(%d) = %d, want %d", tc.plain, got, tc.count)
		}
		if got := ChunkPlainSize(tc.count-1, tc.plain); got != tc.lastPlain {
			t.Errorf("last chunk of %d holds %d, want %d", tc.plain, got, tc.lastPlain)
		}
		off, n := ChunkCipherRange(tc.count-1, tc.plain)
		if off+n != CipherSize(tc.plain) {
			t.Errorf("last chunk of %d ends at %d, object size %d", tc.plain, off+n, CipherSize(tc.plain))
		}
		if !IsFinalChunk(tc.count-1, tc.plain) || (tc.count > 1 && IsFinalChunk(0, tc.plain)) {
			t.Errorf("final chunk of %d misplaced", tc.plain)
		}
	}
	if i, w := PlainOffToChunk(ChunkSize + 5); i != 1 || w != 5 {
		t.Errorf("PlainOffToChunk = %d, %d", i, w)
	}
	if f, l, ok := PlainRangeToChunks(ChunkSize-1, 2, 3*ChunkSize); !ok || f != 0 || l != 1 {
		t.Errorf("PlainRangeToChunks = %d, %d, %v", f, l, ok)
	}
	if _, _, ok := PlainRangeToChunks(10, 5, 10); ok {
		t.Error("range past the end is not empty")
	}
}

// TestMaxPlainSize: the largest plaintext whose object fits a bound, for
// every bound around the first chunks and the 10,000-part limits fs uses.
func TestMaxPlainSize(t *testing.T) {
	check := func(limit int64) {
		t.Helper()
		p := MaxPlainSize(limit)
		if limit < EmptyObjectSize {
			if p != 0 {
				t.Fatalf("MaxPlainSize(%d) = %d, want 0", limit, p)
			}
			return
		}
		if CipherSize(p) > limit || CipherSize(p+1) <= limit {
			t.Fatalf("MaxPlainSize(%d) = %d: objects %d and %d", limit, p, CipherSize(p), CipherSize(p+1))
		}
	}
	for limit := int64(0); limit < 3*cipherChunkSize+100; limit++ {
		check(limit)
	}
	for _, part := range []int64{5 << 20, 8 << 20, 5 << 30} {
		check(10000 * part)
	}
	check(5 << 40)
}
