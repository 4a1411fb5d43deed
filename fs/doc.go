// Package fs is coffer's filesystem core: it maps canonical paths ("/",
// "/a/b") onto objects of a blobstore.Store, without FUSE. The go-fuse
// adapter (package fs/fusefs) drives a *Volume, and cmd/coffer uses the
// package to initialise, re-authenticate and mount volumes; its offline
// commands (ls, cat, get, put, rm) drive the same *Volume API, and
// coffer fsck runs Volume.Fsck (fsck.go).
//
// Fsck (fsck.go, fsck_repair.go) lists every object and checks what §3
// requires of it, per object class (fsckClasses: the config, writer
// epochs, hard-link inodes, unknown objects under .coffer/, entries):
// its name decodes, its size is an
// envelope size (a marker's is 0), its KEK generation is in the keyring,
// its wrapped DEK opens, its attributes open under its path; with Deep
// every body is authenticated. It changes nothing unless Repair, and then
// no object but the hard-link leftovers named below: it aborts multipart
// uploads older than UploadAge and
// removes cache-dir leftovers that hold no data (spares, staging files
// that do not open or whose content the store holds, torn journal tails'
// .broken copies), never in a cache dir a live mount uses. Beyond
// DESIGN.md: an orphaned multipart upload is one older than UploadAge
// (24 h), since S3 cannot tell a live writer's from a dead one's.
//
// Stats (stats.go) gives the metrics layer what waits for upload, the
// block cache's counters and failed operations by errno (counted in
// finish); the upload journal is to fill JournalBytes through
// Volume.journalSize once it is wired.
//
// Layout (DESIGN.md §3): in client mode a path /a/b is the object key
// enc(a)/enc(b), each segment encrypted under its canonical parent path;
// bodies are cipher envelopes and attributes are sealed in coffer-*
// metadata bound to the path. In "none" mode names, bodies and the
// s3fs-style metadata (mode with its type bits, uid, gid, atime, mtime,
// ctime as "seconds[.nanoseconds]", rdev of devices, xattr as s3fs's
// url-encoded JSON, and coffer-changes, the change counter) are plain,
// so s3fs, rclone and the AWS CLI read the same bucket. A directory is a
// marker object "<dir key>/" or just a common prefix (an implicit
// directory).
//
// Attributes (DESIGN.md §3, version 2; api.go, ops.go, xattr.go): every
// change of content, attributes, name or link count moves ctime and the
// change counter (Attr.touch), and every reseal carries both, atime and
// the user.* xattrs. atime moves only when set (the mount is noatime).
// An attribute change is a conditional metadata copy of a stored object,
// or changes what a staged file's upload carries (checked against the
// metadata budget at once, so a setxattr that cannot be sealed is E2BIG
// then, not a failed upload later). One rewrite of a path at a time: it
// holds the path's stripe. Xattrs outside user.* are refused (ENOTSUP)
// and read as absent (ENODATA). Special files (fifo, socket, devices)
// are objects with an empty body; a stored special file with a body is
// EIO; the core never opens one (EINVAL: the kernel does). A setgid
// directory hands its group, and to directories its bit, to new entries
// (newAttr). Directories report st_nlink 1 (Attr.Nlink says why).
//
// File size limit (beyond DESIGN.md; maxFileSize): a file's object must
// fit in blobstore.MaxParts parts of the upload pool (--part-size) and in
// S3's 5 TiB; 78 GiB of ciphertext with the default 8 MiB parts. A
// truncate past it is EFBIG and a write that starts at it EFBIG, one
// across it short, as for a file size limit in POSIX: such a file could
// never be uploaded.
//
// Hard links (DESIGN.md §3; link.go, fsck_links.go). Client mode only:
// in none mode link(2) is EPERM (s3fs-fuse has no representation to
// share). The first link of a file copies its body server-side to
// .coffer/inodes/<hex inode ID> under the same ObjectKey (file ID and
// DEK kept, so cached chunks stay valid), then stores the new name's
// link object, then rewrites the old name as a link (conditional on the
// version copied); a failure removes what it stored. A node of a linked
// path carries its inode object's key, ETag, size and ObjectKey, and
// node.link its own link object, so reads, uploads (storeInode) and
// attribute copies (copyInode) through any name reach the one body; the
// live set travels with the attributes and every change of it (link,
// unlink, a rename over a link) is a conditional copy of the inode that
// moves ctime. Decisions beyond DESIGN.md:
//   - st_ino is derived from the inode ID (its first 8 bytes shifted
//     below 1<<63, where go-fuse numbers the inodes it makes up), so it
//     is the same through every name and every mount; go-fuse finds the
//     inode another name already has by that number. A file that gets
//     its second name while the kernel holds it keeps the number go-fuse
//     gave it until the kernel forgets it (NodeLinker returns the same
//     inode, so both names show it).
//   - inodeViews keeps the latest version of each inode seen here and
//     the names known to lead to it: a cached node of one name shows a
//     change made through another at once, and a file open through a
//     name that is unlinked or replaced moves to another known name (or,
//     when none is known, stays in v.files under a key no path has, still
//     flushed and uploaded to the inode) instead of becoming an orphan;
//     the last name's unlink is an ordinary unlink of an open file.
//   - One file per inode: an open through any name shares the file open
//     through another (fileOfInodeLocked), so writes are seen at once.
//   - An upload of a linked file seals the live set the store holds just
//     before it (one HEAD of the inode; storeInode), not the one known
//     when the file was opened: every link and unlink is stored in the
//     inode at once, so a link another mount made meanwhile survives
//     (TestLinkedUploadKeepsOtherMountsLinks). A metadata copy keeps the
//     ETag the PUT is conditional on, so a link made in the few
//     milliseconds between that HEAD and the PUT can still be lost (its
//     name is then outside the live set: EIO, and fsck --repair removes
//     it).
//   - A rename of a link moves only its small object and moves the
//     inode's ctime; rename(2) between two names of one file does
//     nothing, as POSIX says. A directory rename moves the link objects
//     below it (resealed for their new paths); inodes never move.
//   - fsck --repair removes links outside their inode's live set (as
//     DESIGN.md says) and inodes no name links to (a link or last unlink
//     that did not finish: nothing reaches them); it reports, and keeps,
//     dangling links and live sets counting a name that is missing.
//   - A journalled upload of a file open without a name here is set
//     aside to lost+found by recovery (its record has no path), not
//     uploaded.
//
// Directory times (dirtimes.go): adding or removing an entry moves the
// directory's mtime and ctime in memory at once (every lookup and
// listing shows them) and stores them after WritebackDelay, coalesced,
// with a conditional rewrite of the marker (an implicit directory gets
// one); Flush stores the rest, a directory rename stores those below it
// first, rmdir drops them. Beyond DESIGN.md: a crash loses only these
// moves. The root has no object: its attributes live as long as the
// mount.
//
// A directory rename copies every object below it, then deletes the
// sources (renamedir.go). Uploads of files below wait for it from the
// listing on (holdUploadsBelow): landing at an old key in between, a
// version would be copied with the metadata of the one before, or
// deleted with the sources (TestRenameDirDuringUpload: an fsync during
// the rename lost its write). A file written meanwhile stays staged,
// moves with the directory, and is uploaded under its new path.
//
// Beyond DESIGN.md, which says nothing of renames racing other
// operations: the kernel locks only a renamed directory's parents, so a
// create, mkdir, chmod or rename inside it runs during the copies, with
// a path that names nothing once they end. Every path operation of the
// Volume API passes a gate first (gate.go): it waits while a directory
// rename is in progress at or above its paths and then runs where the
// directory went; a directory rename lets the operations already past
// their gate below it finish before it lists anything, and directory
// renames run one at a time. Before, a mkdir or symlink there was left
// at the old path (the directory came back beside the new one), a nested
// directory rename moved nothing, and a chmod failed with ENOENT
// (TestOpsDuringDirRename, TestNestedDirRenameDuringDirRename,
// TestChmodDuringDirRename). Serialising directory renames costs
// nothing a local file system does not: Linux serialises cross-directory
// renames per file system too.
//
// Open files that lost their name (unlinked or replaced while open) are
// reached through their Handle (Handle.SetAttr, Setxattr), never a path:
// their changes live in memory until the last close.
//
// Invariants:
//   - No plaintext file data or name is written to local disk: writes go
//     to sealed staging files (cache/staging), cached chunks are sealed.
//   - No byte of a stored object is returned before its chunk
//     authenticated; a failure is EIO for that file only.
//   - Reads of an opened version carry If-Match, so versions never mix.
//   - Every upload uses a fresh ObjectKey; metadata-only changes (chmod,
//     rename) keep the file ID, so cached chunks stay valid.
//   - Errors returned by Volume methods carry a syscall.Errno (see Errno).
//
// Writes: a file open for writing has one sealed staging file, shared
// by its handles. Opening a stored file for writing does not fetch it:
// its content is copied into staging at the first write or truncate
// (O_TRUNC copies nothing). The last close schedules the upload after
// WritebackDelay (default 2 s: rsync's close, utimes, chmod and rename
// of its temporary file take milliseconds, so the renamed file is
// uploaded once, under its final name); fsync uploads at once. A failed
// upload of a closed file is retried 1 s later, then twice as late each
// time up to a minute, and reported to fsync and Flush; an upload that
// someone waits for (fsync, Flush, a rename that must upload first)
// retries a store failing transiently for Options.RetryBudget before it
// fails (EIO). The upload pipeline is writeback.go; a file's states and
// their transitions are tabled at type file (file.go).
//
// Streaming writeback (stream.go): a file written sequentially from 0
// past two parts starts its multipart upload while it is written (parts
// read back from staging); fsync and the last close complete it, the
// last close at once rather than after WritebackDelay, and a metadata
// copy reseals the attributes the upload carried from its start.
// Deviation from DESIGN.md §5 ("a server-side copy or a held last part,
// whichever measures better"): the held last part is not built. Holding
// cannot avoid the copy, since the upload's key and metadata are fixed at
// its start: a rename before completion still needs a copy, and the
// mtime moves with every write anyway; it only saves the cheap metadata
// copy of the close (versitygw: an xattr rewrite) at the price of the
// writeback delay before the file is stored, and it would complete under
// a name the file no longer has (a crash then leaves that name behind).
// A rename or unlink while the file is still open aborts the stream.
//
// Crash safety (DESIGN.md §5): the cache dir's upload journal
// (cache/journal; its lock keeps a second mount out of the cache dir)
// records every changed file at each close(2) (FUSE FLUSH, which close
// waits for; Handle.Flush) with its staging file's committed version,
// path, attributes, upload condition and upload tags, before close
// returns; a record is done once the file is stored (or unlinked, or
// replaced) and its staging file removed. Renames and attribute changes
// of a journalled file journal it again. OpenVolume replays the journal
// before the volume is used (recover.go): every record whose staging
// file is still exactly the version journalled is uploaded (the count is
// logged at info level: "recovered N files"); a staging file that is not
// (written again when the process died, not known to have reached the
// disk before a machine restart, unreadable) and every staging file
// without a record is moved, still sealed, to lost+found/ in the cache
// dir and a warning says so: never uploaded as if it were whole, never
// deleted, kept for coffer fsck --cache-dir --repair. Only the staging file of a
// file unlinked while open, which says so, is deleted. What survives:
// a closed file survives the death of the process; the loss of the
// machine once the journal's batch sync covered it (SyncDelay after the
// close: WritebackDelay + 1 s) or once it was uploaded; an fsync'd file
// is in the store.
//
// Conflicts (DESIGN.md §5; conflict.go): every upload is conditional:
// If-Match on the ETag of the version it replaces, If-None-Match for a
// file created here (O_EXCL or not: the lookup that found the name free
// may be stale). versitygw, SeaweedFS and Local honour both natively
// (blobstore/doc.go), so no HEAD check stands in for them. A refused
// upload HEADs the object: one carrying a tag of this upload is this
// upload (stored before a lost answer or a crash); an object deleted
// meanwhile is created again; anything else is another mount's version,
// and this one is stored beside it as NAME.conflict-YYYYMMDD-HHMMSS (UTC;
// -2, -3, ... if taken) with the same attributes, the file moving there
// and a warning naming both objects. Nothing is lost and nothing is
// overwritten that this mount did not see. A hard-linked file's upload
// is conditional on its inode object: refused, the inode is HEADed, and
// unless it holds this upload, this version becomes a plain file (one
// name) at the conflict copy of the name it was written through; the
// inode and its names keep the other version (TestConflictOnLinkedFile).
// An upload that knows no link (a journal record recovered after a
// crash names only the path and the ETag it replaces) and is refused
// because the path holds a link object follows it: if the link
// authenticates and its inode is the version replaced (or one of the
// upload's own), the content goes to the inode, as it would have
// (TestRecoveryOfLinkedFile); otherwise a conflict copy as above.

