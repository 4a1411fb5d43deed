package integration

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
)

// writeMarked fills the mount with names, contents and link targets that
// all carry marker, in every shape coffer stores: small and multi-chunk
// and multipart files, directories, a long name, a symlink, a renamed
// file and a chmod.
func writeMarked(t *testing.T, v *volume, marker string) {
	t.Helper()
	line := []byte("secret line " + marker + "\n")
	if err := os.MkdirAll(v.path("dir-"+marker, "sub-"+marker), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, v.path("small-"+marker), line)
	writeFile(t, v.path("dir-"+marker, "chunks-"+marker), bytes.Repeat(line, 300_000/len(line)))
	writeFile(t, v.path("dir-"+marker, "sub-"+marker, "parts-"+marker), bytes.Repeat(line, (6<<20)/len(line)))
	writeFile(t, v.path("long-"+marker+strings.Repeat("x", 200)), line)
	writeFile(t, v.path("before-rename"), line)
	if err := os.Rename(v.path("before-rename"), v.path("dir-"+marker, "renamed-"+marker)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target-"+marker, v.path("link-"+marker)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(v.path("small-"+marker), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every file under the mount, filling the block cache.
func readAll(t *testing.T, v *volume, marker string) {
	t.Helper()
	for _, p := range []string{"small-" + marker, "dir-" + marker + "/chunks-" + marker, "dir-" + marker + "/sub-" + marker + "/parts-" + marker, "dir-" + marker + "/renamed-" + marker} {
		data, err := os.ReadFile(v.path(p))
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if !bytes.Contains(data, []byte(marker)) {
			t.Fatalf("%s lost its content", p)
		}
	}
}

// TestNoPlaintextAtRest scans the store (through its API and, where the
// server keeps objects on local disk, the files themselves) and the cache
// directory (debug log included) for the names and contents written, while a file is still
// staged and after everything was uploaded and read back.
func TestNoPlaintextAtRest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		// Debug logging on: coffer.log in the cache dir is scanned too.
		v := newVolume(t, b.newStore(t), withMountArgs("--log-level", "debug"))
		// The daemon's TMPDIR is scanned too: no plaintext in temp files.
		tmp := t.TempDir()
		v.store.env = append(v.store.env, "TMPDIR="+tmp)
		marker := "cofmark" + randomHex(8)
		scan := scanCacheThroughUse(t, v, marker)
		if err := scan.dirMaybeEmpty(tmp); err != nil {
			t.Fatal(err)
		}
		if err := scan.store(v.store.open(t)); err != nil {
			t.Fatal(err)
		}
		if v.store.dataDir != "" {
			if err := scan.dir(v.store.dataDir); err != nil {
				t.Fatal(err)
			}
		} else if b.name != "local" {
			t.Logf("no data dir for %s (COFFER_TEST_VERSITYGW_DATA_DIR unset): scanned through the API only", b.name)
		}
		for _, f := range scan.findings {
			t.Error("plaintext at rest: " + f)
		}
	})
}

// TestPlainModeScanFinds is the end-to-end control of the scan above: the
// same files written with --encryption none are found in the store.
func TestPlainModeScanFinds(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t), withModes("--encryption", "none"))
	marker := "cofmark" + randomHex(8)
	v.mount()
	writeMarked(t, v, marker)
	v.unmount()
	scan := newMarkerScan(marker)
	if err := scan.dir(v.store.dataDir); err != nil {
		t.Fatal(err)
	}
	var names, contents int
	for _, f := range scan.findings {
		switch {
		case strings.HasPrefix(f, "name "):
			names++
		case strings.HasPrefix(f, "content "):
			contents++
		}
	}
	if names == 0 || contents == 0 {
		t.Fatalf("a plain store scanned as clean (findings: %v): the scan cannot be trusted", scan.findings)
	}
}

// cipherSize is the stored size of a plaintext of n bytes (DESIGN.md §3).
func cipherSize(n int64) int64 {
	chunks := max(1, (n+chunk-1)/chunk)
	return 20 + n + 28*chunks
}

// objectOfSize returns the key of the only object in st of the given size.
func objectOfSize(t *testing.T, st blobstore.Store, size int64) string {
	t.Helper()
	var found []string
	for e, err := range st.List(context.Background(), "", "") {
		if err != nil {
			t.Fatal(err)
		}
		if e.Size == size && !strings.HasPrefix(e.Key, ".coffer/") {
			found = append(found, e.Key)
		}
	}
	if len(found) != 1 {
		t.Fatalf("objects of size %d: %v, want exactly one", size, found)
	}
	return found[0]
}

