package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

// conflictAt is the injected time of the conflicts in these tests.
var conflictAt = time.Date(2026, 11, 3, 4, 5, 6, 0, time.UTC)

const conflictSuffix = ".conflict-20261103-040506"

// TestConflictCopy: an upload whose path another mount changed since the
// version it replaces (or created since it was looked up) keeps both: the
// other's version stays, this one is stored beside it as
// NAME.conflict-TIME with the same attributes; the file moves there, a
// warning names both objects, and Conflicts lists the pair. A taken
// conflict name gets -2. A file another mount deleted is created again.
func TestConflictCopy(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode, func(o *Options) { o.now = func() time.Time { return conflictAt } })
			ctx := context.Background()
			writeFile(t, tv.Volume, "/c", []byte("v1"))
			writeFile(t, tv.Volume, "/d", []byte("v1"))
			flush(t, tv.Volume)
			mode640 := uint32(0o640)
			if _, err := tv.SetAttr(ctx, "/c", SetAttr{Mode: &mode640}); err != nil {
				t.Fatal(err)
			}
			if _, err := tv.Stat(ctx, "/n"); Errno(err) != syscall.ENOENT {
				t.Fatal(err) // /n is known absent here from now on
			}
			hc, err := tv.Open(ctx, "/c", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			hc.WriteAt(ctx, []byte("mine"), 0)
			hd, err := tv.Open(ctx, "/d", syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			hd.WriteAt(ctx, []byte("mine, after a delete"), 0)

			other := tv.reopen(t)
			writeFile(t, other, "/c", []byte("theirs"))
			writeFile(t, other, "/n", []byte("theirs, new"))
			writeFile(t, other, "/n"+conflictSuffix, []byte("an older conflict copy"))
			flush(t, other)
			if err := other.Unlink(ctx, "/d"); err != nil {
				t.Fatal(err)
			}

			if err := hc.Fsync(ctx); err != nil {
				t.Fatalf("fsync of a conflicting file: %v", err)
			}
			if p := hc.Path(); p != "/c"+conflictSuffix {
				t.Fatalf("the handle follows the file to %s, want the conflict copy", p)
			}
			hc.Close(ctx)
			if err := hd.Fsync(ctx); err != nil {
				t.Fatal(err)
			}
			hd.Close(ctx)
			writeFile(t, tv.Volume, "/n", []byte("mine, new")) // the lookup still says absent
			flush(t, tv.Volume)

			fresh := tv.reopen(t)
			for p, want := range map[string]string{
				"/c":                         "theirs",
				"/c" + conflictSuffix:        "mine",
				"/d":                         "mine, after a delete",
				"/n":                         "theirs, new",
				"/n" + conflictSuffix:        "an older conflict copy",
				"/n" + conflictSuffix + "-2": "mine, new",
			} {
				if got := string(readFile(t, fresh, p)); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			if got, want := storedNames(t, tv, "/"), "c,c"+conflictSuffix+",d,n,n"+conflictSuffix+",n"+conflictSuffix+"-2"; got != want {
				t.Fatalf("store holds %s, want %s", got, want)
			}
			a, err := fresh.Stat(ctx, "/c"+conflictSuffix)
			if err != nil || a.Mode&0o7777 != 0o640 {
				t.Fatalf("conflict copy attributes %+v, %v: want the file's (0640)", a, err)
			}
			want := []Conflict{{"/c", "/c" + conflictSuffix}, {"/n", "/n" + conflictSuffix + "-2"}}
			if got := tv.Conflicts(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Conflicts = %v, want %v", got, want)
			}
		})
	}
}

// TestConflictWarningNamesBoth: the warning of a conflict names the
// other's object and the copy, by key (never by plaintext path).
func TestConflictWarningNamesBoth(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.now = func() time.Time { return conflictAt } })
	v, logs := tv.reopenLogging(t, 0, func(o *Options) { o.now = tv.options.now })
	ctx := context.Background()
	if _, err := v.Stat(ctx, "/secret-name"); Errno(err) != syscall.ENOENT {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/secret-name", []byte("theirs"))
	flush(t, tv.Volume)
	writeFile(t, v, "/secret-name", []byte("mine"))
	flush(t, v)
	key, _, _ := v.objectKey("/secret-name")
	ckey, _, _ := v.objectKey("/secret-name" + conflictSuffix)
	found := false
	for _, l := range logs.lines() {
		if strings.Contains(l, "secret-name") {
			t.Fatalf("a record names the plaintext path: %s", l)
		}
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "conflict") &&
			strings.Contains(l, "key="+key) && strings.Contains(l, "conflict_key="+ckey) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no warning naming both keys (%s, %s):\n%s", key, ckey, strings.Join(logs.lines(), "\n"))
	}
}

