package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// env is what a command takes from its process: environment variables and
// standard streams. Tests replace it to run commands in-process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func newEnv() *env {
	return &env{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr}
}

// Environment variables coffer reads (besides the AWS SDK's own).
const (
	envStore          = "COFFER_STORE"
	envKeyFile        = "COFFER_KEY_FILE"
	envPassphraseFile = "COFFER_PASSPHRASE_FILE"
	envSSECKeyFile    = "COFFER_SSE_C_KEY_FILE"
	// envDaemonChild marks the background child of `mount --daemon`; its
	// value is the file descriptor of the pipe the child reports on.
	envDaemonChild = "COFFER_DAEMON_CHILD_FD"
)

// xdgDir returns $VAR, or $HOME/fallback when VAR is unset or relative
// (the XDG base directory rule).
func (e *env) xdgDir(variable, fallback string) (string, error) {
	if d := e.getenv(variable); filepath.IsAbs(d) {
		return d, nil
	}
	home := e.getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("neither $%s nor $HOME is set: set one of them, or give the path explicitly", variable)
	}
	return filepath.Join(home, fallback), nil
}

// defaultKeyFile is $XDG_CONFIG_HOME/coffer/key.
func (e *env) defaultKeyFile() (string, error) {
	d, err := e.xdgDir("XDG_CONFIG_HOME", ".config")
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "coffer", "key"), nil
}

// defaultStore is $XDG_DATA_HOME/coffer/store.
func (e *env) defaultStore() (string, error) {
	d, err := e.xdgDir("XDG_DATA_HOME", filepath.Join(".local", "share"))
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "coffer", "store"), nil
}

// defaultCacheRoot is $XDG_CACHE_HOME/coffer; a mount's cache lives in a
// subdirectory named after its volume ID.
func (e *env) defaultCacheRoot() (string, error) {
	d, err := e.xdgDir("XDG_CACHE_HOME", ".cache")
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "coffer"), nil
}

// newLogger logs text lines to stderr at the given level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "info", "":
		l = slog.LevelInfo
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, usagef("unknown --log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
