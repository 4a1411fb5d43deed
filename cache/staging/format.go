package staging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// On-disk layout of a staging file (all integers big-endian):
//
//	header   @0        magic "CFRSTG" | version | flags (0)
//	                   | blockSize u32 | metaOff u32 | metaSlotSize u32 | dataOff u32
//	                   | salt (32)                                         = 56 bytes
//	slot 0   @metaOff                 sealedLen u32 | sealed meta record
//	slot 1   @metaOff+metaSlotSize    sealedLen u32 | sealed meta record
//	block i  @dataOff + i*(blockSize+overhead)  nonce | ciphertext | tag
//
// Everything between the used bytes of the header and slots and dataOff is
// never written, so it stays sparse on disk.

const (
	magic         = "CFRSTG"
	formatVersion = 1

	headerSize = 56
	saltOff    = 24
	// geometrySize is the prefix of the header (magic .. dataOff) that the
	// meta record repeats, so the unauthenticated header cannot lie about
	// the geometry.
	geometrySize = saltOff

	// overhead is what a LocalSealer adds to a block: nonce (12) and tag (16).
	overhead = 28

	// DefaultBlockSize is the plaintext size of one data block. 64 KiB
	// matches the object chunk size, so uploads read whole blocks; see
	// doc.go for the measurement behind it.
	DefaultBlockSize = 64 << 10

	minBlockSize = 4 << 10
	maxBlockSize = 1 << 20

	defaultMetaOff      = 4096
	defaultMetaSlotSize = 8192
	defaultDataOff      = defaultMetaOff + 2*defaultMetaSlotSize

	// recordFixed is the fixed part of a meta record: geometry | seq u64 |
	// size i64 | metaLen u32.
	recordFixed = geometrySize + 8 + 8 + 4

	// MaxMetaSize is the largest meta blob a staging file holds.
	MaxMetaSize = defaultMetaSlotSize - 4 - overhead - recordFixed

	// metaIndex is the sealing index of meta records; data blocks use
	// indexes below 2^63, so a block can never pass for a record.
	metaIndex = math.MaxUint64
)

// errFormat marks a file that is not a valid staging file; it is wrapped
// together with cipher.ErrAuth where the cause may be tampering.
var errFormat = errors.New("not a staging file")

// geometry is the layout of one staging file, read from its header.
// All offset arithmetic lives in its methods.
type geometry struct {
	blockSize    int64
	metaOff      int64
	metaSlotSize int64
	dataOff      int64
}

func defaultGeometry(blockSize int64) geometry {
	return geometry{
		blockSize:    blockSize,
		metaOff:      defaultMetaOff,
		metaSlotSize: defaultMetaSlotSize,
		dataOff:      defaultDataOff,
	}
}

// slotSize is the disk space of one full data block.
func (g geometry) slotSize() int64 { return g.blockSize + overhead }

// blockOf returns the block holding plaintext offset off and the offset
// inside it.
func (g geometry) blockOf(off int64) (index, within int64) {
	return off / g.blockSize, off % g.blockSize
}

// blockCount is the number of blocks a file of plaintext size holds.
func (g geometry) blockCount(size int64) int64 {
	return (size + g.blockSize - 1) / g.blockSize
}

// blockLen is the plaintext length of block i in a file of size bytes
// (the last block may be short; blocks past the end have length 0).
func (g geometry) blockLen(i, size int64) int64 {
	n := size - i*g.blockSize
	switch {
	case n <= 0:
		return 0
	case n > g.blockSize:
		return g.blockSize
	}
	return n
}

// blockOff is the file offset of block i's slot.
func (g geometry) blockOff(i int64) int64 { return g.dataOff + i*g.slotSize() }

// physicalSize is the exact length of a staging file holding size
// plaintext bytes: the last block is sealed at its own length.
func (g geometry) physicalSize(size int64) int64 {
	n := g.blockCount(size)
	if n == 0 {
		return g.dataOff
	}
	return g.blockOff(n-1) + g.blockLen(n-1, size) + overhead
}

// slotOff is the file offset of meta slot s (0 or 1).
func (g geometry) slotOff(s int) int64 { return g.metaOff + int64(s)*g.metaSlotSize }

// maxSize bounds the plaintext size so that block indexes stay below 2^63
// and offsets fit an int64.
func (g geometry) maxSize() int64 {
	return (math.MaxInt64 - g.dataOff) / g.slotSize() * g.blockSize
}

