package main

import (
	"errors"
	"log/slog"

	cofferfs "github.com/cofferfs/coffer/fs"
)

// fuseOptions are the mount options coffer passes to the FUSE adapter.
type fuseOptions struct {
	allowOther bool
	readOnly   bool
	fsName     string
	debug      bool
	logger     *slog.Logger
}

// fuseMount is a live FUSE mount.
type fuseMount interface {
	// Wait blocks until the mount is gone (unmounted by anyone).
	Wait()
	// Unmount asks the kernel to unmount; it fails when the mount is busy.
	Unmount() error
}

// mountFUSE mounts vol at mountpoint. Placeholder until fs/fusefs lands.
func mountFUSE(vol *cofferfs.Volume, mountpoint string, o fuseOptions) (fuseMount, error) {
	return nil, errors.New("the FUSE adapter is not built yet")
}
