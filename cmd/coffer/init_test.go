package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeygen(t *testing.T) {
	e, stdout, stderr := testEnv(t, nil)
	out := filepath.Join(t.TempDir(), "k")
	if code := run(context.Background(), []string{"keygen", "--out", out}, e); code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	if !strings.Contains(stdout.String(), out) {
		t.Fatalf("keygen does not say where the key is: %q", stdout)
	}
	before, _ := os.ReadFile(out)
	stderr.Reset()
	if code := run(context.Background(), []string{"keygen", "--out", out}, e); code != exitFailure {
		t.Fatalf("second keygen: exit %d, want %d", code, exitFailure)
	}
	after, _ := os.ReadFile(out)
	if string(before) != string(after) {
		t.Fatal("keygen overwrote an existing key")
	}
	if !strings.Contains(stderr.String(), "already exists") {
		t.Fatalf("stderr %q", stderr)
	}
}

func TestInitLocal(t *testing.T) {
	home := t.TempDir()
	e, stdout, stderr := testEnv(t, map[string]string{"HOME": home})
	if code := run(context.Background(), []string{"init"}, e); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	keyFile := filepath.Join(home, ".config", "coffer", "key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("default key file: %v %v", err, fi)
	}
	di, err := os.Stat(filepath.Dir(keyFile))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir: %v %v", err, di)
	}
	for _, want := range []string{"created key file " + keyFile, "lose", filepath.Join(home, ".local", "share", "coffer", "store")} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("init output %q lacks %q", stdout, want)
		}
	}
	key, _ := os.ReadFile(keyFile)
	if strings.Contains(stdout.String()+stderr.String(), strings.TrimSpace(string(key))) {
		t.Fatal("init printed the key")
	}

	// A second init refuses and keeps the key.
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"init"}, e); code != exitFailure {
		t.Fatalf("second init: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stderr.String(), "already exists") {
		t.Fatalf("second init: %q", stderr)
	}
	again, _ := os.ReadFile(keyFile)
	if string(again) != string(key) {
		t.Fatal("second init replaced the key file")
	}

	// Another store reuses the existing default key without a new file.
	stdout.Reset()
	store2 := filepath.Join(t.TempDir(), "s2")
	if code := run(context.Background(), []string{"init", "--store", store2}, e); code != exitOK {
		t.Fatalf("init s2: exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout.String(), "created key file") {
		t.Fatalf("init created a key although one existed: %q", stdout)
	}
}

func TestInitModes(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	loose := filepath.Join(dir, "loose")
	e, _, _ := testEnv(t, nil)
	if code := run(context.Background(), []string{"keygen", "--out", keyFile}, e); code != exitOK {
		t.Fatal("keygen failed")
	}
	if err := os.WriteFile(loose, []byte("0123456789abcdef0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"explicit key", []string{"--key-file", keyFile}, exitOK, ""},
		{"none warns", []string{"--encryption", "none"}, exitOK, "WARNING"},
		{"none with key flag", []string{"--encryption", "none", "--key-file", keyFile}, exitUsage, "no use with --encryption none"},
		{"unknown mode", []string{"--encryption", "rot13"}, exitUsage, "unknown --encryption"},
		{"missing key file", []string{"--key-file", filepath.Join(dir, "nope")}, exitFailure, "does not exist"},
		{"loose key file", []string{"--key-file", loose}, exitFailure, "chmod 600"},
		{"sse-c without key", []string{"--sse", "sse-c"}, exitUsage, "--sse-c-key-file"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, stderr := testEnv(t, nil)
			store := filepath.Join(dir, "store"+string(rune('a'+i)))
			code := run(context.Background(), append([]string{"init", "--store", store}, tt.args...), e)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q lacks %q", stderr, tt.stderr)
			}
			if tt.code != exitOK {
				if _, err := os.Stat(store); err == nil {
					t.Fatalf("failed init left a store directory behind")
				}
			}
		})
	}
}