// transientStore fails Puts (without storing) with a transient error
// while down is above zero, counting down one per failed Put when it is
// finite (fails < 0: until cleared).
type transientStore struct {
	blobstore.Store
	fails atomic.Int64
	puts  atomic.Int64
}

func (s *transientStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	s.puts.Add(1)
	if n := s.fails.Load(); n != 0 {
		if n > 0 {
			s.fails.Add(-1)
		}
		return blobstore.ObjectInfo{}, &blobstore.Error{Op: "put", Key: key, Err: fmt.Errorf("%w: store unreachable", blobstore.ErrTransient)}
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

// TestFsyncRetryBudget: fsync retries a store that fails transiently and
// succeeds when the store is back within the retry budget; it fails (EIO)
// only when the store kept failing for the whole budget, and the next
// fsync, with the store back, succeeds.
func TestFsyncRetryBudget(t *testing.T) {
	var ts *transientStore
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		ts = &transientStore{Store: o.Store}
		o.Store = ts
		// Waits of 100 and 200 ms bring the store back in the first
		// part; the budget leaves room for slow uploads on a loaded
		// machine (400 ms did not), and the second part spends it whole.
		o.RetryBudget = 1500 * time.Millisecond
		o.uploadRetries = -1
	})
	ctx := context.Background()
	h, _, err := tv.Create(ctx, "/f", 0o644, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	h.WriteAt(ctx, []byte("one"), 0)
	ts.fails.Store(2) // back after two failed attempts
	if err := h.Fsync(ctx); err != nil {
		t.Fatalf("fsync with the store back within the budget: %v", err)
	}
	if n := ts.puts.Load(); n != 3 {
		t.Fatalf("%d puts, want 3", n)
	}
	h.WriteAt(ctx, []byte("two"), 0)
	ts.fails.Store(-1) // down for good
	ts.puts.Store(0)
	err = h.Fsync(ctx)
	wantErrno(t, err, syscall.EIO)
	if !strings.Contains(err.Error(), "retry budget") || ts.puts.Load() < 2 {
		t.Fatalf("fsync = %v after %d puts, want a failure naming the budget after retries", err, ts.puts.Load())
	}
	ts.fails.Store(0)
	if err := h.Fsync(ctx); err != nil {
		t.Fatalf("fsync with the store back: %v", err)
	}
	if got := readFile(t, tv.reopen(t), "/f"); string(got) != "two" {
		t.Fatalf("stored %q", got)
	}
}

// TestFlushNamesFailedFiles: Flush reports every file it could not
// store, by path; once one upload failed for the whole retry budget, the
// others fail at once. They stay journalled: the next mount of the cache
// dir uploads them.
func TestFlushNamesFailedFiles(t *testing.T) {
	var ts *transientStore
	tv := newTestVolume(t, EncryptionClient, func(o *Options) {
		ts = &transientStore{Store: o.Store}
		o.Store = ts
		o.RetryBudget = 300 * time.Millisecond
		o.UploadConcurrency = 1
		o.uploadRetries = -1
	})
	tv.clock = &fakeClock{}
	ctx := context.Background()
	for _, p := range []string{"/a", "/b", "/c"} {
		writeFile(t, tv.Volume, p, []byte(p))
	}
	ts.fails.Store(-1)
	err := tv.Flush(ctx, nil)
	var fe *FlushError
	if !errors.As(err, &fe) || len(fe.Failed) != 3 {
		t.Fatalf("flush = %v, want a FlushError naming 3 files", err)
	}
	tried := 0
	for i, f := range fe.Failed {
		if want := []string{"/a", "/b", "/c"}[i]; f.Path != want {
			t.Fatalf("failed[%d] = %s, want %s", i, f.Path, want)
		}
		if !errors.Is(f.Err, errNotTried) {
			tried++
		}
	}
	if tried != 1 {
		t.Fatalf("%d uploads tried for the whole budget, want 1: %v", tried, err)
	}
	if err := tv.Close(ctx); err == nil {
		t.Fatal("close with failed uploads succeeded")
	}
	ts.fails.Store(0)
	v2, _ := tv.remount(t)
	if rep := v2.Recovered(); rep.Recovered != 3 {
		t.Fatalf("recovery %+v, want the 3 files", rep)
	}
}

// TestErrnoOfNetworkFailures: a store failure that carries the errno of a
// broken connection deep in its chain is EIO to the filesystem, not
// ECONNRESET (which no file operation documents); the typed store errors
// keep their errnos.
func TestErrnoOfNetworkFailures(t *testing.T) {
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{&blobstore.Error{Op: "s3 put", Key: "k", Err: fmt.Errorf("%w: connection failed: %w", blobstore.ErrTransient, netErr)}, syscall.EIO},
		{&blobstore.Error{Op: "s3 get", Key: "k", Err: fmt.Errorf("%w: %w", blobstore.ErrNotFound, netErr)}, syscall.ENOENT},
		{pathErr("rename", "/a", netErr), syscall.EIO},
		{withErrno(syscall.ENOSPC, netErr), syscall.ENOSPC},
		{syscall.EEXIST, syscall.EEXIST},
	} {
		if got := Errno(c.err); got != c.want {
			t.Errorf("Errno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestMetadataRaceGuard: a metadata-only change (chown, utimens, chmod,
// rename) made from a stale view of a file or directory does not undo
// another mount's metadata change made since (which keeps the ETag): it
// is applied to the version the store holds, so both changes stand.
func TestMetadataRaceGuard(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			for _, p := range []string{"/chown", "/utimens", "/chmod", "/rename"} {
				writeFile(t, tv.Volume, p, []byte(p))
			}
			if _, err := tv.Mkdir(ctx, "/dir", 0o755); err != nil {
				t.Fatal(err)
			}
			flush(t, tv.Volume)
			for _, p := range []string{"/chown", "/utimens", "/chmod", "/rename", "/dir"} {
				if _, err := tv.Stat(ctx, p); err != nil { // tv trusts what it read
					t.Fatal(err)
				}
			}
			other := tv.reopen(t)
			set := func(v *Volume, p string, s SetAttr) {
				t.Helper()
				if _, err := v.SetAttr(ctx, p, s); err != nil {
					t.Fatalf("setattr %s: %v", p, err)
				}
			}
			m600, m640, uid := uint32(0o600), uint32(0o640), uint32(1234)
			when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			for _, p := range []string{"/chown", "/utimens", "/rename", "/dir"} {
				set(other, p, SetAttr{Mode: &m600})
			}
			set(other, "/chmod", SetAttr{UID: &uid})

			set(tv.Volume, "/chown", SetAttr{UID: &uid})
			set(tv.Volume, "/utimens", SetAttr{Mtime: &when})
			set(tv.Volume, "/chmod", SetAttr{Mode: &m640})
			set(tv.Volume, "/dir", SetAttr{UID: &uid})
			if err := tv.Rename(ctx, "/rename", "/renamed", 0); err != nil {
				t.Fatal(err)
			}

			fresh := tv.reopen(t)
			for _, c := range []struct {
				p    string
				mode uint32
				uid  uint32
			}{{"/chown", 0o600, 1234}, {"/utimens", 0o600, 1000}, {"/chmod", 0o640, 1234}, {"/renamed", 0o600, 1000}, {"/dir", 0o600, 1234}} {
				a, err := fresh.Stat(ctx, c.p)
				if err != nil {
					t.Fatal(err)
				}
				if a.Mode&0o7777 != c.mode || a.UID != c.uid {
					t.Errorf("%s: mode %o uid %d, want %o and %d (both changes)", c.p, a.Mode&0o7777, a.UID, c.mode, c.uid)
				}
			}
			if a, _ := fresh.Stat(ctx, "/utimens"); !a.Mtime.Equal(when) {
				t.Errorf("/utimens: mtime %v, want %v", a.Mtime, when)
			}
		})
	}
}

// TestConflictOnLinkedFile: when another mount stored new content of a
// hard-linked file while this one had it open, this mount's version is
// kept as a plain conflict copy beside the name it wrote through; the
// inode keeps the other mount's content under both names, its links
// untouched.
func TestConflictOnLinkedFile(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.now = func() time.Time { return conflictAt } })
	ctx := context.Background()
	writeFile(t, tv.Volume, "/f", []byte("v1"))
	if _, err := tv.Link(ctx, "/f", "/g"); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	h, err := tv.Open(ctx, "/f", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("mine"), 0); err != nil {
		t.Fatal(err)
	}
	other := tv.reopen(t)
	writeFile(t, other, "/g", []byte("theirs"))
	flush(t, other)

	if err := h.Fsync(ctx); err != nil {
		t.Fatalf("fsync of a conflicting linked file: %v", err)
	}
	if p := h.Path(); p != "/f"+conflictSuffix {
		t.Errorf("the handle is at %s, want the conflict copy", p)
	}
	h.Close(ctx)
	flush(t, tv.Volume)

	fresh := tv.reopen(t)
	for p, want := range map[string]string{"/f": "theirs", "/g": "theirs", "/f" + conflictSuffix: "mine"} {
		if got, err := tryRead(fresh, p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	checkLinks(t, fresh, 2, "/f", "/g")
	if a := mustStat(t, fresh, "/f"+conflictSuffix); a.Nlink() != 1 {
		t.Errorf("the conflict copy has %d links, want 1", a.Nlink())
	}
}
