package cipher

import "fmt"

// Object body geometry (DESIGN.md §3). Every conversion between plaintext
// and ciphertext offsets of an object body lives in this file.
const (
	ChunkSize       = 64 << 10 // plaintext bytes per chunk
	HeaderSize      = 20       // "CFR" | 0x01 | file ID
	ChunkOverhead   = 28       // nonce (12) + tag (16)
	EmptyObjectSize = HeaderSize + ChunkOverhead
	FileIDSize      = 16
	NameMax         = 255  // bytes in one name
	KeyMax          = 1024 // bytes in one object key

	// cipherChunkSize is the stored size of a full chunk.
	cipherChunkSize = ChunkSize + ChunkOverhead
)

// ChunkCount is the number of chunks of a body of plainSize bytes: at least
// one, since the empty file is one empty final chunk.
func ChunkCount(plainSize int64) int64 {
	mustNotBeNegative(plainSize)
	if plainSize == 0 {
		return 1
	}
	return (plainSize + ChunkSize - 1) / ChunkSize
}

// CipherSize is the object size of a body of plainSize bytes.
func CipherSize(plainSize int64) int64 {
	return HeaderSize + plainSize + ChunkCount(plainSize)*ChunkOverhead
}

// MaxPlainSize is the largest plaintext size whose object is at most
// cipherSize bytes (0 when not even the empty body fits).
func MaxPlainSize(cipherSize int64) int64 {
	if cipherSize < EmptyObjectSize {
		return 0
	}
	body := cipherSize - HeaderSize
	full, rest := body/cipherChunkSize, body%cipherChunkSize
	return full*ChunkSize + max(0, rest-ChunkOverhead)
}

// PlainSize is the plaintext size of an object of cipherSize bytes, or
// ErrInvalidSize when no plaintext produces that size. A size S is valid iff
// S = 48, or S > 48 and (S-20) mod 65564 is not in 1..28.
func PlainSize(cipherSize int64) (int64, error) {
	if cipherSize == EmptyObjectSize {
		return 0, nil
	}
	if cipherSize < EmptyObjectSize {
		return 0, fmt.Errorf("%w: %d bytes", ErrInvalidSize, cipherSize)
	}
	body := cipherSize - HeaderSize
	full, rest := body/cipherChunkSize, body%cipherChunkSize
	if rest == 0 {
		return full * ChunkSize, nil
	}
	if rest <= ChunkOverhead {
		return 0, fmt.Errorf("%w: %d bytes", ErrInvalidSize, cipherSize)
	}
	return full*ChunkSize + rest - ChunkOverhead, nil
}

// ChunkPlainSize is the number of plaintext bytes in chunk index of a body of
// plainSize bytes (0 only for the single chunk of the empty file).
func ChunkPlainSize(index, plainSize int64) int64 {
	mustBeChunk(index, plainSize)
	return min(ChunkSize, plainSize-index*ChunkSize)
}

// ChunkCipherRange is where chunk index of a body of plainSize bytes lies in
// the object: its offset and stored length.
func ChunkCipherRange(index, plainSize int64) (off, n int64) {
	return HeaderSize + index*cipherChunkSize, ChunkPlainSize(index, plainSize) + ChunkOverhead
}

// IsFinalChunk reports whether index is the last chunk of a body of
// plainSize bytes, the one sealed with final = 1.
func IsFinalChunk(index, plainSize int64) bool {
	return index == ChunkCount(plainSize)-1
}

// PlainOffToChunk splits a plaintext offset into a chunk index and the offset
// within that chunk.
func PlainOffToChunk(off int64) (index, within int64) {
	mustNotBeNegative(off)
	return off / ChunkSize, off % ChunkSize
}

// PlainRangeToChunks returns the chunks [first, last] that hold the plaintext
// range [off, off+n) of a body of plainSize bytes, clipped to the body. ok is
// false when the clipped range is empty.
func PlainRangeToChunks(off, n, plainSize int64) (first, last int64, ok bool) {
	mustNotBeNegative(off)
	mustNotBeNegative(n)
	if off >= plainSize || n == 0 {
		return 0, 0, false
	}
	end := plainSize
	if n < plainSize-off { // written so that off+n cannot overflow
		end = off + n
	}
	return off / ChunkSize, (end - 1) / ChunkSize, true
}

// ChunksCipherRange is the contiguous object byte range holding chunks
// [first, last] of a body of plainSize bytes: what one ranged GET fetches.
func ChunksCipherRange(first, last, plainSize int64) (off, n int64) {
	off, _ = ChunkCipherRange(first, plainSize)
	lastOff, lastN := ChunkCipherRange(last, plainSize)
	return off, lastOff + lastN - off
}

func mustNotBeNegative(v int64) {
	if v < 0 {
		panic(fmt.Sprintf("cipher: negative size or offset %d", v))
	}
}

func mustBeChunk(index, plainSize int64) {
	if index < 0 || index >= ChunkCount(plainSize) {
		panic(fmt.Sprintf("cipher: chunk %d out of range for %d bytes", index, plainSize))
	}
}
