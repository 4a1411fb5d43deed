package integration

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDefaults uses no store or key flags: init creates the default key
// file and local store under $HOME, mount finds both and puts its cache
// under $XDG_CACHE_HOME/coffer/<volume ID>. Then the same through
// COFFER_STORE and COFFER_KEY_FILE.
func TestDefaults(t *testing.T) {
	requireFUSE(t)
	home := t.TempDir()
	env := []string{"HOME=" + home}
	r := coffer(t, env, "init")
	if r.code != 0 {
		t.Fatalf("init: %v", r)
	}
	keyFile := filepath.Join(home, ".config/coffer/key")
	if !strings.Contains(r.stdout, "created key file "+keyFile) {
		t.Fatalf("init does not say where the key is: %v", r)
	}
	mnt := filepath.Join(home, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := coffer(t, env, "mount", "--daemon", mnt); r.code != 0 {
		t.Fatalf("mount with defaults: %v", r)
	}
	t.Cleanup(func() { coffer(t, nil, "unmount", mnt) })
	writeFile(t, filepath.Join(mnt, "f"), []byte("defaults"))
	if r := coffer(t, nil, "unmount", mnt); r.code != 0 {
		t.Fatalf("unmount: %v", r)
	}
	caches, _ := filepath.Glob(filepath.Join(home, ".cache/coffer/*"))
	if len(caches) != 1 || len(filepath.Base(caches[0])) != 32 {
		t.Fatalf("default cache dirs: %v, want one named after the volume ID", caches)
	}
	if _, err := os.Stat(filepath.Join(home, ".local/share/coffer/store")); err != nil {
		t.Fatalf("default store: %v", err)
	}

	// The same volume through the environment, from another HOME.
	other := t.TempDir()
	env = []string{"HOME=" + other, "COFFER_STORE=" + filepath.Join(home, ".local/share/coffer/store"), "COFFER_KEY_FILE=" + keyFile}
	if r := coffer(t, env, "mount", "--daemon", mnt); r.code != 0 {
		t.Fatalf("mount from the environment: %v", r)
	}
	checkFile(t, filepath.Join(mnt, "f"), []byte("defaults"))
	if r := coffer(t, nil, "unmount", mnt); r.code != 0 {
		t.Fatalf("unmount: %v", r)
	}
}

// TestPassphrase makes a volume that opens with a key file or a
// passphrase, and mounts it with each alone.
func TestPassphrase(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	key, pass := filepath.Join(dir, "key"), filepath.Join(dir, "pass")
	store := filepath.Join(dir, "store")
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if r := coffer(t, nil, "keygen", "--out", key); r.code != 0 {
		t.Fatal(r)
	}
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := coffer(t, nil, "init", "--store", store, "--key-file", key, "--passphrase-file", pass); r.code != 0 {
		t.Fatalf("init with two keys: %v", r)
	}
	t.Cleanup(func() { coffer(t, nil, "unmount", mnt) })
	for i, keyArgs := range [][]string{{"--passphrase-file", pass}, {"--key-file", key}} {
		args := append(append([]string{"mount", "--daemon", "--store", store, "--cache-dir", filepath.Join(dir, "cache")}, keyArgs...), mnt)
		if r := coffer(t, nil, args...); r.code != 0 {
			t.Fatalf("mount with %s: %v", keyArgs[0], r)
		}
		if i == 0 {
			writeFile(t, filepath.Join(mnt, "f"), []byte("either key"))
		} else {
			checkFile(t, filepath.Join(mnt, "f"), []byte("either key"))
		}
		if r := coffer(t, nil, "unmount", mnt); r.code != 0 {
			t.Fatal(r)
		}
	}
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("incorrect horse\n"), 0o600)
	expectMountFailure(t, nil, mnt, 1, []string{"wrong key"}, "mount", "--store", store, "--passphrase-file", wrong)
}

// TestNoKeysInProcess checks that the daemon's command line, environment
// and log carry key file paths only, never key material.
func TestNoKeysInProcess(t *testing.T) {
	requireFUSE(t)
	v := newVolume(t, newLocalStore(t))
	v.mount("--log-level", "debug")
	writeFile(t, v.path("f"), []byte("x"))
	pid := mountPid(t, v.mnt)
	keyText, err := os.ReadFile(v.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{strings.TrimSpace(string(keyText))}
	if raw, err := base64.StdEncoding.DecodeString(secrets[0]); err == nil {
		secrets = append(secrets, string(raw))
	}
	scan := newMarkerScan(secrets...)
	for _, f := range []string{"cmdline", "environ"} {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), v.keyFile) && f == "cmdline" {
			t.Fatalf("cmdline %q does not name the key file: is this the mount process?", data)
		}
		scan.check("/proc/"+f, data)
	}
	v.unmount()
	if err := scan.dir(v.cacheDir); err != nil {
		t.Fatal(err)
	}
	for _, f := range scan.findings {
		t.Errorf("key material: %s", f)
	}
}
