// Package staging keeps the files coffer has open for writing in sealed
// local files until they are uploaded.
//
// A Dir is one mount's staging directory (mode 0700); each File in it is
// one file being written (mode 0600, a random name: never derived from the
// plaintext name). Files support random writes, holes, truncation and
// append, and are self-describing, so a later upload journal can reopen
// them by name after a crash (Dir.List, Dir.Open) and find the caller's
// meta blob (the canonical path, attributes, base ETag) sealed inside.
//
// # Never write plaintext
//
// Every byte of file data and of the meta blob is sealed with a
// cipher.LocalSealer whose key comes from the volume's local secret and a
// random 32-byte salt kept in the file's header. Nothing else reaches the
// disk: no plaintext names, no temporary copies, no logs.
//
// # On-disk format (version 1, integers big-endian)
//
//	@0          header (56 bytes): "CFRSTG" | version 1 | flags 0
//	            | blockSize u32 | metaOff u32 | metaSlotSize u32 | dataOff u32
//	            | salt (32)
//	@metaOff    meta slot 0: sealedLen u32 | Seal(record, index 2^64-1)
//	@metaOff+metaSlotSize   meta slot 1, same shape
//	@dataOff + i*(blockSize+28)   block i: nonce (12) | ciphertext | tag (16)
//
// with record = header[0:24] | seq u64 | plaintext size i64 | metaLen u32 |
// meta. Version 1 files use blockSize 65536, metaOff 4096, metaSlotSize
// 8192 and dataOff 20480 (so meta holds at most MaxMetaSize bytes); the
// unused space of the header page and the slots is never written and
// stays sparse.
//
//   - Blocks are sealed with their index as associated data, so a block
//     moved, swapped or duplicated fails authentication (cipher.ErrAuth).
//     The record is sealed at an index no block can have.
//   - Every block is sealed at its own plaintext length: blockSize, except
//     the last, which is sealed at size mod blockSize. The file length is
//     therefore exactly fixed by the plaintext size; Open refuses a file
//     shorter than that (a truncated file would otherwise read as holes)
//     and cuts leftovers past it (writes never committed before a crash).
//   - A slot that is all zero bytes is a hole and reads as zeros: a sealed
//     block never is (its nonce and tag are random).
//   - The plaintext size lives in the sealed record (and in memory), which
//     is rewritten on Sync, Close (if anything changed), Truncate and
//     SetMeta. Records alternate between the two slots with a rising
//     sequence number, so a torn record write leaves the previous one
//     readable; Open takes the newest record that authenticates. The
//     header repeats inside the record, so its geometry is authenticated.
//
// # Block size
//
// 64 KiB, chosen by measurement (bench_test.go; 2 cores shared with other
// builds, ext4; figures move by about 30% between runs):
//
//	                          16 KiB blocks   64 KiB blocks
//	sequential 4 KiB writes     633 MB/s       1094 MB/s
//	sequential 128 KiB writes  1727 MB/s       1678 MB/s
//	sequential 1 MiB writes    1914 MB/s       1816 MB/s
//	random 4 KiB overwrites     268 MB/s         93 MB/s (23k writes/s)
//	sequential reads          ~2.9 GB/s        ~2.9 GB/s
//
// 64 KiB matches the object chunk size, so upload reads whole blocks, and
// is faster for small sequential writes; random 4 KiB writes pay a
// read-modify-write of one 64 KiB block, which at 23k writes/s is still
// above what a FUSE round trip allows. 1 GiB in 128 KiB writes: 1.1 to
// 1.8 GB/s (BenchmarkWrite1GiB).
//
// # Writes
//
// WriteAt seals whole blocks straight from the caller's buffer, up to 16
// per write syscall (slots are contiguous). A partial block goes through a
// one-block plaintext write-back buffer that is sealed when another block
// needs it, or on Sync, Close, Truncate and SetMeta; reads see it.
//
// # Spare files
//
// Creating a file costs a millisecond or more on a busy ext4 (measured
// here: ~1 ms for create+write+unlink against ~15 µs for rewriting an
// existing file), so Remove empties a file (ftruncate to 0) and keeps it
// open for the next Create, up to 256 of them; BenchmarkSmallFile: about
// 35-55 µs per small file's life with spares, 0.1-0.9 ms without. Spares
// are also made ahead of demand: a Create that leaves fewer than 32 starts
// a background goroutine that creates empty files until 128 are kept, so
// a burst of creates faster than uploads free their files (tar, cp -r
// into a fresh mount) does not pay ext4's create on the caller's path. An
// empty file is never a staging file: List skips it, Open refuses it
// (fs.ErrNotExist), and the next OpenDir adopts those a previous run left
// (a crash leaves at most the spares, empty). Dir.Close waits for a
// refill under way and deletes the spares.
//
// # Page cache
//
// A staging file lives in the page cache until it is uploaded and
// removed; for a big file that is all of it. On this project's 2-core VM
// (a virtual machine whose memory the host backs on first touch and
// reclaims when free) filling page cache never used before costs about
// 0.9 s of kernel CPU per GiB, against 0.12 s for pages freed a moment
// ago: writing 1 GiB to a fresh file, or to one whose older pages were
// written back and dropped every 8 MiB, 1.1 against 2.2-2.5 GB/s. Writing
// 1 GiB through a mount until stored, half the mount's CPU was pwrite(2)
// into staging. Evict(off, end) writes the blocks of a range back to disk
// (sync_file_range) and drops them (fadvise DONTNEED); the data stays in
// the file. fs's streaming upload evicts each MiB it has read, so a big
// file being written cycles a few megabytes of page cache: dd of 1 GiB
// with fsync on versitygw went from 145-199 to 209-266 MB/s (measured
// 2026-12-04, the two builds alternating, five pairs), and the
// mount's, dd's and versitygw's CPU all fell (versitygw's too, since it
// reuses the pages freed). The cost: a streamed file's bytes reach the
// disk even when it is removed within seconds, where ext4's delayed
// allocation would have written nothing.
//
// # What is not protected
//
// Like DESIGN.md §9 for objects, rollback is out of scope: someone who can
// write the local disk can restore an older copy of a block at the same
// index of the same file, damage the newest record so the previous one is
// used, or zero a whole slot so it reads as a hole. Nothing they do yields
// bytes that were never written to this file, and nothing they read
// reveals plaintext.
//
// Only committed state (after Sync, Close, Commit, Truncate or SetMeta) is
// what Open finds again; Sync also fsyncs, Close and Commit do not.
//
// # Versions
//
// Blocks are rewritten in place, so a file reopened after a crash may hold
// writes made after its last record. Commit returns the Version it
// committed (name, salt, record sequence number, size) for an upload
// journal to keep, and pins it: the first WriteAt or Truncate after it
// writes a newer record before it touches a block. A reopened file whose
// Version equals a journalled one is therefore exactly the file that was
// journalled (as far as the page cache, or after Sync the disk, kept it);
// one that differs changed afterwards and must not be taken as whole. The
// salt is drawn by every Create, so a spare's reused name never matches a
// Version of the file that had it before.
package staging