// TestTamper flips one byte of a stored object, then copies another
// object over it: reading it fails with EIO each time, and every other
// file still reads back.
func TestTamper(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t))
		v.mount()
		files := map[string][]byte{
			"a":     pseudoRandom(1, 100_000),
			"b":     pseudoRandom(2, 70_000),
			"c":     pseudoRandom(3, 30_000),
			"sub/d": pseudoRandom(4, 5_000),
		}
		if err := os.Mkdir(v.path("sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			writeFile(t, v.path(name), data)
		}
		v.unmount()

		ctx := context.Background()
		st := v.store.open(t)
		keyA := objectOfSize(t, st, cipherSize(100_000))
		keyB := objectOfSize(t, st, cipherSize(70_000))
		original, info := getObject(t, st, keyA)

		expectA := func(what string, wantEIO bool) {
			t.Helper()
			v.cacheDir = v.dir + "/cache-" + randomHex(4) // every read from the store
			v.mount()
			defer v.unmount()
			_, err := os.ReadFile(v.path("a"))
			switch {
			case wantEIO && errnoOf(err) != syscall.EIO:
				t.Fatalf("%s: reading a: %v, want EIO", what, err)
			case !wantEIO && err != nil:
				t.Fatalf("%s: reading a: %v", what, err)
			}
			for name, data := range files {
				if name != "a" {
					checkFile(t, v.path(name), data)
				}
			}
			if _, err := os.ReadDir(v.path()); err != nil {
				t.Fatalf("%s: listing the root: %v", what, err)
			}
		}

		flipped := bytes.Clone(original)
		flipped[len(flipped)/2] ^= 0x01
		putObject(t, st, keyA, flipped, info.Metadata)
		expectA("byte flipped", true)

		putObject(t, st, keyA, original, info.Metadata)
		expectA("original restored", false)

		if _, err := st.Copy(ctx, keyB, keyA, blobstore.CopyOptions{}); err != nil {
			t.Fatalf("copy b over a: %v", err)
		}
		expectA("b copied over a", true)
	})
}

func getObject(t *testing.T, st blobstore.Store, key string) ([]byte, blobstore.ObjectInfo) {
	t.Helper()
	ctx := context.Background()
	rc, _, err := st.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Head(ctx, key)
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return data, info
}

func putObject(t *testing.T, st blobstore.Store, key string, data []byte, meta map[string]string) {
	t.Helper()
	if _, err := st.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{Metadata: meta}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// TestErrorLogNamesNoPlaintext: reading a tampered file fails with EIO
// and the daemon's log says why (at error level), naming the object by
// its key, never by the plaintext name, at the default log level and at
// debug (the log is coffer.log in the cache dir: local disk).
func TestErrorLogNamesNoPlaintext(t *testing.T) {
	requireFUSE(t)
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			v := newVolume(t, newLocalStore(t), withMountArgs("--log-level", level))
			marker := "cofmark" + randomHex(8)
			v.mount()
			if err := os.Mkdir(v.path("dir-"+marker), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, v.path("dir-"+marker, "file-"+marker), pseudoRandom(27, 100_000))
			v.unmount()
			st := v.store.open(t)
			key := objectOfSize(t, st, cipherSize(100_000))
			body, info := getObject(t, st, key)
			body[len(body)/2] ^= 0x01
			putObject(t, st, key, body, info.Metadata)

			v.cacheDir = v.dir + "/cache-" + randomHex(4)
			v.mount()
			if _, err := os.ReadFile(v.path("dir-"+marker, "file-"+marker)); errnoOf(err) != syscall.EIO {
				t.Fatalf("reading the tampered file: %v, want EIO", err)
			}
			v.unmount()
			log, err := os.ReadFile(v.cacheDir + "/coffer.log")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(log, []byte("level=ERROR")) || !bytes.Contains(log, []byte(key)) {
				t.Errorf("the log has no error line naming object %s:\n%s", key, log)
			}
			scan := newMarkerScan(marker)
			if err := scan.dir(v.cacheDir); err != nil {
				t.Fatal(err)
			}
			for _, f := range scan.findings {
				t.Errorf("plaintext name on local disk: %s", f)
			}
		})
	}
}

// scanCacheThroughUse mounts v, writes marked files, and scans the cache
// dir for marker while a marked file is open for writing (its staging
// file is there) and again after a remount on the same cache dir has
// read everything back; it ends unmounted, with the cache dir checked to
// be private. The findings are the caller's to judge.
func scanCacheThroughUse(t *testing.T, v *volume, marker string) *markerScan {
	t.Helper()
	v.mount()
	writeMarked(t, v, marker)
	f := openFile(t, v.path("open-"+marker), os.O_WRONLY|os.O_CREATE)
	writeAt(t, f, bytes.Repeat([]byte("staged "+marker+"\n"), 20_000), 0)
	scan := newMarkerScan(marker)
	if err := scan.dir(v.cacheDir); err != nil {
		t.Fatal(err)
	}
	closeFile(t, f)
	v.remount(false) // same cache dir, now holding what is read back
	readAll(t, v, marker)
	if err := scan.dir(v.cacheDir); err != nil {
		t.Fatal(err)
	}
	v.unmount()
	checkPrivate(t, v.cacheDir)
	return scan
}
