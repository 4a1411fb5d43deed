package cipher

import (
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// HKDF info labels. Each derived key has exactly one purpose; changing a
// label changes the format (the known-answer tests catch it).
const (
	infoChunk      = "chunk" // DEK -> chunk key (DESIGN.md §2)
	infoAttr       = "attr"  // DEK -> attribute key (DESIGN.md §2)
	infoDEKWrap    = "coffer dek wrap"
	infoNameEME    = "coffer name eme"
	infoNameTweak  = "coffer name tweak"
	infoConfigMAC  = "coffer config mac"
	infoLocal      = "coffer local"
	infoLocalFrom  = "coffer local secret from key"
	infoKeyID      = "coffer key id"
	infoRootSym    = "coffer root sym"
	infoRootPass   = "coffer root passphrase"
	infoRootKMS    = "coffer root kms"       // the root secret KMS decrypts -> entry key pair
	infoEntryAuth  = "coffer entry auth"     // entry root secret -> entry auth key
	infoAnchor     = "coffer keyring anchor" // anchor secret (salt = volume ID) -> anchor
	noneConfigSeed = "coffer config without client-side encryption"
)

const keySize = 32

// deriveKey is HKDF-SHA256 with a 32-byte output.
func deriveKey(secret, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, salt, info, keySize)
	if err != nil {
		// Only reachable in FIPS-only mode with a short secret, which
		// coffer never passes: every secret here is 32 bytes.
		panic(fmt.Sprintf("cipher: hkdf: %v", err))
	}
	return k
}

// newAEAD is AES-256-GCM whose Seal draws a fresh 12-byte nonce and returns
// nonce | ciphertext | tag, the layout of every sealed field in coffer.
func newAEAD(key []byte) gocipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("cipher: aes: %v", err)) // key is always 32 bytes
	}
	aead, err := gocipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic(fmt.Sprintf("cipher: gcm: %v", err))
	}
	return aead
}

// sealedOverhead is what newAEAD adds to a plaintext.
const sealedOverhead = 12 + 16
