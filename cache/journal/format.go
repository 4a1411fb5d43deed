package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cofferfs/coffer/cipher"
)

// Layout of a segment file (integers big-endian; doc.go has the prose):
//
//	prefix  @0   "CFRJNL" | version 1 | 0 | salt (32)            = 40 bytes
//	frame   @8k  sealed length u32 | ^length u32 | sealed | zero padding to 8
//	sealed       LocalSealer(local secret, salt).Seal(record, seq)
//
// The first frame of a segment is its header record, sealed at the
// segment's first sequence number (the number in its file name); every
// later frame at the next one.
const (
	segMagic    = "CFRJNL"
	segVersion  = 1
	prefixSize  = 6 + 1 + 1 + cipher.LocalSaltSize
	frameHeader = 8
	frameAlign  = 8
	segSuffix   = ".jnl"
	segNameLen  = 16 + len(segSuffix)

	// MaxBlobSize bounds the caller's blob in one record.
	MaxBlobSize = 64 << 10
	// MaxNameLen bounds a staging file name.
	MaxNameLen = 255
)

// Record kinds (the first byte of a record).
const (
	kindHeader  = 1 // boot ID (16)
	kindPending = 2 // id u64 | flags u8 | name len u8 | name | salt (32) | seq u64 | size u64 | blob len u32 | blob
	kindDone    = 3 // id u64
	kindSynced  = 4 // through u64
)

// Flags of a pending record.
const (
	// flagSynced: the staging file was fsynced while it matched the
	// record (set on copies of records already known durable).
	flagSynced = 1 << iota
	// flagSuspect: the staging file may not hold what the record says
	// (its fsync failed, or a machine restart came before it): never
	// durable, whatever sync marks follow.
	flagSuspect
	knownFlags = flagSynced | flagSuspect
)

const (
	pendingFixed = 1 + 8 + 1 + 1 + cipher.LocalSaltSize + 8 + 8 + 4
	maxRecord    = pendingFixed + MaxNameLen + MaxBlobSize
	maxSealed    = maxRecord + cipher.LocalOverhead
	minSealed    = 1 + 8 + cipher.LocalOverhead // the smallest record: done or synced
)

var errMalformed = errors.New("malformed journal record")

// record is one decoded journal record; which fields are used depends on
// kind.
type record struct {
	kind    byte
	boot    [16]byte // header
	id      ID       // pending, done
	flags   byte     // pending
	st      Staging  // pending
	blob    []byte   // pending
	through uint64   // synced
}

// appendRecord appends the encoding of r to dst.
func appendRecord(dst []byte, r *record) []byte {
	dst = append(dst, r.kind)
	switch r.kind {
	case kindHeader:
		dst = append(dst, r.boot[:]...)
	case kindPending:
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.id))
		dst = append(dst, r.flags, byte(len(r.st.Name)))
		dst = append(dst, r.st.Name...)
		dst = append(dst, r.st.Salt[:]...)
		dst = binary.BigEndian.AppendUint64(dst, r.st.Seq)
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.st.Size))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.blob)))
		dst = append(dst, r.blob...)
	case kindDone:
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.id))
	case kindSynced:
		dst = binary.BigEndian.AppendUint64(dst, r.through)
	default:
		panic(fmt.Sprintf("journal: encoding record kind %d", r.kind))
	}
	return dst
}

