package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// How long a mount may take to appear, and an unmount to finish its
// uploads.
const (
	mountTimeout   = 60 * time.Second
	unmountTimeout = 15 * time.Minute
)

// cofferMount is coffer in client mode with default settings, mounted
// with `coffer mount --daemon` and unmounted with `coffer unmount`.
type cofferMount struct {
	bin       string
	dir       string   // home, key, run dir, caches, mountpoint
	env       []string // coffer's environment: private HOME and XDG dirs, credentials
	storeArgs []string // --store, --endpoint, ... --key-file
	cache     string   // the current mount's cache dir
}

func (c *cofferMount) system() system { return sysCoffer }

func (c *cofferMount) missing() string {
	if _, err := os.Stat(c.bin); err != nil {
		return "not built (make build)"
	}
	return ""
}

func (c *cofferMount) setup(ctx context.Context, srv server, bucket, dir string) error {
	c.dir = dir
	for _, d := range []string{"home", "run", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	home := filepath.Join(dir, "home")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") && k != "AWS_CA_BUNDLE" || strings.HasPrefix(k, "COFFER_") || strings.HasPrefix(k, "XDG_") || k == "HOME" || k == "GOMEMLIMIT" {
			continue
		}
		c.env = append(c.env, kv)
	}
	c.env = append(c.env, "HOME="+home, "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"AWS_ACCESS_KEY_ID="+srv.accessKey, "AWS_SECRET_ACCESS_KEY="+srv.secretKey, "AWS_EC2_METADATA_DISABLED=true")
	key := filepath.Join(dir, "key")
	c.storeArgs = []string{"--store", "s3://" + bucket, "--endpoint", srv.endpoint, "--path-style", "--region", region, "--key-file", key}
	if err := c.run(ctx, "keygen", "--out", key); err != nil {
		return err
	}
	return c.run(ctx, append([]string{"init"}, c.storeArgs...)...)
}

func (c *cofferMount) mount(ctx context.Context) (string, int, error) {
	mnt := filepath.Join(c.dir, "mnt")
	var err error
	if c.cache, err = os.MkdirTemp(c.dir, "cache-"); err != nil {
		return "", 0, err
	}
	args := append(append([]string{"mount"}, c.storeArgs...), "--cache-dir", c.cache, "--daemon", mnt)
	if err := c.run(ctx, args...); err != nil {
		return "", 0, err
	}
	// The daemon's pid file is the only one in this private run dir.
	pids, _ := filepath.Glob(filepath.Join(c.dir, "run", "coffer", "*.pid"))
	if len(pids) != 1 {
		return mnt, 0, fmt.Errorf("want one pid file in %s, found %d", filepath.Join(c.dir, "run", "coffer"), len(pids))
	}
	b, err := os.ReadFile(pids[0])
	if err != nil {
		return mnt, 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return mnt, pid, err
}

func (c *cofferMount) unmount(ctx context.Context) error {
	err := c.run(ctx, "unmount", filepath.Join(c.dir, "mnt"))
	if err == nil {
		os.RemoveAll(c.cache) // later mounts start empty; this frees the disk
	}
	return err
}

func (c *cofferMount) run(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, unmountTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("coffer %s: %w: %s", args[0], err, lastLines(string(out), 3))
	}
	return nil
}

// peer is a FUSE filesystem run in the foreground as a child process:
// rclone mount over a crypt remote, or s3fs. Both use their defaults,
// except that rclone is told its (default) cache mode explicitly.
type peer struct {
	sys  system
	kind string // the command: rclone or s3fs
	dir  string
	// command returns the argv of a foreground mount of mnt whose local
	// files (caches, temp files) live in cache.
	command func(mnt, cache string) []string
	cmd     *exec.Cmd
	exited  chan struct{}
}

func newPeer(sys system) *peer { return &peer{sys: sys, kind: sys.key()} }

func (p *peer) system() system { return p.sys }

func (p *peer) missing() string {
	if _, err := exec.LookPath(p.kind); err != nil {
		return "not installed"
	}
	return ""
}

