package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func newUnmountCommand(e *env) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "unmount MOUNTPOINT",
		Short: "Unmount a coffer mount and wait for its pending uploads",
		Long: `Unmount MOUNTPOINT (fusermount3 -u, or umount(2) as root), then wait until the
coffer process serving it has uploaded every pending file and exited.`,
		Args: oneArg("MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnmount(e, args[0], !noWait)
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once unmounted, without waiting for pending uploads")
	return cmd
}

func runUnmount(e *env, mountpoint string, wait bool) error {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	mounted, err := isMounted(mp)
	if err != nil {
		return err
	}
	if !mounted {
		return fmt.Errorf("%s is not mounted", mp)
	}
	pid := e.mountPid(mp)
	if err := unmount(mp); err != nil {
		return err
	}
	if wait && pid != 0 {
		waitProcess(pid, func() {
			fmt.Fprintf(e.stderr, "coffer: waiting for the mount process (pid %d) to upload pending files\n", pid)
		})
	}
	return nil
}

// unmount detaches the FUSE mount at mp: umount(2) as root, else
// fusermount3 -u.
func unmount(mp string) error {
	var err error
	if os.Geteuid() == 0 {
		err = syscall.Unmount(mp, 0)
	} else {
		var out bytes.Buffer
		cmd := exec.Command("fusermount3", "-u", mp)
		cmd.Stderr = &out
		if err = cmd.Run(); err != nil {
			if strings.Contains(out.String(), "busy") {
				err = syscall.EBUSY
			} else if msg := strings.TrimSpace(out.String()); msg != "" {
				err = errors.New(msg)
			}
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("%s is busy: close the files and shells using it (see fuser -vm %s), then retry", mp, mp)
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("fusermount3 not found: install the fuse3 package")
	}
	return fmt.Errorf("unmounting %s: %w", mp, err)
}
