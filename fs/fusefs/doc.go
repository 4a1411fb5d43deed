// Package fusefs mounts a coffer volume with go-fuse's node API. It only
// translates: one node type per kind of inode (dir, file, symlink), one
// method per FUSE operation, syscall.Errno at the boundary. Every
// decision lives in the FUSE-free core (package fs).
//
// It must never cache plaintext on disk or decide anything the core
// should: it asks the core and maps errors with fs.Errno.
package fusefs
