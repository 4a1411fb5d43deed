package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// readAll reads h from offset 0 to its end.
func readAll(t *testing.T, h *Handle) []byte {
	t.Helper()
	ctx := context.Background()
	var out []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := h.ReadAt(ctx, buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return out
		}
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
}

// TestOpenFileOutlivesItsObject: handles open on a stored file keep
// reading the version they opened after the file is unlinked or replaced
// by a rename, while the object itself is gone or replaced at once; two
// handles share one copy (one download).
func TestOpenFileOutlivesItsObject(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*cipher.ChunkSize+300)/16)
	cases := []struct {
		name    string
		replace func(ctx context.Context, v *Volume) error
		after   []byte // what /f holds afterwards (nil: absent)
	}{
		{"unlink", func(ctx context.Context, v *Volume) error { return v.Unlink(ctx, "/f") }, nil},
		{"rename over it", func(ctx context.Context, v *Volume) error { return v.Rename(ctx, "/new", "/f", 0) }, []byte("the new file")},
		{"rename a staged file over it", func(ctx context.Context, v *Volume) error {
			writeFile(t, v, "/staged", []byte("staged here"))
			return v.Rename(ctx, "/staged", "/f", 0)
		}, []byte("staged here")},
	}
	for _, mode := range modes {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				tv := newTestVolume(t, mode)
				ctx := context.Background()
				writeFile(t, tv.Volume, "/f", data)
				writeFile(t, tv.Volume, "/new", []byte("the new file"))
				flush(t, tv.Volume)
				v := tv.reopen(t) // cold: nothing of /f cached
				h1, err := v.Open(ctx, "/f", syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				h2, err := v.Open(ctx, "/f", syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				tv.store.reset()
				if err := tc.replace(ctx, v); err != nil {
					t.Fatal(err)
				}
				if gets := tv.store.count("get"); gets == 0 {
					t.Fatalf("no download of the open file's content at %s", tc.name)
				}
				flush(t, v)
				gets := tv.store.count("get")
				if tc.after == nil {
					_, err := v.Stat(ctx, "/f")
					wantErrno(t, err, syscall.ENOENT)
					writeFile(t, v, "/f", []byte("a new file under the old name"))
					flush(t, v)
				}
				for i, h := range []*Handle{h1, h2} {
					if got := readAll(t, h); !bytes.Equal(got, data) {
						t.Fatalf("handle %d read %d bytes, want the %d it opened", i+1, len(got), len(data))
					}
				}
				if n := tv.store.count("get"); n != gets {
					t.Errorf("reads from the kept copy made %d more GETs", n-gets)
				}
				for _, h := range []*Handle{h1, h2} {
					if err := h.Close(ctx); err != nil {
						t.Fatal(err)
					}
				}
				flush(t, v)
				want := tc.after
				if want == nil {
					want = []byte("a new file under the old name")
				}
				if got := readFile(t, tv.reopen(t), "/f"); !bytes.Equal(got, want) {
					t.Fatalf("/f holds %q, want %q", got, want)
				}
				v.mu.Lock()
				left := len(v.files)
				v.mu.Unlock()
				if left != 0 {
					t.Errorf("%d files still held after the last close and a flush", left)
				}
			})
		}
	}
}

// flakyGets is a store whose GETs fail while fail is set.
type flakyGets struct {
	blobstore.Store
	fail *atomic.Bool
}

var errGetRefused = errors.New("get refused for the test")

func (s flakyGets) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	if s.fail.Load() {
		return nil, blobstore.ObjectInfo{}, errGetRefused
	}
	return s.Store.Get(ctx, key, opts)
}

