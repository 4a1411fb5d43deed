package main

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// defaultCacheName names a mount's default cache directory under
// $XDG_CACHE_HOME/coffer. In client mode it is the volume ID, which
// the config's authentication vouches for. A config without client-side
// encryption is not authenticated (its MAC key is public, DESIGN.md §3),
// so there the name also hashes where the user said the store is: a
// forged none-mode config that copies the ID of another volume cannot
// steer the mount into that volume's cache directory (its local key, its
// staging and cached blocks).
func defaultCacheName(encryption, url, endpoint string, cfg *cipher.Config) string {
	id := cofferfs.VolumeID(cfg)
	if encryption != cipher.EncryptionNone {
		return id
	}
	sum := sha256.Sum256([]byte("coffer none-mode cache\x00" + url + "\x00" + endpoint + "\x00" + id))
	return "none-" + hex.EncodeToString(sum[:16])
}

// effectiveEndpoint is the endpoint the S3 client will use: the flag,
// else the AWS SDK's environment variable.
func (s *storeFlags) effectiveEndpoint(e *env) string {
	if s.endpoint != "" {
		return s.endpoint
	}
	return e.getenv("AWS_ENDPOINT_URL_S3")
}
