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
	"time"

	"github.com/spf13/cobra"
)

func newUnmountCommand(e *env) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "unmount MOUNTPOINT",
		Short: "Unmount a coffer mount and wait for its pending uploads",
		Long: `Unmount MOUNTPOINT (fusermount3 -u, or umount(2) as root), then wait until the
coffer process serving it has uploaded every pending file and exited.

It exits 1, naming the files, when a final upload failed: those files stay
in the upload journal of the mount's cache dir, and the next mount with
that cache dir uploads them first. Conflict copies stored during the mount
are listed.`,
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
	var ctl *controlClient
	if wait {
		// Connected before the unmount: the mount answers once its last
		// uploads are done.
		ctl = dialControl(e.controlSocket(mp))
	}
	if err := unmount(mp); err != nil {
		if ctl != nil {
			ctl.c.Close()
		}
		return err
	}
	if !wait || pid == 0 && ctl == nil {
		return nil
	}
	slow := func() {
		fmt.Fprintf(e.stderr, "coffer: waiting for the mount process (pid %d) to upload pending files\n", pid)
	}
	var rep *finalReport
	var rerr error
	if ctl != nil {
		timer := time.AfterFunc(2*time.Second, slow)
		rep, rerr = ctl.wait()
		if !timer.Stop() {
			slow = func() {} // said already
		}
	}
	if pid != 0 {
		waitProcess(pid, slow)
	}
	switch {
	case errors.Is(rerr, errNoReport):
		return fmt.Errorf("%w (killed?): files it had not uploaded stay in the upload journal of its cache dir, and the next mount with that cache dir uploads them first", rerr)
	case rerr != nil:
		return rerr
	case rep == nil:
		return nil
	}
	for _, l := range rep.conflictLines() {
		fmt.Fprintln(e.stderr, l)
	}
	if err := rep.failedError(true); err != nil {
		return err
	}
	if rep.Err != "" {
		return fmt.Errorf("the mount process failed while unmounting: %s", rep.Err)
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