func (g geometry) encode(dst []byte) {
	copy(dst, magic)
	dst[6] = formatVersion
	dst[7] = 0
	binary.BigEndian.PutUint32(dst[8:], uint32(g.blockSize))
	binary.BigEndian.PutUint32(dst[12:], uint32(g.metaOff))
	binary.BigEndian.PutUint32(dst[16:], uint32(g.metaSlotSize))
	binary.BigEndian.PutUint32(dst[20:], uint32(g.dataOff))
}

// encodeHeader returns the header of a file with geometry g and salt.
func encodeHeader(g geometry, salt []byte) []byte {
	h := make([]byte, headerSize)
	g.encode(h)
	copy(h[saltOff:], salt)
	return h
}

// parseHeader checks a header and returns its geometry and salt.
func parseHeader(h []byte) (geometry, []byte, error) {
	if len(h) < headerSize || string(h[:6]) != magic {
		return geometry{}, nil, fmt.Errorf("%w: bad magic", errFormat)
	}
	if h[6] != formatVersion {
		return geometry{}, nil, fmt.Errorf("%w: unsupported version %d", errFormat, h[6])
	}
	if h[7] != 0 {
		return geometry{}, nil, fmt.Errorf("%w: unknown flags %#x", errFormat, h[7])
	}
	g := geometry{
		blockSize:    int64(binary.BigEndian.Uint32(h[8:])),
		metaOff:      int64(binary.BigEndian.Uint32(h[12:])),
		metaSlotSize: int64(binary.BigEndian.Uint32(h[16:])),
		dataOff:      int64(binary.BigEndian.Uint32(h[20:])),
	}
	switch {
	case g.blockSize < minBlockSize || g.blockSize > maxBlockSize:
		return geometry{}, nil, fmt.Errorf("%w: block size %d out of range", errFormat, g.blockSize)
	case g.metaOff < headerSize:
		return geometry{}, nil, fmt.Errorf("%w: meta slots overlap the header", errFormat)
	case g.metaSlotSize < 4+overhead+recordFixed || g.metaSlotSize > 1<<20:
		return geometry{}, nil, fmt.Errorf("%w: meta slot size %d out of range", errFormat, g.metaSlotSize)
	case g.dataOff < g.metaOff+2*g.metaSlotSize:
		return geometry{}, nil, fmt.Errorf("%w: data overlaps the meta slots", errFormat)
	}
	salt := bytes.Clone(h[saltOff:headerSize])
	return g, salt, nil
}

// record is the authenticated state of a staging file.
type record struct {
	seq  uint64 // higher wins; the two slots alternate
	size int64  // plaintext size
	meta []byte // the caller's opaque blob
}

func (r record) encode(g geometry) []byte {
	b := make([]byte, recordFixed+len(r.meta))
	g.encode(b[:geometrySize])
	binary.BigEndian.PutUint64(b[geometrySize:], r.seq)
	binary.BigEndian.PutUint64(b[geometrySize+8:], uint64(r.size))
	binary.BigEndian.PutUint32(b[geometrySize+16:], uint32(len(r.meta)))
	copy(b[recordFixed:], r.meta)
	return b
}

// parseRecord decodes an opened meta record and checks that it describes
// geometry g.
func parseRecord(b []byte, g geometry) (record, error) {
	if len(b) < recordFixed {
		return record{}, fmt.Errorf("%w: short meta record", errFormat)
	}
	want := make([]byte, geometrySize)
	g.encode(want)
	if !bytes.Equal(b[:geometrySize], want) {
		return record{}, fmt.Errorf("%w: header disagrees with its sealed record", errFormat)
	}
	r := record{
		seq:  binary.BigEndian.Uint64(b[geometrySize:]),
		size: int64(binary.BigEndian.Uint64(b[geometrySize+8:])),
	}
	n := binary.BigEndian.Uint32(b[geometrySize+16:])
	if r.size < 0 || r.size > g.maxSize() {
		return record{}, fmt.Errorf("%w: size %d out of range", errFormat, r.size)
	}
	if uint64(n) != uint64(len(b)-recordFixed) {
		return record{}, fmt.Errorf("%w: meta length mismatch", errFormat)
	}
	r.meta = bytes.Clone(b[recordFixed:])
	return r, nil
}

// isZero reports whether b is all zero bytes (a hole).
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
