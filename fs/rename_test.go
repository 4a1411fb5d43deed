package fs

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRenameFile(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			v := tv.Volume
			writeFile(t, v, "/a", []byte("AAA"))
			writeFile(t, v, "/b", []byte("BBB"))
			v.Mkdir(ctx, "/d", 0o755)
			flush(t, v)
			n0, _ := v.lookup(ctx, "/a")
			tv.store.reset()
			if err := v.Rename(ctx, "/a", "/d/a2", 0); err != nil {
				t.Fatal(err)
			}
			if tv.store.count("put") != 0 || tv.store.count("copy") != 1 {
				t.Fatalf("rename of a stored file made %v", tv.store.counts)
			}
			// Over an existing file.
			if err := v.Rename(ctx, "/b", "/d/a2", 0); err != nil {
				t.Fatal(err)
			}
			wantErrno(t, v.Rename(ctx, "/d/a2", "/d", 0), syscall.EISDIR)
			writeFile(t, v, "/c", []byte("C"))
			flush(t, v)
			wantErrno(t, v.Rename(ctx, "/c", "/d/a2", RenameNoReplace), syscall.EEXIST)
			v2 := tv.reopen(t)
			if got := readFile(t, v2, "/d/a2"); string(got) != "BBB" {
				t.Fatalf("/d/a2 = %q", got)
			}
			for _, p := range []string{"/a", "/b"} {
				_, err := v2.Stat(ctx, p)
				wantErrno(t, err, syscall.ENOENT)
			}
			ents, _ := v2.ReadDir(ctx, "/")
			if names(ents) != "c,d" {
				t.Fatalf("root = %s", names(ents))
			}
			_ = n0
		})
	}
}

func TestRenameKeepsFileID(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/x", []byte("x"))
	flush(t, tv.Volume)
	n0, _ := tv.lookup(ctx, "/x")
	if err := tv.Rename(ctx, "/x", "/y", 0); err != nil {
		t.Fatal(err)
	}
	n1, err := tv.reopen(t).lookup(ctx, "/y")
	if err != nil || n1.okey.FileID() != n0.okey.FileID() {
		t.Fatalf("file ID changed or %v", err)
	}
}

// rsync writes a temporary file, closes it and renames it over the
// target: one upload in total.
func TestWritebackRenameUploadsOnce(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode, func(o *Options) { o.WritebackDelay = time.Hour })
			ctx := context.Background()
			v := tv.Volume
			writeFile(t, v, "/target", []byte("old"))
			flush(t, v)
			tv.store.reset()
			h, _, err := v.Create(ctx, "/.target.XXXXXX", 0o600, syscall.O_EXCL|syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			h.WriteAt(ctx, []byte("new content"), 0)
			h.Close(ctx)
			mt := time.Unix(1234567890, 0)
			if _, err := v.SetAttr(ctx, "/.target.XXXXXX", SetAttr{Mtime: &mt}); err != nil {
				t.Fatal(err)
			}
			if err := v.Rename(ctx, "/.target.XXXXXX", "/target", 0); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, v, "/target"); string(got) != "new content" {
				t.Fatalf("before upload: %q", got)
			}
			flush(t, v)
			if p, c := tv.store.count("put"), tv.store.count("copy"); p != 1 || c != 0 {
				t.Fatalf("puts %d copies %d, want 1 and 0", p, c)
			}
			v2 := tv.reopen(t)
			a, _ := v2.Stat(ctx, "/target")
			if got := readFile(t, v2, "/target"); string(got) != "new content" || !a.Mtime.Equal(mt) {
				t.Fatalf("after upload: %q %v", got, a.Mtime)
			}
			ents, _ := v2.ReadDir(ctx, "/")
			if names(ents) != "target" {
				t.Fatalf("root = %s", names(ents))
			}
		})
	}
}

