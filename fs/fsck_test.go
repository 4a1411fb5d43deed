package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cache/staging"
	"github.com/cofferfs/coffer/cipher"
)

// fsckTree writes a small tree with every kind of entry fsck walks:
// files (empty, one chunk, several), a symlink, nested and long-named
// directories and files.
func fsckTree(t *testing.T, v *Volume) []string {
	t.Helper()
	ctx := context.Background()
	long := strings.Repeat("L", 180)
	for _, d := range []string{"/d", "/d/sub", "/" + long} {
		if _, err := v.Mkdir(ctx, d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{"/empty", "/a", "/b", "/c", "/e", "/k", "/d/sub/deep", "/" + long + "/" + long}
	for i, p := range files {
		writeFile(t, v, p, bytes.Repeat([]byte{byte('a' + i)}, []int{0, 100, 3 << 16, 5000, 70000, 10, 1, 200}[i]))
	}
	if _, err := v.Symlink(ctx, "a", "/link"); err != nil {
		t.Fatal(err)
	}
	flush(t, v)
	return files
}

func fsck(t *testing.T, v *Volume, opts FsckOptions) *FsckReport {
	t.Helper()
	rep, err := v.Fsck(context.Background(), opts)
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	return rep
}

func findingsOf(rep *FsckReport) string {
	var s []string
	for _, f := range rep.Findings {
		s = append(s, f.String())
	}
	return strings.Join(s, "\n")
}

// TestFsckClean: a clean volume has no findings, and the counts are the
// tree's, in both modes, with and without --deep.
func TestFsckClean(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			files := fsckTree(t, tv.Volume)
			for _, deep := range []bool{false, true} {
				rep := fsck(t, tv.Volume, FsckOptions{Deep: deep})
				if len(rep.Findings) != 0 {
					t.Fatalf("deep=%v: findings on a clean volume:\n%s", deep, findingsOf(rep))
				}
				if rep.Files != len(files)+1 || rep.Dirs != 3 || rep.Reserved != 1 || rep.Objects != len(files)+1+3+1 {
					t.Errorf("deep=%v: counts %+v, want %d files, 3 dirs, 1 reserved", deep, rep, len(files)+1)
				}
				if deep && mode == EncryptionClient && rep.Chunks != 1+1+3+1+2+1+1+1+1 {
					t.Errorf("deep: %d chunks authenticated, want 12", rep.Chunks)
				}
			}
		})
	}
}

