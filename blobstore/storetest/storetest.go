package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

// Suite runs the conformance tests against one backend.
type Suite struct {
	// NewStore returns a fresh, empty store for one test (its own
	// directory, bucket or prefix) and registers its cleanup with
	// t.Cleanup.
	NewStore func(t testing.TB) blobstore.Store
	// PartSize is the multipart part size the multipart and Upload tests
	// use; 0: blobstore.MinPartSize (5 MiB, S3's minimum).
	PartSize int64
	// Timeout bounds each test; 0: two minutes.
	Timeout time.Duration

	// Documented server limits. The tests that would cross one check
	// instead that the server refuses it with an error (never silently
	// loses data), and log that they did so.

	// FileDirConflict: the server stores keys as files and directories,
	// so a key and a longer key under it ("x" and "x/y") cannot both
	// exist (versitygw's posix backend).
	FileDirConflict bool
	// MaxSegmentLen: the longest '/'-separated key segment the server
	// accepts (file-system-backed servers: 255); 0: only MaxKeyLen. A
	// longer one must fail (ideally with ErrInvalidKey).
	MaxSegmentLen int
	// EmptyPrefixesLinger: the server keeps listing a prefix as a common
	// prefix for a while after its last key is deleted (SeaweedFS, until
	// its empty-folder cleaner runs). TestDelete then logs that one
	// check's result instead of failing it.
	EmptyPrefixesLinger bool
	// MetadataCopyKeepsLastModified: a copy of an object onto itself with
	// new metadata leaves its LastModified as it was (versitygw's posix
	// backend changes the file's xattrs only), so IfUnmodifiedSince
	// cannot see a metadata-only change. TestMetadataCopyStamps checks
	// that the server does exactly that, so a server that changes its
	// behaviour fails until the declaration (and doc.go) follow.
	MetadataCopyKeepsLastModified bool
}

// Run runs every Test method of s as a subtest of t.
func (s *Suite) Run(t *testing.T) {
	v := reflect.ValueOf(s)
	typ := v.Type()
	ran := 0
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if !strings.HasPrefix(m.Name, "Test") {
			continue
		}
		fn, ok := v.Method(i).Interface().(func(*testing.T))
		if !ok {
			t.Fatalf("suite method %s has the wrong signature", m.Name)
		}
		ran++
		t.Run(strings.TrimPrefix(m.Name, "Test"), fn)
	}
	if ran == 0 {
		t.Fatal("suite has no tests")
	}
}

func (s *Suite) partSize() int64 {
	if s.PartSize > 0 {
		return s.PartSize
	}
	return blobstore.MinPartSize
}

// setup returns a fresh store and a context bounded by the suite timeout.
func (s *Suite) setup(t *testing.T) (blobstore.Store, context.Context) {
	t.Helper()
	d := s.Timeout
	if d == 0 {
		d = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return s.NewStore(t), ctx
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

func put(t *testing.T, ctx context.Context, st blobstore.Store, key string, data []byte, opts blobstore.PutOptions) blobstore.ObjectInfo {
	t.Helper()
	info, err := st.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if info.ETag == "" {
		t.Fatalf("Put(%q) returned no ETag", key)
	}
	return info
}

func get(t *testing.T, ctx context.Context, st blobstore.Store, key string, opts blobstore.GetOptions) ([]byte, blobstore.ObjectInfo) {
	t.Helper()
	rc, info, err := st.Get(ctx, key, opts)
	if err != nil {
		t.Fatalf("Get(%q, %+v): %v", key, opts, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q) read: %v", key, err)
	}
	return b, info
}

func getAll(t *testing.T, ctx context.Context, st blobstore.Store, key string) []byte {
	t.Helper()
	b, _ := get(t, ctx, st, key, blobstore.GetOptions{Length: -1})
	return b
}

func list(t *testing.T, ctx context.Context, st blobstore.Store, prefix, delim string) []blobstore.Entry {
	t.Helper()
	var out []blobstore.Entry
	for e, err := range st.List(ctx, prefix, delim) {
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, delim, err)
		}
		out = append(out, e)
	}
	return out
}

// entryNames renders entries as keys, prefixes marked with a trailing "*".
func entryNames(es []blobstore.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		if e.IsPrefix {
			out = append(out, e.Key+"*")
		} else {
			out = append(out, e.Key)
		}
	}
	return out
}

func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			var e *blobstore.Error
			if !errors.As(err, &e) {
				t.Errorf("%s: error %v is not a *blobstore.Error", what, err)
			}
			return
		}
	}
	t.Fatalf("%s: got error %v, want %v", what, err, targets)
}

func metaEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// putMany stores keys with bounded parallelism.
func putMany(t *testing.T, ctx context.Context, st blobstore.Store, keys []string) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 16)
		first atomic.Pointer[error]
	)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := st.Put(ctx, k, strings.NewReader(k), int64(len(k)), blobstore.PutOptions{}); err != nil {
				first.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		t.Fatalf("putMany: %v", *p)
	}
}

// TestPutGetHead: a put is read back whole, Head and Get agree with it.
func (s *Suite) TestPutGetHead(t *testing.T) {
	st, ctx := s.setup(t)
	data := randomBytes(100_000)
	meta := map[string]string{"coffer-test": "v1"}
	pi := put(t, ctx, st, "dir/obj", data, blobstore.PutOptions{Metadata: meta})
	got, gi := get(t, ctx, st, "dir/obj", blobstore.GetOptions{Length: -1})
	if !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, not the %d put", len(got), len(data))
	}
	hi, err := st.Head(ctx, "dir/obj")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	for _, c := range []struct {
		name string
		info blobstore.ObjectInfo
	}{{"Get", gi}, {"Head", hi}} {
		if c.info.Size != int64(len(data)) {
			t.Errorf("%s size %d, want %d", c.name, c.info.Size, len(data))
		}
		if c.info.ETag != pi.ETag {
			t.Errorf("%s ETag %q, Put said %q", c.name, c.info.ETag, pi.ETag)
		}
		if !metaEqual(c.info.Metadata, meta) {
			t.Errorf("%s metadata %v, want %v", c.name, c.info.Metadata, meta)
		}
		if c.info.LastModified.IsZero() {
			t.Errorf("%s has no LastModified", c.name)
		}
	}
	// Overwrite: the new body and ETag replace the old.
	data2 := []byte("second version")
	pi2 := put(t, ctx, st, "dir/obj", data2, blobstore.PutOptions{})
	if pi2.ETag == pi.ETag {
		t.Errorf("overwrite with other bytes kept ETag %q", pi.ETag)
	}
	if got := getAll(t, ctx, st, "dir/obj"); !bytes.Equal(got, data2) {
		t.Errorf("after overwrite Get = %q", got)
	}
	if hi, _ := st.Head(ctx, "dir/obj"); len(hi.Metadata) != 0 {
		t.Errorf("overwrite without metadata kept %v", hi.Metadata)
	}
}

