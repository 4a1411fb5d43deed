package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// countingStore counts the requests a Volume makes.
type countingStore struct {
	blobstore.Store
	mu     sync.Mutex
	counts map[string]int
	// onList, if set, is called at the start of every List and ListAfter
	// (List with zero options).
	onList func(prefix, delim string, opts blobstore.ListOptions)
	// onGet, if set, is called at the start of every Get.
	onGet func(key string)
}

func (c *countingStore) inc(op string) {
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
}

func (c *countingStore) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[op]
}

// snapshot returns the counts of every request kind so far.
func (c *countingStore) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

func (c *countingStore) reset() {
	c.mu.Lock()
	clear(c.counts)
	c.mu.Unlock()
}

// indexOp is op, or "index op" for a directory index (dirindex.go): the
// requests that keep the cache are counted apart from the filesystem's.
func indexOp(op, key string) string {
	if strings.HasPrefix(key, cipher.DirIndexPrefix) {
		return "index " + op
	}
	return op
}

func (c *countingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	c.inc(indexOp("put", key))
	return c.Store.Put(ctx, key, body, size, opts)
}

func (c *countingStore) Multipart(ctx context.Context, key string, opts blobstore.PutOptions) (blobstore.MultipartUpload, error) {
	c.inc("multipart")
	return c.Store.Multipart(ctx, key, opts)
}

func (c *countingStore) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	c.inc(indexOp("get", key))
	if c.onGet != nil {
		c.onGet(key)
	}
	return c.Store.Get(ctx, key, opts)
}

func (c *countingStore) Head(ctx context.Context, key string) (blobstore.ObjectInfo, error) {
	c.inc("head")
	return c.Store.Head(ctx, key)
}

func (c *countingStore) Copy(ctx context.Context, src, dst string, opts blobstore.CopyOptions) (blobstore.ObjectInfo, error) {
	c.inc("copy")
	return c.Store.Copy(ctx, src, dst, opts)
}

func (c *countingStore) List(ctx context.Context, prefix, delim string) iter.Seq2[blobstore.Entry, error] {
	c.inc("list")
	if c.onList != nil {
		c.onList(prefix, delim, blobstore.ListOptions{})
	}
	return c.pulled(c.Store.List(ctx, prefix, delim))
}

// pulled counts the entries a listing's consumer takes ("listed"): on
// S3, one more entry past a page is one more request.
func (c *countingStore) pulled(list iter.Seq2[blobstore.Entry, error]) iter.Seq2[blobstore.Entry, error] {
	return func(yield func(blobstore.Entry, error) bool) {
		for e, err := range list {
			c.inc("listed")
			if !yield(e, err) {
				return
			}
		}
	}
}

func (c *countingStore) ListAfter(ctx context.Context, prefix, delim string, opts blobstore.ListOptions) iter.Seq2[blobstore.Entry, error] {
	c.inc("list")
	if c.onList != nil {
		c.onList(prefix, delim, opts)
	}
	return c.pulled(c.Store.ListAfter(ctx, prefix, delim, opts))
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	c.inc("delete")
	return c.Store.Delete(ctx, key)
}

func (c *countingStore) DeleteMany(ctx context.Context, keys []string) error {
	c.inc("deletemany")
	return c.Store.DeleteMany(ctx, keys)
}

type testVol struct {
	*Volume
	store    *countingStore
	dir      string // the test's directory: the local store (store/) and the cache (cache/)
	storeDir string // where the store keeps its objects: dir/store, or versitygw's bucket directory
	root     *cipher.RootKey
	cfg      *cipher.Config
	mode     string
	options  Options
}

func testRoot(t testing.TB, seed byte) *cipher.RootKey {
	t.Helper()
	r, err := cipher.NewSymKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newTestVolume creates and opens a volume in a local store in a
// temporary directory.
func newTestVolume(t testing.TB, mode string, tweak ...func(*Options)) *testVol {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, storeDir := testStore(t, dir)
	cs := &countingStore{Store: store, counts: map[string]int{}}
	root := testRoot(t, 7)
	var err error
	var kr *cipher.Keyring
	if mode == EncryptionClient {
		if kr, err = cipher.NewKeyring(); err != nil {
			t.Fatal(err)
		}
	}
	var rootArg *cipher.RootKey
	if mode == EncryptionClient {
		rootArg = root
	}
	cfg, err := cipher.NewConfig(mode, "", "", kr, rootArg)
	if err != nil {
		t.Fatal(err)
	}
	if err := InitVolume(ctx, cs, cfg, kr); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Store: cs, Roots: []*cipher.RootKey{root}, Encryption: mode,
		CacheDir: filepath.Join(dir, "cache"), WritebackDelay: 20 * time.Millisecond,
		UID: 1000, GID: 1000,
	}
	for _, f := range tweak {
		f(&opts)
	}
	v, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testVol{Volume: v, store: cs, dir: dir, storeDir: storeDir, root: root, cfg: cfg, mode: mode, options: opts}
}