// rawObject reads an object's bytes and metadata from the store.
func rawObject(t *testing.T, st blobstore.Store, key string) ([]byte, map[string]string) {
	t.Helper()
	rc, info, err := st.Get(context.Background(), key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b, info.Metadata
}

func putRaw(t *testing.T, st blobstore.Store, key string, body []byte, meta map[string]string) {
	t.Helper()
	if _, err := st.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), blobstore.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

func keyOfPath(t *testing.T, v *Volume, p string) string {
	t.Helper()
	k, _, err := v.objectKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// flipB64 changes one character in the middle of a base64url value.
func flipB64(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestFsckFindsPlantedFaults plants each fault fsck must find, through
// the store, and checks that it reports exactly those: a flipped chunk
// byte (with Deep only), a damaged wrapped DEK, attributes copied from
// another path, an undecodable name, a truncated object and an unknown
// KEK generation.
func TestFsckFindsPlantedFaults(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	v := tv.Volume
	fsckTree(t, v)
	st := tv.store.Store
	key := func(p string) string { return keyOfPath(t, v, p) }

	body, meta := rawObject(t, st, key("/b")) // 3 chunks
	body[cipher.HeaderSize+cipher.ChunkSize+50] ^= 1
	putRaw(t, st, key("/b"), body, meta)

	body, meta = rawObject(t, st, key("/a"))
	meta = maps.Clone(meta)
	meta[cipher.MetaDEK] = flipB64(meta[cipher.MetaDEK])
	putRaw(t, st, key("/a"), body, meta)

	if _, err := st.Copy(context.Background(), key("/c"), key("/k"), blobstore.CopyOptions{}); err != nil {
		t.Fatal(err)
	}

	body, meta = rawObject(t, st, key("/e"))
	putRaw(t, st, "not-a-coffer-name", body, meta)
	putRaw(t, st, key("/e"), body[:cipher.HeaderSize+cipher.ChunkSize+cipher.ChunkOverhead+10], meta) // no envelope has this size

	body, meta = rawObject(t, st, key("/d/sub/deep"))
	meta = maps.Clone(meta)
	meta[cipher.MetaKEK] = "9"
	putRaw(t, st, key("/d/sub/deep"), body, meta)

	want := map[string]FindingKind{
		"/a":                    FindDEK,
		"/k":                    FindAttr,
		"key not-a-coffer-name": FindName,
		"/e":                    FindSize,
		"/d/sub/deep":           FindKEK,
	}
	check := func(rep *FsckReport, want map[string]FindingKind) {
		t.Helper()
		got := map[string]FindingKind{}
		for _, f := range rep.Findings {
			where := f.Path
			if where == "" {
				where = "key " + f.Key
			}
			got[where] = f.Kind
			if f.Repaired {
				t.Errorf("%s: repaired without Repair", f)
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("findings:\n%s\nwant %v", findingsOf(rep), want)
		}
	}
	check(fsck(t, v, FsckOptions{}), want)
	want["/b"] = FindChunk
	check(fsck(t, v, FsckOptions{Deep: true}), want)
}

// storeState is every object's key and ETag, to show that fsck changed
// nothing.
func storeState(t *testing.T, st blobstore.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for e, err := range st.List(context.Background(), "", "") {
		if err != nil {
			t.Fatal(err)
		}
		out[e.Key] = e.ETag
	}
	return out
}

// TestFsckRepairUploads: an orphaned multipart upload is a finding; only
// with Repair is it aborted; an upload younger than UploadAge is left
// alone; no object changes either way.
func TestFsckRepairUploads(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	v := tv.Volume
	fsckTree(t, v)
	st := tv.store.Store
	ctx := context.Background()
	up, err := st.Multipart(ctx, keyOfPath(t, v, "/big"), blobstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.UploadPart(ctx, 1, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	before := storeState(t, st)
	later := func() time.Time { return time.Now().Add(DefaultUploadAge + time.Hour) }

	if rep := fsck(t, v, FsckOptions{Repair: true}); len(rep.Findings) != 0 || rep.Uploads != 1 {
		t.Fatalf("a young upload: uploads %d, findings:\n%s", rep.Uploads, findingsOf(rep))
	}
	rep := fsck(t, v, FsckOptions{Now: later})
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != FindUpload || rep.Findings[0].Path != "/big" || rep.Findings[0].Repaired {
		t.Fatalf("an orphaned upload without Repair:\n%s", findingsOf(rep))
	}
	if n := countUploads(t, st); n != 1 {
		t.Fatalf("fsck without Repair changed the uploads: %d left", n)
	}
	rep = fsck(t, v, FsckOptions{Now: later, Repair: true})
	if len(rep.Findings) != 1 || !rep.Findings[0].Repaired {
		t.Fatalf("an orphaned upload with Repair:\n%s", findingsOf(rep))
	}
	if n := countUploads(t, st); n != 0 {
		t.Fatalf("%d uploads left after Repair", n)
	}
	if after := storeState(t, st); !maps.Equal(before, after) {
		t.Fatalf("objects changed by fsck --repair:\nbefore %v\nafter  %v", before, after)
	}
	if rep := fsck(t, v, FsckOptions{Now: later, Repair: true, Deep: true}); len(rep.Findings) != 0 {
		t.Fatalf("after repair:\n%s", findingsOf(rep))
	}
}

func countUploads(t *testing.T, st blobstore.Store) int {
	n := 0
	for _, err := range st.Uploads(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestFsckRepairCacheDir plants the leftovers a dead mount leaves in its
// cache dir: a staging file of a file the store holds (stale), one of a
// file it does not hold (kept), an empty spare and an unreadable file
// (stale), a torn journal tail's copy (stale), and in lost+found one of
// each of the first two kinds. Without Repair nothing
// changes; with it only the stale ones go.
func TestFsckRepairCacheDir(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	v := tv.Volume
	fsckTree(t, v)
	cache := t.TempDir()
	sd, err := staging.OpenDir(filepath.Join(cache, "staging"), v.lay.(*clientLayout).kr.LocalSecret())
	if err != nil {
		t.Fatal(err)
	}
	stage := func(p string, data []byte) string {
		meta, _ := json.Marshal(stagedMeta{Path: p, Mode: 0o100644})
		f, err := sd.Create(meta)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(cache, "staging", f.Name())
	}
	stored := stage("/c", bytes.Repeat([]byte{'a' + 3}, 5000))
	lost := stage("/c", bytes.Repeat([]byte{'x'}, 5000))
	newer := stage("/new", []byte("never uploaded"))
	// Two staging files a recovery set aside: one the store holds, one
	// it does not.
	asideStored := stage("/c", bytes.Repeat([]byte{'a' + 3}, 5000))
	asideKept := stage("/aside", []byte("set aside by recovery"))
	// Its spares (made ahead of demand) go; the one planted below stays.
	if err := sd.Close(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(cache, lostFound), 0o700)
	for _, p := range []*string{&asideStored, &asideKept} {
		to := filepath.Join(cache, lostFound, filepath.Base(*p))
		if err := os.Rename(*p, to); err != nil {
			t.Fatal(err)
		}
		*p = to
	}
	spare := filepath.Join(cache, "staging", strings.Repeat("0", 32)+".stg")
	junk := filepath.Join(cache, "staging", strings.Repeat("1", 32)+".stg")
	os.WriteFile(spare, nil, 0o600)
	os.WriteFile(junk, []byte("not a staging file at all, but long enough"), 0o600)
	os.MkdirAll(filepath.Join(cache, "journal"), 0o700)
	broken := filepath.Join(cache, "journal", "0000000000000001.jnl.broken")
	os.WriteFile(broken, []byte("torn"), 0o600)

	all := []string{stored, lost, newer, spare, junk, broken, asideStored, asideKept}
	staleSet := []string{stored, spare, junk, broken, asideStored}
	local := func() map[string][]byte {
		out := map[string][]byte{}
		for _, p := range all {
			if b, err := os.ReadFile(p); err == nil {
				out[p] = b
			}
		}
		return out
	}
	before := local()
	rep := fsck(t, v, FsckOptions{CacheDir: cache})
	if len(rep.Findings) != len(all) {
		t.Fatalf("want %d findings:\n%s", len(all), findingsOf(rep))
	}
	if after := local(); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatalf("fsck without Repair changed the cache dir")
	}
	if rep, err := v.Fsck(context.Background(), FsckOptions{CacheDir: cache, Repair: true, LiveMount: func(string) bool { return true }}); err == nil {
		t.Fatalf("Repair of a cache dir a live mount uses: %v", findingsOf(rep))
	}
	storeBefore := storeState(t, tv.store.Store)
	rep = fsck(t, v, FsckOptions{CacheDir: cache, Repair: true})
	repaired := 0
	for _, f := range rep.Findings {
		if f.Repaired != slices.Contains(staleSet, f.Key) {
			t.Errorf("%s: repaired %v, want %v", f, f.Repaired, !f.Repaired)
		}
		if f.Repaired {
			repaired++
		}
	}
	after := local()
	for _, p := range all {
		_, kept := after[p]
		if kept == slices.Contains(staleSet, p) {
			t.Errorf("%s: kept %v after Repair", p, kept)
		}
	}
	if repaired != len(staleSet) {
		t.Errorf("%d repaired, want %d:\n%s", repaired, len(staleSet), findingsOf(rep))
	}
	if !maps.Equal(storeBefore, storeState(t, tv.store.Store)) {
		t.Error("the store changed")
	}
	if !bytes.Equal(before[lost], after[lost]) || !bytes.Equal(before[newer], after[newer]) || !bytes.Equal(before[asideKept], after[asideKept]) {
		t.Error("a kept staging file changed")
	}
	fmt.Fprint(io.Discard, rep)
}