// TestUnlinkOpenFileCopyFails: when the open file's content cannot be
// copied, unlink goes on if that version is unreadable anyway (changed by
// another client, tampered) and fails, changing nothing, if the store is
// unreachable.
func TestUnlinkOpenFileCopyFails(t *testing.T) {
	data := bytes.Repeat([]byte("x"), cipher.ChunkSize+10)
	cases := []struct {
		name    string
		spoil   func(t *testing.T, tv *testVol, fail *atomic.Bool)
		wantErr syscall.Errno // 0: the unlink succeeds
	}{
		{"changed by another client", func(t *testing.T, tv *testVol, _ *atomic.Bool) {
			writeFile(t, tv.Volume, "/f", []byte("another client's version"))
			flush(t, tv.Volume)
		}, 0},
		{"tampered", func(t *testing.T, tv *testVol, _ *atomic.Bool) {
			tamperBody(t, tv.store, objectKeyOf(t, tv.Volume, "/f"))
		}, 0},
		{"store unreachable", func(t *testing.T, tv *testVol, fail *atomic.Bool) { fail.Store(true) }, syscall.EIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tv := newTestVolume(t, EncryptionClient)
			ctx := context.Background()
			writeFile(t, tv.Volume, "/f", data)
			flush(t, tv.Volume)
			fail := &atomic.Bool{}
			opts := tv.options
			opts.CacheDir = t.TempDir()
			opts.Store = flakyGets{Store: tv.store, fail: fail}
			v, err := OpenVolume(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close(ctx)
			h, err := v.Open(ctx, "/f", syscall.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(ctx)
			tc.spoil(t, tv, fail)
			err = v.Unlink(ctx, "/f")
			fail.Store(false)
			if tc.wantErr != 0 {
				wantErrno(t, err, tc.wantErr)
				if got := readAll(t, h); !bytes.Equal(got, data) {
					t.Fatalf("after the failed unlink the handle reads %d bytes, want %d", len(got), len(data))
				}
				if got := readFile(t, tv.reopen(t), "/f"); !bytes.Equal(got, data) {
					t.Fatalf("after the failed unlink /f holds %d bytes, want %d", len(got), len(data))
				}
				return
			}
			if err != nil {
				t.Fatalf("unlink: %v", err)
			}
			_, err = tv.reopen(t).Stat(ctx, "/f")
			wantErrno(t, err, syscall.ENOENT)
		})
	}
}

// gatedGets is a store whose first GET of key, once armed, fetches the
// object and then waits for release before returning it: an open
// caught between its lookup and its registration.
type gatedGets struct {
	blobstore.Store
	key     string
	armed   *atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s gatedGets) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	if key != s.key || !s.armed.CompareAndSwap(true, false) {
		return s.Store.Get(ctx, key, opts)
	}
	rc, info, err := s.Store.Get(ctx, key, opts)
	if err != nil {
		return rc, info, err
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	close(s.entered)
	<-s.release
	return io.NopCloser(bytes.NewReader(body)), info, err
}

// TestOpenRacingUnlink: an open that has looked its path up but not yet
// registered the file when an unlink (or a rename over it) of the same
// path runs still reads the version it opened. The unlink waits for the
// open's registration, then gives it a private copy; before the path
// locks, the unlink saw no open file and deleted the object under it.
func TestOpenRacingUnlink(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*cipher.ChunkSize+300)/16)
	cases := []struct {
		name    string
		replace func(ctx context.Context, v *Volume) error
	}{
		{"unlink", func(ctx context.Context, v *Volume) error { return v.Unlink(ctx, "/f") }},
		{"rename over it", func(ctx context.Context, v *Volume) error { return v.Rename(ctx, "/new", "/f", 0) }},
	}
	for _, mode := range modes {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				tv := newTestVolume(t, mode)
				ctx := context.Background()
				writeFile(t, tv.Volume, "/f", data)
				writeFile(t, tv.Volume, "/new", []byte("the new file"))
				flush(t, tv.Volume)
				gate := gatedGets{Store: tv.store, key: objectKeyOf(t, tv.Volume, "/f"), armed: &atomic.Bool{},
					entered: make(chan struct{}), release: make(chan struct{})}
				gate.armed.Store(true)
				opts := tv.options
				opts.CacheDir = t.TempDir()
				opts.Store = gate
				v, err := OpenVolume(ctx, opts) // cold: the open's lookup asks the store
				if err != nil {
					t.Fatal(err)
				}
				defer v.Close(ctx)
				waiting := make(chan struct{}) // closed once a path lock holder waits for another
				var once sync.Once
				v.pathWait = func() { once.Do(func() { close(waiting) }) }

				type opened struct {
					h   *Handle
					err error
				}
				openDone := make(chan opened, 1)
				go func() {
					h, err := v.Open(ctx, "/f", syscall.O_RDONLY)
					openDone <- opened{h, err}
				}()
				<-gate.entered // the open has looked /f up, holding its path lock
				replaceDone := make(chan error, 1)
				go func() { replaceDone <- tc.replace(ctx, v) }()
				select {
				case err := <-replaceDone: // what the race did: the object went first
					close(gate.release)
					t.Fatalf("the %s finished (%v) while an open of its path was between its lookup and its registration", tc.name, err)
				case <-waiting: // waiting for the open's registration, as it should
				}
				close(gate.release)
				o := <-openDone
				replaceErr := <-replaceDone
				if o.err != nil {
					t.Fatalf("open: %v", o.err)
				}
				defer o.h.Close(ctx)
				if replaceErr != nil {
					t.Fatalf("%s: %v", tc.name, replaceErr)
				}
				if got := readAll(t, o.h); !bytes.Equal(got, data) {
					t.Fatalf("the handle read %d bytes, want the %d it opened", len(got), len(data))
				}
			})
		}
	}
}

