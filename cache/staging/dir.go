package staging

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/cipher"
)

// nameSuffix marks staging files; names are 32 random hex digits plus it.
const nameSuffix = ".stg"

// runBlocks is how many blocks one read or write syscall moves at most.
const runBlocks = 16

// maxSpares bounds the removed files kept (empty, open) for reuse.
const maxSpares = 256

// Spares are also made ahead of demand: when a Create leaves fewer than
// spareLow, a background goroutine creates empty files until spareHigh
// are kept. Measured on 2000 files of 4 KiB written into a fresh mount:
// until uploads free staging files, every create made its file on the
// FUSE request's path, and that openat(2) was 30% of the mount's CPU in
// the create phase.
const (
	spareLow  = 32
	spareHigh = 128
)

// sealer seals the blocks of one file; *cipher.LocalSealer implements it.
type sealer interface {
	Seal(dst, plain []byte, index uint64) []byte
	Open(dst, sealed []byte, index uint64) ([]byte, error)
}

// Dir holds the sealed staging files of one mount.
type Dir struct {
	path      string
	secret    []byte
	blockSize int64
	newSealer func(secret, salt []byte) (sealer, error)
	// reclaim makes room when a write finds the disk full (SetReclaim).
	reclaim func(n int64) bool

	blockPool sync.Pool // *[]byte of blockSize: write-back buffers, partial blocks
	runPool   sync.Pool // *[]byte of runBlocks slots: batched reads and writes

	// Removed files are emptied and kept open for the next Create:
	// creating a file costs a millisecond or more on a busy ext4,
	// emptying and rewriting one tens of microseconds. An empty file is
	// not a staging file: List skips it and Open refuses it.
	mu       sync.Mutex
	spares   []spare
	spareCap int
	// The background refill (refill): running, and waited for by Close.
	refilling bool
	closed    bool
	refills   sync.WaitGroup
}

type spare struct {
	name string
	f    *os.File
}

// OpenDir opens (creating it 0700 if needed) the staging directory at path.
// secret is the volume's local secret; every file is sealed under a key
// derived from it and the file's random salt.
func OpenDir(path string, secret []byte) (*Dir, error) {
	if len(secret) == 0 {
		return nil, errors.New("staging: empty local secret")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	// MkdirAll keeps an existing directory's mode; staging is private.
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	d := &Dir{
		path:      path,
		secret:    bytes.Clone(secret),
		blockSize: DefaultBlockSize,
		spareCap:  maxSpares,
		newSealer: func(secret, salt []byte) (sealer, error) {
			return cipher.NewLocalSealer(secret, salt)
		},
	}
	// Fail now, not at the first Create, on a secret the sealer refuses.
	if _, err := d.sealerFor(make([]byte, cipher.LocalSaltSize)); err != nil {
		return nil, err
	}
	if err := d.collectSpares(); err != nil {
		return nil, err
	}
	return d, nil
}

// SetReclaim gives d a way to make room on a full disk: a write that
// fails with ENOSPC asks reclaim for the n bytes it needs, and is tried
// again for as long as reclaim reports that it freed something (the
// block cache gives way to staging). Call it before the first Create.
func (d *Dir) SetReclaim(reclaim func(n int64) bool) { d.reclaim = reclaim }

// retryFull runs op, and runs it again while it fails with ENOSPC and
// reclaim frees space.
func (d *Dir) retryFull(need int64, op func() error) error {
	err := op()
	for errors.Is(err, unix.ENOSPC) && d.reclaim != nil && d.reclaim(need) {
		err = op()
	}
	return err
}

func (d *Dir) geometry() geometry { return defaultGeometry(d.blockSize) }

// Create makes a new empty staging file holding meta (sealed).
func (d *Dir) Create(meta []byte) (*File, error) {
	if len(meta) > MaxMetaSize {
		return nil, fmt.Errorf("staging: meta of %d bytes exceeds %d", len(meta), MaxMetaSize)
	}
	salt := make([]byte, cipher.LocalSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	g := d.geometry()
	s, err := d.sealerFor(salt)
	if err != nil {
		return nil, err
	}
	name, osf := d.takeSpare()
	if osf == nil {
		if name, osf, err = d.newEmpty(); err != nil {
			return nil, err
		}
	}
	f := newFile(d, name, filepath.Join(d.path, name), salt, osf, g, s)
	f.meta = bytes.Clone(meta)
	err = d.retryFull(g.dataOff, func() error {
		if _, err := osf.WriteAt(encodeHeader(g, salt), 0); err != nil {
			return err
		}
		return f.writeRecord()
	})
	if err != nil {
		return nil, f.abandon(err)
	}
	return f, nil
}

// newEmpty creates an empty file under a new random name.
func (d *Dir) newEmpty() (string, *os.File, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, fmt.Errorf("staging: %w", err)
	}
	name := hex.EncodeToString(id[:]) + nameSuffix
	osf, err := os.OpenFile(filepath.Join(d.path, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("staging: %w", err)
	}
	return name, osf, nil
}

// Open reopens the staging file called name (as returned by Name or List).
// The size and meta are those of the last Sync, Close, Truncate or SetMeta.
// A file whose header, meta record or length fails its checks gives an
// error wrapping cipher.ErrAuth.
func (d *Dir) Open(name string) (*File, error) {
	if !validName(name) {
		return nil, fmt.Errorf("staging: invalid name %q", name)
	}
	path := filepath.Join(d.path, name)
	osf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	f, err := d.load(name, path, osf)
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("staging %s: %w", name, err)
	}
	return f, nil
}

func (d *Dir) load(name, path string, osf *os.File) (*File, error) {
	if st, err := osf.Stat(); err == nil && st.Size() == 0 {
		return nil, fs.ErrNotExist // a spare, not a staging file
	}
	h := make([]byte, headerSize)
	if _, err := osf.ReadAt(h, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %w: short header", cipher.ErrAuth, errFormat)
		}
		return nil, err
	}
	g, salt, err := parseHeader(h)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cipher.ErrAuth, err)
	}
	s, err := d.sealerFor(salt)
	if err != nil {
		return nil, err
	}
	f := newFile(d, name, path, salt, osf, g, s)
	rec, err := f.readRecord()
	if err != nil {
		return nil, err
	}
	f.seq, f.size, f.recSize, f.meta = rec.seq, rec.size, rec.size, rec.meta
	st, err := osf.Stat()
	if err != nil {
		return nil, err
	}
	want := g.physicalSize(f.size)
	switch {
	case st.Size() < want && f.size == 0:
		// No block: an empty file ends after its newest record, short of
		// the data area, and that is all it holds.
	case st.Size() < want:
		// Blocks past the physical end would read as holes: refuse.
		return nil, fmt.Errorf("%w: file is %d bytes, its sealed size needs %d", cipher.ErrAuth, st.Size(), want)
	case st.Size() > want:
		// Leftovers of writes never committed (a crash): the sealed size
		// is the truth, and later extensions must find holes there.
		if err := osf.Truncate(want); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// sealerFor returns the sealer of the file with this salt.
func (d *Dir) sealerFor(salt []byte) (sealer, error) {
	s, err := d.newSealer(d.secret, salt)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	if n := len(s.Seal(nil, nil, 0)); n != overhead {
		return nil, fmt.Errorf("staging: sealer overhead is %d bytes, format needs %d", n, overhead)
	}
	return s, nil
}

// List returns the names of the staging files present.
func (d *Dir) List() ([]string, error) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !validName(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() > 0 {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Close releases the spare files kept for reuse (and deletes them). Files
// still open stay usable.
func (d *Dir) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.refills.Wait()
	d.mu.Lock()
	spares := d.spares
	d.spares = nil
	d.mu.Unlock()
	var first error
	for _, s := range spares {
		s.f.Close()
		if err := os.Remove(filepath.Join(d.path, s.name)); err != nil && first == nil {
			first = fmt.Errorf("staging: %w", err)
		}
	}
	return first
}

// collectSpares adopts the empty files a previous run left as spares.
func (d *Dir) collectSpares() error {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !validName(e.Name()) || info.Size() != 0 {
			continue
		}
		path := filepath.Join(d.path, e.Name())
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil || !d.putSpare(e.Name(), f) {
			if f != nil {
				f.Close()
			}
			os.Remove(path)
		}
	}
	return nil
}

// takeSpare takes a spare, if one is kept, and starts the refill when
// they run low.
func (d *Dir) takeSpare() (string, *os.File) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.spares)
	if n-1 < spareLow && !d.refilling && !d.closed && d.spareCap > 0 {
		d.refilling = true
		d.refills.Add(1)
		go d.refill()
	}
	if n == 0 {
		return "", nil
	}
	s := d.spares[n-1]
	d.spares = d.spares[:n-1]
	return s.name, s.f
}

