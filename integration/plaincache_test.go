package integration

import (
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestNoPlaintextInCacheWithoutClientEncryption: with --encryption none
// the store holds plain names and bodies by design, but the cache
// directory (staging files, block cache, log) still holds no plaintext
// (DESIGN.md §5: sealed under a local secret from a random key file).
func TestNoPlaintextInCacheWithoutClientEncryption(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t), withModes("--encryption", "none"))
	marker := "cofmark" + randomHex(8)
	scan := scanCacheThroughUse(t, v, marker)
	for _, f := range scan.findings {
		t.Error("plaintext in the cache dir: " + f)
	}
	// The control: the same markers are in the (plain) store.
	store := newMarkerScan(marker)
	if err := store.dir(v.store.dataDir); err != nil {
		t.Fatal(err)
	}
	if len(store.findings) == 0 {
		t.Fatal("the plain store scanned clean: the scan proves nothing")
	}
}

// TestSSECKeyNeverLocal mounts --encryption none --sse sse-c on SeaweedFS
// with debug logging: the SSE-C key (which travels in every request)
// appears in no argv, environment, log or cache file, and the cache
// holds no plaintext of what was written.
func TestSSECKeyNeverLocal(t *testing.T) {
	requireFUSE(t)
	srv := server(t, "seaweedfs")
	st := srv.store(srv.newBucket(t))
	sseKey := pseudoRandom(79, 32)
	keyText := base64.StdEncoding.EncodeToString(sseKey)
	keyFile := filepath.Join(t.TempDir(), "sse-c.key")
	if err := os.WriteFile(keyFile, []byte(keyText+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st.opts.SSE.Mode = "sse-c"
	st.opts.SSE.CKeys = [][]byte{sseKey}
	v := newVolume(t, st, withModes("--encryption", "none", "--sse", "sse-c", "--sse-c-key-file", keyFile))
	marker := "cofmark" + randomHex(8)
	v.mount("--log-level", "debug")
	writeMarked(t, v, marker)
	readAll(t, v, marker)
	secrets := newMarkerScan(keyText, string(sseKey), base64.RawURLEncoding.EncodeToString(sseKey))
	pid := mountPid(t, v.mnt)
	for _, f := range []string{"cmdline", "environ"} {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), f))
		if err != nil {
			t.Fatal(err)
		}
		secrets.check("/proc/"+f, data)
	}
	plain := newMarkerScan(marker)
	if err := plain.dir(v.cacheDir); err != nil {
		t.Fatal(err)
	}
	v.unmount()
	if err := secrets.dir(v.cacheDir); err != nil {
		t.Fatal(err)
	}
	for _, f := range secrets.findings {
		t.Errorf("SSE-C key material: %s", f)
	}
	for _, f := range plain.findings {
		t.Errorf("plaintext in the cache dir: %s", f)
	}
}

// checkPrivate fails unless everything under dir is the user's alone:
// no group or other permission bits on any file or directory.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n++
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: readable or writable by group or others", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("checked %d entries under %s", n, dir)
	}
}
