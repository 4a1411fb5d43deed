package cipher

import (
	gocipher "crypto/cipher"
	"encoding/binary"
	"fmt"
)

// LocalSaltSize is the size of the random salt a local file keeps in its
// header.
const LocalSaltSize = 32

// LocalOverhead is what Seal adds to a block: nonce (12) and tag (16).
const LocalOverhead = sealedOverhead

const localAADText = "coffer local v1"

// LocalSealer seals blocks of one local file (staging or cache) under a key
// derived from a local secret and the file's random salt, so every file has
// its own AES-GCM key. Safe for concurrent use.
type LocalSealer struct {
	aead gocipher.AEAD
}

// NewLocalSealer derives the key of one local file: HKDF(secret, salt,
// "coffer local"). secret is 32 bytes (Keyring.LocalSecret or
// LocalSecretFromKey), salt LocalSaltSize random bytes.
func NewLocalSealer(secret, salt []byte) (*LocalSealer, error) {
	if len(secret) != keySize {
		return nil, fmt.Errorf("local secret is %d bytes, want %d", len(secret), keySize)
	}
	if len(salt) != LocalSaltSize {
		return nil, fmt.Errorf("local file salt is %d bytes, want %d", len(salt), LocalSaltSize)
	}
	return &LocalSealer{aead: newAEAD(deriveKey(secret, salt, infoLocal))}, nil
}

// String and GoString keep key material out of anything that prints a
// sealer.
func (s *LocalSealer) String() string   { return "local file sealer" }
func (s *LocalSealer) GoString() string { return s.String() }

// LocalSecretFromKey derives a local secret from another 32-byte key (the
// SSE-C key in --encryption none mode).
func LocalSecretFromKey(k []byte) []byte { return deriveKey(k, nil, infoLocalFrom) }

func localAAD(index uint64) [len(localAADText) + 8]byte {
	var aad [len(localAADText) + 8]byte
	copy(aad[:], localAADText)
	binary.BigEndian.PutUint64(aad[len(localAADText):], index)
	return aad
}

// Seal appends nonce | ciphertext | tag of block index to dst.
func (s *LocalSealer) Seal(dst, plain []byte, index uint64) []byte {
	aad := localAAD(index)
	return s.aead.Seal(dst, nil, plain, aad[:])
}

// Open reverses Seal, appending the plaintext to dst: ErrAuth on any change
// or a block moved to another index.
func (s *LocalSealer) Open(dst, sealed []byte, index uint64) ([]byte, error) {
	aad := localAAD(index)
	out, err := s.aead.Open(dst, nil, sealed, aad[:])
	if err != nil {
		return dst, fmt.Errorf("%w: local block %d", ErrAuth, index)
	}
	return out, nil
}
