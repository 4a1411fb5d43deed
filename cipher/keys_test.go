package cipher

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile is subject to umask
		t.Fatal(err)
	}
	return p
}

func TestLoadKeyFileFormats(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32) // base64 of it differs between alphabets
	want := symID(key)
	for name, content := range map[string]string{
		"raw":             string(key),
		"std":             base64.StdEncoding.EncodeToString(key),
		"std newline":     base64.StdEncoding.EncodeToString(key) + "\n",
		"std crlf":        base64.StdEncoding.EncodeToString(key) + "\r\n",
		"std unpadded":    base64.RawStdEncoding.EncodeToString(key),
		"url":             base64.URLEncoding.EncodeToString(key),
		"url unpadded nl": base64.RawURLEncoding.EncodeToString(key) + "\n",
	} {
		r, err := LoadKeyFile(writeFile(t, []byte(content), 0o600))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Kind() != KindSym || symID(r.secret) != want {
			t.Fatalf("%s: loaded another key", name)
		}
	}
}

func TestLoadKeyFileRefusals(t *testing.T) {
	secret := "c2VjcmV0LWtleS1ieXRlcy10aGF0LWFyZS13cm9uZw" // not 32 bytes
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    error
	}{
		"group readable": {base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o640, ErrKeyFileMode},
		"world readable": {base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o604, ErrKeyFileMode},
		"wrong length":   {secret, 0o600, nil},
		"empty":          {"", 0o600, nil},
	} {
		p := writeFile(t, []byte(tc.content), tc.mode)
		_, err := LoadKeyFile(p)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Fatalf("%s: %v", name, err)
		}
		if tc.want == ErrKeyFileMode && !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("%s: error %q does not say how to fix it", name, err)
		}
		if tc.content != "" && strings.Contains(err.Error(), tc.content[:8]) {
			t.Fatalf("%s: error shows the file content", name)
		}
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWriteKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	if err := WriteKeyFile(p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	a, err := LoadKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(p); err == nil {
		t.Fatal("WriteKeyFile overwrote a key")
	}
	b, _ := LoadKeyFile(p)
	if !bytes.Equal(a.secret, b.secret) {
		t.Fatal("key changed")
	}
	q := filepath.Join(t.TempDir(), "k2")
	WriteKeyFile(q)
	if c, _ := LoadKeyFile(q); bytes.Equal(c.secret, a.secret) {
		t.Fatal("two key files hold the same key")
	}
}

func TestLoadPassphraseFile(t *testing.T) {
	for content, want := range map[string]string{
		"pass":               "pass",
		"pass\n":             "pass",
		"pass\r\n":           "pass",
		"two words\nextra\n": "two words",
	} {
		r, err := LoadPassphraseFile(writeFile(t, []byte(content), 0o600))
		if err != nil || r.Kind() != KindPassphrase || string(r.secret) != want {
			t.Fatalf("%q: %v", content, err)
		}
	}
	for _, content := range []string{"", "\n", "\r\nsecond"} {
		if _, err := LoadPassphraseFile(writeFile(t, []byte(content), 0o600)); err == nil {
			t.Fatalf("%q accepted", content)
		}
	}
	if _, err := LoadPassphraseFile(writeFile(t, []byte("p\n"), 0o644)); !errors.Is(err, ErrKeyFileMode) {
		t.Fatalf("readable passphrase file: %v", err)
	}
}

func TestRootKeyNeverPrintsSecret(t *testing.T) {
	r := testPassphrase(t, "hunter2-secret")
	for _, s := range []string{r.String(), r.GoString()} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("%q shows the passphrase", s)
		}
	}
	if _, err := NewSymKey(make([]byte, 31)); err == nil {
		t.Fatal("31-byte sym key accepted")
	}
}

// TestSecretsNeverPrint formats every type that holds key material with
// every verb a log or an error might use.
func TestSecretsNeverPrint(t *testing.T) {
	root := testSymKey(t, 0xab)
	c, kr, _ := newVolume(t, root)
	o, _ := kr.NewObjectKey()
	ls := mustSealer(t, kr.LocalSecret(), make([]byte, LocalSaltSize))
	for _, v := range []any{root, *root, kr, c, o, ls, kr.Names()} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "171 171") || strings.Contains(out, "[") || strings.Contains(out, "{") {
				t.Errorf("%T printed with %s shows its fields: %.80s", v, verb, out)
			}
		}
	}
}

func TestSetArgon2(t *testing.T) {
	p := testPassphrase(t, "x")
	if err := p.SetArgon2(Argon2Params{Time: 1, MemoryKiB: 1 << 30, Threads: 1}); err == nil {
		t.Fatal("1 TiB accepted")
	}
	if err := testSymKey(t, 1).SetArgon2(cheapArgon2); err == nil {
		t.Fatal("Argon2 parameters set on a sym key")
	}
}
