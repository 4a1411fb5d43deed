package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cache/staging"
	"github.com/cofferfs/coffer/cipher"
)

// crash stops v the way a kill -9 leaves it: nothing is flushed or
// uploaded from here on, the journal's records and the staging files stay
// on disk as they are, and every lock is released. (The journal's last
// batch sync at its close changes nothing a same-boot kill would not:
// records written during this boot count as durable either way.)
func crash(t testing.TB, v *Volume) {
	t.Helper()
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.bg.Wait()
	if err := v.local.close(); err != nil {
		t.Fatalf("crash: closing local state: %v", err)
	}
}

// remount opens tv's store again with the same cache dir (the next mount
// after a crash), logging at info level to the returned buffer.
func (tv *testVol) remount(t testing.TB, tweak ...func(*Options)) (*Volume, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	opts := tv.options
	opts.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, f := range tweak {
		f(&opts)
	}
	v, err := OpenVolume(context.Background(), opts)
	if err != nil {
		t.Fatalf("remount: %v", err)
	}
	t.Cleanup(func() { v.Close(context.Background()) })
	return v, lb
}

// stalled returns a volume of mode whose delayed uploads never fire (a
// fake clock), so closed files stay journalled and not uploaded.
func stalled(t *testing.T, mode string, tweak ...func(*Options)) *testVol {
	tv := newTestVolume(t, mode, tweak...)
	tv.clock = &fakeClock{}
	return tv
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// storedNames lists directory p as the store holds it (a fresh mount).
func storedNames(t *testing.T, tv *testVol, p string) string {
	t.Helper()
	ents, err := tv.reopen(t).ReadDir(context.Background(), p)
	if err != nil {
		t.Fatalf("readdir %s in the store: %v", p, err)
	}
	return names(ents)
}

func lostAndFound(t *testing.T, cacheDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cacheDir, lostFound))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func hasLine(lb *logBuffer, text string) bool {
	for _, l := range lb.lines() {
		if strings.Contains(l, text) {
			return true
		}
	}
	return false
}

// TestRecoveryUploadsClosedFiles: files closed and not yet uploaded when
// the process dies are uploaded by the next mount with the same cache
// dir, byte for byte, before OpenVolume returns; the mount says how many.
// A file still being written (never closed) is not uploaded: its staging
// file is kept, sealed, in lost+found. A third mount finds nothing to do.
func TestRecoveryUploadsClosedFiles(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			// No streaming: a streamed file is stored at its last close,
			// and this test needs every file closed and not stored
			// (TestStreamCrashRecovers covers a crash mid-stream).
			tv := stalled(t, mode, func(o *Options) { o.PartSize, o.StreamThreshold = 5<<20, -1 })
			ctx := context.Background()
			want := map[string][]byte{}
			for i := range 20 {
				p := fmt.Sprintf("/f%02d", i)
				want[p] = randomBytes(100 * i)
				writeFile(t, tv.Volume, p, want[p])
			}
			want["/big"] = randomBytes(11<<20 + 5) // multipart
			writeFile(t, tv.Volume, "/big", want["/big"])
			// Attributes beyond mode and mtime are journalled too.
			atime := time.Date(2019, 5, 6, 7, 8, 9, 10, time.UTC)
			if _, err := tv.SetAttr(ctx, "/f01", SetAttr{Atime: &atime}); err != nil {
				t.Fatal(err)
			}
			if err := tv.Setxattr(ctx, "/f01", "user.kept", []byte("through a crash"), 0); err != nil {
				t.Fatal(err)
			}
			staged, _ := tv.Stat(ctx, "/f01")
			h, _, err := tv.Create(ctx, "/open", 0o644, syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			h.WriteAt(ctx, []byte("never closed"), 0)
			if n := tv.store.count("put") + tv.store.count("multipart"); n != 1 { // the config
				t.Fatalf("%d uploads before the crash", n-1)
			}
			crash(t, tv.Volume)

			v2, logs := tv.remount(t)
			rep := v2.Recovered()
			if rep.Recovered != len(want) || rep.Pending != 0 || len(rep.SetAside) != 1 {
				t.Fatalf("recovery report %+v, want %d recovered and the open file set aside", rep, len(want))
			}
			if !hasLine(logs, fmt.Sprintf("recovered %d files", len(want))) {
				t.Fatalf("no recovery line:\n%s", strings.Join(logs.lines(), "\n"))
			}
			fresh := tv.reopen(t)
			for p, data := range want {
				if got := readFile(t, fresh, p); !bytes.Equal(got, data) {
					t.Fatalf("%s: %d bytes stored, want %d", p, len(got), len(data))
				}
			}
			a, err := fresh.Stat(ctx, "/f01")
			if err != nil {
				t.Fatal(err)
			}
			if !a.Atime.Equal(atime) || !a.Ctime.Equal(staged.Ctime) || a.Changes < staged.Changes {
				t.Errorf("/f01 recovered with atime %v ctime %v changes %d, want %v, %v, at least %d", a.Atime, a.Ctime, a.Changes, atime, staged.Ctime, staged.Changes)
			}
			if x, err := fresh.Getxattr(ctx, "/f01", "user.kept"); err != nil || string(x) != "through a crash" {
				t.Errorf("/f01 recovered with user.kept = %q, %v", x, err)
			}
			if _, err := fresh.Stat(ctx, "/open"); Errno(err) != syscall.ENOENT {
				t.Fatalf("a never-closed file was uploaded: %v", err)
			}
			kept := lostAndFound(t, tv.options.CacheDir)
			if len(kept) != 1 {
				t.Fatalf("lost+found holds %v, want the never-closed file", kept)
			}
			data, _ := os.ReadFile(filepath.Join(tv.options.CacheDir, lostFound, kept[0]))
			if bytes.Contains(data, []byte("never closed")) {
				t.Fatal("lost+found holds plaintext")
			}
			v2.Close(ctx)

			v3, logs := tv.remount(t)
			if rep := v3.Recovered(); rep.Recovered != 0 || len(rep.SetAside) != 0 {
				t.Fatalf("a second recovery did %+v", rep)
			}
			if hasLine(logs, "recovered") {
				t.Fatalf("a clean remount logged a recovery:\n%s", strings.Join(logs.lines(), "\n"))
			}
		})
	}
}

