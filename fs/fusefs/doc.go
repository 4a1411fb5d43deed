// Package fusefs mounts a coffer volume with go-fuse's node API. It only
// translates: one node type per kind of inode (dir, file, symlink,
// special for fifos, sockets and devices), one method per FUSE
// operation, syscall.Errno at the boundary. Every decision lives in the
// FUSE-free core (package fs).
//
// Paths come from go-fuse's tree, walked to the root by node.path; a
// node whose name is gone (unlinked, or replaced by a rename, while the
// kernel holds it) is an orphan and has no path, so nothing is ever
// asked of the core for "/" on its behalf. An open file is reached
// through its handle: GETATTR gets one from go-fuse (the first open
// one), SETATTR from the kernel (ftruncate) or, for an orphan (fchmod
// of an unlinked file), from the file node's own list of open handles.
// An orphaned directory or special file shows the attributes last
// reported, with st_nlink 0. The mount is noatime (MS_NOATIME, or the
// option to fusermount3). Permission checks are the kernel's
// (default_permissions). FUSE_HANDLE_KILLPRIV_V2 is negotiated: the
// adapter, not the kernel, clears setuid and setgid on another user's
// write, truncate and O_TRUNC open or create and on chown, by flags
// go-fuse's node API does not pass on, so a raw-request layer (killPriv,
// killpriv.go) sits in front of the node bridge. In exchange the kernel
// remembers that a file has no security.capability instead of asking
// (a GETXATTR round trip) before every write(2); 10 KiB writes (tar's)
// went from 60-67 to 82-104 MB/s on a local store. Before, an atomic
// O_TRUNC open by another user kept the setuid bit (the kernel leaves
// that truncation to the filesystem); TestPermissionsOtherUser covers
// each case.
//
// Two things only the adapter can know: with the kernel writeback cache
// (MountOptions.WritebackCache, off by default) the kernel places
// O_APPEND writes itself, so the flag is stripped before the core sees
// it; and the kernel read-ahead window, which the FUSE handshake caps at
// 128 KiB, is raised to MaxReadAhead through the mount's read_ahead_kb
// when the process may (root). Files are opened without FOPEN_DIRECT_IO,
// on purpose: measured on versitygw (2 cores, cold 1 GiB read, alternating
// pairs), direct I/O read 20-38% faster with 1 MiB reads but 3x slower
// with tar's 10 KiB ones (196-203 against 556-654 MB/s), since without
// the page cache every read(2) is a FUSE round trip; raising read_ahead_kb
// from 1 to 8 MiB changed nothing measurable.
//
// And three of the protocol's: O_TRUNC is negotiated to arrive with the
// OPEN (ATOMIC_O_TRUNC), so a SETATTR of the size without a handle is
// truncate(2) alone, which keeps the times when the size stays; the
// kernel leaves the times of ftruncate (a SETATTR with a handle) to the
// filesystem, so the adapter asks for mtime now, as Linux filesystems
// do; and go-fuse's NullPermissions is on, since otherwise it reports
// mode 0000 as 0644.
//
// It must never cache plaintext on disk or decide anything the core
// should: it asks the core and maps errors with fs.Errno.
package fusefs
