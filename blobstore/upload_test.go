package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

// faultyStore wraps a store and injects failures into multipart uploads.
type faultyStore struct {
	blobstore.Store
	// fail returns the error for attempt (1-based) of part n, or nil.
	fail  func(n, attempt int) error
	delay time.Duration

	mu       sync.Mutex
	attempts map[int]int
	buffers  map[*byte]bool // distinct part buffers seen
	inFlight int
	maxIn    int
	aborts   int
	puts     atomic.Int32
}

func newFaulty(t *testing.T, fail func(n, attempt int) error) *faultyStore {
	return &faultyStore{Store: newLocal(t), fail: fail, attempts: map[int]int{}, buffers: map[*byte]bool{}}
}

func (f *faultyStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	f.puts.Add(1)
	return f.Store.Put(ctx, key, body, size, opts)
}

func (f *faultyStore) Multipart(ctx context.Context, key string, opts blobstore.PutOptions) (blobstore.MultipartUpload, error) {
	m, err := f.Store.Multipart(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return &faultyUpload{MultipartUpload: m, s: f}, nil
}

type faultyUpload struct {
	blobstore.MultipartUpload
	s *faultyStore
}

func (u *faultyUpload) UploadPart(ctx context.Context, n int, body []byte) (blobstore.Part, error) {
	s := u.s
	s.mu.Lock()
	s.attempts[n]++
	attempt := s.attempts[n]
	if len(body) > 0 {
		s.buffers[&body[:1][0]] = true
	}
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return blobstore.Part{}, ctx.Err()
		}
	}
	if s.fail != nil {
		if err := s.fail(n, attempt); err != nil {
			return blobstore.Part{}, &blobstore.Error{Op: "upload part", Err: err}
		}
	}
	return u.MultipartUpload.UploadPart(ctx, n, body)
}

func (u *faultyUpload) Abort(ctx context.Context) error {
	u.s.mu.Lock()
	u.s.aborts++
	u.s.mu.Unlock()
	return u.MultipartUpload.Abort(ctx)
}

const testPart = 64 << 10

func uploadBytes(t *testing.T, st blobstore.Store, key string, data []byte, size int64, opts blobstore.UploadOptions) (blobstore.ObjectInfo, error) {
	t.Helper()
	if opts.PartSize == 0 {
		opts.PartSize = testPart
	}
	return blobstore.Upload(context.Background(), st, key, bytes.NewReader(data), size, opts)
}

func TestUploadRetriesTransientFailures(t *testing.T) {
	for _, kind := range []error{blobstore.ErrTransient, blobstore.ErrThrottled} {
		t.Run(kind.Error(), func(t *testing.T) {
			// Every odd part fails twice before it succeeds.
			f := newFaulty(t, func(n, attempt int) error {
				if n%2 == 1 && attempt <= 2 {
					return kind
				}
				return nil
			})
			data := bytes.Repeat([]byte("0123456789abcdef"), 10*testPart/16+7)
			_, err := uploadBytes(t, f, "k", data, int64(len(data)), blobstore.UploadOptions{Concurrency: 3})
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if got := readKey(t, f, "k"); got != string(data) {
				t.Fatal("stored object differs")
			}
			if f.attempts[1] != 3 || f.attempts[2] != 1 || f.aborts != 0 {
				t.Fatalf("attempts %v, aborts %d", f.attempts, f.aborts)
			}
		})
	}
}

func TestUploadAbortsOnPermanentFailure(t *testing.T) {
	f := newFaulty(t, func(n, attempt int) error {
		if n == 3 {
			return blobstore.ErrAccessDenied
		}
		return nil
	})
	data := make([]byte, 8*testPart)
	_, err := uploadBytes(t, f, "k", data, int64(len(data)), blobstore.UploadOptions{Concurrency: 2})
	if !errors.Is(err, blobstore.ErrAccessDenied) {
		t.Fatalf("Upload: %v, want ErrAccessDenied", err)
	}
	if f.attempts[3] != 1 {
		t.Errorf("a permanent failure was retried: %d attempts", f.attempts[3])
	}
	if f.aborts != 1 {
		t.Errorf("%d aborts, want 1", f.aborts)
	}
	if _, err := f.Head(context.Background(), "k"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("failed upload left an object: %v", err)
	}
}

func TestUploadGivesUpAfterRetries(t *testing.T) {
	f := newFaulty(t, func(n, attempt int) error { return blobstore.ErrTransient })
	data := make([]byte, 3*testPart)
	_, err := uploadBytes(t, f, "k", data, int64(len(data)), blobstore.UploadOptions{Retries: 2, Concurrency: 1})
	if !errors.Is(err, blobstore.ErrTransient) || f.attempts[1] != 3 || f.aborts != 1 {
		t.Fatalf("err %v, attempts %v, aborts %d; want ErrTransient after 3 attempts, one abort", err, f.attempts, f.aborts)
	}
	f = newFaulty(t, func(n, attempt int) error { return blobstore.ErrTransient })
	_, err = uploadBytes(t, f, "k", data, int64(len(data)), blobstore.UploadOptions{Retries: -1, Concurrency: 1})
	if err == nil || f.attempts[1] != 1 {
		t.Fatalf("Retries -1: err %v, attempts %v", err, f.attempts)
	}
}

