package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// indexedDir writes n files into /d of a client volume and flushes, which
// stores /d's index.
func indexedDir(t *testing.T, n int) *testVol {
	t.Helper()
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		writeFile(t, tv.Volume, fmt.Sprintf("/d/f%03d", i), []byte(fmt.Sprintf("file %d", i)))
	}
	flush(t, tv.Volume)
	return tv
}

// listing is "name mode uid mtime size" of every entry of dir.
func listing(t *testing.T, v *Volume, dir string) string {
	t.Helper()
	ents, err := v.ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var b strings.Builder
	for _, e := range ents {
		fmt.Fprintf(&b, "%s %o %d %d %d\n", e.Name, e.Attr.Mode, e.Attr.UID, e.Attr.Mtime.UnixNano(), e.Attr.Size)
	}
	return b.String()
}

func (tv *testVol) indexKey(dir string) string { return tv.keyring().DirIndexKey(dir) }

func (tv *testVol) getObject(t *testing.T, key string) []byte {
	t.Helper()
	rc, _, err := tv.store.Store.Get(context.Background(), key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (tv *testVol) putObject(t *testing.T, key string, b []byte) {
	t.Helper()
	if _, err := tv.store.Store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// coldListing lists dir on a fresh mount and returns the listing and the
// GETs and HEADs it cost.
func (tv *testVol) coldListing(t *testing.T, dir string) (string, int) {
	t.Helper()
	v := tv.reopen(t)
	tv.store.reset()
	l := listing(t, v, dir)
	c := tv.store.snapshot()
	v.Close(context.Background())
	return l, c["get"] + c["head"] + c["index get"]
}

// TestDirIndexColdListing: a cold listing of a directory whose index the
// writing mount stored costs one GET (the index) besides the lookup of the
// directory itself, and shows what a listing without index shows.
func TestDirIndexColdListing(t *testing.T) {
	const n = 40
	tv := indexedDir(t, n)
	got, reqs := tv.coldListing(t, "/d")
	if reqs > 3 {
		t.Errorf("cold listing with index: %d GETs and HEADs, want at most 3 (the lookup of /d: a GET and its marker's HEAD; the index)", reqs)
	}
	if err := tv.store.Store.Delete(context.Background(), tv.indexKey("/d")); err != nil {
		t.Fatal(err)
	}
	want, reqs := tv.coldListing(t, "/d")
	if reqs < n {
		t.Fatalf("cold listing without index: %d requests, want one per entry", reqs)
	}
	if got != want || strings.Count(got, "\n") != n {
		t.Errorf("listing from the index:\n%s\nwithout:\n%s", got, want)
	}
	// That listing fetched every entry, so it stored the index again.
	if _, again := tv.coldListing(t, "/d"); again > 3 {
		t.Errorf("after a listing rebuilt the index: %d requests, want at most 3", again)
	}
}

// TestDirIndexStale: changes made by another mount (chmod, utimens, a
// new body) show on a cold listing, both when that mount rewrote the
// index and when the old index is put back (the listing's ETag and
// LastModified then tell, on stores whose metadata-only copy moves
// LastModified: not versitygw, where that is a rollback as DESIGN §9
// leaves open).
func TestDirIndexStale(t *testing.T) {
	tv := indexedDir(t, 12)
	ctx := context.Background()
	old := tv.getObject(t, tv.indexKey("/d"))
	key1, _, _ := tv.objectKey("/d/f001")
	before, err := tv.store.Head(ctx, key1)
	if err != nil {
		t.Fatal(err)
	}
	other := tv.reopen(t)
	mode := uint32(0o600)
	if _, err := other.SetAttr(ctx, "/d/f001", SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_000_000, 5)
	if _, err := other.SetAttr(ctx, "/d/f002", SetAttr{Mtime: &mt}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, other, "/d/f003", []byte("a longer body than before"))
	flush(t, other)
	want := listing(t, other, "/d")
	for _, line := range []string{"f001 100600", fmt.Sprintf("f002 100644 1000 %d", mt.UnixNano()), "f003 100644 1000"} {
		if !strings.Contains(want, line) {
			t.Fatalf("the changing mount's listing lacks %q:\n%s", line, want)
		}
	}
	other.Close(ctx)
	if got, _ := tv.coldListing(t, "/d"); got != want {
		t.Errorf("cold listing after another mount's changes:\n%s\nwant:\n%s", got, want)
	}
	after, err := tv.store.Head(ctx, key1)
	if err != nil {
		t.Fatal(err)
	}
	if after.ETag == before.ETag && after.LastModified.Equal(before.LastModified) {
		// versitygw; or a server with whole-second LastModified within one second.
		t.Logf("this store kept ETag and LastModified over a metadata-only copy: an old index put back cannot be detected")
		return
	}
	tv.putObject(t, tv.indexKey("/d"), old)
	if got, _ := tv.coldListing(t, "/d"); got != want {
		t.Errorf("cold listing with the index from before the changes:\n%s\nwant:\n%s", got, want)
	}
}

// TestDirIndexWriteRace: an index built from what one mount read is not
// stored over the index another mount stored meanwhile (the write is
// conditional on the version read), so a chmod by that other mount is
// not undone in the index; a cold listing shows it on every store.
func TestDirIndexWriteRace(t *testing.T) {
	tv := indexedDir(t, 12)
	ctx := context.Background()
	stale, ver := tv.loadIndex(ctx, "/d")
	if len(stale) != 12 || !ver.known || ver.etag == "" {
		t.Fatalf("index of /d: %d entries, version %+v", len(stale), ver)
	}
	other := tv.reopen(t)
	mode := uint32(0o600)
	if _, err := other.SetAttr(ctx, "/d/f001", SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	flush(t, other) // rewrites the index with its chmod
	want := listing(t, other, "/d")
	other.Close(ctx)
	var items []listItem
	prefix, err := tv.dirPrefix("/d")
	if err != nil {
		t.Fatal(err)
	}
	for e, err := range tv.listDir(ctx, prefix, blobstore.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, listItemOf(e))
	}
	err = tv.storeIndex(ctx, "/d", buildIndex(items, stale), ver)
	if !errors.Is(err, blobstore.ErrPreconditionFailed) {
		t.Errorf("storing an index over one stored since: %v, want a failed precondition", err)
	}
	if got, _ := tv.coldListing(t, "/d"); got != want || !strings.Contains(got, "f001 100600") {
		t.Errorf("cold listing after the racing index write:\n%s\nwant:\n%s", got, want)
	}
}

// TestDirIndexForgery: an index that is altered, moved from another
// directory or volume, or (sealed with the volume's key) claims another
// object's metadata for an entry, never shows what it claims: the
// listing falls back to the objects and shows their real attributes.
func TestDirIndexForgery(t *testing.T) {
	tv := indexedDir(t, 10)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/e", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		writeFile(t, tv.Volume, fmt.Sprintf("/e/f%03d", i), []byte("other"))
	}
	mode := uint32(0o640)
	if _, err := tv.SetAttr(ctx, "/d/f004", SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	want, _ := tv.coldListing(t, "/d")
	good := tv.getObject(t, tv.indexKey("/d"))

	// Another volume with a /d of its own.
	tv2 := indexedDir(t, 10)
	foreign := tv2.getObject(t, tv2.indexKey("/d"))

	// An index sealed with the volume's keys whose entries carry the
	// metadata of the neighbouring object (its attributes bound to another
	// path and file ID) and, for f004, the metadata f004 had before its
	// chmod (a rollback the listing cannot show on versitygw: see below).
	plain, err := tv.keyring().OpenDirIndex("/d", good)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := decodeIndex(plain)
	if err != nil {
		t.Fatal(err)
	}
	segs := make([]string, 0, len(idx))
	for s := range maps.Keys(idx) {
		segs = append(segs, s)
	}
	swapped := make([]indexEntry, 0, len(segs))
	for i, s := range segs {
		e := idx[s]
		e.meta = idx[segs[(i+1)%len(segs)]].meta
		swapped = append(swapped, e)
	}
	forged, err := tv.keyring().SealDirIndex("/d", encodeIndex(swapped))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1

	for _, c := range []struct {
		name  string
		index []byte
	}{
		{"flipped bit", flipped},
		{"index of /e", tv.getObject(t, tv.indexKey("/e"))},
		{"index of another volume", foreign},
		{"metadata of other entries", forged},
		{"garbage", []byte("not an index")},
	} {
		tv.putObject(t, tv.indexKey("/d"), c.index)
		got, reqs := tv.coldListing(t, "/d")
		if got != want {
			t.Errorf("%s: listing\n%s\nwant\n%s", c.name, got, want)
		}
		if reqs < 10 {
			t.Errorf("%s: %d requests: the index was used", c.name, reqs)
		}
	}
}

// TestDirIndexUnreadable: a store failing the index GET costs the
// listing nothing but the fetches.
func TestDirIndexUnreadable(t *testing.T) {
	tv := indexedDir(t, 10)
	want, _ := tv.coldListing(t, "/d")
	key := tv.indexKey("/d")
	tv.store.Store = failingGet{Store: tv.store.Store, key: key}
	got, reqs := tv.coldListing(t, "/d")
	if got != want || reqs < 10 {
		t.Errorf("with the index unreadable (%d requests):\n%s\nwant\n%s", reqs, got, want)
	}
}

type failingGet struct {
	blobstore.Store
	key string
}

func (f failingGet) Get(ctx context.Context, key string, opts blobstore.GetOptions) (io.ReadCloser, blobstore.ObjectInfo, error) {
	if key == f.key {
		return nil, blobstore.ObjectInfo{}, &blobstore.Error{Op: "get", Key: key, Err: blobstore.ErrTransient}
	}
	return f.Store.Get(ctx, key, opts)
}

// TestDirIndexHidden: index objects never show in a listing of the root
// and do not upset fsck.
func TestDirIndexHidden(t *testing.T) {
	tv := indexedDir(t, 10)
	if got := listing(t, tv.reopen(t), "/"); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "d ") {
		t.Errorf("root listing: %q, want only d", got)
	}
	rep, err := tv.Fsck(context.Background(), FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Errorf("fsck findings with a directory index: %v", rep.Findings)
	}
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex([]indexEntry{{seg: "a", etag: "e", size: 48, lastMod: 1, meta: map[string]string{cipher.MetaVersion: "1"}}}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := decodeIndex(b)
		if err != nil {
			return
		}
		entries := make([]indexEntry, 0, len(idx))
		for _, e := range idx {
			entries = append(entries, e)
		}
		slices.SortFunc(entries, func(a, b indexEntry) int { return strings.Compare(a.seg, b.seg) })
		again, err := decodeIndex(encodeIndex(entries))
		if err != nil || len(again) != len(idx) {
			t.Fatalf("re-encoded index: %d entries, %v; want %d", len(again), err, len(idx))
		}
	})
}

// TestDirAhead: after a listing from the index, reading the files in
// order fetches the first chunks of those that follow ahead of the
// reads, so that reading them costs no request.
func TestDirAhead(t *testing.T) {
	for _, expired := range []bool{false, true} {
		t.Run(fmt.Sprintf("metadata expired %v", expired), func(t *testing.T) { testDirAhead(t, expired) })
	}
}

// testDirAhead: with expired, the metadata TTL passes between the
// listing and the reads, so read-ahead looks the files up again.
func testDirAhead(t *testing.T, expired bool) {
	const n = 40
	tv := indexedDir(t, n)
	v := tv.reopen(t)
	listing(t, v, "/d")
	if expired {
		later := time.Now().Add(2 * DefaultMetadataTTL)
		v.meta.mu.Lock()
		v.meta.now = func() time.Time { return later }
		v.meta.mu.Unlock()
	}
	for i := range 2 {
		readFile(t, v, fmt.Sprintf("/d/f%03d", i))
	}
	v.ahead.mu.Lock()
	var pending []chan struct{}
	for _, c := range v.ahead.inflight {
		pending = append(pending, c)
	}
	v.ahead.mu.Unlock()
	for _, c := range pending {
		<-c
	}
	tv.store.reset()
	for i := 2; i < n; i++ {
		if got, want := string(readFile(t, v, fmt.Sprintf("/d/f%03d", i))), fmt.Sprintf("file %d", i); got != want {
			t.Fatalf("f%03d: %q, want %q", i, got, want)
		}
	}
	if c := tv.store.snapshot(); c["get"]+c["head"] != 0 {
		t.Errorf("reading files whose first chunks were read ahead: %v requests, want none", c)
	}
}

// TestDirIndexStoreHangs: a store that never answers the index upkeep's
// requests holds a Flush up for the index timeout only; the files are
// stored and Flush reports no error (the index is a cache).
func TestDirIndexStoreHangs(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	tv.idx.timeout = 50 * time.Millisecond
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		writeFile(t, tv.Volume, fmt.Sprintf("/d/f%d", i), []byte("data"))
	}
	prefix, err := tv.dirPrefix("/d")
	if err != nil {
		t.Fatal(err)
	}
	hung := hangingList{Store: tv.store.Store, prefix: prefix}
	tv.store.Store = hung
	if err := tv.Flush(ctx, nil); err != nil {
		t.Fatalf("flush with the index upkeep hanging: %v", err)
	}
	tv.store.Store = hung.Store
	v := tv.reopen(t)
	for i := range 3 {
		if got := string(readFile(t, v, fmt.Sprintf("/d/f%d", i))); got != "data" {
			t.Fatalf("f%d: %q", i, got)
		}
	}
}

