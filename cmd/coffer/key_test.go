package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// preAuthVector is cipher/testdata/preauth.json: configs written before
// entry authentication.
type preAuthVector struct {
	Config     string `json:"config"`
	ConfigSym  string `json:"config_sym"`
	SymKey     string `json:"sym_key"`
	Passphrase string `json:"passphrase"`
}

// preAuthStore puts config into a fresh local store and returns its path
// and a key file and a passphrase file holding the vector's keys.
func preAuthStore(t *testing.T, pick func(preAuthVector) string) (store, keyFile, passFile string) {
	t.Helper()
	raw, err := os.ReadFile("../../cipher/testdata/preauth.json")
	if err != nil {
		t.Fatal(err)
	}
	var v preAuthVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store = filepath.Join(dir, "store")
	local, err := blobstore.NewLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	config := pick(v)
	if _, err := local.Put(context.Background(), cofferfs.ConfigKey, strings.NewReader(config), int64(len(config)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(v.SymKey)
	keyFile, passFile = filepath.Join(dir, "key"), filepath.Join(dir, "pass")
	os.WriteFile(keyFile, key, 0o600)
	os.WriteFile(passFile, []byte(v.Passphrase+"\n"), 0o600)
	return store, keyFile, passFile
}

func readStoreConfig(t *testing.T, store string) []byte {
	t.Helper()
	local, err := blobstore.NewLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := local.Get(context.Background(), cofferfs.ConfigKey, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

func TestKeyReauth(t *testing.T) {
	dir := t.TempDir()
	key, other := filepath.Join(dir, "key"), filepath.Join(dir, "other")
	store := filepath.Join(dir, "store")
	e, _, stderr := testEnv(t, nil)
	for _, k := range []string{key, other} {
		if code := run(context.Background(), []string{"keygen", "--out", k}, e); code != exitOK {
			t.Fatal(stderr)
		}
	}
	if code := run(context.Background(), []string{"init", "--store", store, "--key-file", key}, e); code != exitOK {
		t.Fatal(stderr)
	}
	before := readStoreConfig(t, store)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"wrong key", []string{"--key-file", other}, exitFailure, "wrong key"},
		{"a key of no entry", []string{"--key-file", key, "--key-file", other}, exitFailure, "root key 2 of the 2 given (sym) is not one of this volume's keys"},
		{"missing key file", []string{"--key-file", filepath.Join(dir, "nope")}, exitFailure, "does not exist"},
		{"mode mismatch", []string{"--key-file", key, "--sse", "sse-s3"}, exitFailure, "volume uses --sse none but --sse sse-s3 was given"},
		{"no volume", []string{"--key-file", key, "--store", filepath.Join(dir, "empty")}, exitFailure, "no coffer volume"},
		{"extra argument", []string{"--key-file", key, "x"}, exitUsage, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, stdout, stderr := testEnv(t, nil)
			code := run(context.Background(), append([]string{"key", "reauth", "--store", store}, tt.args...), e)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) || stdout.Len() != 0 {
				t.Fatalf("exit %d (want %d), stderr %q (want %q), stdout %q", code, tt.code, stderr, tt.stderr, stdout)
			}
			if !bytes.Equal(readStoreConfig(t, store), before) {
				t.Fatal("a failed reauth changed the config")
			}
		})
	}
	e, stdout, stderr := testEnv(t, nil)
	if code := run(context.Background(), []string{"key", "reauth", "--store", store, "--key-file", key}, e); code != exitOK {
		t.Fatalf("reauth: %s", stderr)
	}
	if !strings.Contains(stdout.String(), "re-authenticated the root keys of volume") || bytes.Equal(readStoreConfig(t, store), before) {
		t.Fatalf("reauth: stdout %q; config changed: %v", stdout, !bytes.Equal(readStoreConfig(t, store), before))
	}
	k, _ := os.ReadFile(key)
	if strings.Contains(stdout.String()+stderr.String(), strings.TrimSpace(string(k))) {
		t.Fatal("reauth printed the key")
	}
	// The default key file, as mount uses it, when no key flag is given.
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "coffer"), 0o700)
	os.WriteFile(filepath.Join(home, ".config", "coffer", "key"), k, 0o600)
	e, _, stderr = testEnv(t, map[string]string{"HOME": home})
	if code := run(context.Background(), []string{"key", "reauth", "--store", store}, e); code != exitOK {
		t.Fatalf("reauth with the default key file: %s", stderr)
	}
}

func TestKeyReauthUpgrade(t *testing.T) {
	t.Run("empty volume", func(t *testing.T) {
		store, key, _ := preAuthStore(t, func(v preAuthVector) string { return v.ConfigSym })
		before := readStoreConfig(t, store)
		e, _, stderr := testEnv(t, nil)
		if code := run(context.Background(), []string{"key", "reauth", "--store", store, "--key-file", key}, e); code != exitFailure ||
			!strings.Contains(stderr.String(), "--allow-empty") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !bytes.Equal(readStoreConfig(t, store), before) {
			t.Fatal("a refused upgrade changed the config")
		}
		e, stdout, stderr := testEnv(t, nil)
		if code := run(context.Background(), []string{"key", "reauth", "--store", store, "--key-file", key, "--allow-empty"}, e); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stdout.String(), "upgraded volume") {
			t.Fatalf("stdout %q", stdout)
		}
		c, err := cipher.ParseConfig(readStoreConfig(t, store))
		if err != nil {
			t.Fatal(err)
		}
		root, _ := cipher.LoadKeyFile(key)
		if _, err := c.Open(root); err != nil {
			t.Fatalf("upgraded config: %v", err)
		}
	})
	t.Run("every key needed", func(t *testing.T) {
		store, key, pass := preAuthStore(t, func(v preAuthVector) string { return v.Config })
		c, _ := cipher.ParseConfig(readStoreConfig(t, store))
		passID := c.Keys()[1].ID
		e, _, stderr := testEnv(t, nil)
		code := run(context.Background(), []string{"key", "reauth", "--store", store, "--key-file", key, "--allow-empty"}, e)
		if code != exitFailure || !strings.Contains(stderr.String(), passID+" (passphrase)") || !strings.Contains(stderr.String(), "--passphrase-file") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		e, _, stderr = testEnv(t, nil)
		if code := run(context.Background(), []string{"key", "reauth", "--store", store, "--key-file", key, "--passphrase-file", pass, "--allow-empty"}, e); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
}

// TestMountRefusesPreAuth: the mount's one line says how to upgrade.
func TestMountRefusesPreAuth(t *testing.T) {
	if err := checkFUSE(); err != nil {
		t.Skipf("mount checks FUSE first: %v", err)
	}
	store, key, _ := preAuthStore(t, func(v preAuthVector) string { return v.ConfigSym })
	mnt := t.TempDir()
	e, _, stderr := testEnv(t, nil)
	code := run(context.Background(), []string{"mount", "--store", store, "--key-file", key, "--cache-dir", t.TempDir(), mnt}, e)
	msg := stderr.String()
	if code != exitFailure || !strings.Contains(msg, "predates entry authentication") || !strings.Contains(msg, "coffer key reauth --store "+store) || strings.Count(msg, "\n") != 1 {
		t.Fatalf("exit %d: %q", code, msg)
	}
}
