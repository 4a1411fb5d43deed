package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// The daemon protocol: `coffer mount --daemon` re-executes itself with the
// same arguments, the pipe's write end as file descriptor 3 and
// envDaemonChild naming it. The child mounts and writes lines to the
// pipe: any number of "note: " lines the parent shows on its stderr (what
// recovery did), then "ready", or "error: " and its one-line error. Keys
// stay files: nothing secret is in the child's argv or environment.

const childReadyFD = 3

// daemonChildFD reports whether this process is a daemon child, and the
// descriptor it reports on.
func daemonChildFD(e *env) (int, bool) {
	v := e.getenv(envDaemonChild)
	if v == "" {
		return 0, false
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return 0, false
	}
	// Processes the mount starts (fusermount3) must not inherit these.
	os.Unsetenv(envDaemonChild)
	syscall.CloseOnExec(fd)
	return fd, true
}

// startDaemon starts the background child and waits until it reports the
// mount ready, or its error.
func startDaemon(ctx context.Context, mountpoint string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find coffer's own executable to start the daemon: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envDaemonChild+"="+strconv.Itoa(childReadyFD))
	cmd.ExtraFiles = []*os.File{w} // becomes fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Stdin, stdout and stderr stay nil: /dev/null. The child logs to a
	// file; a pipe here would keep the caller waiting for its EOF.
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the daemon: %w", err)
	}
	w.Close()

	br := bufio.NewReader(io.LimitReader(r, 64<<10))
	line, readErr := br.ReadString('\n')
	line = strings.TrimSpace(line)
	for readErr == nil && strings.HasPrefix(line, "note: ") {
		fmt.Fprintln(stderr, "coffer: "+strings.TrimPrefix(line, "note: "))
		line, readErr = br.ReadString('\n')
		line = strings.TrimSpace(line)
	}
	if line == "ready" {
		cmd.Process.Release()
		return nil
	}
	waitErr := cmd.Wait()
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return errors.New(msg)
	}
	if readErr != nil && waitErr != nil {
		return fmt.Errorf("the mount process exited before %s was ready (%v): run without --daemon to see why", mountpoint, waitErr)
	}
	return fmt.Errorf("the mount process ended before %s was ready: run without --daemon to see why", mountpoint)
}

// readyReporter is the daemon child's end of the pipe.
type readyReporter struct {
	f *os.File
}

func newReadyReporter(fd int) *readyReporter {
	return &readyReporter{f: os.NewFile(uintptr(fd), "coffer-ready")}
}

func (r *readyReporter) ready() { r.send("ready") }

// note passes a line for the parent's stderr (before ready).
func (r *readyReporter) note(line string) {
	if r.f != nil {
		fmt.Fprintln(r.f, "note: "+oneLine(line))
	}
}

// failed reports err if the mount never became ready; it is a no-op after
// ready or with a nil error.
func (r *readyReporter) failed(err error) {
	if err != nil {
		r.send("error: " + oneLine(err.Error()))
	}
}

func (r *readyReporter) send(line string) {
	if r.f == nil {
		return
	}
	fmt.Fprintln(r.f, line)
	r.f.Close()
	r.f = nil
}