// TestFlushJournalsBeforeRelease: close(2) (Handle.Flush) journals the
// file before the release that ends the handle, so a crash between them
// loses nothing.
func TestFlushJournalsBeforeRelease(t *testing.T) {
	tv := stalled(t, EncryptionClient)
	ctx := context.Background()
	h, _, err := tv.Create(ctx, "/f", 0o600, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("closed, not released"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	crash(t, tv.Volume)
	v2, _ := tv.remount(t)
	if rep := v2.Recovered(); rep.Recovered != 1 {
		t.Fatalf("recovery %+v, want 1", rep)
	}
	if got := readFile(t, tv.reopen(t), "/f"); string(got) != "closed, not released" {
		t.Fatalf("stored %q", got)
	}
}

// lostAnswerStore loses the network for one key: the first Put of it
// reaches the store but its answer is lost (a transient error), and
// every later Put of it fails without reaching the store, until cleared.
type lostAnswerStore struct {
	blobstore.Store
	mu     sync.Mutex
	key    string
	stored bool
}

func (s *lostAnswerStore) lose(key string) {
	s.mu.Lock()
	s.key, s.stored = key, false
	s.mu.Unlock()
}

func (s *lostAnswerStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	s.mu.Lock()
	lossy, stored := key == s.key, s.stored
	s.mu.Unlock()
	if !lossy {
		return s.Store.Put(ctx, key, body, size, opts)
	}
	lost := &blobstore.Error{Op: "put", Key: key, Err: fmt.Errorf("%w: connection reset", blobstore.ErrTransient)}
	if stored {
		return blobstore.ObjectInfo{}, lost
	}
	if _, err := s.Store.Put(ctx, key, body, size, opts); err != nil {
		return blobstore.ObjectInfo{}, err
	}
	s.mu.Lock()
	s.stored = true
	s.mu.Unlock()
	return blobstore.ObjectInfo{}, lost
}

// TestRecoveryRecognisesItsOwnUpload: an upload that reached the store
// while its run died before the journal record was done is recognised by
// the next mount (the object carries a tag the record names), not stored
// again as a conflict copy; also when the recovery's own upload is the
// one whose answer was lost and a second crash follows.
func TestRecoveryRecognisesItsOwnUpload(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			var ls *lostAnswerStore
			tv := newTestVolume(t, mode, func(o *Options) {
				ls = &lostAnswerStore{Store: o.Store}
				o.Store = ls
				o.uploadRetries = -1
			})
			clk := &fakeClock{}
			tv.clock = clk
			writeFile(t, tv.Volume, "/a", []byte("first run"))
			writeFile(t, tv.Volume, "/b", []byte("second run"))
			keyOf := func(p string) string {
				k, _, err := tv.objectKey(p)
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			ls.lose(keyOf("/a"))
			// /a's upload reaches the store; its answer is lost.
			if err := tv.files["/a"].upload(context.Background()); !errors.Is(err, blobstore.ErrTransient) {
				t.Fatalf("upload = %v, want the lost answer", err)
			}
			crash(t, tv.Volume)

			// The recovery's upload of /b reaches the store; its answer
			// is lost, and the run dies again.
			ls.lose(keyOf("/b"))
			// One upload at a time, /a (the older record) first: a
			// transient failure makes recovery leave the files after it
			// to the background. A short budget for the close after a
			// failure.
			v2, _ := tv.remount(t, func(o *Options) {
				o.clock = &fakeClock{}
				o.UploadConcurrency = 1
				o.RetryBudget = 100 * time.Millisecond
			})
			if rep := v2.Recovered(); rep.Recovered != 1 || rep.Pending != 1 || rep.Conflicts != 0 {
				t.Fatalf("second run: recovery %+v, want /a recognised and /b pending", rep)
			}
			crash(t, v2)

			ls.lose("")
			v3, _ := tv.remount(t)
			if rep := v3.Recovered(); rep.Recovered != 1 || rep.Conflicts != 0 || rep.Pending != 0 {
				t.Fatalf("third run: recovery %+v, want /b recognised", rep)
			}
			if got := storedNames(t, tv, "/"); got != "a,b" {
				t.Fatalf("store holds %s, want a,b and no conflict copy", got)
			}
			fresh := tv.reopen(t)
			if string(readFile(t, fresh, "/a")) != "first run" || string(readFile(t, fresh, "/b")) != "second run" {
				t.Fatal("wrong contents")
			}
		})
	}
}

