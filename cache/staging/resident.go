package staging

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ResidentPages reports how many of the whole pages in [from, to) of the
// file at path are in the page cache (mincore(2) on a mapping that
// touches nothing). The tests of Evict and of its callers use it to see
// pages go.
func ResidentPages(path string, from, to int64) (resident, pages int, err error) {
	osf, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer osf.Close()
	st, err := osf.Stat()
	if err != nil {
		return 0, 0, err
	}
	if st.Size() == 0 {
		return 0, 0, nil
	}
	m, err := unix.Mmap(int(osf.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (int64(len(m))+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0, 0, fmt.Errorf("mincore: %w", errno)
	}
	for p := (from + page - 1) / page; p < min(to, st.Size())/page; p++ {
		pages++
		resident += int(vec[p] & 1)
	}
	return resident, pages, nil
}

// Path is the file's path, for ResidentPages.
func (f *File) Path() string { return f.path }