// Open files outlive their object: before a stored file that has open
// handles is unlinked, or replaced by a rename over it, its handles get
// a private copy of the version they opened (its plaintext pulled into a
// sealed staging file, every chunk authenticated; file.keepContent).
// Handles of one file share that copy and read or write it until the
// last close, which discards it; it is never uploaded. The object is
// then deleted or replaced at once: no delete is deferred, so a new file
// may take the name (and key) right away. Cost: one download of the
// whole file at unlink or rename time, only when it is open here (a
// staged file is private already). If the copy fails because that
// version is unreadable anyway (gone, replaced by another client, failed
// authentication) the unlink or rename goes on. So it does when the
// local disk has no room for the copy, once the block cache has given
// its own (below): a user frees space by removing files, so a full disk
// must not refuse that; the handles' reads and writes then fail
// (ENOENT, ESTALE) and the log says why (TestDiskFullCacheGivesWay). Any
// other failure (store unreachable, a local disk error) fails it with
// nothing changed.
//
// On a full disk staging comes first: the block cache only holds copies
// of what is stored, staging what is not yet. A staging write that finds
// the disk full asks the cache for room (cache.Blocks.Shrink evicts the
// least recently used chunks and caps the cache at what is left for the
// rest of the mount) and is tried again; only when the cache has
// nothing left does the write fail with ENOSPC. An open
// racing the unlink or rename of its path is serialised with it by a
// striped per-path lock held from the open's lookup through its
// registration and from the unlink's (rename's) check for open handles
// through the delete or replace (Volume.lockPaths; stripe order, taken
// first, never nested): the open either sees the path gone or is given
// the copy. A read in flight across it that finds the object gone
// retries from the copy. A lookup in flight across it does not cache
// the deleted version (metaCache.putFetched drops answers older than
// the path's last change). Opens on another client are not seen: their
// reads fail (ENOENT, ESTALE).
//
// Reads: chunk-aligned ranged GETs (If-Match on the opened version);
// while access is sequential (a read at offset 0 starts it), up to 32
// MiB read ahead in runs of 2 MiB segments, each run one ranged GET read
// progressively, each chunk authenticated as soon as its bytes arrived
// (reader.go); chunks cached by cache.Blocks, except that read-ahead
// streams files larger than a sixteenth of the disk cache (a quarter of
// the memory cache) around it, into segment buffers reused from a pool:
// writing a big file read once into the disk cache doubled the CPU of
// its read. A read returns a view of those
// buffers (Handle.ReadView) that the FUSE reply writes without a copy;
// a buffer goes back to the pool only when neither the reader nor any
// view holds it, so a reply never carries another file's bytes. Lookups and listings fetch
// an object's metadata with a ranged GET of its first chunk, so reading
// a small file after `ls -l` needs no request; a listing answered from a
// directory index does not, and directory read-ahead stands in for it.
//
// Directory indexes (dirindex.go; beyond DESIGN.md §3, which it extends).
// A cold listing of a directory of N files would cost N requests, each
// object's metadata living in the object. A full-key client volume keeps,
// per directory, an attribute index object: a cache, never the source of
// truth.
//   - Object .coffer/dirs/<hex HMAC-SHA256(HKDF(name secret, "coffer dir
//     index name"), canonical dir path)>: no name in the key. Body "CFD" |
//     0x01 | KEK generation | AES-256-GCM under HKDF(KEK_gen, salt = that
//     HMAC, "coffer dir index"), AAD "coffer dir index v1" | volume ID |
//     generation | canonical dir path (cipher/dirindex.go): an index moved
//     to another directory or volume, or altered, does not open; one
//     sealed under a retired generation does not open either and is
//     rebuilt (rotate and fsck skip indexes; fsck counts them).
//   - Plaintext (encodeIndex): per object listed below the directory with
//     a body (size > 0: an empty body's ETag is the same in every version),
//     its key segment, the listing's ETag, size and LastModified, and the
//     object's user metadata exactly as stored.
//   - Use: a listing does one LIST and one GET of the index; an entry is
//     used only when the LIST shows that object with that ETag, size and
//     LastModified, and then its metadata goes through the very code a
//     fetched answer does (listedNode: name, DEK unwrap, attributes bound
//     to the path, writer origin). An entry that does not match or does not
//     authenticate is fetched as without index, silently; an index that
//     cannot be read or opened is no index. So a forged or stale index costs
//     requests, never shows attributes that version of the object was not
//     sealed with by a key holder. Not detected (as DESIGN.md §9's rollback):
//     metadata an object version had before a metadata-only copy on a
//     server whose copies keep LastModified (versitygw), when the index
//     predates the copy and the copying mount did not rewrite it.
//   - Writes are conditional on the index version their build read
//     (If-Match its ETag, If-None-Match when there was none): a listing's
//     background write that lost the race to another mount's is dropped,
//     and a Flush rewrite lists and builds again on top of the newer one
//     (up to 3 times), so one mount's stale view never lands over
//     another's chmod (TestDirIndexWriteRace). A listing that had to fetch at least
//     indexAfterFetches entries writes the index in the background from
//     what it fetched (the LIST preceded those fetches, so a change in
//     between leaves an entry that a later listing refetches); and every
//     Flush (unmount) rewrites the index of each directory this mount
//     stored into (PUT, copy, multipart: recordingStore records the
//     metadata sent and the ETag answered): one LIST (a PUT does not return
//     LastModified), the old index, one PUT, each bounded by
//     indexWriteTimeout and only logged on failure. Own writes take
//     precedence over the old index, since on versitygw only the mount that
//     made a chmod knows of it. Past maxOwnRecords remembered writes the
//     rewrite runs in the background. Read-only, write-only and none-mode
//     volumes write no index; write-only and none-mode ones read none.
//     Offline commands (Options.KeepNoIndexes) rewrite only the indexes
//     of directories where they made a metadata-only copy: a new object
//     never makes an index wrong, and one put is not worth a LIST.
//   - Directory read-ahead (dirahead.go): a listing from the index brings
//     no first chunks, so opening two files of a listed directory in name
//     order fetches the first chunks of the next small files (up to
//     aheadWindow) in parallel; cp -r, tar and the like then wait for no
//     GET per file, and a bare ls -l fetches nothing.
//   - Ranged listing (listRanges): the index is read before the LIST, and
//     a directory whose index names more than 250 entries
//     (defaultRangeKeys) is listed as ranges cut at every 250th indexed
//     name (at most 16 ranges, so longer ones for directories past 4000
//     entries), in parallel (ListAfter: S3's StartAfter). A range ends at
//     its bound and the next starts after it, so the ranges partition the
//     keys whatever the index says: a stale or forged index makes them
//     uneven, never incomplete. Each range's first request asks for its
//     share of keys, an eighth and 8 more (ListOptions.FirstPage, S3's
//     MaxKeys), later ones for full pages: the server reads every key it
//     returns, so a range asking for a full page of 1000 made the server
//     read the next ranges' keys too. Measured on versitygw (loopback,
//     cold ls -l, 3 runs each) when ranges were cut at every 1000th name
//     and asked for full pages: 2000 files 0.50-0.51 s vs 0.51-0.55 s one
//     page after the other; 10,000 files 2.50-2.61 s vs 2.94-3.05 s, at
//     40% more versitygw CPU (each of its LISTs reads the whole
//     directory); on a store whose LIST pages cost network round trips
//     the ranges save more. Ranges of 250 asking for their share against
//     those ranges of 1000 (2000 files, six alternating runs): 0.32-0.48 s
//     (median 0.38) against 0.43-0.56 s (median 0.46); 10,000 files (16
//     ranges either way) no different within the noise.
//
// Config: OpenVolume uses a config only once cipher authenticated it
// (entry authentication included) and its modes match the caller's; a
// config from before entry authentication is refused, and only
// ReauthVolume (reauth.go) upgrades it, after checking that stored
// objects unwrap their DEKs under its keyring: a forger can make its
// config look old, but its keyring opens none of the volume's objects.
//
// Keys and rotation: the root key commands (keys.go) and rotate
// (rotate.go, rotate_ssec.go) work on the store and the config without a
// Volume, each config change one conditional write (If-Match; a 412 is
// ErrConfigChanged, nothing written; rotate re-reads and retries). A
// client-mode Volume re-reads its config every ConfigRefresh (within the
// metadata TTL and ConfigRefreshMax) and adopts its KEK generations, so
// a rotation elsewhere reaches it: new objects sealed under the new
// generation, objects under a retired one refused (configwatch.go).
// rotate waits DefaultMountGrace after adding a generation before it
// rewraps, resumes an unfinished rotation rather than adding another
// generation, and retires a generation only when no object it visited
// names it; an upload that a mount sealed before a refresh and stored
// after it is rewrapped by that mount (rewrapStale).
//
// Writer keys (DESIGN.md §2 "Writer keys"; writers.go): the full-key
// commands export-writer, revoke-writer and key list's writers table
// change or read the keyring like the root key commands. A full-key
// Volume opens every object with cipher.Keyring.OpenAnyMetadata
// (clientLayout.openAny): a writer-origin object must lie outside
// .coffer/ (CheckWriterObjectKey) and pass cipher's checks (writer known
// and usable, epoch tag and seal, scope, DEK), its epoch object fetched
// once per origin and cached (epochCache; dropped when a config refresh
// changes the writers). A refusal is that file's EIO, logged once by key.
// Beyond DESIGN.md: a writer's file shows no set-ID bit and a writer's
// device node is refused (a writer seals any mode it likes; a write-only
// volume makes no device node, EPERM: writerAttr), its origin is Attr.Origin (xattr coffer.origin,
// read-only: EPERM to set or remove; ls -l), Options.Writers =
// WritersRefuse hides writer-origin objects (lookups ENOENT, listings
// leave them out), a full-key metadata change (chmod, rename inside the
// scope) keeps the origin while a full-key rewrite of the content stores
// a new version of the full key's, and Adopt reseals one without its
// origin. rotate rewraps writers' objects with RewrapAnyMetadata
// (keeping the origin; they open without their epoch from then on), and
// fsck checks epoch objects (class "epoch") and reports refused writer
// objects as FindWriter.
//
// Write-only volumes (writeonly.go, Options.Writer): opened with a writer
// credential, one session per opening; what the session may do is the
// table at the top of writeonly.go. What it creates is stored with
// If-None-Match (new files, as everywhere; markers; its epoch object,
// first); a change to one of its own objects after its upload (a
// rewrite, chmod, rename) is a conditional overwrite or copy, which the
// README's bucket policy for writer hosts refuses.
//
// Errors: a store failure is EIO unless it is typed (ENOENT, EACCES,
// ENAMETOOLONG); the errno of a broken connection deep in its chain
// (ECONNRESET, ...) is never passed on.
//
// Logs: every operation that ends in EIO logs its cause once at error
// level, naming the object by its key (report.go). It must never log or
// return key material or file contents, nor log a plaintext path or name
// (in none mode, where keys are the names, records carry a keyed hash of
// the key instead). The one exception is Options.LogPlaintextNames,
// which cmd/coffer sets only for a foreground mount logging to its
// terminal at debug level: then a Debug record maps each logged key to
// its path. No log file coffer writes ever holds a plaintext name.
package fs
