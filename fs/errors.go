package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// PathError records a failed operation on a canonical path. Err is a
// syscall.Errno, or an error that wraps one.
type PathError struct {
	Op   string
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PathError
	if errors.As(err, &pe) {
		return err
	}
	return &PathError{Op: op, Path: path, Err: err}
}

// errnoError wraps cause with an errno so both errors.Is(err, errno) and
// errors.Is(err, cause) hold.
type errnoError struct {
	errno syscall.Errno
	cause error
}

func (e *errnoError) Error() string   { return e.cause.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.errno, e.cause} }

func withErrno(errno syscall.Errno, cause error) error {
	return &errnoError{errno: errno, cause: cause}
}

// Errno maps an error returned by this package to the errno a
// filesystem call reports: the errno it carries, else one chosen by the
// kind of failure (authentication failures and unknown errors are EIO).
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) && !isNetErrno(en) {
		return en
	}
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, cipher.ErrNameTooLong), errors.Is(err, blobstore.ErrInvalidKey):
		return syscall.ENAMETOOLONG
	case errors.Is(err, blobstore.ErrAccessDenied):
		return syscall.EACCES
	case errors.Is(err, cipher.ErrMetadataTooBig):
		return syscall.E2BIG // a link wraps EMLINK itself
	case errors.Is(err, cipher.ErrXattrNamespace):
		return syscall.ENOTSUP
	case errors.Is(err, cipher.ErrXattrName):
		return syscall.EINVAL
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	}
	return syscall.EIO
}

// isNetErrno reports an errno of a failed connection to the store, which
// a store failure carries deep in its chain: the filesystem reports EIO
// for it (rename(2) has no ECONNRESET).
func isNetErrno(en syscall.Errno) bool {
	switch en {
	case syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EHOSTDOWN:
		return true
	}
	return false
}
