package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// mountState is what a running mount records beside its pid file in the
// run dir, for the commands that need to find it: coffer stats (its
// metrics address) and coffer fsck --repair (whether a live mount uses a
// cache dir). It holds no key and no plaintext name: the mountpoint and
// the store URL are the user's own arguments.
type mountState struct {
	PID         int    `json:"pid"`
	Mountpoint  string `json:"mountpoint"`
	Store       string `json:"store"`
	CacheDir    string `json:"cache_dir"`
	MetricsAddr string `json:"metrics_addr,omitempty"`
}

const mountStateSuffix = ".state"

func (e *env) mountStateFile(mountpoint string) string {
	return strings.TrimSuffix(e.pidFile(mountpoint), ".pid") + mountStateSuffix
}

// writeMountState records s (after writePidFile made the run dir).
func (e *env) writeMountState(s mountState) (remove func(), err error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	path := e.mountStateFile(s.Mountpoint)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("writing mount state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing mount state: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// readMountState returns the state of the live mount at mountpoint.
func (e *env) readMountState(mountpoint string) (mountState, bool) {
	var s mountState
	data, err := os.ReadFile(e.mountStateFile(mountpoint))
	if err != nil || json.Unmarshal(data, &s) != nil || s.Mountpoint != mountpoint || !processAlive(s.PID) {
		return mountState{}, false
	}
	return s, true
}

// liveMountUses reports whether a live mount of this user records
// cacheDir as its cache dir.
func (e *env) liveMountUses(cacheDir string) bool {
	want, err := filepath.Abs(cacheDir)
	if err != nil {
		return false
	}
	files, _ := filepath.Glob(filepath.Join(e.runDir(), "*"+mountStateSuffix))
	for _, f := range files {
		var s mountState
		data, err := os.ReadFile(f)
		if err != nil || json.Unmarshal(data, &s) != nil || !processAlive(s.PID) {
			continue
		}
		if sameDir(s.CacheDir, want) {
			return true
		}
	}
	return false
}

func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