func TestRenameDirectory(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			v := tv.Volume
			long := strings.Repeat("L", 230)
			for _, d := range []string{"/src", "/src/sub", "/src/" + long, "/dst"} {
				if _, err := v.Mkdir(ctx, d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			files := map[string]string{
				"/src/f1":                   "one",
				"/src/sub/f2":               "two",
				"/src/" + long + "/" + long: "three",
			}
			for p, c := range files {
				writeFile(t, v, p, []byte(c))
			}
			flush(t, v)
			writeFile(t, v, "/dst/x", []byte("x"))
			flush(t, v)
			wantErrno(t, v.Rename(ctx, "/src", "/dst", 0), syscall.ENOTEMPTY)
			wantErrno(t, v.Rename(ctx, "/src", "/src/sub/in", 0), syscall.EINVAL)
			v.Unlink(ctx, "/dst/x")
			// Staged (not yet uploaded) file inside: uploaded first, then moved.
			writeFile(t, v, "/src/staged", []byte("staged"))
			files["/src/staged"] = "staged"
			if err := v.Rename(ctx, "/src", "/dst", 0); err != nil {
				t.Fatal(err)
			}
			for _, vv := range []*Volume{v, tv.reopen(t)} {
				for p, c := range files {
					np := "/dst" + strings.TrimPrefix(p, "/src")
					if got := readFile(t, vv, np); string(got) != c {
						t.Fatalf("%s = %q", np, got)
					}
				}
				_, err := vv.Stat(ctx, "/src")
				wantErrno(t, err, syscall.ENOENT)
				ents, err := vv.ReadDir(ctx, "/dst")
				if err != nil || len(ents) != 4 {
					t.Fatalf("dst = %s, %v", names(ents), err)
				}
			}
		})
	}
}

func TestManyFilesListing(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	v := tv.Volume
	v.Mkdir(ctx, "/many", 0o755)
	for i := range 300 {
		writeFile(t, v, fmt.Sprintf("/many/file-%04d", i), []byte(fmt.Sprint(i)))
	}
	flush(t, v)
	v2 := tv.reopen(t)
	tv.store.reset()
	ents, err := v2.ReadDir(ctx, "/many")
	if err != nil || len(ents) != 300 {
		t.Fatalf("%d entries, %v", len(ents), err)
	}
	// Every request kind counts: files are resolved with ranged GETs,
	// directories with HEADs, and a lookup could LIST.
	listed := tv.store.snapshot()
	for _, e := range ents {
		if _, err := v2.Stat(ctx, "/many/"+e.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got := tv.store.snapshot(); !maps.Equal(got, listed) {
		t.Fatalf("lookups after readdir made requests: %v, after readdir %v", got, listed)
	}
	ents2, _ := v2.ReadDir(ctx, "/many")
	if got := tv.store.snapshot(); len(ents2) != 300 || !maps.Equal(got, listed) {
		t.Fatalf("second readdir: %d entries, requests %v, after the first %v", len(ents2), got, listed)
	}
	if !bytes.Equal([]byte(ents[7].Name), []byte("file-0007")) || ents[7].Attr.Size != 1 {
		t.Fatalf("entry 7 = %+v", ents[7])
	}
}

// A rename whose new name is hashed (its full encoding goes into
// coffer-name) can push the metadata of a file with xattrs past the
// budget: the rename is E2BIG and changes nothing, whether the file is
// still staged or already stored. (Without the check a staged file took
// the new name and its upload then failed for ever.)
func TestRenameToHashedNameBudget(t *testing.T) {
	long := "/" + strings.Repeat("n", 250)
	for _, stored := range []bool{false, true} {
		t.Run(map[bool]string{false: "staged", true: "stored"}[stored], func(t *testing.T) {
			// No writeback during the test: staged stays staged.
			tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = time.Hour })
			ctx := context.Background()
			v := tv.Volume
			writeFile(t, v, "/f", []byte("body"))
			// The largest user.x that still fits at the short name.
			size := 0
			for n := 64; ; n += 16 {
				err := v.Setxattr(ctx, "/f", "user.x", bytes.Repeat([]byte{'v'}, n), 0)
				if err != nil {
					wantErrno(t, err, syscall.E2BIG)
					break
				}
				size = n
			}
			if size == 0 {
				t.Fatal("no xattr fits")
			}
			if err := v.Setxattr(ctx, "/f", "user.x", bytes.Repeat([]byte{'v'}, size), 0); err != nil {
				t.Fatal(err)
			}
			if stored {
				flush(t, v)
			}
			wantErrno(t, v.Rename(ctx, "/f", long, 0), syscall.E2BIG)
			flush(t, v) // the staged file uploads under its old name
			v2 := tv.reopen(t)
			if got := readFile(t, v2, "/f"); string(got) != "body" {
				t.Fatalf("/f = %q", got)
			}
			val, err := v2.Getxattr(ctx, "/f", "user.x")
			if err != nil || len(val) != size {
				t.Fatalf("user.x after the refused rename: %d bytes, %v", len(val), err)
			}
			_, err = v2.Stat(ctx, long)
			wantErrno(t, err, syscall.ENOENT)
		})
	}
}

