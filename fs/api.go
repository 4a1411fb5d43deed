package fs

import (
	"context"
	"syscall"
	"time"
)

// Attr is what a stat of a path reports.
type Attr struct {
	Mode  uint32 // st_mode: type bits (S_IFREG, S_IFDIR, S_IFLNK) | permissions
	UID   uint32
	GID   uint32
	Size  int64 // plaintext size (symlinks: length of the target)
	Mtime time.Time
	// Atime and Ctime as sealed; zero on a file created here and not yet
	// stored (StatTimes fills them in).
	Atime, Ctime time.Time
	Rdev         uint32 // device number of a character or block device
}

// StatTimes are the atime, mtime and ctime stat reports: an unset atime
// is mtime, and ctime is never before mtime (a write moves mtime, and
// every change moves ctime).
func (a Attr) StatTimes() (atime, mtime, ctime time.Time) {
	atime, ctime = a.Atime, a.Ctime
	if atime.IsZero() {
		atime = a.Mtime
	}
	if ctime.Before(a.Mtime) {
		ctime = a.Mtime
	}
	return atime, a.Mtime, ctime
}

// Blocks is st_blocks: 512-byte blocks, rounded up.
func (a Attr) Blocks() int64 { return (a.Size + 511) / 512 }

func (a Attr) IsDir() bool     { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (a Attr) IsRegular() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFREG }
func (a Attr) IsSymlink() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFLNK }

// DirEntry is one child of a directory with its attributes (for
// READDIRPLUS and `ls -l`).
type DirEntry struct {
	Name string
	Attr Attr
}

// SetAttr selects the attributes SetAttr changes; nil fields stay.
type SetAttr struct {
	Mode  *uint32 // permission bits (07777); the type never changes
	UID   *uint32
	GID   *uint32
	Mtime *time.Time
	Size  *int64 // truncate or extend (regular files)
}

// StatfsInfo is what statfs reports. coffer has no real capacity, so the
// block counts are large constants.
type StatfsInfo struct {
	Bsize   uint32
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	NameLen uint32
}

// RenameFlags follow renameat2(2).
type RenameFlags uint32

const (
	RenameNoReplace RenameFlags = 1 << 0 // RENAME_NOREPLACE
	RenameExchange  RenameFlags = 1 << 1 // RENAME_EXCHANGE: not supported
)

type callerKey struct{}

type caller struct{ uid, gid uint32 }

// WithCaller returns a context that makes uid and gid the owner of files
// and directories created with it (the FUSE caller).
func WithCaller(ctx context.Context, uid, gid uint32) context.Context {
	return context.WithValue(ctx, callerKey{}, caller{uid, gid})
}

func (v *Volume) owner(ctx context.Context) (uid, gid uint32) {
	if c, ok := ctx.Value(callerKey{}).(caller); ok {
		return c.uid, c.gid
	}
	return v.opts.UID, v.opts.GID
}
