// Package cache is coffer's block cache: chunks of stored objects kept in
// memory and on local disk, so repeated reads do not go back to the store.
//
// Blocks has two layers, each bounded in bytes:
//
//   - Memory (GetPlain, PutPlain): verified plaintext chunks in a
//     ristretto cache (cost = bytes, bound MemBytes). PutPlain takes the
//     chunk over (no copy: the caller must not modify it afterwards) and
//     GetPlain's result must not be modified. Admission is asynchronous
//     and may be refused by ristretto's TinyLFU policy.
//   - Disk (GetStored, PutStored): one file per object under Dir, named
//     <2 hex>/<hex of BlockID.Object> (never a plaintext name), 0600 in
//     0700 directories. Chunk i sits in slot i at a fixed offset, so
//     caching a chunk is one write into an existing file: creating a file
//     costs milliseconds on a busy ext4, a write tens of microseconds.
//     Chunks are evicted least recently used, one at a time, by punching
//     their slot out of the file (the file goes with its last chunk),
//     keeping the allocated bytes within DiskBytes. The index lives in
//     memory and is rebuilt by scanning Dir at New (chunks ordered by
//     their file's modification time; what is not a valid file of this
//     mode is deleted).
//   - PutStored only queues the chunk (up to 32 MiB); one background
//     writer makes every file change (create, write, punch, delete) in
//     the order the index changed, so reads never wait for the disk.
//
// # Never write plaintext
//
// Plaintext chunks stay in memory. What reaches the disk is either:
//
//   - client mode (SealSecret nil): the chunk exactly as given, which is
//     the sealed chunk fetched from the store (AES-GCM under the object's
//     chunk key). GetStored returns it unverified except for its file
//     header: the caller must authenticate it with the object's key, as it
//     does every chunk from the store (DESIGN.md §5).
//   - other modes: the chunk sealed with a cipher.LocalSealer from
//     SealSecret and the object file's random salt. GetStored
//     authenticates it and never returns bytes that fail.
//
// Object file format (integers big-endian):
//
//	header (76 bytes, padded to 4096):
//	    "CFRBLK" | version 1 | mode (0 as given, 1 sealed) | object (32)
//	    | slot size u32 (69632) | salt (32; zero in mode 0)
//	slot i at 4096 + i*69632: length u32 | 0 u32 | payload (length bytes)
//	    mode 0: the chunk as given
//	    mode 1: LocalSealer(secret, SHA-256("coffer cache object v1" | salt | object)).Seal(chunk, i)
//
// A slot of length 0 (never written, or punched) holds nothing. In sealed
// mode the object is part of the sealer's salt input and the index is the
// seal's index, so a file renamed to another object, or a slot moved to
// another index, fails authentication. A file whose header disagrees with
// its name or the cache's mode is deleted at New; a chunk that fails its
// checks when read is dropped and counts as a miss. Chunks larger than a
// slot are not cached.
//
// # Best effort
//
// The cache never fails a read: disk errors (ENOSPC, EIO, permissions) are
// logged with slog at most once per 10 s and the operation carries on as
// a miss. It gives way to what must not fail on a full disk: Shrink,
// which the staging directory calls when a write finds the disk full,
// evicts the least recently used chunks until the room asked for is
// free and caps the disk layer at what is left until the next New. A crash mid-write leaves at worst a damaged slot: in sealed
// mode it fails its checks and is dropped; in client mode it fails the
// caller's and is replaced when the caller caches the chunk again.
//
// It must never: write a plaintext chunk or name to disk, return a sealed
// entry that fails authentication, or log keys or chunk contents.
package cache
