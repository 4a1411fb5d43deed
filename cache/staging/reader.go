package staging

import (
	"io"
)

// maxReaderBuf bounds the buffer of one upload reader.
const maxReaderBuf = runBlocks * DefaultBlockSize

// NewReader streams the plaintext from 0 to the Size at the time of the
// call, for upload. It reads whole blocks into one buffer it reuses, and
// reads straight into the caller's buffer when that holds whole blocks.
// The file must not change while the reader runs.
func (f *File) NewReader() io.Reader {
	return &reader{f: f, end: f.Size()}
}

type reader struct {
	f      *File
	off    int64 // next plaintext offset to read from the file
	end    int64
	buf    []byte
	r, w   int // unread bytes are buf[r:w]
	failed error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.r == r.w {
		if r.failed != nil {
			return 0, r.failed
		}
		if r.off >= r.end {
			return 0, io.EOF
		}
		// Large aligned reads skip the buffer.
		bs := r.f.g.blockSize
		if int64(len(p)) >= bs && r.off%bs == 0 {
			n := min(int64(len(p))/bs*bs, r.end-r.off)
			k, err := r.f.ReadAt(p[:n], r.off)
			r.off += int64(k)
			return k, r.fail(err, int64(k) == n)
		}
		if err := r.fill(); err != nil && r.r == r.w {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// WriteTo lets io.Copy move whole buffers without an extra copy.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.r == r.w {
			if r.failed != nil {
				return total, r.failed
			}
			if r.off >= r.end {
				return total, nil
			}
			if err := r.fill(); err != nil && r.r == r.w {
				return total, err
			}
		}
		n, err := w.Write(r.buf[r.r:r.w])
		r.r += n
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

func (r *reader) fill() error {
	if r.buf == nil {
		r.buf = make([]byte, min(maxReaderBuf, r.end))
	}
	n := min(int64(len(r.buf)), r.end-r.off)
	k, err := r.f.ReadAt(r.buf[:n], r.off)
	r.r, r.w = 0, k
	r.off += int64(k)
	return r.fail(err, int64(k) == n)
}

// fail records a read error; io.EOF before end means the file shrank.
func (r *reader) fail(err error, complete bool) error {
	if complete {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	r.failed = err
	return err
}