func TestUploadBoundsConcurrencyAndMemory(t *testing.T) {
	for _, conc := range []int{1, 3, 5} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			f := newFaulty(t, nil)
			f.delay = 20 * time.Millisecond
			data := make([]byte, 20*testPart+5)
			var calls, last atomic.Int64
			_, err := uploadBytes(t, f, "k", data, int64(len(data)), blobstore.UploadOptions{
				Concurrency: conc,
				Progress: func(done int64) {
					if done <= last.Load() {
						t.Errorf("progress went from %d to %d", last.Load(), done)
					}
					last.Store(done)
					calls.Add(1)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if f.maxIn != conc {
				t.Errorf("%d parts in flight at most, want %d", f.maxIn, conc)
			}
			if len(f.buffers) > conc+1 {
				t.Errorf("%d part buffers used, bound is %d", len(f.buffers), conc+1)
			}
			if calls.Load() != 21 || last.Load() != int64(len(data)) {
				t.Errorf("progress: %d calls, last %d", calls.Load(), last.Load())
			}
		})
	}
}

func TestUploadSharedPool(t *testing.T) {
	for _, poolSize := range []int{1, 3} {
		t.Run(fmt.Sprint(poolSize), func(t *testing.T) {
			f := newFaulty(t, nil)
			f.delay = 5 * time.Millisecond
			pool := blobstore.NewPartPool(testPart, poolSize)
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					data := bytes.Repeat([]byte{byte(i)}, 6*testPart)
					if _, err := uploadBytes(t, f, fmt.Sprint(i), data, -1, blobstore.UploadOptions{Pool: pool, Concurrency: 4}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if len(f.buffers) > poolSize {
				t.Errorf("%d buffers used by uploads sharing a pool of %d", len(f.buffers), poolSize)
			}
			for i := range 4 {
				if got := readKey(t, f, fmt.Sprint(i)); got != string(bytes.Repeat([]byte{byte(i)}, 6*testPart)) {
					t.Errorf("object %d differs", i)
				}
			}
		})
	}
}

func TestUploadCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled once part 2 is being sent: the upload has begun, and the
	// other parts are in flight or still to come.
	f := newFaulty(t, func(n, attempt int) error {
		if n == 2 {
			cancel()
		}
		return nil
	})
	data := make([]byte, 10*testPart)
	_, err := blobstore.Upload(ctx, f, "k", bytes.NewReader(data), int64(len(data)), blobstore.UploadOptions{PartSize: testPart})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload: %v, want context.Canceled", err)
	}
	if f.aborts != 1 {
		t.Errorf("%d aborts, want 1", f.aborts)
	}
	if _, err := f.Head(context.Background(), "k"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("cancelled upload left an object: %v", err)
	}
}

type errReader struct{ after int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		return 0, errors.New("source broke")
	}
	n := min(len(p), r.after)
	r.after -= n
	return n, nil
}

func TestUploadSourceError(t *testing.T) {
	f := newFaulty(t, nil)
	_, err := blobstore.Upload(context.Background(), f, "k", &errReader{after: 3 * testPart}, -1, blobstore.UploadOptions{PartSize: testPart})
	if err == nil || f.aborts != 1 {
		t.Fatalf("err %v, aborts %d", err, f.aborts)
	}
	if _, err := f.Head(context.Background(), "k"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("broken upload left an object: %v", err)
	}
}

func TestUploadSmallIsOnePut(t *testing.T) {
	f := newFaulty(t, nil)
	for _, n := range []int{0, 1, testPart} {
		for _, size := range []int64{int64(n), -1} {
			f.puts.Store(0)
			f.attempts = map[int]int{}
			if _, err := uploadBytes(t, f, "k", make([]byte, n), size, blobstore.UploadOptions{}); err != nil {
				t.Fatal(err)
			}
			if f.puts.Load() != 1 || len(f.attempts) != 0 {
				t.Errorf("%d bytes (size %d): %d puts, %d parts; want one put", n, size, f.puts.Load(), len(f.attempts))
			}
		}
	}
}

// TestUploadSmallTakesNoPartBuffer: a small body of known size is stored
// while every buffer of the shared pool is taken; one of unknown size
// waits for a buffer. The uploads' context is cancelled, so a wait for a
// buffer ends at once; the store's Put does not look at it.
func TestUploadSmallTakesNoPartBuffer(t *testing.T) {
	f := newFaulty(t, nil)
	pool := blobstore.NewPartPool(testPart, 1)
	held, err := pool.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Put(held)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st := putIgnoringContext{f}
	if _, err := blobstore.Upload(ctx, st, "small", bytes.NewReader(make([]byte, 4096)), 4096, blobstore.UploadOptions{Pool: pool}); err != nil {
		t.Fatalf("4 KiB upload with the pool exhausted: %v", err)
	}
	if f.puts.Load() != 1 {
		t.Fatalf("%d puts, want 1", f.puts.Load())
	}
	if _, err := blobstore.Upload(ctx, st, "unknown", bytes.NewReader(make([]byte, 4096)), -1, blobstore.UploadOptions{Pool: pool}); !errors.Is(err, context.Canceled) {
		t.Fatalf("upload of unknown size with the pool exhausted: %v, want it waiting for a buffer (context canceled)", err)
	}
}

// putIgnoringContext stores with a context of its own.
type putIgnoringContext struct{ *faultyStore }

func (s putIgnoringContext) Put(_ context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	return s.faultyStore.Put(context.Background(), key, body, size, opts)
}