// decodeRecord is appendRecord's inverse. It accepts exactly the
// encodings appendRecord produces: anything else is errMalformed.
func decodeRecord(b []byte) (record, error) {
	if len(b) == 0 {
		return record{}, fmt.Errorf("%w: empty", errMalformed)
	}
	r := record{kind: b[0]}
	b = b[1:]
	switch r.kind {
	case kindHeader:
		if len(b) != len(r.boot) {
			return record{}, fmt.Errorf("%w: header of %d bytes", errMalformed, len(b))
		}
		copy(r.boot[:], b)
	case kindDone, kindSynced:
		if len(b) != 8 {
			return record{}, fmt.Errorf("%w: kind %d of %d bytes", errMalformed, r.kind, len(b))
		}
		r.id = ID(binary.BigEndian.Uint64(b))
		if r.kind == kindSynced {
			r.through, r.id = uint64(r.id), 0
		} else if r.id == 0 {
			return record{}, fmt.Errorf("%w: done of id 0", errMalformed)
		}
	case kindPending:
		if len(b) < pendingFixed-1 {
			return record{}, fmt.Errorf("%w: short pending record", errMalformed)
		}
		r.id = ID(binary.BigEndian.Uint64(b))
		r.flags = b[8]
		n := int(b[9])
		b = b[10:]
		if r.id == 0 || r.flags&^knownFlags != 0 || n == 0 || len(b) < n+cipher.LocalSaltSize+20 {
			return record{}, fmt.Errorf("%w: pending record fields", errMalformed)
		}
		r.st.Name = string(b[:n])
		b = b[n:]
		copy(r.st.Salt[:], b)
		b = b[cipher.LocalSaltSize:]
		r.st.Seq = binary.BigEndian.Uint64(b)
		r.st.Size = int64(binary.BigEndian.Uint64(b[8:]))
		bl := binary.BigEndian.Uint32(b[16:])
		b = b[20:]
		if r.st.Size < 0 || bl > MaxBlobSize || uint64(bl) != uint64(len(b)) {
			return record{}, fmt.Errorf("%w: pending record lengths", errMalformed)
		}
		r.blob = append([]byte(nil), b...)
	default:
		return record{}, fmt.Errorf("%w: unknown kind %d", errMalformed, r.kind)
	}
	return r, nil
}

// appendPrefix appends a segment's prefix.
func appendPrefix(dst []byte, salt []byte) []byte {
	dst = append(dst, segMagic...)
	dst = append(dst, segVersion, 0)
	return append(dst, salt...)
}

// parsePrefix returns the salt of a segment prefix.
func parsePrefix(b []byte) ([]byte, error) {
	if len(b) < prefixSize {
		return nil, errors.New("short segment prefix")
	}
	if string(b[:6]) != segMagic {
		return nil, errors.New("not a journal segment (bad magic)")
	}
	if b[6] != segVersion || b[7] != 0 {
		return nil, fmt.Errorf("unsupported segment version %d.%d", b[6], b[7])
	}
	return b[8:prefixSize], nil
}

// padded is n rounded up to the frame alignment.
func padded(n int) int { return (n + frameAlign - 1) &^ (frameAlign - 1) }

// appendFrame appends the frame of plain sealed at seq: the length field
// and its complement, the sealed record, zero padding.
func appendFrame(dst []byte, s *cipher.LocalSealer, seq uint64, plain []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = s.Seal(dst, plain, seq)
	n := uint32(len(dst) - start - frameHeader)
	binary.BigEndian.PutUint32(dst[start:], n)
	binary.BigEndian.PutUint32(dst[start+4:], ^n)
	for len(dst)-start != padded(len(dst)-start) {
		dst = append(dst, 0)
	}
	return dst
}

// frameLen reads the length field at the start of b: the whole frame's
// size, or ok false when the field is not a valid length (zeros, garbage).
func frameLen(b []byte) (sealed, total int, ok bool) {
	n := binary.BigEndian.Uint32(b)
	if binary.BigEndian.Uint32(b[4:]) != ^n || n < minSealed || n > maxSealed {
		return 0, 0, false
	}
	return int(n), padded(frameHeader + int(n)), true
}

// segName is the file name of the segment whose first frame has seq.
func segName(first uint64) string { return fmt.Sprintf("%016x%s", first, segSuffix) }

// parseSegName returns the first sequence number a segment file name
// states; ok false for any other file.
func parseSegName(name string) (uint64, bool) {
	hex, found := strings.CutSuffix(name, segSuffix)
	if !found || len(name) != segNameLen || strings.ToLower(hex) != hex {
		return 0, false
	}
	first, err := strconv.ParseUint(hex, 16, 64)
	return first, err == nil && first > 0
}

// isZero reports whether b is all zero bytes.
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
