package fs

import (
	"context"
	"syscall"
)

// This file lists the path operations of a Volume. Paths are canonical:
// "/" or "/a/b" (no trailing slash, no "." or ".." segments).

var errTODO = syscall.ENOSYS

// Stat returns the attributes of path (a lookup).
func (v *Volume) Stat(ctx context.Context, path string) (Attr, error) {
	return Attr{}, pathErr("stat", path, errTODO)
}

// ReadDir lists a directory with every child's attributes.
func (v *Volume) ReadDir(ctx context.Context, path string) ([]DirEntry, error) {
	return nil, pathErr("readdir", path, errTODO)
}

// Create creates (or with O_TRUNC truncates) a regular file and opens it
// for writing. With O_EXCL an existing path is EEXIST, and the upload is
// a conditional create. mode holds permission bits.
func (v *Volume) Create(ctx context.Context, path string, mode uint32, flags int) (*Handle, Attr, error) {
	return nil, Attr{}, pathErr("create", path, errTODO)
}

// Open opens an existing file; flags are open(2) flags (O_RDONLY,
// O_WRONLY, O_RDWR, O_TRUNC, O_APPEND).
func (v *Volume) Open(ctx context.Context, path string, flags int) (*Handle, error) {
	return nil, pathErr("open", path, errTODO)
}

// SetAttr changes mode, owner, mtime or size of path.
func (v *Volume) SetAttr(ctx context.Context, path string, s SetAttr) (Attr, error) {
	return Attr{}, pathErr("setattr", path, errTODO)
}

// Truncate sets the size of a regular file.
func (v *Volume) Truncate(ctx context.Context, path string, size int64) error {
	_, err := v.SetAttr(ctx, path, SetAttr{Size: &size})
	return err
}

// Unlink removes a file or symlink.
func (v *Volume) Unlink(ctx context.Context, path string) error {
	return pathErr("unlink", path, errTODO)
}

// Mkdir creates a directory (a marker object).
func (v *Volume) Mkdir(ctx context.Context, path string, mode uint32) (Attr, error) {
	return Attr{}, pathErr("mkdir", path, errTODO)
}

// Rmdir removes an empty directory (ENOTEMPTY otherwise).
func (v *Volume) Rmdir(ctx context.Context, path string) error {
	return pathErr("rmdir", path, errTODO)
}

// Rename moves oldPath to newPath, replacing a file at newPath (or an
// empty directory when oldPath is a directory).
func (v *Volume) Rename(ctx context.Context, oldPath, newPath string, flags RenameFlags) error {
	return pathErr("rename", oldPath, errTODO)
}

// Symlink creates path as a symbolic link to target.
func (v *Volume) Symlink(ctx context.Context, target, path string) (Attr, error) {
	return Attr{}, pathErr("symlink", path, errTODO)
}

// Readlink returns the target of a symbolic link.
func (v *Volume) Readlink(ctx context.Context, path string) (string, error) {
	return "", pathErr("readlink", path, errTODO)
}

// Statfs reports filesystem statistics.
func (v *Volume) Statfs(ctx context.Context) (StatfsInfo, error) {
	const big = 1 << 40
	return StatfsInfo{Bsize: 4096, Blocks: big, Bfree: big, Bavail: big, Files: big, Ffree: big, NameLen: 255}, nil
}

// Handle is an open file. Handles of one path share its state.
type Handle struct {
	v *Volume
}

// ReadAt reads plaintext at off.
func (h *Handle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, errTODO
}

// WriteAt writes p at off (the handle must be writable).
func (h *Handle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, errTODO
}

// Fsync uploads the file now if it has changes and returns the upload's
// error, or the error of a failed upload since the last fsync.
func (h *Handle) Fsync(ctx context.Context) error { return errTODO }

// Close releases the handle; the last close of a changed file schedules
// its upload after the writeback delay.
func (h *Handle) Close(ctx context.Context) error { return nil }

// Volume is a mounted (or offline-opened) coffer volume.
type Volume struct {
	opts Options
}

// OpenVolume authenticates the volume's config with opts.Roots, checks
// the modes against opts, and prepares caches and staging.
func OpenVolume(ctx context.Context, opts Options) (*Volume, error) {
	return nil, errTODO
}

// Flush waits until every pending upload finished, calling progress with
// the number still pending; it returns the first upload error.
func (v *Volume) Flush(ctx context.Context, progress func(pending int)) error {
	return nil
}

// Close flushes, then releases caches and staging.
func (v *Volume) Close(ctx context.Context) error { return nil }
