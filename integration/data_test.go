package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// pseudoRandom returns n deterministic bytes for seed.
func pseudoRandom(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	r := rand.NewChaCha8(s)
	b := make([]byte, n)
	r.Read(b)
	return b
}

// writeFile writes data to path and fails the test on error.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// checkFile fails the test unless path holds exactly want.
func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := sameBytes(got, want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// sameBytes describes how got differs from want, or returns nil.
func sameBytes(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("size %d, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("first difference at byte %d (chunk %d): got %#02x, want %#02x (sha256 %x, want %x)",
				i, i/(64<<10), got[i], want[i], sha256.Sum256(got), sha256.Sum256(want))
		}
	}
	return nil
}
