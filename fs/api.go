package fs

import (
	"context"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/cipher"
)

// Attr is what a stat of a path reports.
type Attr struct {
	Mode  uint32 // st_mode: type bits (S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK) | permissions
	UID   uint32
	GID   uint32
	Size  int64 // plaintext size (symlinks: length of the target; special files 0)
	Mtime time.Time
	// Atime and Ctime as kept: atime moves only when set (utimensat),
	// ctime with every change (touch). Zero only on attributes from
	// outside coffer (StatTimes fills them in).
	Atime, Ctime time.Time
	Rdev         uint32 // device number of a character or block device
	// Changes is the change counter (DESIGN.md §3, §5): it moves with
	// ctime, and every reseal carries it.
	Changes uint64
	Xattrs  cipher.Xattrs // user.* extended attributes
	// Unlinked: an open file whose name is gone (st_nlink 0).
	Unlinked bool
	// Origin is who stored the version read: a writer key's session, or
	// the zero Origin for the full key (DESIGN.md §2 "Writer keys").
	Origin cipher.Origin
	// Links is the size of a hard-linked file's live link set (0: not
	// linked, one name); Ino its inode number, the same through every
	// name (0: not linked, the FUSE layer numbers it).
	Links uint32
	Ino   uint64
}

// touch records a change at now: ctime moves and the change counter
// with it (every change of content, attributes, name or link count).
func (a *Attr) touch(now time.Time) {
	a.Ctime = now
	a.Changes++
}

// Nlink is st_nlink. A directory reports 1, which find(1) and fts read
// as "subdirectories not counted": the POSIX count (2 + subdirectories)
// would cost a LIST of every directory stat'ed.
func (a Attr) Nlink() uint32 {
	if a.Unlinked {
		return 0
	}
	if a.Links > 0 {
		return a.Links
	}
	return 1
}

// StatTimes are the atime, mtime and ctime stat reports: an unset atime
// or ctime is mtime.
func (a Attr) StatTimes() (atime, mtime, ctime time.Time) {
	atime, ctime = a.Atime, a.Ctime
	if atime.IsZero() {
		atime = a.Mtime
	}
	if ctime.IsZero() {
		ctime = a.Mtime
	}
	return atime, a.Mtime, ctime
}

// Blocks is st_blocks: 512-byte blocks, rounded up, of what the file
// holds (a directory or special file holds nothing), so du counts the
// bytes a copy would need.
func (a Attr) Blocks() int64 { return (a.Size + 511) / 512 }

func (a Attr) IsDir() bool     { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (a Attr) IsRegular() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFREG }
func (a Attr) IsSymlink() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFLNK }

// IsSpecial reports a fifo, socket or device: metadata only.
func (a Attr) IsSpecial() bool { return isSpecialType(a.Mode) }

func isSpecialType(mode uint32) bool {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		return true
	}
	return false
}

// DirEntry is one child of a directory with its attributes (for
// READDIRPLUS and `ls -l`).
type DirEntry struct {
	Name string
	Attr Attr
}

// SetAttr selects the attributes SetAttr changes; nil fields stay.
// Every SetAttr moves ctime (an empty one is chown(-1, -1)); ctime is
// never set.
type SetAttr struct {
	Mode  *uint32 // permission bits (07777); the type never changes
	UID   *uint32
	GID   *uint32
	Atime *time.Time
	Mtime *time.Time
	Size  *int64 // truncate or extend (regular files)
}

// Xattr flags follow setxattr(2).
const (
	XattrCreate  = 1 // XATTR_CREATE: EEXIST when the name is set
	XattrReplace = 2 // XATTR_REPLACE: ENODATA when it is not
)

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
