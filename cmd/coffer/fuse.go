package main

import (
	"log/slog"
	"os"

	cofferfs "github.com/cofferfs/coffer/fs"
	"github.com/cofferfs/coffer/fs/fusefs"
)

// fuseOptions are the mount options coffer passes to the FUSE adapter.
type fuseOptions struct {
	allowOther bool
	readOnly   bool
	writeback  bool
	fsName     string
	debug      bool
	logger     *slog.Logger
}

// fuseTraceEnv turns on go-fuse's request trace. The trace prints every
// request as the kernel sends it: plaintext file names and the first bytes
// of every write. So it needs this variable set on purpose as well as a
// foreground mount logging to the terminal at --log-level debug; it never
// reaches a log file coffer writes (DESIGN.md §5).
const fuseTraceEnv = "COFFER_FUSE_TRACE"

// fuseMount is a live FUSE mount (a *fuse.Server).
type fuseMount interface {
	// Wait blocks until the mount is gone (unmounted by anyone).
	Wait()
	// Unmount asks the kernel to unmount; it fails when the mount is busy.
	Unmount() error
}

// mountFUSE mounts vol at mountpoint and returns once the mount is ready.
func mountFUSE(vol *cofferfs.Volume, mountpoint string, o fuseOptions) (fuseMount, error) {
	srv, err := fusefs.Mount(vol, mountpoint, fusefs.MountOptions{
		AllowOther:     o.allowOther,
		ReadOnly:       o.readOnly,
		WritebackCache: o.writeback,
		Debug:          o.debug && os.Getenv(fuseTraceEnv) == "1",
		FsName:         o.fsName,
		Logger:         o.logger,
	})
	if err != nil {
		return nil, err
	}
	return srv, nil
}
