package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
)

// logBuffer collects the text of log records, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// reopenLogging opens tv's store again with a logger at level writing
// text records to the returned buffer.
func (tv *testVol) reopenLogging(t *testing.T, level slog.Level, tweak ...func(*Options)) (*Volume, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	opts := tv.options
	opts.CacheDir = t.TempDir()
	opts.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: level}))
	for _, f := range tweak {
		f(&opts)
	}
	v, err := OpenVolume(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close(context.Background()) })
	return v, lb
}

// tamperBody flips one byte near the end of the object at key.
func tamperBody(t *testing.T, store blobstore.Store, key string) {
	t.Helper()
	ctx := context.Background()
	rc, info, err := store.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	body[len(body)-20] ^= 1
	if _, err := store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), blobstore.PutOptions{Metadata: info.Metadata}); err != nil {
		t.Fatal(err)
	}
}

// TestEIOIsLogged: a read that fails authentication logs its cause once
// at error level, naming the object key; the plaintext name appears only
// in a debug record, and only with LogPlaintextNames.
func TestEIOIsLogged(t *testing.T) {
	const name = "/secret-plaintext-name.txt"
	cases := []struct {
		level      slog.Level
		plainNames bool
		wantPaths  int
	}{
		{slog.LevelInfo, false, 0},
		{slog.LevelDebug, false, 0},
		{slog.LevelInfo, true, 0},
		{slog.LevelDebug, true, 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/plaintext-names=%v", tc.level, tc.plainNames), func(t *testing.T) {
			tv := newTestVolume(t, EncryptionClient)
			writeFile(t, tv.Volume, name, bytes.Repeat([]byte("s"), 200000))
			flush(t, tv.Volume)
			key := objectKeyOf(t, tv.Volume, name)
			tamperBody(t, tv.store, key)
			v, logs := tv.reopenLogging(t, tc.level, func(o *Options) { o.LogPlaintextNames = tc.plainNames })
			_, err := tryRead(v, name)
			wantErrno(t, err, syscall.EIO)
			var causes, paths int
			for _, line := range logs.lines() {
				debug := strings.Contains(line, "level=DEBUG")
				if (!debug || !tc.plainNames) && strings.Contains(line, "secret-plaintext-name") {
					t.Errorf("plaintext name in a record: %s", line)
				}
				if strings.Contains(line, "level=ERROR") && strings.Contains(line, "key="+key) &&
					strings.Contains(line, "authentication") && strings.Contains(line, "err=") {
					causes++
				}
				if debug && strings.Contains(line, "path="+name) && strings.Contains(line, "key="+key) {
					paths++
				}
			}
			if causes != 1 {
				t.Errorf("%d error records with the key and the cause, want 1:\n%s", causes, strings.Join(logs.lines(), "\n"))
			}
			if paths != tc.wantPaths {
				t.Errorf("%d debug records mapping the key to its path, want %d", paths, tc.wantPaths)
			}
		})
	}
}

// TestEIOLoggedOnceForEveryCause: stat of an object whose metadata does
// not authenticate, and store failures, log their cause (error level,
// with the key) exactly once per failed operation; other errors log
// nothing.
func TestEIOLoggedOnceForEveryCause(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/a", []byte("aaa"))
	writeFile(t, tv.Volume, "/b", []byte("bbb"))
	flush(t, tv.Volume)
	keyA, keyB := objectKeyOf(t, tv.Volume, "/a"), objectKeyOf(t, tv.Volume, "/b")
	// b's body and metadata at a's key: its attributes are bound to /b.
	if _, err := tv.store.Copy(ctx, keyB, keyA, blobstore.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	v, logs := tv.reopenLogging(t, slog.LevelInfo)
	_, err := v.Stat(ctx, "/a")
	wantErrno(t, err, syscall.EIO)
	_, err = v.Stat(ctx, "/missing")
	wantErrno(t, err, syscall.ENOENT)

	// A store failure on the listing.
	opts := tv.options
	opts.CacheDir = t.TempDir()
	lb := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(lb, nil))
	opts.Store = failingList{tv.store}
	v2, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close(ctx)
	_, err = v2.ReadDir(ctx, "/")
	wantErrno(t, err, syscall.EIO)

	count := func(lines []string, want ...string) int {
		n := 0
		for _, l := range lines {
			ok := strings.Contains(l, "level=ERROR")
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				n++
			}
		}
		return n
	}
	if n := count(logs.lines(), "key="+keyA, "authentication"); n != 1 {
		t.Errorf("stat: %d error records naming %s and the cause, want 1:\n%s", n, keyA, strings.Join(logs.lines(), "\n"))
	}
	if n := count(logs.lines()); n != 1 {
		t.Errorf("%d error records in all, want 1 (ENOENT logs nothing)", n)
	}
	if n := count(lb.lines(), "readdir", "list refused for the test"); n != 1 {
		t.Errorf("readdir: %d error records with the cause, want 1:\n%s", n, strings.Join(lb.lines(), "\n"))
	}
}

var errListRefused = errors.New("list refused for the test")

// failingList is a store whose listings fail.
type failingList struct{ blobstore.Store }

func (f failingList) List(ctx context.Context, prefix, delim string) iter.Seq2[blobstore.Entry, error] {
	return func(yield func(blobstore.Entry, error) bool) { yield(blobstore.Entry{}, errListRefused) }
}

// TestNoneModeLogsNoNames: in none mode the object key is the plaintext
// name, so records (debug ones too, without LogPlaintextNames) carry a
// keyed hash of it instead.
func TestNoneModeLogsNoNames(t *testing.T) {
	tv := newTestVolume(t, EncryptionNone)
	ctx := context.Background()
	v, logs := tv.reopenLogging(t, slog.LevelDebug)
	opts := tv.options
	opts.CacheDir = t.TempDir()
	opts.Logger = v.log
	opts.Store = failingList{tv.store}
	v2, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close(ctx)
	_, err = v2.ReadDir(ctx, "/plain-secret-dir")
	wantErrno(t, err, syscall.EIO)
	lines := logs.lines()
	if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "key=name-hash:") {
		t.Errorf("no record names the object by its hash:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if strings.Contains(l, "plain-secret-dir") {
			t.Errorf("plaintext name logged: %s", l)
		}
	}
}
