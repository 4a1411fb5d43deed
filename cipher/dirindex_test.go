package cipher

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDirIndexSealOpen(t *testing.T) {
	k := testKeyring(t)
	plain := []byte("entries of /a")
	sealed, err := k.SealDirIndex("/a", plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.OpenDirIndex("/a", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenDirIndex = %q, %v; want %q", got, err, plain)
	}
	if bytes.Contains(sealed, plain) {
		t.Error("the sealed index holds its plaintext")
	}
	name := k.DirIndexKey("/a")
	if !strings.HasPrefix(name, DirIndexPrefix) || strings.Contains(name, "a/") || name == k.DirIndexKey("/b") {
		t.Errorf("DirIndexKey(/a) = %q: not a per-directory name under %s", name, DirIndexPrefix)
	}
}

// TestDirIndexForgery: an index moved to another directory or volume,
// altered, cut or sealed under a retired generation does not open.
func TestDirIndexForgery(t *testing.T) {
	k := testKeyring(t)
	other := testKeyring(t)
	sealed, err := k.SealDirIndex("/a", []byte("entries"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	regen := bytes.Clone(sealed)
	regen[len(dirIndexMagic)+3] ^= 1 // claims another generation
	cases := []struct {
		name   string
		kr     *Keyring
		dir    string
		sealed []byte
	}{
		{"other directory", k, "/b", sealed},
		{"parent directory", k, "/", sealed},
		{"other volume", other, "/a", sealed},
		{"flipped tag bit", k, "/a", flipped},
		{"other generation", k, "/a", regen},
		{"cut", k, "/a", sealed[:len(sealed)-1]},
		{"header only", k, "/a", sealed[:dirIndexHeader]},
		{"empty", k, "/a", nil},
	}
	for _, c := range cases {
		if _, err := c.kr.OpenDirIndex(c.dir, c.sealed); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: OpenDirIndex err = %v, want ErrAuth", c.name, err)
		}
	}
	if err := k.AddGeneration(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenDirIndex("/a", sealed); err != nil {
		t.Fatalf("after AddGeneration, the old generation's index: %v", err)
	}
	if err := k.RetireGeneration(1); err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenDirIndex("/a", sealed); !errors.Is(err, ErrAuth) {
		t.Errorf("index under a retired generation: err = %v, want ErrAuth", err)
	}
}
