package fs

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/cipher"
)

// TestErrnoOfCipherErrors: the cipher errors a filesystem call answers
// map to their errnos, wrapped or not.
func TestErrnoOfCipherErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{cipher.ErrMetadataTooBig, syscall.E2BIG},
		{cipher.ErrXattrNamespace, syscall.ENOTSUP},
		{cipher.ErrXattrName, syscall.EINVAL},
		{cipher.ErrNameTooLong, syscall.ENAMETOOLONG},
		{cipher.ErrAuth, syscall.EIO},
		{withErrno(syscall.EMLINK, cipher.ErrMetadataTooBig), syscall.EMLINK},
	} {
		for _, err := range []error{tc.err, fmt.Errorf("setxattr: %w", tc.err)} {
			if got := Errno(err); got != tc.want {
				t.Errorf("Errno(%v) = %v, want %v", err, got, tc.want)
			}
		}
	}
}