// reopen opens the same store again (a fresh mount: cold caches).
func (tv *testVol) reopen(t testing.TB) *Volume {
	t.Helper()
	opts := tv.options
	opts.CacheDir = t.TempDir()
	v, err := OpenVolume(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close(context.Background()) })
	return v
}

func writeFile(t testing.TB, v *Volume, p string, data []byte) {
	t.Helper()
	ctx := context.Background()
	h, _, err := v.Create(ctx, p, 0o644, syscall.O_WRONLY|syscall.O_TRUNC)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := h.WriteAt(ctx, data, 0); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, v *Volume, p string) []byte {
	t.Helper()
	b, err := tryRead(v, p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

func tryRead(v *Volume, p string) ([]byte, error) {
	ctx := context.Background()
	h, err := v.Open(ctx, p, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer h.Close(ctx)
	var out []byte
	buf := make([]byte, 100<<10)
	for off := int64(0); ; {
		n, err := h.ReadAt(ctx, buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
	}
}

func flush(t testing.TB, v *Volume) {
	t.Helper()
	if err := v.Flush(context.Background(), nil); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func names(ents []DirEntry) string {
	var s []string
	for _, e := range ents {
		s = append(s, e.Name)
	}
	return strings.Join(s, ",")
}

// storeFiles returns the bytes that every file below dir holds, and
// the extended attributes of every file and directory (as entries "path
// xattr:name"; versitygw keeps object metadata there).
func storeFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if !info.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = b
		}
		for name, val := range xattrs(p) {
			out[p+" xattr:"+name] = val
		}
		return nil
	})
	return out
}

// xattrs returns the extended attributes of p (none where it has none
// or the file system keeps none).
func xattrs(p string) map[string][]byte {
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	out := map[string][]byte{}
	for name := range strings.SplitSeq(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		val := make([]byte, 64<<10)
		if m, err := syscall.Getxattr(p, name, val); err == nil {
			out[name] = val[:m]
		}
	}
	return out
}

func wantErrno(t testing.TB, err error, want syscall.Errno) {
	t.Helper()
	if got := Errno(err); got != want {
		t.Fatalf("err = %v (errno %v), want %v", err, got, want)
	}
}

// manualTime is a clock for metaCache.now that moves only when the test
// advances it.
type manualTime struct {
	mu sync.Mutex
	t  time.Time
}

func (m *manualTime) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

func (m *manualTime) advance(d time.Duration) {
	m.mu.Lock()
	m.t = m.t.Add(d)
	m.mu.Unlock()
}

var modes = []string{EncryptionClient, EncryptionNone}

// testStore is a local store in dir, or with COFFER_FS_VERSITYGW=1 under
// scripts/with-servers.sh versitygw, a fresh bucket of that server. It
// also returns the directory that holds the store's bytes (versitygw's
// POSIX backend keeps a bucket as a directory). COFFER_FS_VERSITYGW=1
// without a server fails under COFFER_REQUIRE_SERVERS=1 and skips
// otherwise: it never falls back to the local store.
func testStore(t testing.TB, dir string) (blobstore.Store, string) {
	t.Helper()
	if os.Getenv("COFFER_FS_VERSITYGW") != "1" {
		local, err := blobstore.NewLocal(filepath.Join(dir, "store"))
		if err != nil {
			t.Fatal(err)
		}
		return local, filepath.Join(dir, "store")
	}
	ep, data := os.Getenv("COFFER_TEST_VERSITYGW_ENDPOINT"), os.Getenv("COFFER_TEST_VERSITYGW_DATA_DIR")
	if ep == "" || data == "" {
		const msg = "COFFER_FS_VERSITYGW=1 but no versitygw (COFFER_TEST_VERSITYGW_ENDPOINT, _DATA_DIR): run under scripts/with-servers.sh versitygw"
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bucket := fmt.Sprintf("fs%d", time.Now().UnixNano())
	bucketDir := filepath.Join(data, bucket)
	if err := os.Mkdir(bucketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := blobstore.Open(context.Background(), "s3://"+bucket, blobstore.Options{
		Endpoint: ep, Region: "us-east-1", PathStyle: true, Concurrency: 64,
		AccessKeyID:     os.Getenv("COFFER_TEST_VERSITYGW_ACCESS_KEY"),
		SecretAccessKey: os.Getenv("COFFER_TEST_VERSITYGW_SECRET_KEY"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, bucketDir
}