// TestEmptyObject: zero-byte objects round-trip.
func (s *Suite) TestEmptyObject(t *testing.T) {
	st, ctx := s.setup(t)
	put(t, ctx, st, "empty", nil, blobstore.PutOptions{})
	if got := getAll(t, ctx, st, "empty"); len(got) != 0 {
		t.Fatalf("Get of empty object returned %d bytes", len(got))
	}
	hi, err := st.Head(ctx, "empty")
	if err != nil || hi.Size != 0 {
		t.Fatalf("Head = %+v, %v; want size 0", hi, err)
	}
}

// TestMetadataRoundTrip: user metadata values survive as given.
func (s *Suite) TestMetadataRoundTrip(t *testing.T) {
	st, ctx := s.setup(t)
	cases := []struct {
		name string
		meta map[string]string
	}{
		{"none", nil},
		{"simple", map[string]string{"a": "b"}},
		{"several", map[string]string{"coffer-attr": "x", "coffer-name": "y", "coffer-v": "1"}},
		{"punctuation", map[string]string{"p": "a=b;c,d:e/f+g?h&i%j(k)l[m]n{o}p!q~r*s'u@v#w$x^y|z"}},
		{"inner spaces", map[string]string{"s": "hello   world  !"}},
		{"base64", map[string]string{"b64": "q83vASNFZ4mrze8BI0VniQ==", "b64url": "q83vASNFZ4mrze8BI0VniQ_-"}},
		{"long", map[string]string{"long": strings.Repeat("0123456789abcdef", 100)}},
		{"digits and dashes in keys", map[string]string{"x-1-y": "1", "k_2": "2"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := fmt.Sprintf("meta/%d", i)
			put(t, ctx, st, key, []byte(c.name), blobstore.PutOptions{Metadata: c.meta})
			hi, err := st.Head(ctx, key)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			if !metaEqual(hi.Metadata, c.meta) {
				t.Errorf("Head metadata %q, want %q", hi.Metadata, c.meta)
			}
			_, gi := get(t, ctx, st, key, blobstore.GetOptions{Length: -1})
			if !metaEqual(gi.Metadata, c.meta) {
				t.Errorf("Get metadata %q, want %q", gi.Metadata, c.meta)
			}
		})
	}
}

// TestRangedGet: byte ranges at the edges of an object.
func (s *Suite) TestRangedGet(t *testing.T) {
	st, ctx := s.setup(t)
	data := randomBytes(1000)
	put(t, ctx, st, "r", data, blobstore.PutOptions{})
	put(t, ctx, st, "empty", nil, blobstore.PutOptions{})
	cases := []struct {
		key            string
		offset, length int64
		want           []byte
	}{
		{"r", 0, -1, data},
		{"r", 0, 1, data[:1]},
		{"r", 0, 1000, data},
		{"r", 1, 998, data[1:999]},
		{"r", 999, 1, data[999:]},
		{"r", 999, -1, data[999:]},
		{"r", 500, 10_000, data[500:]},
		{"r", 0, 0, nil},
		{"r", 1000, -1, nil},
		{"r", 1000, 5, nil},
		{"r", 5000, 5, nil},
		{"empty", 0, -1, nil},
		{"empty", 0, 10, nil},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s@%d+%d", c.key, c.offset, c.length), func(t *testing.T) {
			got, info := get(t, ctx, st, c.key, blobstore.GetOptions{Offset: c.offset, Length: c.length})
			if !bytes.Equal(got, c.want) {
				t.Errorf("got %d bytes, want %d (content differs: %v)", len(got), len(c.want), len(got) == len(c.want))
			}
			if size := int64(len(data)); c.key == "r" && info.Size != size {
				t.Errorf("info.Size %d, want the object's size %d", info.Size, size)
			}
		})
	}
}

