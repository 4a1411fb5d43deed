package cipher

import (
	"bytes"
	"errors"
	"testing"
)

func TestLocalSealer(t *testing.T) {
	secret := testKeyring(t).LocalSecret()
	salt := bytes.Repeat([]byte{7}, LocalSaltSize)
	s, err := NewLocalSealer(secret, salt)
	if err != nil {
		t.Fatal(err)
	}
	plain := pseudoRandom(5000, 1)
	sealed := s.Seal(nil, plain, 3)
	if len(sealed) != len(plain)+LocalOverhead {
		t.Fatalf("sealed %d bytes", len(sealed))
	}
	if bytes.Contains(sealed, plain[:64]) {
		t.Fatal("plaintext visible in sealed block")
	}
	got, err := s.Open(nil, sealed, 3)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	other, _ := NewLocalSealer(secret, bytes.Repeat([]byte{8}, LocalSaltSize))
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other index":  func() ([]byte, error) { return s.Open(nil, sealed, 4) },
		"other salt":   func() ([]byte, error) { return other.Open(nil, sealed, 3) },
		"flipped bit":  func() ([]byte, error) { return s.Open(nil, flipped, 3) },
		"truncated":    func() ([]byte, error) { return s.Open(nil, sealed[:len(sealed)-1], 3) },
		"short":        func() ([]byte, error) { return s.Open(nil, sealed[:10], 3) },
		"other secret": func() ([]byte, error) { return mustSealer(t, testKeyring(t).LocalSecret(), salt).Open(nil, sealed, 3) },
	} {
		if got, err := open(); !errors.Is(err, ErrAuth) || len(got) != 0 {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	for _, tc := range []struct{ secret, salt []byte }{{secret[:31], salt}, {secret, salt[:16]}, {nil, nil}} {
		if _, err := NewLocalSealer(tc.secret, tc.salt); err == nil {
			t.Errorf("NewLocalSealer(%d-byte secret, %d-byte salt) accepted", len(tc.secret), len(tc.salt))
		}
	}
}

func mustSealer(t *testing.T, secret, salt []byte) *LocalSealer {
	s, err := NewLocalSealer(secret, salt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocalSecretFromKey(t *testing.T) {
	k := bytes.Repeat([]byte{1}, 32)
	a, b := LocalSecretFromKey(k), LocalSecretFromKey(k)
	if len(a) != 32 || !bytes.Equal(a, b) || bytes.Equal(a, k) {
		t.Fatal("LocalSecretFromKey is not a deterministic 32-byte derivation")
	}
}
