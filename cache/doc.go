// Package cache is coffer's block cache: chunks of stored objects kept in
// memory and on local disk, so repeated reads do not go back to the store.
//
// Blocks has two layers, each bounded in bytes:
//
//   - Memory (GetPlain, PutPlain): verified plaintext chunks in a
//     ristretto cache (cost = bytes, bound MemBytes). PutPlain copies the
//     chunk; GetPlain's result must not be modified. Admission is
//     asynchronous and may be refused by ristretto's TinyLFU policy.
//   - Disk (GetStored, PutStored): one file per chunk under Dir, named
//     <2 hex>/<hex of BlockID.Object>-<index as 16 hex> (never a
//     plaintext name), files 0600 in 0700 directories, evicted least
//     recently used by total file size (bound DiskBytes). The index lives
//     in memory and is rebuilt by scanning Dir at New (oldest write least
//     recent; leftover temporary files and foreign names are deleted).
//
// # Never write plaintext
//
// Plaintext chunks stay in memory. What reaches the disk is either:
//
//   - client mode (SealSecret nil): the chunk exactly as given, which is
//     the sealed chunk fetched from the store (AES-GCM under the object's
//     chunk key). GetStored returns it unverified except for its entry
//     header: the caller must authenticate it with the object's key, as it
//     does every chunk from the store (DESIGN.md §5).
//   - other modes: the chunk sealed with a cipher.LocalSealer from
//     SealSecret and a random per-file salt. GetStored authenticates it and
//     never returns bytes that fail; the salt input also binds the entry
//     to its BlockID, so an entry renamed or copied to another chunk's name
//     does not open there.
//
// Entry file format (integers big-endian):
//
//	"CFRBLK" | version 1 | mode (0 as given, 1 sealed) | object (32) | index u64
//	mode 0: chunk
//	mode 1: salt (32) | LocalSealer(secret, SHA-256("coffer cache entry v1" | salt | object | index)).Seal(chunk, index)
//
// An entry whose header disagrees with its name, its mode with the cache's
// mode, or whose seal fails is deleted and counts as a miss.
//
// # Best effort
//
// The cache never fails a read: disk errors (ENOSPC, EIO, permissions) are
// logged with slog at most once per 10 s and the operation carries on as
// a miss. Puts write a temporary file and rename it into place, so a
// crash never leaves a half-written entry under a real name.
//
// It must never: write a plaintext chunk or name to disk, return a sealed
// entry that fails authentication, or log keys or chunk contents.
package cache
