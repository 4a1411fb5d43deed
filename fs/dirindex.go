package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Directory attribute indexes (doc.go, "Directory indexes"): a cache of
// the metadata of a directory's objects, kept in the bucket so that a
// cold listing costs one LIST and one GET instead of a request per entry.
// Never the source of truth: an entry is used only when the listing shows
// the object exactly as the index recorded it (key, ETag, size,
// LastModified), and then its metadata goes through the same
// authentication as a HEAD's answer; anything else is fetched.

const (
	dirIndexVersion = 1
	// maxIndexBytes bounds what is read of an index object (about
	// 150,000 entries): a bigger one is ignored.
	maxIndexBytes = 64 << 20
	// maxIndexMeta bounds the metadata names of one entry.
	maxIndexMeta = 64
	// indexAfterFetches is how many entries a listing must have fetched
	// before it writes the directory's index: below it, the index would
	// save less than it costs.
	indexAfterFetches = 8
	// maxOwnRecords bounds the own writes remembered before their
	// indexes are written (a few hundred bytes each).
	maxOwnRecords = 20000
	// indexWriteTimeout bounds writing one index (a LIST, a GET, a PUT),
	// and twice that all those of one Flush: it is a cache, and an
	// unmount must never hang on a failing store.
	indexWriteTimeout = 30 * time.Second
)

// indexEntry is what an index holds of one object listed below its
// directory.
type indexEntry struct {
	seg     string // the key below the directory's listing prefix
	etag    string
	size    int64 // -1 in a record of this mount's own write whose size it did not learn
	lastMod int64 // Unix ns of the listing's LastModified; 0 in a record of an own write
	meta    map[string]string
}

// indexable reports a listed item an index may hold: an object with a
// body. An empty body has the same ETag in every version (links, special
// files), so the listing could not tell a replaced one from the indexed.
func indexable(it listItem) bool {
	return !it.dir && it.size > 0 && it.etag != "" && !it.lastMod.IsZero()
}

// matches reports that the listing shows the object e recorded.
func (e indexEntry) matches(it listItem) bool {
	return indexable(it) && e.seg == it.seg && e.etag == it.etag && e.size == it.size && e.lastMod == it.lastMod.UnixNano()
}

