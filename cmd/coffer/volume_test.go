package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// openFromFlags parses args as the volume flags of a command and opens
// the volume the offline way (volumeFlags.open).
func openFromFlags(t *testing.T, e *env, args ...string) (*openedVolume, error) {
	t.Helper()
	var vf volumeFlags
	fl := pflag.NewFlagSet("test", pflag.ContinueOnError)
	vf.register(fl)
	if err := fl.Parse(args); err != nil {
		t.Fatal(err)
	}
	v, err := vf.open(context.Background(), e, cofferfs.Options{CacheDir: t.TempDir()})
	if err == nil {
		t.Cleanup(func() { v.Close(context.Background()) })
	}
	return v, err
}

// The offline path opens what init made, through the same steps as mount,
// and refuses what mount refuses with the same messages.
func TestOpenVolumeFromFlags(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, _, stderr := testEnv(t, nil)
	key, other := filepath.Join(dir, "key"), filepath.Join(dir, "other")
	for _, k := range []string{key, other} {
		if err := cipher.WriteKeyFile(k); err != nil {
			t.Fatal(err)
		}
	}
	client, none := filepath.Join(dir, "client"), filepath.Join(dir, "none")
	for _, args := range [][]string{
		{"init", "--store", client, "--key-file", key},
		{"init", "--store", none, "--encryption", "none"},
	} {
		if code := run(ctx, args, e); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}

	v, err := openFromFlags(t, e, "--store", client, "--key-file", key)
	if err != nil {
		t.Fatalf("open the client volume: %v", err)
	}
	if v.Encryption() != cipher.EncryptionClient || v.url != client {
		t.Fatalf("opened %s in mode %s", v.url, v.Encryption())
	}
	h, _, err := v.Create(ctx, "/f", 0o644, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("offline"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(ctx); err != nil {
		t.Fatalf("close uploads what is pending: %v", err)
	}
	// A second open (another cache) reads what the first one stored.
	v, err = openFromFlags(t, e, "--store", client, "--key-file", key)
	if err != nil {
		t.Fatal(err)
	}
	h, err = v.Open(ctx, "/f", os.O_RDONLY)
	if err != nil {
		t.Fatalf("the file the first open stored: %v", err)
	}
	buf := make([]byte, 16)
	n, _ := h.ReadAt(ctx, buf, 0)
	h.Close(ctx)
	if !bytes.Equal(buf[:n], []byte("offline")) {
		t.Fatalf("read back %q", buf[:n])
	}

	if v, err := openFromFlags(t, e, "--store", none, "--encryption", "none"); err != nil || v.Encryption() != cipher.EncryptionNone {
		t.Fatalf("open the none volume: %v", err)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"wrong key", []string{"--store", client, "--key-file", other}, false, "wrong key"},
		{"client volume as none", []string{"--store", client, "--encryption", "none"}, false, "--encryption client"},
		{"none volume as client", []string{"--store", none, "--key-file", key}, false, "--encryption none"},
		{"key flag with none", []string{"--store", none, "--encryption", "none", "--key-file", key}, true, "--key-file has no use with --encryption none"},
		{"unknown mode", []string{"--store", client, "--encryption", "bogus"}, true, "unknown --encryption"},
		{"sse mismatch", []string{"--store", client, "--key-file", key, "--sse", "sse-s3"}, false, "volume uses --sse none but --sse sse-s3"},
		{"no volume", []string{"--store", filepath.Join(dir, "missing"), "--key-file", key}, false, "run coffer init"},
		{"missing key file", []string{"--store", client, "--key-file", filepath.Join(dir, "nokey")}, false, "does not exist"},
		{"plain http endpoint", []string{"--store", "s3://b", "--endpoint", "http://s3.example.com", "--key-file", key}, true, "--allow-http"},
	} {
		_, err := openFromFlags(t, e, tc.args...)
		var ue *usageError
		switch {
		case err == nil:
			t.Errorf("%s: opened", tc.name)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v; want it to say %q", tc.name, err, tc.want)
		case errors.As(err, &ue) != tc.usage:
			t.Errorf("%s: %v: usage error %v, want %v", tc.name, err, !tc.usage, tc.usage)
		}
	}
}
