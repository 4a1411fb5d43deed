package cipher

import (
	"bytes"
	gocipher "crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The object envelope (DESIGN.md §3):
//
//	header : "CFR" | 0x01 | file ID                                  = 20 bytes
//	chunk i: nonce (12) | AES-256-GCM(chunk key, plaintext) | tag (16)
//	         AAD = header | uint64 big-endian i | final (0x00 / 0x01)
//
// Only the last chunk is final, so a body cannot be truncated, extended or
// reordered without a chunk failing to open.

var magic = [4]byte{'C', 'F', 'R', 0x01}

const aadSize = HeaderSize + 8 + 1

// FileID names one object version's keys; it is in the header, in
// coffer-fid and in every AAD.
type FileID [FileIDSize]byte

// ObjectKey is one object version's DEK with its file ID and generation, and
// the keys derived from it. Derivation happens once, when the ObjectKey is
// made, so sealing a chunk costs one AES-GCM call. Safe for concurrent use.
type ObjectKey struct {
	fileID FileID
	dek    [keySize]byte
	gen    uint32
	origin Origin // a writer's object (writer.go); zero for the full key's
	header [HeaderSize]byte
	chunk  gocipher.AEAD
	attr   gocipher.AEAD
	aads   sync.Pool // of *[aadSize]byte: AAD scratch without a per-chunk allocation
}

func newObjectKey(fid FileID, dek []byte, gen uint32) *ObjectKey {
	o := &ObjectKey{fileID: fid, gen: gen}
	copy(o.dek[:], dek)
	copy(o.header[:], magic[:])
	copy(o.header[len(magic):], fid[:])
	o.chunk = newAEAD(deriveKey(dek, nil, infoChunk))
	o.attr = newAEAD(deriveKey(dek, nil, infoAttr))
	o.aads.New = func() any { return new([aadSize]byte) }
	return o
}

// newRandomObjectKey makes a fresh file ID and DEK.
func newRandomObjectKey(gen uint32) *ObjectKey {
	var fid FileID
	dek := make([]byte, keySize)
	rand.Read(fid[:])
	rand.Read(dek)
	return newObjectKey(fid, dek, gen)
}

// FileID is the object's file ID.
func (o *ObjectKey) FileID() FileID { return o.fileID }

// Generation is the KEK generation the DEK was unwrapped from (or, for a new
// key, the generation current when it was made); 0 for a writer's DEK
// wrapped under its epoch key.
func (o *ObjectKey) Generation() uint32 { return o.gen }

// Origin is who stored the object: zero for the full key, else the writer
// session (writer.go). Sealing metadata with this key keeps it.
func (o *ObjectKey) Origin() Origin { return o.origin }

// String and GoString keep the DEK out of anything that prints the key.
func (o *ObjectKey) String() string   { return "object key of file " + o.fileID.String() }
func (o *ObjectKey) GoString() string { return o.String() }

// Header is the 20-byte body header of this object.
func (o *ObjectKey) Header() []byte { return bytes.Clone(o.header[:]) }

// CheckHeader verifies that h is this object's header (magic, version and
// the file ID of its metadata).
func (o *ObjectKey) CheckHeader(h []byte) error {
	if len(h) < HeaderSize || !bytes.Equal(h[:len(magic)], magic[:]) {
		return fmt.Errorf("%w: not a coffer object body (bad header)", ErrAuth)
	}
	if !bytes.Equal(h[len(magic):HeaderSize], o.fileID[:]) {
		return fmt.Errorf("%w: body file ID differs from coffer-fid", ErrAuth)
	}
	return nil
}

func (o *ObjectKey) fillAAD(aad *[aadSize]byte, index int64, final bool) {
	copy(aad[:], o.header[:])
	binary.BigEndian.PutUint64(aad[HeaderSize:], uint64(index))
	aad[aadSize-1] = 0
	if final {
		aad[aadSize-1] = 1
	}
}

// SealChunk appends the sealed chunk index (nonce | ciphertext | tag) to dst.
// plain holds at most ChunkSize bytes; it is empty only for the single final
// chunk of the empty file.
func (o *ObjectKey) SealChunk(dst, plain []byte, index int64, final bool) []byte {
	if len(plain) > ChunkSize || index < 0 || (len(plain) == 0 && (index != 0 || !final)) {
		panic(fmt.Sprintf("cipher: SealChunk of %d bytes at chunk %d (final %v)", len(plain), index, final))
	}
	aad := o.aads.Get().(*[aadSize]byte)
	o.fillAAD(aad, index, final)
	dst = o.chunk.Seal(dst, nil, plain, aad[:])
	o.aads.Put(aad)
	return dst
}

// OpenChunk verifies and decrypts chunk index of an object whose plaintext
// size is plainSize, appending the plaintext to dst. Whether the chunk is
// final follows from index and plainSize.
func (o *ObjectKey) OpenChunk(dst, sealed []byte, index int64, plainSize int64) ([]byte, error) {
	if plainSize < 0 || index < 0 || index >= ChunkCount(plainSize) {
		return dst, fmt.Errorf("%w: chunk %d of a %d-byte body does not exist", ErrAuth, index, plainSize)
	}
	if _, n := ChunkCipherRange(index, plainSize); int64(len(sealed)) != n {
		return dst, fmt.Errorf("%w: chunk %d is %d bytes, want %d", ErrAuth, index, len(sealed), n)
	}
	aad := o.aads.Get().(*[aadSize]byte)
	o.fillAAD(aad, index, IsFinalChunk(index, plainSize))
	out, err := o.chunk.Open(dst, nil, sealed, aad[:])
	o.aads.Put(aad)
	if err != nil {
		return dst, fmt.Errorf("%w: chunk %d", ErrAuth, index)
	}
	return out, nil
}

// NewEncrypter writes the object body (header and sealed chunks) to w as
// plaintext arrives; Close seals the final chunk. It holds one chunk of
// plaintext, since a chunk is known to be final only at Close.
func (o *ObjectKey) NewEncrypter(w io.Writer) io.WriteCloser {
	return o.newEncrypter(w, 0, true)
}

// NewPartEncrypter encrypts one multipart part that starts at chunk
// firstChunk (the header is written when firstChunk is 0); last marks the
// part holding the object's final chunk. Parts other than the last must
// hold a whole, non-zero number of chunks; Close reports otherwise.
func (o *ObjectKey) NewPartEncrypter(w io.Writer, firstChunk uint64, last bool) io.WriteCloser {
	return o.newEncrypter(w, int64(firstChunk), last)
}

// PartCipherSize is the stored size of a part that starts at chunk
// firstChunk and holds plainLen plaintext bytes.
func PartCipherSize(firstChunk uint64, plainLen int64) int64 {
	n := plainLen + (plainLen+ChunkSize-1)/ChunkSize*ChunkOverhead
	if plainLen == 0 {
		n = ChunkOverhead // only valid for the empty file
	}
	if firstChunk == 0 {
		n += HeaderSize
	}
	return n
}

type encrypter struct {
	o      *ObjectKey
	w      io.Writer
	first  int64
	index  int64
	last   bool
	header bool // header still to write
	plain  []byte
	sealed []byte
	aad    [aadSize]byte
	err    error
}

var errClosed = errors.New("cipher: write to closed encrypter")

func (o *ObjectKey) newEncrypter(w io.Writer, first int64, last bool) *encrypter {
	return &encrypter{
		o: o, w: w, first: first, index: first, last: last, header: first == 0,
		plain:  make([]byte, 0, ChunkSize),
		sealed: make([]byte, 0, cipherChunkSize),
	}
}

func (e *encrypter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	written := 0
	for len(p) > 0 {
		if len(e.plain) == ChunkSize {
			// More data follows, so the buffered chunk is not final.
			if err := e.flush(false); err != nil {
				return written, err
			}
		}
		n := copy(e.plain[len(e.plain):ChunkSize], p)
		e.plain = e.plain[:len(e.plain)+n]
		p = p[n:]
		written += n
	}
	return written, nil
}

func (e *encrypter) flush(final bool) error {
	if e.header {
		if _, err := e.w.Write(e.o.header[:]); err != nil {
			e.err = err
			return err
		}
		e.header = false
	}
	e.o.fillAAD(&e.aad, e.index, final)
	e.sealed = e.o.chunk.Seal(e.sealed[:0], nil, e.plain, e.aad[:])
	if _, err := e.w.Write(e.sealed); err != nil {
		e.err = err
		return err
	}
	e.index++
	e.plain = e.plain[:0]
	return nil
}

// Close seals the buffered chunk: as the final chunk for the last part (or
// a whole object), as an ordinary one otherwise.
func (e *encrypter) Close() error {
	if e.err != nil {
		if e.err == errClosed {
			return nil
		}
		return e.err
	}
	switch {
	case e.last && len(e.plain) == 0 && e.index != 0:
		e.err = fmt.Errorf("cipher: final part starting at chunk %d is empty", e.first)
	case !e.last && len(e.plain) != ChunkSize:
		e.err = fmt.Errorf("cipher: part starting at chunk %d does not end on a chunk boundary", e.first)
	default:
		if err := e.flush(e.last); err != nil {
			return err
		}
		e.err = errClosed
		return nil
	}
	return e.err
}

// NewDecrypter verifies and decrypts a whole body of cipherSize bytes read
// from r: the header must carry this key's file ID, every chunk must open,
// and r must end exactly after the final chunk. Read returns only verified
// bytes.
func (o *ObjectKey) NewDecrypter(r io.Reader, cipherSize int64) io.Reader {
	d := &decrypter{o: o, r: r}
	d.plainSize, d.err = PlainSize(cipherSize)
	if d.err == nil {
		d.count = ChunkCount(d.plainSize)
		d.sealed = make([]byte, cipherChunkSize)
		d.plain = make([]byte, 0, ChunkSize)
	}
	return d
}

type decrypter struct {
	o         *ObjectKey
	r         io.Reader
	plainSize int64
	count     int64
	index     int64
	started   bool
	sealed    []byte
	plain     []byte
	pos       int
	err       error
}

func (d *decrypter) Read(p []byte) (int, error) {
	for d.pos == len(d.plain) {
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.next()
	}
	n := copy(p, d.plain[d.pos:])
	d.pos += n
	return n, nil
}

// next reads and opens one chunk into d.plain, or returns io.EOF once the
// final chunk was read and the stream ended there.
func (d *decrypter) next() error {
	if !d.started {
		var h [HeaderSize]byte
		if _, err := io.ReadFull(d.r, h[:]); err != nil {
			return readErr(err, "header")
		}
		if err := d.o.CheckHeader(h[:]); err != nil {
			return err
		}
		d.started = true
	}
	if d.index == d.count {
		var one [1]byte
		if n, err := io.ReadFull(d.r, one[:]); n > 0 {
			return fmt.Errorf("%w: bytes after the final chunk", ErrAuth)
		} else if err != io.EOF {
			return err
		}
		return io.EOF
	}
	_, n := ChunkCipherRange(d.index, d.plainSize)
	if _, err := io.ReadFull(d.r, d.sealed[:n]); err != nil {
		return readErr(err, fmt.Sprintf("chunk %d", d.index))
	}
	plain, err := d.o.OpenChunk(d.plain[:0], d.sealed[:n], d.index, d.plainSize)
	if err != nil {
		return err
	}
	d.plain, d.pos = plain, 0
	d.index++
	return nil
}

// readErr turns an early end of the body into an authentication failure:
// a body shorter than its size promised was truncated.
func readErr(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: body truncated in %s", ErrAuth, what)
	}
	return err
}

