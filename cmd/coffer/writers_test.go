package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// putObject stores data under key in the local store at dir.
func putObject(t *testing.T, dir, key string, data []byte) {
	t.Helper()
	local, err := blobstore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// storeWriters opens the config at store with key file k and returns its
// writer keys.
func storeWriters(t *testing.T, store, k string) []cipher.WriterInfo {
	t.Helper()
	cfg, err := cipher.ParseConfig(readStoreConfig(t, store))
	if err != nil {
		t.Fatal(err)
	}
	root, err := cipher.LoadKeyFile(k)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := cfg.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return kr.Writers()
}

func TestKeyExportListRevokeWriter(t *testing.T) {
	dir := t.TempDir()
	store, k1 := filepath.Join(dir, "store"), filepath.Join(dir, "k1")
	if code, _, stderr := cofferRun(t, "keygen", "--out", k1); code != exitOK {
		t.Fatal(stderr)
	}
	if code, _, stderr := cofferRun(t, "init", "--store", store, "--key-file", k1); code != exitOK {
		t.Fatal(stderr)
	}
	existing := filepath.Join(dir, "existing")
	os.WriteFile(existing, []byte("keep me"), 0o600)
	w1 := filepath.Join(dir, "w1")
	before := readStoreConfig(t, store)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no out", []string{"key", "export-writer", "--key-file", k1}, exitUsage, "--out FILE is required"},
		{"out exists", []string{"key", "export-writer", "--key-file", k1, "--out", existing}, exitFailure, "already exists"},
		{"relative scope", []string{"key", "export-writer", "--key-file", k1, "--out", w1, "--scope", "backups"}, exitFailure, "not a canonical path"},
		{"reserved scope", []string{"key", "export-writer", "--key-file", k1, "--out", w1, "--scope", "/.coffer/epochs"}, exitFailure, "reserved"},
		{"label with a newline", []string{"key", "export-writer", "--key-file", k1, "--out", w1, "--label", "a\nb"}, exitFailure, "printable"},
		{"revoke without ID", []string{"key", "revoke-writer", "--key-file", k1}, exitUsage, "missing WRITERID"},
		{"revoke a bad ID", []string{"key", "revoke-writer", "--key-file", k1, "xyz"}, exitUsage, "hex digits"},
		{"revoke an unknown writer", []string{"key", "revoke-writer", "--key-file", k1, "0011223344556677"}, exitFailure, "no writer 0011223344556677"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args[:2:2], append([]string{"--store", store}, tc.args[2:]...)...)
			code, stdout, stderr := cofferRun(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || stdout != "" || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d (want %d), stderr %q (want %q), stdout %q", code, tc.code, stderr, tc.stderr, stdout)
			}
			if !bytes.Equal(readStoreConfig(t, store), before) {
				t.Fatal("a refused command changed the config")
			}
			if b, _ := os.ReadFile(existing); string(b) != "keep me" {
				t.Fatal("a refused command changed the existing file")
			}
			if _, err := os.Lstat(w1); err == nil {
				t.Fatal("a refused command left a credential")
			}
		})
	}

	code, stdout, stderr := cofferRun(t, "key", "export-writer", "--store", store, "--key-file", k1, "--out", w1, "--scope", "/backups/host1", "--label", "host one")
	if code != exitOK {
		t.Fatalf("export-writer: exit %d, %q", code, stderr)
	}
	fi, err := os.Stat(w1)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential: %v, mode %v", err, fi.Mode())
	}
	cred, err := cipher.LoadWriterCredential(w1)
	if err != nil {
		t.Fatal(err)
	}
	id := cred.Writer().String()
	if strings.TrimSpace(stdout) != id || cred.Scope() != "/backups/host1" || cred.Label() != "host one" {
		t.Fatalf("stdout %q, credential %v label %q", stdout, cred, cred.Label())
	}
	if ws := storeWriters(t, store, k1); len(ws) != 1 || ws[0].ID != cred.Writer() || ws[0].Revoked {
		t.Fatalf("keyring writers %+v", ws)
	}
	if code, _, stderr := cofferRun(t, "key", "export-writer", "--store", store, "--key-file", k1, "--out", w1); code != exitFailure || !strings.Contains(stderr, "already exists") {
		t.Fatalf("export over the credential: exit %d, %q", code, stderr)
	}
	// The credential is no root key.
	if code, _, stderr := cofferRun(t, "key", "list", "--store", store, "--key-file", w1); code != exitFailure || !strings.Contains(stderr, "writer credential") {
		t.Fatalf("key list with the credential: exit %d, %q", code, stderr)
	}

	// Two sessions of the writer stored their epochs; a third epoch
	// object is forged (random bytes under a fresh epoch ID).
	for range 2 {
		s, err := cred.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		key, data := s.EpochObject()
		putObject(t, store, key, data)
	}
	forged := make([]byte, 1200)
	rand.Read(forged)
	var forgedEpoch cipher.EpochID
	rand.Read(forgedEpoch[:])
	putObject(t, store, cipher.EpochObjectKey(cipher.Origin{Writer: cred.Writer(), Epoch: forgedEpoch}), forged)

	code, stdout, stderr = cofferRun(t, "key", "list", "--store", store, "--key-file", k1)
	row := regexp.MustCompile(`(?m)^` + id + ` +/backups/host1 +host_one +active +3$`)
	if code != exitOK || !row.MatchString(stdout) || strings.Contains(stdout, "without coffer metadata") {
		t.Fatalf("key list: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}

	code, stdout, stderr = cofferRun(t, "key", "revoke-writer", "--store", store, "--key-file", k1, id)
	if code != exitOK || !strings.Contains(stdout, "files of 2 sessions stay readable") || !strings.Contains(stderr, forgedEpoch.String()+" of writer "+id+" does not open") {
		t.Fatalf("revoke-writer: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	ws := storeWriters(t, store, k1)
	if len(ws) != 1 || !ws[0].Revoked || len(ws[0].KnownEpochs) != 2 || bytes.Contains([]byte(strings.Join(epochStrings(ws[0].KnownEpochs), ",")), []byte(forgedEpoch.String())) {
		t.Fatalf("after revoke: %+v", ws)
	}
	code, stdout, _ = cofferRun(t, "key", "list", "--store", store, "--key-file", k1, "--count=false")
	if code != exitOK || !regexp.MustCompile(`(?m)^`+id+` +/backups/host1 +host_one +revoked 20\d\d-.* UTC, 2 sessions kept +3$`).MatchString(stdout) {
		t.Fatalf("key list after revoke:\n%s", stdout)
	}
	before = readStoreConfig(t, store)
	if code, _, stderr := cofferRun(t, "key", "revoke-writer", "--store", store, "--key-file", k1, id); code != exitFailure || !strings.Contains(stderr, "already revoked") {
		t.Fatalf("revoking twice: exit %d, %q", code, stderr)
	}
	if !bytes.Equal(readStoreConfig(t, store), before) {
		t.Fatal("a refused revoke changed the config")
	}
}

func epochStrings(es []cipher.EpochID) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.String())
	}
	return out
}