// TestOpensRacingUnlinksAndRenames opens and reads stored files while
// other goroutines unlink them and rename stored files over them (few
// paths, so their locks collide): every open either fails with ENOENT
// or reads one whole version, and nothing deadlocks.
func TestOpensRacingUnlinksAndRenames(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	v := tv.Volume
	const size = cipher.ChunkSize + 512
	store := func(p string, g, i int) error { // a stored (fsynced, closed) version
		h, _, err := v.Create(ctx, p, 0o644, syscall.O_WRONLY|syscall.O_TRUNC)
		if err != nil {
			return err
		}
		defer h.Close(ctx)
		if _, err := h.WriteAt(ctx, bytes.Repeat([]byte(fmt.Sprintf("g%02d-v%05d------", g, i)), size/16), 0); err != nil {
			return err
		}
		return h.Fsync(ctx)
	}
	paths := []string{"/a", "/b", "/c"}
	for i, p := range paths {
		if err := store(p, 99, i); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 { // writers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 16 {
				p := paths[(g+i)%len(paths)]
				err := v.Unlink(ctx, p)
				if i%2 == 1 {
					tmp := fmt.Sprintf("/tmp%d", g)
					if err = store(tmp, g, i); err == nil {
						err = v.Rename(ctx, tmp, p, 0)
					}
				}
				if err != nil && !errors.Is(err, syscall.ENOENT) {
					errs <- fmt.Errorf("writer %d step %d on %s: %w", g, i, p, err)
					return
				}
			}
		}()
	}
	for g := range 4 { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2*size)
			for i := range 40 {
				p := paths[(g+i)%len(paths)]
				h, err := v.Open(ctx, p, syscall.O_RDONLY)
				if errors.Is(err, syscall.ENOENT) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("open %s: %w", p, err)
					return
				}
				n := 0
				for err == nil {
					var m int
					m, err = h.ReadAt(ctx, buf[n:], int64(n))
					n += m
				}
				h.Close(ctx)
				if !errors.Is(err, io.EOF) {
					errs <- fmt.Errorf("read %s at %d: %w", p, n, err)
					return
				}
				got := buf[:n]
				if n != size || !bytes.Equal(got, bytes.Repeat(got[:16], size/16)) {
					errs <- fmt.Errorf("read %s: %d bytes, not one whole version", p, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLookupInFlightAcrossUnlink: a lookup that fetched a file's
// metadata before an unlink and returns after it must not leave the
// deleted version in the metadata cache, where a later open would find
// it and fail at its first read.
func TestLookupInFlightAcrossUnlink(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*cipher.ChunkSize+300)/16)
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/f", data)
	flush(t, tv.Volume)
	gate := gatedGets{Store: tv.store, key: objectKeyOf(t, tv.Volume, "/f"), armed: &atomic.Bool{},
		entered: make(chan struct{}), release: make(chan struct{})}
	gate.armed.Store(true)
	opts := tv.options
	opts.CacheDir = t.TempDir()
	opts.Store = gate
	v, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(ctx)
	statDone := make(chan error, 1)
	go func() {
		_, err := v.Stat(ctx, "/f")
		statDone <- err
	}()
	<-gate.entered // the stat has fetched /f's metadata
	if err := v.Unlink(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	if err := <-statDone; err != nil {
		t.Fatalf("stat: %v", err) // it asked before the unlink
	}
	h, err := v.Open(ctx, "/f", syscall.O_RDONLY)
	if err == nil {
		defer h.Close(ctx)
		got := readAll(t, h)
		t.Fatalf("open after the unlink succeeded and read %d bytes; want ENOENT", len(got))
	}
	wantErrno(t, err, syscall.ENOENT)
}
