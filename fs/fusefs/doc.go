// Package fusefs mounts a coffer volume with go-fuse's node API. It only
// translates: one node type per kind of inode (dir, file, symlink), one
// method per FUSE operation, syscall.Errno at the boundary. Every
// decision lives in the FUSE-free core (package fs).
//
// Two things only the adapter can know: with the kernel writeback cache
// (MountOptions.WritebackCache, off by default) the kernel places
// O_APPEND writes itself, so the flag is stripped before the core sees
// it; and the kernel read-ahead window, which the FUSE handshake caps at
// 128 KiB, is raised to MaxReadAhead through the mount's read_ahead_kb
// when the process may (root).
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