// writerVolume makes a volume with key k1 and a writer credential, and
// stores the epoch object of one session of that writer.
func writerVolume(t *testing.T) (store, k1 string, cred *cipher.WriterCredential, s *cipher.WriterSession) {
	t.Helper()
	dir := t.TempDir()
	store, k1, w := filepath.Join(dir, "store"), filepath.Join(dir, "k1"), filepath.Join(dir, "w")
	cofferRun(t, "keygen", "--out", k1)
	if code, _, stderr := cofferRun(t, "init", "--store", store, "--key-file", k1); code != exitOK {
		t.Fatal(stderr)
	}
	if code, _, stderr := cofferRun(t, "key", "export-writer", "--store", store, "--key-file", k1, "--out", w); code != exitOK {
		t.Fatal(stderr)
	}
	cred, err := cipher.LoadWriterCredential(w)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = cred.NewSession(); err != nil {
		t.Fatal(err)
	}
	key, data := s.EpochObject()
	putObject(t, store, key, data)
	return store, k1, cred, s
}

func TestKeyRevokeWriterDropEpochs(t *testing.T) {
	store, k1, cred, _ := writerVolume(t)
	code, stdout, stderr := cofferRun(t, "key", "revoke-writer", "--store", store, "--key-file", k1, "--drop-epochs", cred.Writer().String())
	if code != exitOK || !strings.Contains(stdout, "files of 0 sessions stay readable") {
		t.Fatalf("revoke-writer --drop-epochs: exit %d, %q, %q", code, stdout, stderr)
	}
	if ws := storeWriters(t, store, k1); len(ws) != 1 || !ws[0].Revoked || len(ws[0].KnownEpochs) != 0 {
		t.Fatalf("after revoke: %+v", ws)
	}
}

// storeWriterFile stores a file at /name (the volume's root) as a session
// of cred would.
func storeWriterFile(t *testing.T, store string, s *cipher.WriterSession, name string, data []byte) {
	t.Helper()
	seg, _, err := s.Names().EncryptSegment("/", name)
	if err != nil {
		t.Fatal(err)
	}
	okey, err := s.NewObjectKey()
	if err != nil {
		t.Fatal(err)
	}
	meta, err := s.SealMetadata(okey, "/"+name, cipher.Attr{Mode: syscall.S_IFREG | 0o644, MtimeNs: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	enc := okey.NewEncrypter(&body)
	enc.Write(data)
	enc.Close()
	local, err := blobstore.NewLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Put(context.Background(), seg, bytes.NewReader(body.Bytes()), int64(body.Len()), blobstore.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

func TestLsAndAdoptWriterFile(t *testing.T) {
	store, k1, _, s := writerVolume(t)
	storeWriterFile(t, store, s, "backup.tar", []byte("tar bytes"))

	code, stdout, stderr := cofferRun(t, "ls", "--store", store, "--key-file", k1, "-l", "/")
	if code != exitOK || !strings.Contains(stdout, "backup.tar  ["+s.Origin().String()+"]") {
		t.Fatalf("ls -l: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := cofferRun(t, "cat", "--store", store, "--key-file", k1, "/backup.tar"); code != exitOK || stdout != "tar bytes" {
		t.Fatalf("cat: exit %d, %q", code, stdout)
	}
	if code, stdout, stderr := cofferRun(t, "adopt", "--store", store, "--key-file", k1, "/backup.tar"); code != exitOK || stdout != "adopted /backup.tar\n" {
		t.Fatalf("adopt: exit %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, _ = cofferRun(t, "ls", "--store", store, "--key-file", k1, "-l", "/")
	if code != exitOK || !strings.Contains(stdout, "backup.tar\n") || strings.Contains(stdout, "writer") {
		t.Fatalf("ls -l after adopt: exit %d, %q", code, stdout)
	}
	if code, _, stderr := cofferRun(t, "adopt", "--store", store, "--key-file", k1, "/backup.tar"); code != exitFailure || !strings.Contains(stderr, "not a file a writer key stored") {
		t.Fatalf("adopt again: exit %d, %q", code, stderr)
	}
	if code, stdout, _ := cofferRun(t, "cat", "--store", store, "--key-file", k1, "/backup.tar"); code != exitOK || stdout != "tar bytes" {
		t.Fatalf("cat after adopt: exit %d, %q", code, stdout)
	}
}