// TestRecoverySetsAsideWhatIsNotWhole: a staging file that no longer
// matches its journal record (changed after it, here behind coffer's back
// after the crash, as a run dying mid-write could leave it) is not
// uploaded: it goes to lost+found and a warning says so. A journalled file
// opened and changed again (never closed again) is recovered as it was
// closed, its unfinished change set aside. A file unlinked while open
// leaves a staging file that is deleted, not kept.
func TestRecoverySetsAsideWhatIsNotWhole(t *testing.T) {
	tv := stalled(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/changed", []byte("closed version"))
	h, err := tv.Open(ctx, "/changed", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("CHANGED"), 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/mismatch", []byte("closed, then changed behind coffer's back"))
	writeFile(t, tv.Volume, "/gone", []byte("unlinked while open"))
	g, err := tv.Open(ctx, "/gone", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.Unlink(ctx, "/gone"); err != nil {
		t.Fatal(err)
	}
	_ = g
	crash(t, tv.Volume)
	changeStaged(t, tv, "/mismatch")

	v2, logs := tv.remount(t)
	rep := v2.Recovered()
	if rep.Recovered != 1 || len(rep.SetAside) != 2 || rep.Dropped != 1 {
		t.Fatalf("recovery %+v, want /changed recovered as closed, its change and /mismatch set aside, /gone dropped", rep)
	}
	if !hasLine(logs, "not uploaded as whole") || !hasLine(logs, "lost+found") {
		t.Fatalf("no warning:\n%s", strings.Join(logs.lines(), "\n"))
	}
	if got := storedNames(t, tv, "/"); got != "changed" {
		t.Fatalf("store holds %s", got)
	}
	if got := readFile(t, tv.reopen(t), "/changed"); string(got) != "closed version" {
		t.Fatalf("/changed recovered as %q", got)
	}
}

// changeStaged writes into the staging file journalled for p, as a
// process other than coffer could (client mode: it needs the local
// secret).
func changeStaged(t *testing.T, tv *testVol, p string) {
	t.Helper()
	sd, err := staging.OpenDir(filepath.Join(tv.options.CacheDir, "staging"), tv.localSecret())
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	for _, name := range stagingNames(t, tv) {
		sf, err := sd.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var m stagedMeta
		if json.Unmarshal(sf.Meta(), &m) == nil && m.Path == p {
			if _, err := sf.WriteAt([]byte("X"), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := sf.Commit(); err != nil {
				t.Fatal(err)
			}
			sf.Close()
			return
		}
		sf.Close()
	}
	t.Fatalf("no staging file for %s", p)
}

// TestRecoveryFollowsRenames: a staged file renamed (alone, or with its
// directory while it was written again) is journalled under its new path.
func TestRecoveryFollowsRenames(t *testing.T) {
	tv := stalled(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/a", []byte("renamed"))
	if err := tv.Rename(ctx, "/a", "/b", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.Mkdir(ctx, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/d/f", []byte("first"))
	h, err := tv.Open(ctx, "/d/f", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	// While the directory rename lists what it moves (a LIST without
	// delimiter, after it uploaded /d/f), /d/f is written and closed
	// again, through a handle opened before (an open by path waits for
	// the rename: gate.go).
	tv.store.onList = func(_, delim string, _ blobstore.ListOptions) {
		if delim != "" {
			return
		}
		tv.store.onList = nil
		if _, err := h.WriteAt(ctx, []byte("written during the rename"), 0); err != nil {
			t.Error(err)
		}
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
	}
	if err := tv.Rename(ctx, "/d", "/e", 0); err != nil {
		t.Fatal(err)
	}
	crash(t, tv.Volume)

	tv.remount(t)
	fresh := tv.reopen(t)
	if got := readFile(t, fresh, "/b"); string(got) != "renamed" {
		t.Fatalf("/b = %q", got)
	}
	if got := readFile(t, fresh, "/e/f"); string(got) != "written during the rename" {
		t.Fatalf("/e/f = %q", got)
	}
	if got := storedNames(t, tv, "/"); got != "b,e" {
		t.Fatalf("store holds %s, want b,e", got)
	}
	if got := storedNames(t, tv, "/e"); got != "f" {
		t.Fatalf("/e holds %s", got)
	}
}

// TestCacheDirLocked: a second volume cannot share a cache dir with an
// open one; the error says what to do.
func TestCacheDirLocked(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	_, err := OpenVolume(context.Background(), tv.options)
	if err == nil || !strings.Contains(err.Error(), "in use by another coffer mount") || !strings.Contains(err.Error(), "--cache-dir") {
		t.Fatalf("second open = %v", err)
	}
}

// TestOwnUploadNotForged: an object at the path that claims this upload's
// file ID (coffer-fid) but whose sealed metadata does not authenticate
// is not taken as this upload: recovery keeps both, storing the
// journalled version as a conflict copy.
func TestOwnUploadNotForged(t *testing.T) {
	var ls *lostAnswerStore
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		ls = &lostAnswerStore{Store: o.Store}
		o.Store = ls
		o.uploadRetries = -1
		o.now = func() time.Time { return conflictAt }
	})
	tv.clock = &fakeClock{}
	ctx := context.Background()
	writeFile(t, tv.Volume, "/a", []byte("the journalled version"))
	key := objectKeyOf(t, tv.Volume, "/a")
	ls.lose(key)
	if err := tv.files["/a"].upload(ctx); !errors.Is(err, blobstore.ErrTransient) {
		t.Fatalf("upload = %v, want the lost answer", err)
	}
	crash(t, tv.Volume)
	ls.lose("")
	// A forgery keeps coffer-fid and replaces the sealed attributes.
	rc, info, err := tv.store.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	meta := maps.Clone(info.Metadata)
	attr := []byte(meta[cipher.MetaAttr])
	attr[len(attr)/2] ^= 'A' ^ 'B'
	meta[cipher.MetaAttr] = string(attr)
	if _, err := tv.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), blobstore.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}

	v2, _ := tv.remount(t)
	if rep := v2.Recovered(); rep.Recovered != 1 || rep.Conflicts != 1 {
		t.Fatalf("recovery %+v, want the file stored as a conflict copy", rep)
	}
	if got := readFile(t, tv.reopen(t), "/a"+conflictSuffix); string(got) != "the journalled version" {
		t.Fatalf("conflict copy holds %q", got)
	}
}

// TestReopenedFileKeepsClosedVersion: a file closed (journalled, not yet
// stored), opened again and changed, and not closed again when the
// process dies, is recovered as it was closed; the unfinished change goes
// to lost+found. The armed upload does not store the unfinished change;
// the next close journals and stores it, and no staging file is left.
func TestReopenedFileKeepsClosedVersion(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := stalled(t, mode)
			ctx := context.Background()
			closed := randomBytes(200 << 10)
			writeFile(t, tv.Volume, "/f", closed)
			h, err := tv.Open(ctx, "/f", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(ctx, []byte("unfinished"), 70000); err != nil {
				t.Fatal(err)
			}
			size := int64(150 << 10)
			if _, err := h.SetAttr(ctx, SetAttr{Size: &size}); err != nil {
				t.Fatal(err)
			}
			// The writeback delay passes while it is open and changed.
			tv.clock.(*fakeClock).fire(t, tv.options.WritebackDelay)
			if n := tv.store.count("put") + tv.store.count("multipart"); n != 1 { // the config
				t.Fatalf("%d uploads of the unfinished change", n-1)
			}
			crash(t, tv.Volume)

			v2, _ := tv.remount(t)
			if rep := v2.Recovered(); rep.Recovered != 1 || len(rep.SetAside) != 1 {
				t.Fatalf("recovery report %+v, want the closed version recovered and the change set aside", rep)
			}
			if got := readFile(t, tv.reopen(t), "/f"); !bytes.Equal(got, closed) {
				t.Fatalf("recovered /f: %d bytes, not the version closed", len(got))
			}

			// Reopened again on the recovered mount: changed, closed, stored.
			want := bytes.Clone(closed)
			h, err = v2.Open(ctx, "/f", syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(ctx, []byte("finished"), 5); err != nil {
				t.Fatal(err)
			}
			copy(want[5:], "finished")
			if err := h.Close(ctx); err != nil {
				t.Fatal(err)
			}
			flush(t, v2)
			if got := readFile(t, tv.reopen(t), "/f"); !bytes.Equal(got, want) {
				t.Fatal("the change closed after recovery is not what is stored")
			}
			if n := len(stagingNames(t, tv)); n != 0 {
				t.Fatalf("%d staging files left after the upload", n)
			}
		})
	}
}

// stagingNames lists the staging files that hold something (emptied
// ones are kept as spares for reuse).
func stagingNames(t *testing.T, tv *testVol) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(tv.options.CacheDir, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Size() > 0 {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestRecoveryOfLinkedFile: a hard-linked file written and closed through
// one name, not yet uploaded when the process dies, is uploaded by the
// next mount to its inode: every name reads the new content and keeps
// its link count, and no conflict copy is made.
func TestRecoveryOfLinkedFile(t *testing.T) {
	tv := stalled(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/f", []byte("v1"))
	if _, err := tv.Link(ctx, "/f", "/g"); err != nil {
		t.Fatal(err)
	}
	if err := tv.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/g", []byte("written through the second name"))
	crash(t, tv.Volume)

	_, lb := tv.remount(t)
	fresh := tv.reopen(t)
	for _, p := range []string{"/f", "/g"} {
		if got, err := tryRead(fresh, p); err != nil || string(got) != "written through the second name" {
			t.Errorf("%s after recovery: %q, %v", p, got, err)
		}
	}
	checkLinks(t, fresh, 2, "/f", "/g")
	if got := storedNames(t, tv, "/"); got != "f,g" {
		t.Errorf("store holds %s, want f,g", got)
	}
	if hasLine(lb, "conflict: another mount") || !hasLine(lb, "conflict_copies=0") {
		t.Errorf("recovery made a conflict copy:\n%s", strings.Join(lb.lines(), "\n"))
	}
}
