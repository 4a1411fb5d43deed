package blobstore_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
)

const rawKey = "0123456789abcdefghijklmnopqrstuv" // 32 bytes

func TestParseSSECKeys(t *testing.T) {
	k1 := bytes.Repeat([]byte{0xA5}, 32)
	k2 := bytes.Repeat([]byte{0x5A}, 32)
	b1, b2 := base64.StdEncoding.EncodeToString(k1), base64.StdEncoding.EncodeToString(k2)
	cases := []struct {
		name    string
		in      string
		want    [][]byte
		wantErr string
	}{
		{"raw key", rawKey + "\n", [][]byte{[]byte(rawKey)}, ""},
		{"base64 key", b1, [][]byte{k1}, ""},
		{"unpadded base64", strings.TrimRight(b1, "="), [][]byte{k1}, ""},
		{"newest first, comments, blanks, CRLF", "# rotated 2026\r\n\r\n" + b2 + "\r\n  # old\n" + b1 + "\n\n" + rawKey, [][]byte{k2, k1, []byte(rawKey)}, ""},
		{"surrounding spaces", "  " + b1 + "  \n", [][]byte{k1}, ""},
		{"short raw key", "short\n", nil, "line 1: key is 5 bytes"},
		{"base64 of 16 bytes", "# c\n" + base64.StdEncoding.EncodeToString(k1[:16]) + "XXXXXXXXXXXX", nil, "line 2"},
		{"not base64", rawKey + "!!", nil, "line 1: longer than 32 characters but not valid base64"},
		{"empty", "", nil, "no key found"},
		{"only comments", "# nothing\n#\n", nil, "no key found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := blobstore.ParseSSECKeys([]byte(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(c.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], c.want[i]) {
					t.Errorf("key %d differs", i)
				}
			}
		})
	}
}

func TestParseSSECKeysErrorsHideKeys(t *testing.T) {
	secret := "TOPSECRETKEYMATERIAL"
	for _, in := range []string{secret, secret + secret + "!!", rawKey + "\n" + secret} {
		_, err := blobstore.ParseSSECKeys([]byte(in))
		if err == nil {
			t.Fatalf("%q: no error", in)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error shows key material: %v", err)
		}
	}
}

func writeKeyFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sse-c.key")
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSSECKeyFile(t *testing.T) {
	keys, err := blobstore.LoadSSECKeyFile(writeKeyFile(t, rawKey+"\n", 0o600))
	if err != nil || len(keys) != 1 || string(keys[0]) != rawKey {
		t.Fatalf("0600 file: %d keys, %v", len(keys), err)
	}
	if _, err := blobstore.LoadSSECKeyFile(writeKeyFile(t, rawKey, 0o400)); err != nil {
		t.Fatalf("0400 file: %v", err)
	}
	for _, perm := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		p := writeKeyFile(t, rawKey, perm)
		_, err := blobstore.LoadSSECKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: error %v, want a chmod 600 hint", perm, err)
		}
		if err != nil && strings.Contains(err.Error(), rawKey) {
			t.Errorf("error shows the key: %v", err)
		}
	}
	if _, err := blobstore.LoadSSECKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := blobstore.LoadSSECKeyFile(t.TempDir()); err == nil {
		t.Error("directory: no error")
	}
	p := writeKeyFile(t, "bad\n", 0o600)
	if _, err := blobstore.LoadSSECKeyFile(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("bad key: error %v should name the file", err)
	}
}

func TestSSEConfigValidate(t *testing.T) {
	key := []byte(rawKey)
	cases := []struct {
		name string
		cfg  blobstore.SSEConfig
		ok   bool
	}{
		{"none", blobstore.SSEConfig{}, true},
		{"sse-s3", blobstore.SSEConfig{Mode: blobstore.SSES3}, true},
		{"sse-kms", blobstore.SSEConfig{Mode: blobstore.SSEKMS}, true},
		{"sse-kms with key id", blobstore.SSEConfig{Mode: blobstore.SSEKMS, KMSKeyID: "k1"}, true},
		{"sse-c", blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: [][]byte{key, key}}, true},
		{"sse-c without keys", blobstore.SSEConfig{Mode: blobstore.SSEC}, false},
		{"sse-c short key", blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: [][]byte{key[:16]}}, false},
		{"key id without kms", blobstore.SSEConfig{Mode: blobstore.SSES3, KMSKeyID: "k1"}, false},
		{"keys without sse-c", blobstore.SSEConfig{Mode: blobstore.SSES3, CKeys: [][]byte{key}}, false},
		{"unknown mode", blobstore.SSEConfig{Mode: "aes"}, false},
	}
	for _, c := range cases {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestParseSSEMode(t *testing.T) {
	for in, want := range map[string]blobstore.SSEMode{"": blobstore.SSENone, "none": blobstore.SSENone, "sse-s3": blobstore.SSES3, "sse-kms": blobstore.SSEKMS, "sse-c": blobstore.SSEC} {
		if got, err := blobstore.ParseSSEMode(in); err != nil || got != want {
			t.Errorf("ParseSSEMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := blobstore.ParseSSEMode("AES256"); err == nil {
		t.Error("ParseSSEMode(AES256): no error")
	}
}

// Name is the flag value that parses back to the mode, "none" for none.
func TestSSEModeName(t *testing.T) {
	for m, want := range map[blobstore.SSEMode]string{blobstore.SSENone: "none", blobstore.SSES3: "sse-s3", blobstore.SSEKMS: "sse-kms", blobstore.SSEC: "sse-c"} {
		if got := m.Name(); got != want {
			t.Errorf("%q.Name() = %q, want %q", m, got, want)
		}
		if back, err := blobstore.ParseSSEMode(m.Name()); err != nil || back != m {
			t.Errorf("ParseSSEMode(%q) = %q, %v; want %q", m.Name(), back, err, m)
		}
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	opts := blobstore.Options{
		Endpoint: "http://127.0.0.1:9000", AccessKeyID: "AKID", SecretAccessKey: "SECRETACCESS",
		SSE: blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: [][]byte{[]byte(rawKey)}},
	}
	for _, s := range []string{
		fmt.Sprintf("%v", opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts), fmt.Sprint(&opts),
		fmt.Sprintf("%v %+v %#v", opts.SSE, opts.SSE, opts.SSE),
	} {
		if strings.Contains(s, "SECRETACCESS") || strings.Contains(s, rawKey) || strings.Contains(s, "48 49 50") {
			t.Errorf("secret printed: %s", s)
		}
		if !strings.Contains(s, "sse-c") {
			t.Errorf("mode missing from %s", s)
		}
	}
}

func FuzzParseSSECKeys(f *testing.F) {
	f.Add([]byte(rawKey))
	f.Add([]byte("# c\n" + base64.StdEncoding.EncodeToString([]byte(rawKey)) + "\r\n" + rawKey))
	f.Add([]byte("short\n"))
	f.Add([]byte("\x00\xff===\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := blobstore.ParseSSECKeys(data)
		if err != nil {
			if keys != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range keys {
			if len(k) != blobstore.SSECKeySize {
				t.Fatalf("key of %d bytes", len(k))
			}
		}
	})
}