// refill creates spares until spareHigh are kept (at most spareCap), the
// directory closes, or a create fails (Create then makes its own file,
// and reports the error).
func (d *Dir) refill() {
	defer d.refills.Done()
	for {
		d.mu.Lock()
		if d.closed || len(d.spares) >= min(spareHigh, d.spareCap) {
			d.refilling = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		name, f, err := d.newEmpty()
		if err == nil && !d.putSpare(name, f) {
			f.Close()
			err = os.Remove(filepath.Join(d.path, name))
		}
		if err != nil {
			d.mu.Lock()
			d.refilling = false
			d.mu.Unlock()
			return
		}
	}
}

// putSpare keeps an emptied file for reuse, unless enough are kept or the
// directory is closed.
func (d *Dir) putSpare(name string, f *os.File) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || len(d.spares) >= d.spareCap {
		return false
	}
	d.spares = append(d.spares, spare{name, f})
	return true
}

// validName accepts exactly the names Create makes, so Open can never be
// steered outside the directory.
func validName(name string) bool {
	id, ok := strings.CutSuffix(name, nameSuffix)
	if !ok || len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// getBlock returns a buffer of n bytes, pooled when n is this Dir's block
// size (files reopened with another geometry allocate their own).
func (d *Dir) getBlock(n int64) *[]byte {
	if n == d.blockSize {
		if p, ok := d.blockPool.Get().(*[]byte); ok {
			return p
		}
	}
	b := make([]byte, n)
	return &b
}

func (d *Dir) putBlock(p *[]byte) {
	if int64(len(*p)) == d.blockSize {
		b := *p // a fresh pointer: callers may reuse theirs
		d.blockPool.Put(&b)
	}
}

// getRun returns a buffer for runBlocks slots of blockSize.
func (d *Dir) getRun(blockSize int64) *[]byte {
	n := runBlocks * (blockSize + overhead)
	if blockSize == d.blockSize {
		if p, ok := d.runPool.Get().(*[]byte); ok {
			return p
		}
	}
	b := make([]byte, n)
	return &b
}

func (d *Dir) putRun(p *[]byte) {
	if int64(len(*p)) == runBlocks*(d.blockSize+overhead) {
		d.runPool.Put(p)
	}
}
