// Package journal is coffer's upload journal: a sealed write-ahead log in
// the cache dir recording every staging file that was closed and not yet
// stored, so that the next mount uploads what a crash left behind
// (DESIGN.md §5, crash safety).
//
// A record holds an opaque caller blob (fs: the path, attributes and the
// ETag replaced) and the identity of its staging file (Staging: name,
// salt, record sequence number and size, as cache/staging's Version
// gives them). Append writes a record with write(2) before it returns, so
// it survives the death of the process. A background syncer makes records
// survive the loss of the machine in batches: it fsyncs their staging
// files (Entry.Sync), writes a sync mark, and fsyncs the journal. A batch
// runs SyncInterval (5 ms) after the last one when a caller waits in Sync
// (group commit: the fsync(2) path), else for the records that have been
// pending for SyncDelay (3 s). The default delay is longer than fs's
// writeback delay (2 s) because fsyncing a small staging file costs about
// as much CPU as the rest of its life in staging (bench_test.go): a file
// stored on time is never fsynced, one whose upload is late is. Done
// marks a record completed. Open locks the directory, replays it and
// returns the records still pending, in order.
//
// # Format
//
// The journal is a run of segment files named by the sequence number of
// their first frame (16 hex digits, ".jnl"). A segment is a 40-byte
// prefix ("CFRJNL" | version 1 | 0 | a random 32-byte salt) followed by
// frames, each starting at a multiple of 8 bytes so that its length field
// never straddles a sector and is never torn: a length u32 and its
// complement u32, then the record sealed with a cipher.LocalSealer keyed
// by HKDF(local secret, the segment's salt) at the frame's sequence
// number (in the AES-GCM associated data), then zero padding to the next
// multiple of 8. Sequence numbers rise by one per frame across all
// segments; the first frame of a segment is its header record (this
// boot's ID) and every later frame holds one record: pending (ID, flags,
// staging name, salt, sequence number, size, blob), done (ID), or a sync
// mark (the highest sequence number whose records and staging files were
// fsynced). A frame moved, swapped, dropped from the middle or duplicated
// fails authentication at the sequence number it is read at; one from
// another segment or another cache dir fails under its key; a segment
// renamed, or one missing between two others, breaks the run of numbers.
// Nothing on disk is plaintext but the prefix, the frame lengths and the
// lock file's PID.
//
// # Damage
//
// judge (damage.go) is the one place that decides what a frame that does
// not read back means. In the newest segment, a frame cut short by the end
// of the file, one followed by nothing but zeros, or (after a machine
// restart) one no sync mark covers is a torn tail: Open cuts it off,
// keeping what precedes (and a copy as SEGMENT.broken when the cut bytes
// are not all zero). Anything else is damage before the tail: replay stops
// there, the records before it are pending as usual, the segment and every
// later one are renamed SEGMENT.damaged and kept for inspection, and
// Recovery.Damage says so; the journal carries on in a new segment.
// Staging files whose records were lost that way have no record: the
// caller must keep them, not upload them.
//
// # Durability
//
// A record's Durable flag at replay tells whether its staging file can be
// trusted to hold what the record says: yes if a sync mark covers it (its
// staging file was fsynced, then the mark written, then the journal
// fsynced), or if the segment was written during this boot (only the
// process died, the page cache kept every write), unless the staging
// file's fsync failed. A record that is not Durable may describe a
// staging file whose blocks read as holes after a power loss even though
// its Version matches: never upload it as whole. When Open finds records
// durable only because the machine has not restarted, it flushes the file
// system holding the journal (syncfs(2); the staging files share the cache
// dir) before its copies of them claim they are synced.
//
// # Compaction
//
// When the active segment reaches SegmentSize (4 MiB, or four times the
// pending records' size if that is more), the syncer fsyncs it, starts a
// new segment holding a copy of every pending record (same ID, new
// sequence number), fsyncs that, and deletes the older segments, so the
// journal holds about one segment plus the pending records. Open does the
// same after replay, so a journal never outgrows what is pending by more
// than a segment.
//
// # Locking
//
// Open takes an exclusive flock on DIR/lock for the life of the Journal;
// a second Open of the directory, from this process or another, fails
// with ErrLocked and an error naming the directory (and the holder's
// PID). The kernel drops the lock when the process dies.
//
// # What is not protected
//
// As for staging files (DESIGN.md §9), rollback is out of scope: someone
// who can write the cache dir can delete the newest segment or cut it at a
// frame boundary, and the records there are gone without a trace. Nothing
// they do makes a record appear that was never appended, or reveals a
// name or a blob.
//
// It must never: write a staging name or blob unsealed, replay a record
// that fails authentication, cut damage that is not a torn tail, or let
// two processes write one journal.
package journal