// encodeIndex is the index plaintext: version (1) | uvarint count |
// entries, each seg | etag | uvarint size | varint LastModified (Unix ns)
// | uvarint metadata count | (name | value)*, every string a uvarint
// length and its bytes, entries sorted by seg.
func encodeIndex(entries []indexEntry) []byte {
	b := []byte{dirIndexVersion}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, e := range entries {
		str(e.seg)
		str(e.etag)
		b = binary.AppendUvarint(b, uint64(e.size))
		b = binary.AppendVarint(b, e.lastMod)
		b = binary.AppendUvarint(b, uint64(len(e.meta)))
		for _, k := range sortedKeys(e.meta) {
			str(k)
			str(e.meta[k])
		}
	}
	return b
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var errBadIndex = errors.New("malformed directory index")

// decodeIndex parses encodeIndex's output, by segment. It trusts nothing:
// an index that opened was still written by someone holding the key, and
// every entry it yields is authenticated again before use.
func decodeIndex(b []byte) (map[string]indexEntry, error) {
	r := indexReader{b: b}
	if v := r.byte(); v != dirIndexVersion {
		return nil, fmt.Errorf("%w: version %d", errBadIndex, v)
	}
	n := r.uvarint()
	if n > uint64(len(b)) { // every entry takes bytes
		return nil, fmt.Errorf("%w: %d entries in %d bytes", errBadIndex, n, len(b))
	}
	out := make(map[string]indexEntry, n)
	for range n {
		e := indexEntry{seg: r.str(), etag: r.str()}
		size := r.uvarint()
		e.lastMod = r.varint()
		nm := r.uvarint()
		if r.err != nil {
			break
		}
		if nm > maxIndexMeta || size > 1<<62 || e.seg == "" || strings.Contains(e.seg, "/") {
			return nil, fmt.Errorf("%w: bad entry", errBadIndex)
		}
		e.size = int64(size)
		e.meta = make(map[string]string, nm)
		for range nm {
			k, v := r.str(), r.str()
			if _, dup := e.meta[k]; dup && r.err == nil {
				return nil, fmt.Errorf("%w: metadata name repeated", errBadIndex)
			}
			e.meta[k] = v
		}
		if _, dup := out[e.seg]; dup && r.err == nil {
			return nil, fmt.Errorf("%w: entry repeated", errBadIndex)
		}
		out[e.seg] = e
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the last entry", errBadIndex, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// indexReader reads encodeIndex's fields; the first error sticks.
type indexReader struct {
	b   []byte
	err error
}

func (r *indexReader) fail() { r.err, r.b = fmt.Errorf("%w: truncated", errBadIndex), nil }

func (r *indexReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *indexReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *indexReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *indexReader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// dirIndexes is a volume's side of its directory indexes: which listing
// prefix belongs to which directory, and what this mount itself stored
// (metadata as sent, the ETag the store answered) in directories whose
// index is to be rewritten once their uploads settle.
type dirIndexes struct {
	mu    sync.Mutex
	dirOf map[string]string                // listing prefix -> canonical directory
	wrote map[string]map[string]indexEntry // listing prefix -> seg -> own write
	// inPlace: prefixes with an own metadata-only copy since their index
	// was last written (the ones a KeepNoIndexes volume still rewrites).
	inPlace map[string]bool
	bg      sync.WaitGroup // index writes after a listing
	// records counts the entries of wrote: at maxOwnRecords, settle
	// (Volume.flushIndexes in the background) writes the indexes, so the
	// memory they take stays bounded on a mount that never unmounts.
	records  int
	settle   func()
	settling bool
	timeout  time.Duration // indexWriteTimeout (tests shorten it)
}

func newDirIndexes() *dirIndexes {
	return &dirIndexes{dirOf: map[string]string{}, wrote: map[string]map[string]indexEntry{}, inPlace: map[string]bool{}, timeout: indexWriteTimeout}
}

// splitKey is an object key's listing prefix and segment.
func splitKey(key string) (prefix, seg string) {
	i := strings.LastIndexByte(key, '/')
	return key[:i+1], key[i+1:]
}

// noteKey records that key is the object of canonical path p, so that a
// write to key finds its directory.
func (x *dirIndexes) noteKey(p, key string) {
	if x == nil || p == "/" {
		return
	}
	prefix, _ := splitKey(key)
	dir := parentOf(p)
	x.mu.Lock()
	if x.dirOf[prefix] != dir {
		x.dirOf[prefix] = dir
	}
	x.mu.Unlock()
}

// stored records an own write of key (size -1: unknown) with meta;
// inPlace when it was a metadata-only copy onto itself, which keeps the
// ETag (and, on versitygw, LastModified): only an index rewrite shows it.
func (x *dirIndexes) stored(key, etag string, size int64, meta map[string]string, inPlace bool) {
	prefix, seg := splitKey(key)
	if seg == "" || etag == "" || meta == nil || strings.HasPrefix(key, reservedName+"/") {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	w := x.wrote[prefix]
	if w == nil {
		w = map[string]indexEntry{}
		x.wrote[prefix] = w
	}
	if _, ok := w[seg]; !ok {
		x.records++
	}
	w[seg] = indexEntry{seg: seg, etag: etag, size: size, meta: maps.Clone(meta)}
	if inPlace {
		x.inPlace[prefix] = true
	}
	if x.records >= maxOwnRecords && x.settle != nil && !x.settling {
		x.settling = true
		x.settle()
	}
}

// ownWrites takes the records of own writes below prefix.
func (x *dirIndexes) ownWrites(prefix string) map[string]indexEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	return maps.Clone(x.wrote[prefix])
}

// recordingStore is the store of a full-key client volume: it passes
// every call on and tells dirIndexes what was stored.
type recordingStore struct {
	blobstore.Store
	idx *dirIndexes
}

func (s recordingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	info, err := s.Store.Put(ctx, key, body, size, opts)
	if err == nil {
		s.idx.stored(key, info.ETag, size, opts.Metadata, false)
	}
	return info, err
}

func (s recordingStore) Copy(ctx context.Context, src, dst string, opts blobstore.CopyOptions) (blobstore.ObjectInfo, error) {
	info, err := s.Store.Copy(ctx, src, dst, opts)
	if err == nil {
		s.idx.stored(dst, info.ETag, -1, opts.Metadata, src == dst)
	}
	return info, err
}

func (s recordingStore) Multipart(ctx context.Context, key string, opts blobstore.PutOptions) (blobstore.MultipartUpload, error) {
	u, err := s.Store.Multipart(ctx, key, opts)
	if err != nil {
		return u, err
	}
	return recordingUpload{MultipartUpload: u, idx: s.idx, key: key, meta: opts.Metadata}, nil
}

type recordingUpload struct {
	blobstore.MultipartUpload
	idx  *dirIndexes
	key  string
	meta map[string]string
}

func (u recordingUpload) Complete(ctx context.Context, parts []blobstore.Part) (blobstore.ObjectInfo, error) {
	info, err := u.MultipartUpload.Complete(ctx, parts)
	if err == nil {
		u.idx.stored(u.key, info.ETag, -1, u.meta, false)
	}
	return info, err
}

// indexKeyring is the keyring that seals indexes: a full-key client
// volume's. Write-only and none-mode volumes have none and use no index.
func (v *Volume) indexKeyring() *cipher.Keyring {
	if v.idx == nil {
		return nil
	}
	return v.keyring()
}

// loadIndex fetches and opens the index of directory dir. Any failure
// (none stored, sealed for another directory or under a retired
// generation, malformed, the store failing) is an empty index: listing
// then fetches every entry, as without indexes.
//
// ver is the stored index object that a new index of dir replaces: the
// write is conditional on it (If-Match its ETag, If-None-Match when none
// is stored), so that an index built from what one mount saw never
// lands over one another mount stored meanwhile. On servers whose
// metadata-only copy keeps ETag and LastModified (versitygw) only that
// order keeps another mount's chmod from being undone in the index.
func (v *Volume) loadIndex(ctx context.Context, dir string) (idx map[string]indexEntry, ver indexVersion) {
	kr := v.indexKeyring()
	if kr == nil {
		return nil, ver
	}
	key := kr.DirIndexKey(dir)
	body, info, err := v.store.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		if errors.Is(err, blobstore.ErrNotFound) {
			return nil, indexVersion{known: true}
		}
		v.logEvent(slog.LevelDebug, "directory index unreadable; listing without it", "", key, "err", err)
		return nil, ver
	}
	ver = indexVersion{etag: info.ETag, known: info.ETag != ""}
	defer body.Close()
	sealed, err := io.ReadAll(io.LimitReader(body, maxIndexBytes+1))
	if err == nil && len(sealed) > maxIndexBytes {
		err = fmt.Errorf("%w: over %d bytes", errBadIndex, maxIndexBytes)
	}
	var plain []byte
	if err == nil {
		plain, err = kr.OpenDirIndex(dir, sealed)
	}
	if err == nil {
		idx, err = decodeIndex(plain)
	}
	if err != nil {
		v.logEvent(slog.LevelDebug, "directory index does not open; listing without it", "", key, "err", err)
		return nil, ver
	}
	return idx, ver
}

// indexVersion names the stored index object a write replaces (see
// loadIndex); unknown when the read failed, and then nothing is written.
type indexVersion struct {
	etag  string // "" with known: none is stored
	known bool
}

func (iv indexVersion) putOptions() blobstore.PutOptions {
	if iv.etag == "" {
		return blobstore.PutOptions{IfNoneMatch: true}
	}
	return blobstore.PutOptions{IfMatch: iv.etag}
}

// buildIndex is the index of a directory as listed: for each indexable
// item, the first source holding a record of exactly that object (an
// own write matches by key and ETag, and by size when it knows it; it
// takes the listing's LastModified, which a PUT does not return).
func buildIndex(items []listItem, sources ...map[string]indexEntry) []indexEntry {
	var out []indexEntry
	for _, it := range items {
		if !indexable(it) {
			continue
		}
		for _, src := range sources {
			e, ok := src[it.seg]
			if !ok || e.etag != it.etag || e.size >= 0 && e.size != it.size || e.lastMod != 0 && e.lastMod != it.lastMod.UnixNano() {
				continue
			}
			e.size, e.lastMod = it.size, it.lastMod.UnixNano()
			out = append(out, e)
			break
		}
	}
	slices.SortFunc(out, func(a, b indexEntry) int { return strings.Compare(a.seg, b.seg) })
	return out
}

// storeIndex seals and stores entries as dir's index in place of
// version ver (blobstore.ErrPreconditionFailed when another write came
// first).
func (v *Volume) storeIndex(ctx context.Context, dir string, entries []indexEntry, ver indexVersion) error {
	kr := v.indexKeyring()
	if kr == nil || len(entries) == 0 || !ver.known {
		return nil
	}
	sealed, err := kr.SealDirIndex(dir, encodeIndex(entries))
	if err != nil {
		return err
	}
	_, err = v.store.Put(ctx, kr.DirIndexKey(dir), bytes.NewReader(sealed), int64(len(sealed)), ver.putOptions())
	return err
}

// indexListed writes dir's index in the background after a listing that
// fetched many of its entries: from what it fetched (fetched), what the
// old index held that still matches (old), and own writes. The listing
// preceded the fetches, so a metadata change between the two makes the
// entry's LastModified older than the object's: a later listing then
// fetches it rather than trusting it.
func (v *Volume) indexListed(dir, prefix string, items []listItem, fetched, old map[string]indexEntry, ver indexVersion) {
	if v.indexKeyring() == nil || v.opts.ReadOnly || v.opts.KeepNoIndexes || len(fetched) < indexAfterFetches {
		return
	}
	v.idx.bg.Add(1)
	go func() {
		defer v.idx.bg.Done()
		ctx, cancel := context.WithTimeout(v.ctx, v.idx.timeout)
		defer cancel()
		entries := buildIndex(items, v.idx.ownWrites(prefix), fetched, old)
		// Refused when another mount stored one since: that one stays.
		if err := v.storeIndex(ctx, dir, entries, ver); err != nil {
			v.logEvent(slog.LevelDebug, "could not store a directory index", "", prefix, "err", err)
		}
	}()
}

// flushIndexes rewrites the index of every directory this mount stored
// objects in, once their uploads settled (Flush): one LIST, the old
// index and one PUT per directory, each bounded by indexWriteTimeout and
// all by twice that; a
// failure is logged, never returned (the index is a cache). Own writes
// take precedence over the old index: on servers whose metadata-only
// copy keeps LastModified (versitygw), the listing cannot show a chmod,
// so the mount that made it must rewrite the index.
//
// A KeepNoIndexes volume rewrites only the indexes of directories where
// it made a metadata-only copy: a new object never makes an index wrong.
func (v *Volume) flushIndexes(ctx context.Context) {
	if v.indexKeyring() == nil {
		return
	}
	v.idx.bg.Wait()
	v.idx.mu.Lock()
	type dirty struct{ dir, prefix string }
	var todo []dirty
	for prefix := range v.idx.wrote {
		if v.opts.KeepNoIndexes && !v.idx.inPlace[prefix] {
			v.idx.records -= len(v.idx.wrote[prefix])
			delete(v.idx.wrote, prefix)
			continue
		}
		if dir, ok := v.idx.dirOf[prefix]; ok {
			todo = append(todo, dirty{dir, prefix})
		} else {
			v.idx.records -= len(v.idx.wrote[prefix])
			delete(v.idx.wrote, prefix) // no path known: nothing to index it by
			delete(v.idx.inPlace, prefix)
		}
	}
	v.idx.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*v.idx.timeout)
	defer cancel()
	fanOut(ctx, v.opts.UploadConcurrency, len(todo), func(ctx context.Context, i int) error {
		d := todo[i]
		ctx, cancel := context.WithTimeout(ctx, v.idx.timeout)
		defer cancel()
		own := v.idx.ownWrites(d.prefix)
		err := v.reindex(ctx, d.dir, d.prefix, own)
		if err != nil {
			v.logEvent(slog.LevelWarn, "could not update a directory index (the next cold listing fetches more)", "", d.prefix, "err", err)
			return nil
		}
		v.idx.done(d.prefix, own)
		return nil
	})
}

// done forgets the own writes below prefix that an index now holds
// (those not written again meanwhile).
func (x *dirIndexes) done(prefix string, own map[string]indexEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	w := x.wrote[prefix]
	for seg, e := range own {
		if cur, ok := w[seg]; ok && cur.etag == e.etag {
			delete(w, seg)
			x.records--
		}
	}
	if len(w) == 0 {
		delete(x.wrote, prefix)
		delete(x.inPlace, prefix)
	}
}

// reindex lists dir and stores its index from own writes and the old
// index; when another mount stored the index meanwhile, again on top of
// that one (own writes still first).
func (v *Volume) reindex(ctx context.Context, dir, prefix string, own map[string]indexEntry) error {
	for attempt := 0; ; attempt++ {
		var items []listItem
		for e, err := range v.listDir(ctx, prefix, blobstore.ListOptions{}) {
			if err != nil {
				return err
			}
			items = append(items, listItemOf(e))
		}
		old, ver := v.loadIndex(ctx, dir)
		err := v.storeIndex(ctx, dir, buildIndex(items, own, old), ver)
		if errors.Is(err, blobstore.ErrPreconditionFailed) && attempt < 3 {
			continue
		}
		return err
	}
}

// settleIndexes starts flushIndexes in the background, when own writes
// pile up (dirIndexes.records; called with its lock held).
func (v *Volume) settleIndexes() {
	v.bg.Add(1)
	go v.settledIndexes()
}

func (v *Volume) settledIndexes() {
	defer v.bg.Done()
	v.flushIndexes(v.ctx)
	v.idx.mu.Lock()
	v.idx.settling = false
	v.idx.mu.Unlock()
}