// NewReaderAt gives random access to a body of plainSize plaintext bytes.
// fetch(off, n) must return the n object bytes at off; ReadAt fetches only
// the chunks a range needs, in one call, and returns bytes only from chunks
// that verified. The header is not fetched: it is part of every chunk's AAD,
// so a body of another file ID fails to open.
func (o *ObjectKey) NewReaderAt(fetch func(off, n int64) ([]byte, error), plainSize int64) io.ReaderAt {
	return &readerAt{o: o, fetch: fetch, plainSize: plainSize}
}

type readerAt struct {
	o         *ObjectKey
	fetch     func(off, n int64) ([]byte, error)
	plainSize int64
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cipher: negative offset %d", off)
	}
	first, last, ok := PlainRangeToChunks(off, int64(len(p)), r.plainSize)
	if !ok {
		if len(p) == 0 && off <= r.plainSize {
			return 0, nil
		}
		return 0, io.EOF
	}
	cOff, cN := ChunksCipherRange(first, last, r.plainSize)
	data, err := r.fetch(cOff, cN)
	if err != nil {
		return 0, err
	}
	if int64(len(data)) != cN {
		return 0, fmt.Errorf("%w: fetched %d bytes at %d, want %d", ErrAuth, len(data), cOff, cN)
	}
	n := 0
	plain := make([]byte, 0, ChunkSize)
	for i := first; i <= last; i++ {
		_, sn := ChunkCipherRange(i, r.plainSize)
		plain, err = r.o.OpenChunk(plain[:0], data[:sn], i, r.plainSize)
		if err != nil {
			return n, err
		}
		data = data[sn:]
		within := max(off+int64(n)-i*ChunkSize, 0)
		n += copy(p[n:], plain[within:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
