package main

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestHelperArgs: mount(8)'s and umount(8)'s calls of the helpers become
// coffer's command lines; unknown options and malformed calls are errors
// naming what is wrong.
func TestHelperArgs(t *testing.T) {
	e, _, _ := testEnv(t, nil)
	mount, _, err := newRootCommand(e).Find([]string{"mount"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		argv0 string
		args  []string
		want  []string // nil: an error containing err
		err   string
	}{
		{"/sbin/mount.coffer", []string{"s3://b/v", "/srv/vault", "-o", "rw,key-file=/etc/coffer/vault.key,_netdev,allow_other,noatime,x-systemd.automount"},
			[]string{"mount", "--daemon", "--store", "s3://b/v", "--key-file=/etc/coffer/vault.key", "--allow-other", "/srv/vault"}, ""},
		{"mount.coffer", []string{"/data/store", "/mnt", "-n", "-o", "ro,cache_dir=/var/cache/c,writeback-delay=1s,metrics-addr=127.0.0.1:9464", "-t", "coffer"},
			[]string{"mount", "--daemon", "--store", "/data/store", "--read-only", "--cache-dir=/var/cache/c", "--writeback-delay=1s", "--metrics-addr=127.0.0.1:9464", "/mnt"}, ""},
		{"mount.coffer", []string{"src", "dst", "-orw,path_style"}, []string{"mount", "--daemon", "--store", "src", "--path-style", "dst"}, ""},
		{"mount.coffer", []string{"src", "dst", "-s", "-o", "colour=blue"}, []string{"mount", "--daemon", "--store", "src", "dst"}, ""},
		{"mount.coffer", []string{"src", "dst", "-o", "colour=blue"}, nil, `unknown mount option "colour"`},
		{"mount.coffer", []string{"src", "dst", "-o", "daemon"}, nil, `unknown mount option "daemon"`},
		{"mount.coffer", []string{"src", "dst", "-o", "key-file"}, nil, "needs a value"},
		{"mount.coffer", []string{"src"}, nil, "want SOURCE TARGET"},
		{"mount.coffer", []string{"src", "dst", "-x"}, nil, "unknown flag -x"},
		{"mount.coffer", []string{"src", "dst", "-f"}, []string{"version"}, ""},
		{"/sbin/umount.fuse.coffer", []string{"/srv/vault", "-v", "-t", "fuse.coffer"}, []string{"unmount", "/srv/vault"}, ""},
		{"umount.fuse.coffer", nil, nil, "want the mount point"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.argv0}, tt.args...), " "), func(t *testing.T) {
			got, ok, err := helperArgs(tt.argv0, tt.args, mount.Flags())
			if !ok {
				t.Fatal("not recognised as a helper")
			}
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q (args %q)", err, tt.err, got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, ok, _ := helperArgs("/usr/local/bin/coffer", []string{"ls"}, mount.Flags()); ok {
		t.Error("coffer itself taken for a helper")
	}
	// What the translation produces parses as a mount command line.
	args, _, _ := helperArgs("mount.coffer", []string{"s", "/nonexistent/coffer-fstab", "-o", "key_file=/k,allow_other"}, mount.Flags())
	e, _, stderr := testEnv(t, nil)
	if code := run(context.Background(), args, e); code != exitFailure || !strings.Contains(stderr.String(), "does not exist: create it") {
		t.Errorf("translated command line: exit %d, %s", code, stderr)
	}
}
