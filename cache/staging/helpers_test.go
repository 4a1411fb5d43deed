package staging

import (
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cofferfs/coffer/cipher"
)

// fakeSealer stands in for cipher.LocalSealer while that is unimplemented:
// AES-256-GCM under HMAC(secret, salt), random nonce, AAD = index.
type fakeSealer struct{ aead gocipher.AEAD }

func newFakeSealer(secret, salt []byte) (sealer, error) {
	m := hmac.New(sha256.New, secret)
	m.Write(salt)
	b, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	a, err := gocipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return fakeSealer{a}, nil
}

func (s fakeSealer) Seal(dst, plain []byte, index uint64) []byte {
	var ad [8]byte
	binary.BigEndian.PutUint64(ad[:], index)
	n := len(dst)
	dst = append(dst, make([]byte, 12)...)
	rand.Read(dst[n:])
	return s.aead.Seal(dst, dst[n:n+12], plain, ad[:])
}

func (s fakeSealer) Open(dst, sealed []byte, index uint64) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, cipher.ErrAuth
	}
	var ad [8]byte
	binary.BigEndian.PutUint64(ad[:], index)
	out, err := s.aead.Open(dst, sealed[:12], sealed[12:], ad[:])
	if err != nil {
		return nil, fmt.Errorf("%w", cipher.ErrAuth)
	}
	return out, nil
}

// realSealerReady reports whether cipher.NewLocalSealer is implemented.
func realSealerReady() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	s, err := cipher.NewLocalSealer(make([]byte, 32), make([]byte, cipher.LocalSaltSize))
	if err != nil {
		return false
	}
	_, err = s.Open(nil, s.Seal(nil, []byte("x"), 1), 1)
	return err == nil
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newTestDir opens a Dir with the given block size (0 = default), using the
// real cipher.LocalSealer once it exists and the fake until then.
func newTestDir(t testing.TB, blockSize int64) *Dir {
	t.Helper()
	d, err := OpenDir(t.TempDir()+"/staging", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if blockSize != 0 {
		d.blockSize = blockSize
	}
	if !realSealerReady() {
		d.newSealer = newFakeSealer
	}
	return d
}

func mustCreate(t testing.TB, d *Dir, meta []byte) *File {
	t.Helper()
	f, err := d.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readAll reads the whole file through ReadAt in pieces of n bytes.
func readAll(t testing.TB, f *File, n int) []byte {
	t.Helper()
	out := make([]byte, 0, f.Size())
	buf := make([]byte, n)
	for off := int64(0); ; {
		k, err := f.ReadAt(buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err != nil {
			if off != f.Size() {
				t.Fatalf("ReadAt stopped at %d of %d: %v", off, f.Size(), err)
			}
			return out
		}
	}
}
