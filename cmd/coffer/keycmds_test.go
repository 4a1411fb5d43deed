package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// coffer runs one command line in-process and returns its exit code,
// stdout and stderr.
func cofferRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	e, stdout, stderr := testEnv(t, nil)
	code := run(context.Background(), args, e)
	return code, stdout.String(), stderr.String()
}

func TestKeyAddListRemove(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	k1, k2, loose := filepath.Join(dir, "k1"), filepath.Join(dir, "k2"), filepath.Join(dir, "loose")
	for _, k := range []string{k1, k2, loose} {
		if code, _, stderr := cofferRun(t, "keygen", "--out", k); code != exitOK {
			t.Fatal(stderr)
		}
	}
	os.Chmod(loose, 0o644)
	if code, _, stderr := cofferRun(t, "init", "--store", store, "--key-file", k1); code != exitOK {
		t.Fatal(stderr)
	}
	before := readStoreConfig(t, store)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no new key", []string{"key", "add", "--key-file", k1}, exitUsage, "--new-key-file FILE, --new-passphrase-file FILE or --kms-key-id ID"},
		{"two new keys", []string{"key", "add", "--key-file", k1, "--new-key-file", k2, "--new-passphrase-file", k2}, exitUsage, "one of them"},
		{"missing new key file", []string{"key", "add", "--key-file", k1, "--new-key-file", filepath.Join(dir, "nope")}, exitFailure, "does not exist"},
		{"new key file readable by others", []string{"key", "add", "--key-file", k1, "--new-key-file", loose}, exitFailure, "chmod 600"},
		{"wrong key", []string{"key", "add", "--key-file", k2, "--new-key-file", k1}, exitFailure, "wrong key"},
		{"the key again", []string{"key", "add", "--key-file", k1, "--new-key-file", k1}, exitFailure, "already a root key"},
		{"remove without ID", []string{"key", "remove", "--key-file", k1}, exitUsage, "missing KEYID"},
		{"remove the last key", []string{"key", "remove", "--key-file", k1, "--force", keyID(t, k1)}, exitFailure, "last root key"},
		{"remove an unknown key", []string{"key", "remove", "--key-file", k1, "0011223344556677"}, exitFailure, "no such root key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args[:2:2], append([]string{"--store", store}, tc.args[2:]...)...)
			code, stdout, stderr := cofferRun(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || stdout != "" || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d (want %d), stderr %q (want %q), stdout %q", code, tc.code, stderr, tc.stderr, stdout)
			}
			if !strings.HasPrefix(stderr, "coffer key "+tc.args[1]+": ") {
				t.Fatalf("stderr %q does not name the command", stderr)
			}
			if !bytes.Equal(readStoreConfig(t, store), before) {
				t.Fatal("a refused command changed the config")
			}
		})
	}

	code, stdout, stderr := cofferRun(t, "key", "add", "--store", store, "--key-file", k1, "--new-key-file", k2)
	if code != exitOK || strings.TrimSpace(stdout) != keyID(t, k2) {
		t.Fatalf("key add: exit %d, stdout %q (want the new ID %s), stderr %q", code, stdout, keyID(t, k2), stderr)
	}
	code, stdout, stderr = cofferRun(t, "key", "list", "--store", store, "--key-file", k2)
	listed := regexp.MustCompile(`(?m)^` + keyID(t, k1) + ` +sym +20\d\d-\d\d-\d\d .*\n` + keyID(t, k2) + ` +sym +20\d\d-`)
	if code != exitOK || !listed.MatchString(stdout) || !regexp.MustCompile(`(?m)^1 \(current\) +20\d\d-.* +0$`).MatchString(stdout) {
		t.Fatalf("key list: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	if code, _, stderr := cofferRun(t, "key", "remove", "--store", store, "--key-file", k1, keyID(t, k1)); code != exitFailure || !strings.Contains(stderr, "given on the command line") {
		t.Fatalf("removing the key in use: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cofferRun(t, "key", "remove", "--store", store, "--key-file", k2, keyID(t, k1)); code != exitOK {
		t.Fatalf("key remove: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cofferRun(t, "key", "list", "--store", store, "--key-file", k1); code != exitFailure || !strings.Contains(stderr, "wrong key") {
		t.Fatalf("the removed key: exit %d, %q", code, stderr)
	}
}

// keyID is the ID of key file path, as coffer key list shows it.
func keyID(t *testing.T, path string) string {
	t.Helper()
	root, err := loadEvery([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := root[0].SymID()
	return id
}

func TestPasswd(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	oldPass, newPass := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	os.WriteFile(oldPass, []byte("the old passphrase\n"), 0o600)
	os.WriteFile(newPass, []byte("the new passphrase\n"), 0o600)
	if code, _, stderr := cofferRun(t, "init", "--store", store, "--passphrase-file", oldPass); code != exitOK {
		t.Fatal(stderr)
	}
	before := readStoreConfig(t, store)
	if code, _, stderr := cofferRun(t, "passwd", "--store", store, "--passphrase-file", oldPass); code != exitUsage || !strings.Contains(stderr, "--new-passphrase-file") {
		t.Fatalf("passwd without the new passphrase: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cofferRun(t, "passwd", "--store", store, "--new-passphrase-file", newPass); code != exitUsage || !strings.Contains(stderr, "--passphrase-file FILE") {
		t.Fatalf("passwd without the old passphrase: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cofferRun(t, "passwd", "--store", store, "--passphrase-file", newPass, "--new-passphrase-file", oldPass); code != exitFailure || !strings.Contains(stderr, "wrong key") {
		t.Fatalf("passwd with a wrong old passphrase: exit %d, %q", code, stderr)
	}
	if !bytes.Equal(readStoreConfig(t, store), before) {
		t.Fatal("a refused passwd changed the config")
	}
	code, stdout, stderr := cofferRun(t, "passwd", "--store", store, "--passphrase-file", oldPass, "--new-passphrase-file", newPass)
	if code != exitOK || !strings.Contains(stdout, "changed the passphrase of root key") {
		t.Fatalf("passwd: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr := cofferRun(t, "key", "list", "--store", store, "--passphrase-file", oldPass, "--count=false"); code != exitFailure || !strings.Contains(stderr, "wrong key") {
		t.Fatalf("the old passphrase after passwd: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cofferRun(t, "key", "list", "--store", store, "--passphrase-file", newPass, "--count=false"); code != exitOK {
		t.Fatalf("the new passphrase after passwd: exit %d, %q", code, stderr)
	}
}

func TestRotateCommand(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	key := filepath.Join(dir, "key")
	if code, _, stderr := cofferRun(t, "keygen", "--out", key); code != exitOK {
		t.Fatal(stderr)
	}
	if code, _, stderr := cofferRun(t, "init", "--store", store, "--key-file", key); code != exitOK {
		t.Fatal(stderr)
	}
	e, _, _ := testEnv(t, nil)
	v, err := openFromFlags(t, e, "--store", store, "--key-file", key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 12 {
		h, _, err := v.Create(ctx, "/f"+string(rune('a'+i)), 0o644, syscall.O_WRONLY)
		if err != nil {
			t.Fatal(err)
		}
		h.WriteAt(ctx, []byte("content"), 0)
		h.Close(ctx)
	}
	if err := v.Flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	before := readStoreConfig(t, store)
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--mount-grace", "-1s"}, "--mount-grace"},
		{[]string{"--sse-c-new-key-file", key}, "--sse sse-c"},
		{[]string{"--sse-c-new-key-file", key, "--sse", "sse-c", "--sse-c-key-file", key, "--new-generation"}, "--new-generation applies to the KEK rotation"},
		{[]string{"--encryption", "none"}, "no KEK to rotate"},
	} {
		code, _, stderr := cofferRun(t, append([]string{"rotate", "--store", store, "--key-file", key}, tc.args...)...)
		if tc.args[0] == "--encryption" {
			code, _, stderr = cofferRun(t, append([]string{"rotate", "--store", store}, tc.args...)...)
		}
		if code != exitUsage || !strings.Contains(stderr, tc.stderr) {
			t.Fatalf("rotate %v: exit %d, %q (want %q)", tc.args, code, stderr, tc.stderr)
		}
	}
	if !bytes.Equal(readStoreConfig(t, store), before) {
		t.Fatal("a refused rotate changed the config")
	}
	code, stdout, stderr := cofferRun(t, "rotate", "--store", store, "--key-file", key, "--mount-grace", "0", "--concurrency", "3")
	if code != exitOK || !strings.Contains(stdout, "onto KEK generation 2 (added): 12 objects, 12 rewrapped, 0 already on it; retired generation 1") {
		t.Fatalf("rotate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stderr, "waiting") {
		t.Fatalf("rotate --mount-grace 0 waited: %q", stderr)
	}
	// Not a terminal: plain lines at each tenth.
	if !strings.Contains(stderr, "coffer: rewrapping: 0 of 12 objects (0%)\n") || !strings.Contains(stderr, "coffer: rewrapping: 12 of 12 objects (100%)\n") {
		t.Fatalf("rotate progress on stderr: %q", stderr)
	}
	code, stdout, _ = cofferRun(t, "key", "list", "--store", store, "--key-file", key)
	if code != exitOK || !regexp.MustCompile(`(?m)^2 \(current\) +20\d\d-.* +12$`).MatchString(stdout) || strings.Contains(stdout, "\n1 ") {
		t.Fatalf("key list after rotate:\n%s", stdout)
	}
	if v2, err := openFromFlags(t, e, "--store", store, "--key-file", key, "--encryption", "client"); err != nil {
		t.Fatal(err)
	} else if a, err := v2.Stat(ctx, "/fa"); err != nil || a.Size != 7 {
		t.Fatalf("stat after rotate: %+v %v", a, err)
	}
}
