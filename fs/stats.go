package fs

import (
	"strconv"
	"sync"
	"syscall"

	"github.com/cofferfs/coffer/cache"
)

// VolumeStats are a volume's figures for the metrics layer (coffer mount
// --metrics-addr, coffer stats): what waits for upload, the block cache's
// traffic, the failures of its operations by errno. They carry no name
// and no key.
type VolumeStats struct {
	// PendingFiles are the files with changes not yet stored (open or
	// waiting for their writeback delay or upload); PendingBytes their
	// staged size.
	PendingFiles int
	PendingBytes int64
	// Uploading is how many uploads hold an upload slot now.
	Uploading int
	// Cache is the block cache's traffic and size.
	Cache cache.Stats
	// Errors counts failed operations by errno name (ENOENT, EIO, ...).
	Errors map[string]uint64
	// JournalBytes is the upload journal's size on disk, or -1 while the
	// volume has no journal. The journal fills it in (journalSize).
	JournalBytes int64
}

// Stats returns the volume's current figures.
func (v *Volume) Stats() VolumeStats {
	s := VolumeStats{Uploading: len(v.upSem), JournalBytes: -1}
	v.mu.Lock()
	files := make([]*file, 0, len(v.files))
	for _, f := range v.files {
		files = append(files, f)
	}
	v.mu.Unlock()
	for _, f := range files {
		f.mu.Lock()
		if f.dirty && !f.removed {
			s.PendingFiles++
			if f.st != nil {
				s.PendingBytes += f.st.Size()
			}
		}
		f.mu.Unlock()
	}
	if cs, ok := v.local.blocks.(interface{ Stats() cache.Stats }); ok {
		s.Cache = cs.Stats()
	}
	if v.journalSize != nil {
		s.JournalBytes = v.journalSize()
	}
	s.Errors = v.errnos.snapshot()
	return s
}

// errnoCounts counts failed operations by errno.
type errnoCounts struct {
	mu sync.Mutex
	n  map[syscall.Errno]uint64
}

func (c *errnoCounts) add(err error) {
	if err == nil {
		return
	}
	en := Errno(err)
	c.mu.Lock()
	if c.n == nil {
		c.n = map[syscall.Errno]uint64{}
	}
	c.n[en]++
	c.mu.Unlock()
}

func (c *errnoCounts) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.n))
	for en, n := range c.n {
		out[errnoName(en)] = n
	}
	return out
}

// errnoName is the symbolic name of en (EIO), or its number.
func errnoName(en syscall.Errno) string {
	if name := errnoNames[en]; name != "" {
		return name
	}
	return "errno" + strconv.Itoa(int(en))
}

var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT", syscall.EIO: "EIO", syscall.EBADF: "EBADF",
	syscall.EACCES: "EACCES", syscall.EBUSY: "EBUSY", syscall.EEXIST: "EEXIST", syscall.EXDEV: "EXDEV",
	syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.EINVAL: "EINVAL", syscall.EFBIG: "EFBIG",
	syscall.ENOSPC: "ENOSPC", syscall.EROFS: "EROFS", syscall.EMLINK: "EMLINK", syscall.ERANGE: "ERANGE",
	syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.ENOTEMPTY: "ENOTEMPTY", syscall.ENOTSUP: "ENOTSUP",
	syscall.EINTR: "EINTR", syscall.ESTALE: "ESTALE", syscall.E2BIG: "E2BIG", syscall.ENODATA: "ENODATA",
	syscall.EAGAIN: "EAGAIN", syscall.ENOSYS: "ENOSYS",
}