// TestKeysNested: "a", "a/b", "a/b/c" and "ab" coexist.
func (s *Suite) TestKeysNested(t *testing.T) {
	st, ctx := s.setup(t)
	keys := []string{"a/b", "a", "ab", "a/b/c", "a-", "a/c"}
	if s.FileDirConflict {
		t.Log("Suite.FileDirConflict: checking that x beside x/y is refused, then keys without such pairs")
		put(t, ctx, st, "a/b", []byte("body of a/b"), blobstore.PutOptions{})
		if _, err := st.Put(ctx, "a", strings.NewReader("x"), 1, blobstore.PutOptions{}); err == nil {
			t.Fatal(`Put("a") beside "a/b" succeeded on a server declared to refuse it`)
		}
		if got := string(getAll(t, ctx, st, "a/b")); got != "body of a/b" {
			t.Fatalf("refused conflicting put changed a/b to %q", got)
		}
		keys = []string{"a/b", "ab", "a-", "a/c", "a/d/e"}
	}
	for _, k := range keys {
		put(t, ctx, st, k, []byte("body of "+k), blobstore.PutOptions{})
	}
	for _, k := range keys {
		if got := string(getAll(t, ctx, st, k)); got != "body of "+k {
			t.Errorf("Get(%q) = %q", k, got)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := entryNames(list(t, ctx, st, "", "")); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if s.FileDirConflict {
		return
	}
	if err := st.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := string(getAll(t, ctx, st, "a/b")); got != "body of a/b" {
		t.Errorf("after deleting a, Get(a/b) = %q", got)
	}
}

// TestSpecialKeys: keys with characters that need escaping somewhere,
// and keys of the full 1024 bytes in segments of up to 200 bytes (as
// coffer's encrypted names are).
func (s *Suite) TestSpecialKeys(t *testing.T) {
	st, ctx := s.setup(t)
	seg := strings.Repeat("s", 200)
	long := strings.Join([]string{seg, seg, seg, seg, seg}, "/")
	long += "/" + strings.Repeat("e", blobstore.MaxKeyLen-len(long)-1)
	keys := []string{
		"with space", "per%cent", "plus+sign", "eq=ual", "hash#tag", "question?", "amp&and",
		"semi;colon", "comma,", "paren(s)", "brack[e]t", "tilde~", "bang!", "star*", "quote'", "at@",
		"dollar$", "caret^", "unicode-ä-日本-🔑", "dots.in.name", "-leading-dash", "_under", "trailing.",
		"seg255/" + strings.Repeat("x", 255), long,
	}
	for _, k := range keys {
		put(t, ctx, st, k, []byte(k), blobstore.PutOptions{})
	}
	for _, k := range keys {
		if got := string(getAll(t, ctx, st, k)); got != k {
			t.Errorf("Get(%.40q) = %.40q", k, got)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := entryNames(list(t, ctx, st, "", "")); !slices.Equal(got, want) {
		t.Errorf("List = %q\nwant %q", got, want)
	}

	longSeg := "seg300/" + strings.Repeat("y", 300)
	if s.MaxSegmentLen > 0 && s.MaxSegmentLen < 300 {
		t.Logf("Suite.MaxSegmentLen %d: checking that a 300-byte segment is refused", s.MaxSegmentLen)
		_, err := st.Put(ctx, longSeg, strings.NewReader("x"), 1, blobstore.PutOptions{})
		if err == nil {
			t.Fatal("Put with a 300-byte segment succeeded on a server declared to refuse it")
		}
		if !errors.Is(err, blobstore.ErrInvalidKey) {
			t.Logf("refused, though not as ErrInvalidKey: %v", err)
		}
		return
	}
	put(t, ctx, st, longSeg, []byte("y"), blobstore.PutOptions{})
	if got := string(getAll(t, ctx, st, longSeg)); got != "y" {
		t.Errorf("300-byte segment: Get = %q", got)
	}
}

// TestInvalidKeys: keys no backend may accept.
func (s *Suite) TestInvalidKeys(t *testing.T) {
	st, ctx := s.setup(t)
	for _, k := range []string{"", strings.Repeat("k", blobstore.MaxKeyLen+1)} {
		_, err := st.Put(ctx, k, strings.NewReader("x"), 1, blobstore.PutOptions{})
		wantErr(t, fmt.Sprintf("Put of a %d-byte key", len(k)), err, blobstore.ErrInvalidKey)
	}
}

// listTree is a fresh store holding the keys the listing tests list,
// each key its own body.
func (s *Suite) listTree(t *testing.T) (blobstore.Store, context.Context) {
	st, ctx := s.setup(t)
	for _, k := range []string{"d/1", "d/2", "d/sub/x", "d/sub/y", "d/sub2/z", "d-x", "e", "dd/1", "d0"} {
		put(t, ctx, st, k, []byte(k), blobstore.PutOptions{})
	}
	return st, ctx
}

// TestList: prefixes and delimiters, in lexical order.
func (s *Suite) TestList(t *testing.T) {
	st, ctx := s.listTree(t)
	cases := []struct {
		prefix, delim string
		want          []string
	}{
		{"", "", []string{"d-x", "d/1", "d/2", "d/sub/x", "d/sub/y", "d/sub2/z", "d0", "dd/1", "e"}},
		{"", "/", []string{"d-x", "d/*", "d0", "dd/*", "e"}},
		{"d/", "/", []string{"d/1", "d/2", "d/sub/*", "d/sub2/*"}},
		{"d/", "", []string{"d/1", "d/2", "d/sub/x", "d/sub/y", "d/sub2/z"}},
		{"d/s", "/", []string{"d/sub/*", "d/sub2/*"}},
		{"d/sub", "", []string{"d/sub/x", "d/sub/y", "d/sub2/z"}},
		{"d/sub/", "/", []string{"d/sub/x", "d/sub/y"}},
		{"d", "/", []string{"d-x", "d/*", "d0", "dd/*"}},
		{"e", "/", []string{"e"}},
		{"nothing", "", nil},
		{"nothing/", "/", nil},
		{"d/", "s", []string{"d/1", "d/2", "d/s*"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q,%q", c.prefix, c.delim), func(t *testing.T) {
			es := list(t, ctx, st, c.prefix, c.delim)
			if got := entryNames(es); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
			for _, e := range es {
				if !e.IsPrefix && (e.Size != int64(len(e.Key)) || e.ETag == "") {
					t.Errorf("entry %q: size %d, etag %q", e.Key, e.Size, e.ETag)
				}
			}
		})
	}
}

// TestListAfter: listings from the first key after a start key, with
// and without a delimiter.
func (s *Suite) TestListAfter(t *testing.T) {
	st, ctx := s.listTree(t)
	cases := []struct {
		prefix, delim, after string
		want                 []string
	}{
		{"", "", "d/2", []string{"d/sub/x", "d/sub/y", "d/sub2/z", "d0", "dd/1", "e"}},
		{"", "", "", []string{"d-x", "d/1", "d/2", "d/sub/x", "d/sub/y", "d/sub2/z", "d0", "dd/1", "e"}},
		{"", "/", "d0", []string{"dd/*", "e"}},
		{"", "/", "d-x", []string{"d/*", "d0", "dd/*", "e"}},
		{"d/", "/", "d/1", []string{"d/2", "d/sub/*", "d/sub2/*"}},
		{"d/", "/", "d/sub", []string{"d/sub/*", "d/sub2/*"}},
		{"d/", "/", "d/a", []string{"d/sub/*", "d/sub2/*"}},
		{"d/", "/", "d/z", nil},
		{"d/", "/", "c", []string{"d/1", "d/2", "d/sub/*", "d/sub2/*"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q,%q,%q", c.prefix, c.delim, c.after), func(t *testing.T) {
			var es []blobstore.Entry
			for e, err := range st.ListAfter(ctx, c.prefix, c.delim, blobstore.ListOptions{StartAfter: c.after}) {
				if err != nil {
					t.Fatal(err)
				}
				es = append(es, e)
			}
			if got := entryNames(es); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestListPagination: listings past 1000 keys (one S3 page), early stop.
func (s *Suite) TestListPagination(t *testing.T) {
	st, ctx := s.setup(t)
	const n = 1005
	var keys []string
	for i := range n {
		keys = append(keys, fmt.Sprintf("p/%04d", i))
	}
	keys = append(keys, "p/sub/a", "q")
	putMany(t, ctx, st, keys)

	got := entryNames(list(t, ctx, st, "p/", ""))
	if len(got) != n+1 || !slices.IsSorted(got) {
		t.Fatalf("List(p/) returned %d keys (sorted: %v), want %d", len(got), slices.IsSorted(got), n+1)
	}
	got = entryNames(list(t, ctx, st, "p/", "/"))
	if len(got) != n+1 || got[n] != "p/sub/*" {
		t.Fatalf("List(p/, /) returned %d entries ending %q", len(got), got[len(got)-1])
	}
	// A small first page changes the requests, not what is listed: the
	// listing goes on past it (FirstPage 7, then pages of 1000 on S3).
	for _, first := range []int{0, 7, 499, blobstore.MaxListPage + 1} {
		var after []string
		for e, err := range st.ListAfter(ctx, "p/", "/", blobstore.ListOptions{StartAfter: "p/0499", FirstPage: first}) {
			if err != nil {
				t.Fatal(err)
			}
			after = append(after, e.Key)
		}
		increasing := true // each key once, in order
		for i := 1; i < len(after); i++ {
			increasing = increasing && after[i-1] < after[i]
		}
		if len(after) != n-500+1 || after[0] != "p/0500" || after[len(after)-1] != "p/sub/" || !increasing {
			t.Fatalf("ListAfter(p/, /, p/0499, first page %d) returned %d entries (each once, in order: %v), want %d from p/0500 to p/sub/",
				first, len(after), increasing, n-500+1)
		}
	}
	seen := 0
	for _, err := range st.List(ctx, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		if seen++; seen == 3 {
			break
		}
	}
	if seen != 3 {
		t.Fatalf("early stop: saw %d", seen)
	}
	if err := st.DeleteMany(ctx, keys); err != nil {
		t.Fatalf("DeleteMany of %d keys: %v", len(keys), err)
	}
	if got := list(t, ctx, st, "", ""); len(got) != 0 {
		t.Fatalf("after DeleteMany %d keys are left", len(got))
	}
}

// TestConditionalPut: create-only and replace-if-unchanged.
func (s *Suite) TestConditionalPut(t *testing.T) {
	st, ctx := s.setup(t)
	v1 := put(t, ctx, st, "c", []byte("one"), blobstore.PutOptions{IfNoneMatch: true})
	_, err := st.Put(ctx, "c", strings.NewReader("two"), 3, blobstore.PutOptions{IfNoneMatch: true})
	wantErr(t, "IfNoneMatch on an existing key", err, blobstore.ErrPreconditionFailed)

	v2 := put(t, ctx, st, "c", []byte("two"), blobstore.PutOptions{IfMatch: v1.ETag})
	_, err = st.Put(ctx, "c", strings.NewReader("three"), 5, blobstore.PutOptions{IfMatch: v1.ETag})
	wantErr(t, "IfMatch with a stale ETag", err, blobstore.ErrPreconditionFailed)
	if got := string(getAll(t, ctx, st, "c")); got != "two" {
		t.Fatalf("failed conditional puts changed the object to %q", got)
	}
	_, err = st.Put(ctx, "missing", strings.NewReader("x"), 1, blobstore.PutOptions{IfMatch: v2.ETag})
	wantErr(t, "IfMatch on a missing key", err, blobstore.ErrNotFound)
	if _, err := st.Head(ctx, "missing"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("failed IfMatch put created the key: %v", err)
	}
}

// TestConcurrentCreate: of racing create-only puts exactly one wins.
func (s *Suite) TestConcurrentCreate(t *testing.T) {
	st, ctx := s.setup(t)
	const n = 8
	var wg sync.WaitGroup
	var won, lost atomic.Int32
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("writer %d", i)
			_, err := st.Put(ctx, "race", strings.NewReader(body), int64(len(body)), blobstore.PutOptions{IfNoneMatch: true})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, blobstore.ErrPreconditionFailed):
				lost.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("racing create: %v", err)
	}
	if won.Load() != 1 || lost.Load() != n-1 {
		t.Fatalf("%d creates won and %d lost, want 1 and %d", won.Load(), lost.Load(), n-1)
	}
}

// TestConcurrentReplace: of racing replace-if-unchanged puts (distinct
// bodies, one ETag to match) exactly one wins; the object holds its body.
func (s *Suite) TestConcurrentReplace(t *testing.T) {
	st, ctx := s.setup(t)
	base := put(t, ctx, st, "race", []byte("base"), blobstore.PutOptions{})
	const n = 8
	var wg sync.WaitGroup
	var winner atomic.Int32
	var won, lost atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("writer %d", i)
			_, err := st.Put(ctx, "race", strings.NewReader(body), int64(len(body)), blobstore.PutOptions{IfMatch: base.ETag})
			switch {
			case err == nil:
				won.Add(1)
				winner.Store(int32(i))
			case errors.Is(err, blobstore.ErrPreconditionFailed):
				lost.Add(1)
			default:
				t.Errorf("racing replace: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || lost.Load() != n-1 {
		t.Fatalf("%d replaces won and %d lost, want 1 and %d", won.Load(), lost.Load(), n-1)
	}
	if got, want := string(getAll(t, ctx, st, "race")), fmt.Sprintf("writer %d", winner.Load()); got != want {
		t.Fatalf("object holds %q, the winner wrote %q", got, want)
	}
}

// TestConditionalGet: Get with a stale IfMatch fails.
func (s *Suite) TestConditionalGet(t *testing.T) {
	st, ctx := s.setup(t)
	v1 := put(t, ctx, st, "g", []byte("one"), blobstore.PutOptions{})
	if got, _ := get(t, ctx, st, "g", blobstore.GetOptions{Length: -1, IfMatch: v1.ETag}); string(got) != "one" {
		t.Fatalf("Get with current IfMatch = %q", got)
	}
	put(t, ctx, st, "g", []byte("two"), blobstore.PutOptions{})
	_, _, err := st.Get(ctx, "g", blobstore.GetOptions{Length: -1, IfMatch: v1.ETag})
	wantErr(t, "Get with a stale IfMatch", err, blobstore.ErrPreconditionFailed)
	_, _, err = st.Get(ctx, "g", blobstore.GetOptions{Offset: 1, Length: 1, IfMatch: v1.ETag})
	wantErr(t, "ranged Get with a stale IfMatch", err, blobstore.ErrPreconditionFailed)
}

// TestCopy: server-side copy keeps or replaces metadata, honours IfMatch.
func (s *Suite) TestCopy(t *testing.T) {
	st, ctx := s.setup(t)
	data := randomBytes(10_000)
	meta := map[string]string{"coffer-k": "v1"}
	src := put(t, ctx, st, "src", data, blobstore.PutOptions{Metadata: meta})

	ci, err := st.Copy(ctx, "src", "dst/keep", blobstore.CopyOptions{})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if ci.ETag == "" {
		t.Error("Copy returned no ETag")
	}
	if got := getAll(t, ctx, st, "dst/keep"); !bytes.Equal(got, data) {
		t.Error("copy has other bytes")
	}
	if hi, _ := st.Head(ctx, "dst/keep"); !metaEqual(hi.Metadata, meta) {
		t.Errorf("copy metadata %v, want the source's %v", hi.Metadata, meta)
	}

	repl := map[string]string{"coffer-k": "v2", "other": "x"}
	if _, err := st.Copy(ctx, "src", "dst/repl", blobstore.CopyOptions{Metadata: repl, IfMatch: src.ETag}); err != nil {
		t.Fatalf("Copy with metadata and current IfMatch: %v", err)
	}
	if hi, _ := st.Head(ctx, "dst/repl"); !metaEqual(hi.Metadata, repl) {
		t.Errorf("replaced metadata %v, want %v", hi.Metadata, repl)
	}

	// Onto itself with new metadata: the metadata rewrite coffer does.
	self, err := st.Copy(ctx, "src", "src", blobstore.CopyOptions{Metadata: repl, IfMatch: src.ETag})
	if err != nil {
		t.Fatalf("Copy onto the same key: %v", err)
	}
	hi, err := st.Head(ctx, "src")
	if err != nil || !metaEqual(hi.Metadata, repl) || hi.ETag != self.ETag {
		t.Errorf("after self-copy Head = %+v, %v; want metadata %v, ETag %q", hi, err, repl, self.ETag)
	}
	if got := getAll(t, ctx, st, "src"); !bytes.Equal(got, data) {
		t.Error("self-copy changed the bytes")
	}
	// Empty (non-nil) metadata replaces with nothing.
	if _, err := st.Copy(ctx, "src", "dst/none", blobstore.CopyOptions{Metadata: map[string]string{}}); err != nil {
		t.Fatalf("Copy with empty metadata: %v", err)
	}
	if hi, _ := st.Head(ctx, "dst/none"); len(hi.Metadata) != 0 {
		t.Errorf("copy with empty metadata has %v", hi.Metadata)
	}

	// A stale IfMatch fails and leaves the destination alone.
	put(t, ctx, st, "src", []byte("changed"), blobstore.PutOptions{})
	_, err = st.Copy(ctx, "src", "dst/stale", blobstore.CopyOptions{IfMatch: src.ETag})
	wantErr(t, "Copy with a stale IfMatch", err, blobstore.ErrPreconditionFailed)
	if _, err := st.Head(ctx, "dst/stale"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("failed copy created its destination: %v", err)
	}
	_, err = st.Copy(ctx, "src", "src", blobstore.CopyOptions{Metadata: meta, IfMatch: src.ETag})
	wantErr(t, "self-copy with a stale IfMatch", err, blobstore.ErrPreconditionFailed)
	if got := string(getAll(t, ctx, st, "src")); got != "changed" {
		t.Errorf("failed self-copy left %q", got)
	}
}

// TestCopyIfUnmodifiedSince: a copy conditional on the source's
// LastModified (as Head gives it, whole seconds) goes through while the
// source is unchanged and fails once the time is older than the source;
// beside IfMatch, IfMatch decides (S3's rule).
func (s *Suite) TestCopyIfUnmodifiedSince(t *testing.T) {
	st, ctx := s.setup(t)
	put(t, ctx, st, "src", []byte("body"), blobstore.PutOptions{Metadata: map[string]string{"v": "1"}})
	h, err := st.Head(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	lm := h.LastModified
	if lm.IsZero() {
		t.Fatal("Head gave no LastModified")
	}
	copyTo := func(dst string, o blobstore.CopyOptions) error {
		_, err := st.Copy(ctx, "src", dst, o)
		return err
	}
	if err := copyTo("a", blobstore.CopyOptions{IfUnmodifiedSince: lm}); err != nil {
		t.Fatalf("copy unmodified since its own LastModified: %v", err)
	}
	if err := copyTo("b", blobstore.CopyOptions{IfUnmodifiedSince: lm.Add(time.Hour)}); err != nil {
		t.Fatalf("copy unmodified since an hour after its LastModified: %v", err)
	}
	if err := copyTo("c", blobstore.CopyOptions{IfUnmodifiedSince: lm.Add(999 * time.Millisecond), IfMatch: h.ETag}); err != nil {
		t.Fatalf("copy with both conditions holding: %v", err)
	}
	wantErr(t, "copy unmodified since a second before its LastModified", copyTo("d", blobstore.CopyOptions{IfUnmodifiedSince: lm.Add(-time.Second)}), blobstore.ErrPreconditionFailed)
	wantErr(t, "copy unmodified since an hour before", copyTo("d", blobstore.CopyOptions{IfUnmodifiedSince: lm.Add(-time.Hour)}), blobstore.ErrPreconditionFailed)
	wantErr(t, "copy with a stale IfMatch and a holding IfUnmodifiedSince", copyTo("d", blobstore.CopyOptions{IfUnmodifiedSince: lm.Add(time.Hour), IfMatch: "0123456789abcdef0123456789abcdef"}), blobstore.ErrPreconditionFailed)
	// S3's rule: a holding IfMatch makes IfUnmodifiedSince moot.
	if err := copyTo("e", blobstore.CopyOptions{IfUnmodifiedSince: lm.Add(-time.Hour), IfMatch: h.ETag}); err != nil {
		t.Fatalf("copy with a current IfMatch and a failing IfUnmodifiedSince: %v (S3 copies)", err)
	}
	wantErr(t, "self-copy unmodified since an hour before", func() error {
		_, err := st.Copy(ctx, "src", "src", blobstore.CopyOptions{Metadata: map[string]string{"v": "2"}, IfUnmodifiedSince: lm.Add(-time.Hour)})
		return err
	}(), blobstore.ErrPreconditionFailed)
	if _, err := st.Head(ctx, "d"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("failed conditional copies created their destination: %v", err)
	}
	if hi, _ := st.Head(ctx, "src"); hi.Metadata["v"] != "1" {
		t.Errorf("failed conditional self-copy changed the metadata to %v", hi.Metadata)
	}
}

// TestMetadataCopyStamps: what a metadata-only rewrite (a copy onto the
// same key with new metadata, coffer's chmod or rename re-seal) does to
// the ETag and LastModified, which decides how a mount can guard one
// against another mount's: the ETag stays on every backend (so IfMatch
// cannot see it); LastModified moves to the copy's time, except where
// the suite declares MetadataCopyKeepsLastModified; and IfUnmodifiedSince
// with the LastModified from before sees it exactly where it moves.
func (s *Suite) TestMetadataCopyStamps(t *testing.T) {
	st, ctx := s.setup(t)
	put(t, ctx, st, "k", []byte("body"), blobstore.PutOptions{Metadata: map[string]string{"v": "1"}})
	before, err := st.Head(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// LastModified is in whole seconds over HTTP: rewrite in a later
	// second than the upload's.
	time.Sleep(time.Until(before.LastModified.Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	if _, err := st.Copy(ctx, "k", "k", blobstore.CopyOptions{Metadata: map[string]string{"v": "2"}, IfMatch: before.ETag}); err != nil {
		t.Fatal(err)
	}
	after, err := st.Head(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if after.Metadata["v"] != "2" {
		t.Fatalf("metadata after the rewrite: %v", after.Metadata)
	}
	if after.ETag != before.ETag {
		t.Errorf("metadata-only copy changed the ETag from %s to %s", before.ETag, after.ETag)
	}
	moved := after.LastModified.Truncate(time.Second).After(before.LastModified.Truncate(time.Second))
	if moved == s.MetadataCopyKeepsLastModified {
		t.Errorf("metadata-only copy: LastModified %v -> %v (moved %v), the suite declares MetadataCopyKeepsLastModified %v",
			before.LastModified, after.LastModified, moved, s.MetadataCopyKeepsLastModified)
	}
	_, err = st.Copy(ctx, "k", "k", blobstore.CopyOptions{Metadata: map[string]string{"v": "3"}, IfUnmodifiedSince: before.LastModified})
	if moved {
		wantErr(t, "rewrite conditional on the LastModified from before another rewrite", err, blobstore.ErrPreconditionFailed)
	} else if err != nil {
		t.Errorf("rewrite on a server that keeps LastModified: %v (the guard cannot see the other rewrite there)", err)
	}
	t.Logf("metadata-only copy: ETag kept, LastModified %v -> %v", before.LastModified, after.LastModified)
}

// TestNotFound: operations on missing keys fail with ErrNotFound.
func (s *Suite) TestNotFound(t *testing.T) {
	st, ctx := s.setup(t)
	_, err := st.Head(ctx, "nope")
	wantErr(t, "Head", err, blobstore.ErrNotFound)
	_, _, err = st.Get(ctx, "nope", blobstore.GetOptions{Length: -1})
	wantErr(t, "Get", err, blobstore.ErrNotFound)
	_, _, err = st.Get(ctx, "nope", blobstore.GetOptions{Offset: 5, Length: 5})
	wantErr(t, "ranged Get", err, blobstore.ErrNotFound)
	_, err = st.Copy(ctx, "nope", "dst", blobstore.CopyOptions{})
	wantErr(t, "Copy", err, blobstore.ErrNotFound)
	put(t, ctx, st, "dir/x", []byte("x"), blobstore.PutOptions{})
	_, err = st.Head(ctx, "dir")
	wantErr(t, "Head of a prefix", err, blobstore.ErrNotFound)
	_, err = st.Head(ctx, "dir/x/y")
	wantErr(t, "Head below an object", err, blobstore.ErrNotFound)
	var e *blobstore.Error
	if _, err := st.Head(ctx, "nope"); !errors.As(err, &e) || e.Key != "nope" || e.Op == "" {
		t.Errorf("error %#v does not name its operation and key", err)
	}
}

// TestDelete: Delete and DeleteMany remove keys; missing keys are fine.
func (s *Suite) TestDelete(t *testing.T) {
	st, ctx := s.setup(t)
	put(t, ctx, st, "x/1", []byte("1"), blobstore.PutOptions{})
	if err := st.Delete(ctx, "x/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Head(ctx, "x/1"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Head after Delete: %v", err)
	}
	if err := st.Delete(ctx, "x/1"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if got := list(t, ctx, st, "", "/"); len(got) != 0 {
		if !s.EmptyPrefixesLinger {
			t.Fatalf("after deleting the only key, List = %q", entryNames(got))
		}
		t.Logf("Suite.EmptyPrefixesLinger: after deleting the only key, List = %q", entryNames(got))
	}
	if got := list(t, ctx, st, "", ""); len(got) != 0 {
		t.Fatalf("after deleting the only key, List without delimiter = %q", entryNames(got))
	}
	keys := []string{"m/1", "m/2", "m/3/4", "n"}
	for _, k := range keys {
		put(t, ctx, st, k, []byte(k), blobstore.PutOptions{})
	}
	if err := st.DeleteMany(ctx, append([]string{"missing"}, keys[:3]...)); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	if got := entryNames(list(t, ctx, st, "", "")); !slices.Equal(got, []string{"n"}) {
		t.Fatalf("after DeleteMany List = %q, want [n]", got)
	}
	if err := st.DeleteMany(ctx, nil); err != nil {
		t.Fatalf("DeleteMany(nil): %v", err)
	}
}

// TestMultipart: parts assemble in order; Abort leaves nothing.
func (s *Suite) TestMultipart(t *testing.T) {
	st, ctx := s.setup(t)
	ps := int(s.partSize())
	data := randomBytes(2*ps + 1000)
	meta := map[string]string{"coffer-mp": "yes"}
	mpu, err := st.Multipart(ctx, "mp", blobstore.PutOptions{Metadata: meta})
	if err != nil {
		t.Fatalf("Multipart: %v", err)
	}
	bodies := [][]byte{data[:ps], data[ps : 2*ps], data[2*ps:]}
	parts := make([]blobstore.Part, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := 2; i >= 0; i-- { // out of order and concurrent
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = mpu.UploadPart(ctx, i+1, bodies[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		mpu.Abort(ctx)
		t.Fatalf("UploadPart: %v", err)
	}
	if _, err := st.Head(ctx, "mp"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("object visible before Complete: %v", err)
	}
	info, err := mpu.Complete(ctx, parts)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if info.ETag == "" {
		t.Error("Complete returned no ETag")
	}
	if got := getAll(t, ctx, st, "mp"); !bytes.Equal(got, data) {
		t.Fatalf("multipart object: %d bytes, want %d (or content differs)", len(got), len(data))
	}
	hi, err := st.Head(ctx, "mp")
	if err != nil || hi.Size != int64(len(data)) || !metaEqual(hi.Metadata, meta) || hi.ETag != info.ETag {
		t.Errorf("Head = %+v, %v", hi, err)
	}
	for _, off := range []int{ps - 10, 2*ps - 1, 2 * ps} { // across and at part boundaries
		got, _ := get(t, ctx, st, "mp", blobstore.GetOptions{Offset: int64(off), Length: 20, IfMatch: info.ETag})
		if want := data[off:min(off+20, len(data))]; !bytes.Equal(got, want) {
			t.Errorf("range at %d: got %d bytes, want %d (or content differs)", off, len(got), len(want))
		}
	}

	ab, err := st.Multipart(ctx, "aborted", blobstore.PutOptions{})
	if err != nil {
		t.Fatalf("Multipart: %v", err)
	}
	if _, err := ab.UploadPart(ctx, 1, data[:ps]); err != nil {
		t.Fatalf("UploadPart: %v", err)
	}
	if err := ab.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if got := entryNames(list(t, ctx, st, "", "")); !slices.Equal(got, []string{"mp"}) {
		t.Fatalf("after Abort List = %q, want [mp]", got)
	}
}

// TestMultipartConditional: Complete honours IfNoneMatch and IfMatch.
func (s *Suite) TestMultipartConditional(t *testing.T) {
	st, ctx := s.setup(t)
	old := put(t, ctx, st, "k", []byte("old"), blobstore.PutOptions{})
	complete := func(opts blobstore.PutOptions) error {
		mpu, err := st.Multipart(ctx, "k", opts)
		if err != nil {
			return err
		}
		p, err := mpu.UploadPart(ctx, 1, []byte("new"))
		if err == nil {
			_, err = mpu.Complete(ctx, []blobstore.Part{p})
		}
		if err != nil {
			mpu.Abort(ctx)
		}
		return err
	}
	wantErr(t, "multipart IfNoneMatch onto an existing key", complete(blobstore.PutOptions{IfNoneMatch: true}), blobstore.ErrPreconditionFailed)
	wantErr(t, "multipart IfMatch with a stale ETag", complete(blobstore.PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"}), blobstore.ErrPreconditionFailed)
	if got := string(getAll(t, ctx, st, "k")); got != "old" {
		t.Fatalf("failed conditional multipart changed the object to %q", got)
	}
	if err := complete(blobstore.PutOptions{IfMatch: old.ETag}); err != nil {
		t.Fatalf("multipart with current IfMatch: %v", err)
	}
	if got := string(getAll(t, ctx, st, "k")); got != "new" {
		t.Fatalf("object is %q, want new", got)
	}
	wantErr(t, "multipart IfMatch onto a missing key", func() error {
		mpu, err := st.Multipart(ctx, "missing", blobstore.PutOptions{IfMatch: old.ETag})
		if err != nil {
			return err
		}
		defer mpu.Abort(ctx)
		p, err := mpu.UploadPart(ctx, 1, []byte("x"))
		if err != nil {
			return err
		}
		_, err = mpu.Complete(ctx, []blobstore.Part{p})
		return err
	}(), blobstore.ErrNotFound)
	if _, err := st.Head(ctx, "missing"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("failed IfMatch completion created the key: %v", err)
	}
	mpu, err := st.Multipart(ctx, "fresh", blobstore.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := mpu.UploadPart(ctx, 1, []byte("fresh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mpu.Complete(ctx, []blobstore.Part{p}); err != nil {
		t.Fatalf("multipart IfNoneMatch onto a new key: %v", err)
	}
}

// TestConcurrentConditionalComplete: multipart uploads of one key racing
// to complete on the same condition: exactly one wins, as for Put.
func (s *Suite) TestConcurrentConditionalComplete(t *testing.T) {
	st, ctx := s.setup(t)
	base := put(t, ctx, st, "replace", []byte("base"), blobstore.PutOptions{})
	for _, c := range []struct {
		key  string
		opts blobstore.PutOptions
	}{
		{"create", blobstore.PutOptions{IfNoneMatch: true}},
		{"replace", blobstore.PutOptions{IfMatch: base.ETag}},
	} {
		const n = 4
		ups := make([]blobstore.MultipartUpload, n)
		parts := make([]blobstore.Part, n)
		for i := range n {
			mpu, err := st.Multipart(ctx, c.key, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			p, err := mpu.UploadPart(ctx, 1, fmt.Appendf(nil, "writer %d", i))
			if err != nil {
				t.Fatal(err)
			}
			ups[i], parts[i] = mpu, p
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i] = ups[i].Complete(ctx, []blobstore.Part{parts[i]}) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: completions %d and %d both succeeded", c.key, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, blobstore.ErrPreconditionFailed):
				t.Fatalf("%s: losing completion %d: %v, want ErrPreconditionFailed", c.key, i, err)
			default:
				ups[i].Abort(ctx)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no completion succeeded: %v", c.key, errs)
		}
		if got := string(getAll(t, ctx, st, c.key)); got != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("%s: object holds %q, winner was %d", c.key, got, winner)
		}
	}
}

// TestUpload: the parallel Upload driver, single-part and multipart,
// known and unknown sizes.
func (s *Suite) TestUpload(t *testing.T) {
	st, ctx := s.setup(t)
	ps := s.partSize()
	cases := []struct {
		name    string
		n       int64
		unknown bool
	}{
		{"empty", 0, false},
		{"small", 1000, false},
		{"one part exactly", ps, false},
		{"multipart", 2*ps + 12345, false},
		{"small unknown size", 1000, true},
		{"one part unknown size", ps, true},
		{"multipart unknown size", 2*ps + 1, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := randomBytes(int(c.n))
			size := c.n
			if c.unknown {
				size = -1
			}
			var last atomic.Int64
			key := fmt.Sprintf("up/%d", i)
			info, err := blobstore.Upload(ctx, st, key, bytes.NewReader(data), size, blobstore.UploadOptions{
				PutOptions:  blobstore.PutOptions{Metadata: map[string]string{"n": fmt.Sprint(c.n)}},
				PartSize:    ps,
				Concurrency: 3,
				Progress:    func(done int64) { last.Store(done) },
			})
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if info.ETag == "" {
				t.Error("no ETag")
			}
			if got := getAll(t, ctx, st, key); !bytes.Equal(got, data) {
				t.Fatalf("stored %d bytes, want %d (or content differs)", len(got), len(data))
			}
			if last.Load() != c.n {
				t.Errorf("last progress %d, want %d", last.Load(), c.n)
			}
			if hi, _ := st.Head(ctx, key); hi.Metadata["n"] != fmt.Sprint(c.n) {
				t.Errorf("metadata %v", hi.Metadata)
			}
		})
	}
	t.Run("IfNoneMatch on existing", func(t *testing.T) {
		for _, n := range []int64{10, ps + 1} {
			_, err := blobstore.Upload(ctx, st, "up/1", bytes.NewReader(randomBytes(int(n))), n, blobstore.UploadOptions{
				PutOptions: blobstore.PutOptions{IfNoneMatch: true}, PartSize: ps,
			})
			wantErr(t, fmt.Sprintf("Upload of %d bytes with IfNoneMatch onto an existing key", n), err, blobstore.ErrPreconditionFailed)
		}
	})
	t.Run("short input", func(t *testing.T) {
		_, err := blobstore.Upload(ctx, st, "up/short", bytes.NewReader(randomBytes(int(ps))), 2*ps, blobstore.UploadOptions{PartSize: ps})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Upload of a short input: %v, want io.ErrUnexpectedEOF", err)
		}
		if _, err := st.Head(ctx, "up/short"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("failed upload left an object: %v", err)
		}
	})
}

// TestCanceledContext: a cancelled context stops operations.
func (s *Suite) TestCanceledContext(t *testing.T) {
	st, ctx := s.setup(t)
	put(t, ctx, st, "x", []byte("x"), blobstore.PutOptions{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Put(cctx, "y", strings.NewReader("y"), 1, blobstore.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
	if _, err := st.Head(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Head with a cancelled context: %v", err)
	}
	if _, err := st.Head(ctx, "y"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("cancelled Put stored y: %v", err)
	}
}

// TestUploads: Uploads lists multipart uploads in progress (by prefix,
// with their start time), AbortUpload discards one and touches no
// object, and a completed or aborted upload is no longer listed.
func (s *Suite) TestUploads(t *testing.T) {
	st, ctx := s.setup(t)
	ps := int(s.partSize())
	kept := put(t, ctx, st, "up/object", []byte("data"), blobstore.PutOptions{})
	before := time.Now().Add(-time.Minute)
	pending, err := st.Multipart(ctx, "up/pending", blobstore.PutOptions{})
	if err != nil {
		t.Fatalf("Multipart: %v", err)
	}
	if _, err := pending.UploadPart(ctx, 1, randomBytes(ps)); err != nil {
		t.Fatalf("UploadPart: %v", err)
	}
	done, err := st.Multipart(ctx, "up/done", blobstore.PutOptions{})
	if err != nil {
		t.Fatalf("Multipart: %v", err)
	}
	p, err := done.UploadPart(ctx, 1, []byte("small"))
	if err != nil {
		t.Fatalf("UploadPart: %v", err)
	}
	listUploads := func(prefix string) []blobstore.PendingUpload {
		t.Helper()
		var out []blobstore.PendingUpload
		for u, err := range st.Uploads(ctx, prefix) {
			if err != nil {
				t.Fatalf("Uploads(%q): %v", prefix, err)
			}
			out = append(out, u)
		}
		return out
	}
	ups := listUploads("up/")
	if len(ups) != 2 || ups[0].Key != "up/done" || ups[1].Key != "up/pending" {
		t.Fatalf("Uploads = %+v, want up/done and up/pending", ups)
	}
	for _, u := range ups {
		if u.ID == "" || u.Initiated.Before(before) || u.Initiated.After(time.Now().Add(time.Minute)) {
			t.Errorf("upload %+v: want an ID and a start time near now", u)
		}
	}
	if got := listUploads("elsewhere/"); len(got) != 0 {
		t.Errorf("Uploads(elsewhere/) = %+v, want none", got)
	}
	if _, err := done.Complete(ctx, []blobstore.Part{p}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	ups = listUploads("")
	if len(ups) != 1 || ups[0].Key != "up/pending" {
		t.Fatalf("after Complete, Uploads = %+v, want up/pending alone", ups)
	}
	if err := st.AbortUpload(ctx, ups[0]); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	if err := st.AbortUpload(ctx, ups[0]); err != nil {
		t.Errorf("second AbortUpload: %v, want nil", err)
	}
	if got := listUploads(""); len(got) != 0 {
		t.Fatalf("after AbortUpload, Uploads = %+v, want none", got)
	}
	if _, err := pending.Complete(ctx, []blobstore.Part{{Number: 1, ETag: "x", Size: int64(ps)}}); err == nil {
		t.Error("Complete of an aborted upload succeeded")
	}
	if got := entryNames(list(t, ctx, st, "", "")); !slices.Equal(got, []string{"up/done", "up/object"}) {
		t.Fatalf("objects after abort: %q, want up/done and up/object", got)
	}
	if hi, err := st.Head(ctx, "up/object"); err != nil || hi.ETag != kept.ETag {
		t.Errorf("up/object after abort: %+v, %v", hi, err)
	}
}