// TestRenameWhileItsUploadRuns: a closed staged file renamed over an open
// file is uploaded by its writeback timer while the rename keeps the
// open file's content (the interleaving is forced at that download). The
// rename then copies the stored object, and the file, clean and closed,
// must not stay registered at its new name: it would stand there over
// the store for good, hiding another mount's later version.
func TestRenameWhileItsUploadRuns(t *testing.T) {
	const ttl = 10 * time.Second
	tv := stalled(t, EncryptionClient, func(o *Options) { o.MetadataTTL = ttl })
	clk := tv.clock.(*fakeClock)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/f", []byte("old"))
	flush(t, tv.Volume)
	now := &manualTime{t: time.Now()}
	tv.meta.now = now.Now
	h, err := tv.Open(ctx, "/f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/staged", []byte("renamed over it"))
	delays := clk.armed()
	if len(delays) != 1 {
		t.Fatalf("armed timers %v, want the staged file's upload", delays)
	}
	fired := false
	tv.store.onGet = func(string) {
		if !fired {
			fired = true // the download of /f's content for h
			clk.fire(t, delays[0])
		}
	}
	if err := tv.Rename(ctx, "/staged", "/f", 0); err != nil {
		t.Fatal(err)
	}
	tv.store.onGet = nil
	if !fired {
		t.Fatal("the rename downloaded nothing: the interleaving was not forced")
	}
	if got := readAll(t, h); string(got) != "old" {
		t.Errorf("the open handle reads %q, want what it opened", got)
	}
	h.Close(ctx)
	tv.mu.Lock()
	left := len(tv.files)
	tv.mu.Unlock()
	if left != 0 {
		t.Errorf("%d files still held, closed and stored", left)
	}

	other := tv.reopen(t)
	if got := readFile(t, other, "/f"); string(got) != "renamed over it" {
		t.Fatalf("/f = %q in the store", got)
	}
	writeFile(t, other, "/f", []byte("another mount's"))
	flush(t, other)
	now.advance(ttl + time.Millisecond)
	if got := readFile(t, tv.Volume, "/f"); string(got) != "another mount's" {
		t.Errorf("/f = %q after the metadata TTL, want the other mount's version", got)
	}
}

