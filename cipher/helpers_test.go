package cipher

import (
	"bytes"
	"testing"
)

// cheapArgon2 keeps passphrase tests fast; the format stores whatever
// parameters an entry was made with.
var cheapArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

func testSymKey(t testing.TB, seed byte) *RootKey {
	t.Helper()
	r, err := NewSymKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testPassphrase(t testing.TB, p string) *RootKey {
	t.Helper()
	r, err := NewPassphraseKey([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetArgon2(cheapArgon2); err != nil {
		t.Fatal(err)
	}
	return r
}

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	kr, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// newVolume makes a client-mode config for root and returns its keyring and
// marshalled form.
func newVolume(t testing.TB, root *RootKey) (*Config, *Keyring, []byte) {
	t.Helper()
	kr := testKeyring(t)
	c, err := NewConfig(EncryptionClient, SSENone, "", kr, root)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	return c, kr, data
}

func openConfig(t testing.TB, data []byte, roots ...*RootKey) (*Config, *Keyring) {
	t.Helper()
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := c.Open(roots...)
	if err != nil {
		t.Fatal(err)
	}
	return c, kr
}
