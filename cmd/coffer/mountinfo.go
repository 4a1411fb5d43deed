package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// isMounted reports whether dir is a mount point, from /proc/self/mountinfo.
func isMounted(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountPath undoes the octal escapes (\040 for space, ...) of
// /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// runDir holds one pid file per running mount, so `coffer unmount` can
// wait for the mount process to finish its uploads.
func (e *env) runDir() string {
	if d := e.getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "coffer")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("coffer-%d", os.Getuid()))
}

func (e *env) pidFile(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(e.runDir(), hex.EncodeToString(sum[:16])+".pid")
}

// writePidFile records this process as the one serving mountpoint.
func (e *env) writePidFile(mountpoint string) (remove func(), err error) {
	if err := ensureDir(e.runDir(), 0o700); err != nil {
		return nil, err
	}
	// In a shared /tmp, someone else could have made the directory first.
	fi, err := os.Lstat(e.runDir())
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is not a private directory of this user: remove it, or set XDG_RUNTIME_DIR", e.runDir())
	}
	path := e.pidFile(mountpoint)
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing pid file: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// mountPid returns the pid of the live process serving mountpoint, or 0.
func (e *env) mountPid(mountpoint string) int {
	data, err := os.ReadFile(e.pidFile(mountpoint))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0
	}
	return pid
}

// processAlive reports whether pid runs (a zombie has finished).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// waitProcess polls until pid has exited, calling slow once if that takes
// longer than a moment.
func waitProcess(pid int, slow func()) {
	start := time.Now()
	warned := false
	for processAlive(pid) {
		if !warned && time.Since(start) > 2*time.Second {
			slow()
			warned = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}