// TestRenameDirDuringUpload: a file below a directory, written again and
// fsync'd while the directory is renamed (after the rename's own uploads,
// once its copies are made and before its sources go), waits for the
// rename and is stored under its new path. An upload that landed at the
// old key in between was deleted with the sources, and the renamed file
// was the copy of the version before: the fsync'd write was lost.
func TestRenameDirDuringUpload(t *testing.T) {
	for _, mode := range []string{EncryptionClient, EncryptionNone} {
		t.Run(mode, func(t *testing.T) {
			tv := storedBelowD(t, mode)
			ctx := context.Background()
			h, err := tv.Open(ctx, "/d/f", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			err = duringDirRename(t, tv, func() error {
				if _, err := h.WriteAt(ctx, []byte("two"), 0); err != nil {
					return err
				}
				return h.Fsync(ctx)
			})
			if err != nil {
				t.Fatalf("write and fsync during the rename: %v", err)
			}
			if err := h.Close(ctx); err != nil {
				t.Fatal(err)
			}
			flush(t, tv.Volume)
			if got := storedNames(t, tv, "/"); got != "e" {
				t.Errorf("the store holds %q at the root, want e alone", got)
			}
			if got := readFile(t, tv.reopen(t), "/e/f"); string(got) != "two" {
				t.Errorf("/e/f = %q in the store, want the write fsync'd during the rename", got)
			}
		})
	}
}

// TestChmodDuringDirRename: a chmod of a stored file below a directory,
// once the directory rename has made its copies, waits for the rename.
// Rewritten at the old key meanwhile, the new mode was deleted with the
// sources and the copy kept the old one, though the chmod succeeded.
// Now it waits at its gate (gate.go) and, the rename done, changes the
// file where it went.
func TestChmodDuringDirRename(t *testing.T) {
	tv := storedBelowD(t, EncryptionClient)
	ctx := context.Background()
	mode := uint32(0o600)
	err := duringDirRename(t, tv, func() error {
		_, err := tv.SetAttr(ctx, "/d/f", SetAttr{Mode: &mode})
		return err
	})
	a, serr := tv.reopen(t).Stat(ctx, "/e/f")
	if serr != nil {
		t.Fatal(serr)
	}
	if err != nil {
		t.Errorf("chmod during the rename: %v", err)
	}
	if got := a.Mode & 0o777; got != 0o600 {
		t.Errorf("chmod 600 during the rename, and /e/f is stored with mode %o", got)
	}
}

// storedBelowD is a stalled volume (no timer fires) holding "one" at
// /d/f, stored.
func storedBelowD(t *testing.T, mode string) *testVol {
	t.Helper()
	tv := stalled(t, mode)
	if _, err := tv.Mkdir(context.Background(), "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/d/f", []byte("one"))
	flush(t, tv.Volume)
	return tv
}

// duringDirRename renames /d to /e and runs op once the rename's copies
// are made, before its sources go (renameStep), once: op may rename a
// directory too. The rename goes on when op is done, or as soon as op
// waits for it (renameWait); duringDirRename returns op's result.
func duringDirRename(t *testing.T, tv *testVol, op func() error) error {
	t.Helper()
	result := make(chan error, 1)
	waiting := make(chan struct{})
	tv.renameWait = sync.OnceFunc(func() { close(waiting) })
	var once sync.Once
	tv.renameStep = func() {
		first := false
		once.Do(func() { first = true })
		if !first {
			return
		}
		go func() { result <- op() }()
		select {
		case <-waiting: // held until the rename ends
		case err := <-result: // done while the rename runs
			result <- err
		}
	}
	if err := tv.Rename(context.Background(), "/d", "/e", 0); err != nil {
		t.Fatal(err)
	}
	return <-result
}

// TestRenameInDirDuringDirRename: a rename within a directory that is
// being renamed (the kernel allows both at once: they lock different
// parents). The file rename, waiting for a write of the file it replaces,
// began first: the directory rename waits for it (gate.go), and moves
// what it left, the write made meanwhile through a handle included.
// Before the gate, the file rename held the upMu of the file it replaces
// while the file it renames uploaded, that upload waited for the
// directory rename, and a directory rename that waited for upMu below it
// hung with it (found by a second reader); a file rename that ran during
// the copies stored under the old directory's path.
func TestRenameInDirDuringDirRename(t *testing.T) {
	tv := stalled(t, EncryptionClient)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/d/a", []byte("a1"))
	writeFile(t, tv.Volume, "/d/b", []byte("b1"))
	flush(t, tv.Volume)
	hb, err := tv.Open(ctx, "/d/b", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	ha, err := tv.Open(ctx, "/d/a", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	tv.mu.Lock()
	victim := tv.files["/d/b"]
	tv.mu.Unlock()
	victim.upMu.RLock() // a write of /d/b in progress: the file rename waits for it
	blocked := make(chan struct{})
	tv.upWait = sync.OnceFunc(func() { close(blocked) })
	fileDone := make(chan error, 1)
	go func() { fileDone <- tv.Rename(ctx, "/d/a", "/d/b", 0) }()
	<-blocked
	draining := make(chan struct{})
	tv.drainWait = sync.OnceFunc(func() { close(draining) })
	dirDone := make(chan error, 1)
	go func() { dirDone <- tv.Rename(ctx, "/d", "/e", 0) }()
	<-draining
	// /d/a changes while the directory rename waits for the file rename.
	if _, err := ha.WriteAt(ctx, []byte("a2"), 0); err != nil {
		t.Fatal(err)
	}
	victim.upMu.RUnlock()
	for range 2 {
		select {
		case err := <-fileDone:
			t.Logf("rename /d/a /d/b: %v", err)
		case err := <-dirDone:
			if err != nil {
				t.Errorf("rename /d /e: %v", err)
			}
		case <-time.After(time.Minute):
			// Not t.Fatal: the cleanup (closing the volume) would wait
			// for the renames too.
			panic("TestRenameInDirDuringDirRename: a minute after both renames could go on, they still wait for each other")
		}
	}
	for _, h := range []*Handle{ha, hb} {
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
	}
	flush(t, tv.Volume)
	fresh := tv.reopen(t)
	if got := storedNames(t, tv, "/"); got != "e" {
		t.Errorf("the store holds %q at the root, want e alone", got)
	}
	if b, err := tryRead(fresh, "/e/b"); err != nil || string(b) != "a2" {
		t.Errorf("/e/b = %q, %v in the store, want the write to /d/a renamed to /d/b; /e holds %q", b, err, storedNames(t, tv, "/e"))
	}
}

// TestRenameOverFileBeingUploaded: a file renamed over one whose upload
// is in flight (git writes packed-refs twice, each time through
// packed-refs.lock) waits for that upload, so the object it stored is
// replaced: the renamed file is what the name holds, and no conflict
// copy of this mount's own file appears. Renamed while staged, a rename
// that did not wait left its own upload to find that object and store
// itself as a conflict copy; stored (a copy), only the wait is new.
func TestRenameOverFileBeingUploaded(t *testing.T) {
	for _, staged := range []bool{true, false} {
		t.Run(map[bool]string{true: "staged", false: "stored"}[staged], func(t *testing.T) {
			tv, gs, uploaded := uploadHeldOfP(t, func(tv *testVol) {
				if !staged {
					writeFile(t, tv.Volume, "/p.lock", []byte("second"))
					flush(t, tv.Volume)
				}
			})
			ctx := context.Background()
			if staged {
				writeFile(t, tv.Volume, "/p.lock", []byte("second"))
			}
			release := sync.OnceFunc(func() { close(gs.release) })
			waited := false
			tv.upWait = func() { waited = true; release() }
			if err := tv.Rename(ctx, "/p.lock", "/p", 0); err != nil {
				t.Fatal(err)
			}
			release() // a rename that did not wait: the PUT lands only now
			<-uploaded
			if !waited {
				t.Error("the rename did not wait for the upload of the file it replaced")
			}
			flush(t, tv.Volume)
			if got := storedNames(t, tv, "/"); got != "p" {
				t.Errorf("the store holds %q, want p alone", got)
			}
			if got := readFile(t, tv.reopen(t), "/p"); string(got) != "second" {
				t.Errorf("/p = %q in the store, want the file renamed last", got)
			}
		})
	}
}

// TestRenameOverFileStoredAsConflict: the upload a rename waited for met
// another mount's version and stored the replaced file as a conflict
// copy. That copy is this mount's data and stays; the rename meets the
// other mount's object at the name, and the renamed file, created over
// it, becomes a conflict copy of its own. Nothing is lost.
func TestRenameOverFileStoredAsConflict(t *testing.T) {
	tv, gs, uploaded := uploadHeldOfP(t, func(*testVol) {})
	ctx := context.Background()
	other := tv.reopen(t)
	writeFile(t, other, "/p", []byte("other"))
	flush(t, other)
	writeFile(t, tv.Volume, "/p.lock", []byte("second"))
	release := sync.OnceFunc(func() { close(gs.release) })
	tv.upWait = release
	if err := tv.Rename(ctx, "/p.lock", "/p", 0); err != nil {
		t.Fatal(err)
	}
	release() // a rename that did not wait: the PUT lands only now
	<-uploaded
	flush(t, tv.Volume)
	fresh := tv.reopen(t)
	ents, err := fresh.ReadDir(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, string(readFile(t, fresh, "/"+e.Name)))
	}
	slices.Sort(got)
	if want := []string{"first", "other", "second"}; !slices.Equal(got, want) {
		t.Errorf("the store holds %q (%s), want %q", got, names(ents), want)
	}
	if b := readFile(t, fresh, "/p"); string(b) != "other" {
		t.Errorf("/p = %q, want the other mount's version", b)
	}
}

// uploadHeldOfP stages "first" (after before), renames it to /p, and
// fires its upload, whose PUT (If-None-Match) the returned gate holds:
// in flight until gs.release closes; uploaded closes when it is done.
func uploadHeldOfP(t *testing.T, before func(*testVol)) (tv *testVol, gs *gateStore, uploaded chan struct{}) {
	t.Helper()
	tv = stalled(t, EncryptionClient, func(o *Options) {
		gs = &gateStore{Store: o.Store, entered: make(chan struct{}), release: make(chan struct{})}
		o.Store = gs
	})
	before(tv)
	clk := tv.clock.(*fakeClock)
	writeFile(t, tv.Volume, "/first", []byte("first"))
	if err := tv.Rename(context.Background(), "/first", "/p", 0); err != nil {
		t.Fatal(err)
	}
	delays := clk.armed()
	if len(delays) != 1 {
		t.Fatalf("armed timers %v, want the upload of /p", delays)
	}
	gs.armed = true
	uploaded = make(chan struct{})
	go func() {
		defer close(uploaded)
		clk.fire(t, delays[0])
	}()
	<-gs.entered
	return tv, gs, uploaded
}