// hangingList lists prefix only once the caller gives up.
type hangingList struct {
	blobstore.Store
	prefix string
}

func (h hangingList) List(ctx context.Context, prefix, delim string) iter.Seq2[blobstore.Entry, error] {
	if prefix != h.prefix {
		return h.Store.List(ctx, prefix, delim)
	}
	return func(yield func(blobstore.Entry, error) bool) {
		<-ctx.Done()
		yield(blobstore.Entry{}, ctx.Err())
	}
}

// TestDirIndexKeepNone: a volume with KeepNoIndexes (offline commands)
// writes no index for new files, but rewrites one its metadata-only copy
// made stale.
func TestDirIndexKeepNone(t *testing.T) {
	tv := indexedDir(t, 10)
	ctx := context.Background()
	key := tv.indexKey("/d")
	before := tv.getObject(t, key)
	opts := tv.options
	opts.CacheDir, opts.KeepNoIndexes = t.TempDir(), true
	v, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(ctx)
	writeFile(t, v, "/d/new", []byte("new"))
	if _, err := v.Mkdir(ctx, "/e", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		writeFile(t, v, fmt.Sprintf("/e/f%d", i), []byte("e"))
	}
	flush(t, v)
	if !bytes.Equal(tv.getObject(t, key), before) {
		t.Error("a new file made a KeepNoIndexes volume rewrite the index")
	}
	if _, _, err := tv.store.Store.Get(ctx, tv.indexKey("/e"), blobstore.GetOptions{Length: 1}); err == nil {
		t.Error("a KeepNoIndexes volume wrote an index for a new directory")
	}
	mode := uint32(0o600)
	if _, err := v.SetAttr(ctx, "/d/f001", SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	flush(t, v)
	if bytes.Equal(tv.getObject(t, key), before) {
		t.Error("a chmod by a KeepNoIndexes volume left the index as it was")
	}
	if got, _ := tv.coldListing(t, "/d"); !strings.Contains(got, "f001 100600") {
		t.Errorf("cold listing after the chmod:\n%s", got)
	}
}

// TestListRanges: a directory whose index holds more names than one
// listing page is listed as ranges cut at indexed names, one request
// each, and the ranges add up to exactly the listing, also when the index
// is stale (names added and removed since).
func TestListRanges(t *testing.T) {
	const n = 45
	tv := indexedDir(t, n)
	ctx := context.Background()
	prefix, err := tv.dirPrefix("/d")
	if err != nil {
		t.Fatal(err)
	}
	lists, pulled := 0, 0 // listing requests of /d; entries taken of all listings
	var asked []int       // the first pages the listings of /d asked for
	var mu sync.Mutex     // the ranges list in parallel
	tv.store.onList = func(p, _ string, opts blobstore.ListOptions) {
		if p == prefix {
			mu.Lock()
			lists++
			asked = append(asked, opts.FirstPage)
			mu.Unlock()
		}
	}
	// ranged lists /d on a fresh mount whose ranges hold 10 indexed names, after
	// checking that the ranges yield every key once, in order.
	ranged := func() string {
		v := tv.reopen(t)
		v.rangeKeys = 10
		idx, _ := v.loadIndex(ctx, "/d")
		bounds, per := listBounds(prefix, idx, 10)
		items, err := v.listRanges(ctx, "/d", prefix, bounds, per)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(items); i++ {
			if items[i].key <= items[i-1].key {
				t.Fatalf("ranges yield %q after %q", items[i].key, items[i-1].key)
			}
		}
		lists, asked = 0, nil
		tv.store.reset()
		l := listing(t, v, "/d")
		pulled = tv.store.count("listed")
		if got := strings.Count(l, "\n"); len(items) != got {
			t.Errorf("ranges yield %d items, the listing has %d entries", len(items), got)
		}
		v.Close(ctx)
		return l
	}
	whole := func() string {
		v := tv.reopen(t)
		tv.store.reset()
		l := listing(t, v, "/d")
		pulled = tv.store.count("listed")
		v.Close(ctx)
		return l
	}

	want := whole()
	if strings.Count(want, "\n") != n {
		t.Fatalf("listing of %d files:\n%s", n, want)
	}
	wholePulled := pulled
	if got := ranged(); got != want {
		t.Errorf("listed in ranges:\n%s\nwant:\n%s", got, want)
	}
	if lists != 5 {
		t.Errorf("%d files, ranges of 10 indexed names: %d listing requests, want 5", n, lists)
	}
	// Each range asks the server for about its ten keys, not for a
	// page of the server's default size, which it would mostly drop.
	for i, a := range asked {
		if a != rangeRequest(10) {
			t.Errorf("range %d asked for a first page of %d keys, want %d", i, a, rangeRequest(10))
		}
	}
	// A range stops at its bound: taking the key after it would cost
	// the request of another page on S3.
	if pulled != wholePulled {
		t.Errorf("the ranges took %d listed entries, one listing %d", pulled, wholePulled)
	}

	// Stale: 25 names added, 5 removed, the old index put back.
	old := tv.getObject(t, tv.indexKey("/d"))
	other := tv.reopen(t)
	for i := range 25 {
		writeFile(t, other, fmt.Sprintf("/d/g%03d", i), []byte("new"))
	}
	for i := range 5 {
		if err := other.Unlink(ctx, fmt.Sprintf("/d/f%03d", i*9)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, other)
	other.Close(ctx)
	tv.putObject(t, tv.indexKey("/d"), old)
	want = whole()
	if strings.Count(want, "\n") != n+25-5 {
		t.Fatalf("listing after the changes:\n%s", want)
	}
	tv.putObject(t, tv.indexKey("/d"), old)
	if got := ranged(); got != want {
		t.Errorf("listed in ranges cut by a stale index:\n%s\nwant:\n%s", got, want)
	}
}

// TestListBounds: bounds cut every page-th indexed name in order, at
// most maxListRanges ranges, never at a name holding the delimiter.
func TestListBounds(t *testing.T) {
	bounds := func(index map[string]indexEntry, page int) []string {
		b, per := listBounds("p/", index, page)
		if b != nil && per < page {
			t.Errorf("%d names, pages of %d: ranges of %d", len(index), page, per)
		}
		return b
	}
	index := map[string]indexEntry{}
	for i := range 35 {
		index[fmt.Sprintf("n%02d", i)] = indexEntry{}
	}
	if got := bounds(index, 40); got != nil {
		t.Errorf("35 names, pages of 40: bounds %q, want none", got)
	}
	if got, want := bounds(index, 10), []string{"p/n09", "p/n19", "p/n29"}; !slices.Equal(got, want) {
		t.Errorf("35 names, pages of 10: bounds %q, want %q", got, want)
	}
	// More entries than a range, but not more names that can bound one:
	// a single range, asking for a full page.
	few := map[string]indexEntry{"a/b": {}, "": {}}
	for i := range 10 {
		few[fmt.Sprintf("n%02d", i)] = indexEntry{}
	}
	if b, per := listBounds("p/", few, 10); b != nil || per != 0 {
		t.Errorf("10 names of 12 entries, ranges of 10: bounds %q, per %d, want none and 0", b, per)
	}
	index["n05/x"] = indexEntry{}
	if got, want := bounds(index, 10), []string{"p/n09", "p/n19", "p/n29"}; !slices.Equal(got, want) {
		t.Errorf("with a name holding /: bounds %q, want %q", got, want)
	}
	for i := range 160 {
		index[fmt.Sprintf("m%03d", i)] = indexEntry{}
	}
	if got := bounds(index, 1); len(got)+1 > maxListRanges || len(got)+1 < maxListRanges-1 || !slices.IsSorted(got) {
		t.Errorf("196 names, pages of 1: %d ranges (sorted %v), want %d or %d", len(got)+1, slices.IsSorted(got), maxListRanges-1, maxListRanges)
	}
	if _, per := listBounds("p/", index, 1); per != (len(index)-1+maxListRanges-1)/maxListRanges {
		t.Errorf("196 names (195 without /), at most %d ranges: ranges of %d", maxListRanges, per)
	}
	// A range's first request asks for its share and some more, never
	// for more than a page.
	for _, keys := range []int{1, 10, 250, 625, 999, 5000} {
		got := rangeRequest(keys)
		if got < min(keys, blobstore.MaxListPage) || got > blobstore.MaxListPage ||
			keys < 800 && (got < keys+keys/10 || got > keys+keys/4+16) {
			t.Errorf("rangeRequest(%d) = %d", keys, got)
		}
	}
}

// TestFsckOrphanIndexes: fsck reports the index of a directory that was
// removed and of one that was renamed, not those of live directories
// (the root, a nested one, a long-named one, one emptied since), and
// --repair removes only the orphans.
func TestFsckOrphanIndexes(t *testing.T) {
	tv := indexedDir(t, 3)
	ctx := context.Background()
	long := "/" + strings.Repeat("l", 200)
	for _, d := range []string{"/e", "/e/sub", long, "/k"} {
		if _, err := tv.Mkdir(ctx, d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, tv.Volume, d+"/x", []byte("x"))
	}
	writeFile(t, tv.Volume, "/top", []byte("top"))
	flush(t, tv.Volume)
	for _, d := range []string{"/", "/d", "/e", "/e/sub", long, "/k"} {
		tv.getObject(t, tv.indexKey(d)) // each has its index
	}
	if err := tv.Unlink(ctx, "/k/x"); err != nil { // /k: a marker alone
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tv.Unlink(ctx, fmt.Sprintf("/d/f%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tv.Rmdir(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	if err := tv.Rename(ctx, "/e/sub", "/e/moved", 0); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	orphans := []string{tv.indexKey("/d"), tv.indexKey("/e/sub")}
	slices.Sort(orphans)

	rep := fsck(t, tv.Volume, FsckOptions{})
	got := slices.Sorted(slices.Values(rep.OrphanIndexes))
	if !slices.Equal(got, orphans) || len(rep.Findings) != 0 || rep.IndexesRemoved != 0 {
		t.Fatalf("orphaned indexes: %q (%d removed), want %q (those of /d and /e/sub), and no finding:\n%s", got, rep.IndexesRemoved, orphans, findingsOf(rep))
	}
	tv.getObject(t, orphans[0]) // without --repair, nothing changes

	rep = fsck(t, tv.Volume, FsckOptions{Repair: true})
	if rep.IndexesRemoved != len(orphans) {
		t.Errorf("--repair removed %d orphaned indexes, want %d", rep.IndexesRemoved, len(orphans))
	}
	for _, k := range orphans {
		if _, err := tv.store.Store.Head(ctx, k); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("orphaned index %s after --repair: %v", k, err)
		}
	}
	for _, d := range []string{"/", "/e", long, "/k"} {
		tv.getObject(t, tv.indexKey(d))
	}
	if rep := fsck(t, tv.Volume, FsckOptions{}); len(rep.Findings) != 0 || len(rep.OrphanIndexes) != 0 {
		t.Errorf("after --repair: orphaned indexes %q, findings:\n%s", rep.OrphanIndexes, findingsOf(rep))
	}
}

// failingRanges is a store whose listings after a start key fail: every
// range of a ranged listing but the first.
type failingRanges struct{ blobstore.Store }

func (f failingRanges) ListAfter(ctx context.Context, prefix, delim string, opts blobstore.ListOptions) iter.Seq2[blobstore.Entry, error] {
	if opts.StartAfter == "" {
		return f.Store.ListAfter(ctx, prefix, delim, opts)
	}
	return func(yield func(blobstore.Entry, error) bool) { yield(blobstore.Entry{}, errListRefused) }
}

// TestListRangeFails: a ranged listing one of whose ranges the store
// refuses fails (EIO), never shows the directory without that range.
func TestListRangeFails(t *testing.T) {
	tv := indexedDir(t, 45)
	ctx := context.Background()
	opts := tv.options
	opts.CacheDir = t.TempDir()
	opts.Store = failingRanges{tv.store}
	v, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(ctx)
	v.rangeKeys = 10
	ents, err := v.ReadDir(ctx, "/d")
	wantErrno(t, err, syscall.EIO)
	if len(ents) != 0 {
		t.Errorf("a failed listing returned %d entries", len(ents))
	}
}