func (p *peer) setup(ctx context.Context, srv server, bucket, dir string) error {
	p.dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "mnt"), 0o700); err != nil {
		return err
	}
	switch p.kind {
	case "rclone":
		password := make([]byte, 16)
		rand.Read(password)
		obscured, err := exec.CommandContext(ctx, "rclone", "obscure", hex.EncodeToString(password)).Output()
		if err != nil {
			return fmt.Errorf("rclone obscure: %w", err)
		}
		conf := filepath.Join(dir, "rclone.conf")
		text := fmt.Sprintf("[store]\ntype = s3\nprovider = Other\naccess_key_id = %s\nsecret_access_key = %s\nendpoint = %s\nregion = %s\nforce_path_style = true\n\n"+
			"[crypt]\ntype = crypt\nremote = store:%s\npassword = %s\n",
			srv.accessKey, srv.secretKey, srv.endpoint, region, bucket, strings.TrimSpace(string(obscured)))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return err
		}
		p.command = func(mnt, cache string) []string {
			return []string{"rclone", "mount", "--config", conf, "--cache-dir", cache, "--vfs-cache-mode", "off", "crypt:", mnt}
		}
	case "s3fs":
		passwd := filepath.Join(dir, "passwd")
		if err := os.WriteFile(passwd, []byte(srv.accessKey+":"+srv.secretKey+"\n"), 0o600); err != nil {
			return err
		}
		p.command = func(mnt, cache string) []string {
			return []string{"s3fs", bucket, mnt, "-f", "-o", "passwd_file=" + passwd + ",url=" + srv.endpoint +
				",use_path_request_style,endpoint=" + region + ",tmpdir=" + cache}
		}
	}
	return nil
}

func (p *peer) mount(ctx context.Context) (string, int, error) {
	mnt := filepath.Join(p.dir, "mnt")
	cache, err := os.MkdirTemp(p.dir, "cache-")
	if err != nil {
		return "", 0, err
	}
	logFile, err := os.OpenFile(filepath.Join(p.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer logFile.Close()
	argv := p.command(mnt, cache)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.Env = peerEnv()
	if err := p.cmd.Start(); err != nil {
		return "", 0, err
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	for deadline := time.Now().Add(mountTimeout); !mounted(mnt); {
		select {
		case <-p.exited:
			return "", 0, fmt.Errorf("%s exited before mounting: %s", p.kind, p.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			<-p.exited
			return "", 0, fmt.Errorf("%s did not mount within %v: %s", p.kind, mountTimeout, p.logTail())
		}
	}
	return mnt, p.cmd.Process.Pid, nil
}

// unmount detaches the mount and waits for the process to exit: both
// peers finish their uploads before that.
func (p *peer) unmount(ctx context.Context) error {
	mnt := filepath.Join(p.dir, "mnt")
	if out, err := exec.CommandContext(ctx, "fusermount3", "-u", mnt).CombinedOutput(); err != nil {
		if err := syscall.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("fusermount3 -u: %s; umount: %w", bytes.TrimSpace(out), err)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(unmountTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s still running %v after unmount", p.kind, unmountTimeout)
	}
	if st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.ExitStatus() > 0 {
		return fmt.Errorf("%s exited with status %d: %s", p.kind, st.ExitStatus(), p.logTail())
	}
	return nil
}

func (p *peer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "log"))
	return lastLines(string(b), 3)
}

// peerEnv is the environment without AWS_* variables: the peers get
// everything from their own configuration (rclone refuses AWS_CA_BUNDLE
// with its HTTP transport).
func peerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// mounted reports whether a filesystem is mounted at mnt.
func mounted(mnt string) bool {
	for _, m := range mountpoints() {
		if m == mnt {
			return true
		}
	}
	return false
}

// detachMounts lazily unmounts whatever is still mounted under dir.
func detachMounts(dir string) {
	for _, m := range mountpoints() {
		if strings.HasPrefix(m, dir+"/") {
			logf("detaching %s, left mounted", m)
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
}

func mountpoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 {
			mps = append(mps, fields[4])
		}
	}
	return mps
}
