package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pidFile is where coffer mount records its pid for mountpoint (the run
// dir of cofferEnv).
func pidFile(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(testHome, "run", "coffer", hex.EncodeToString(sum[:16])+".pid")
}

// TestFstab (root, local store): an fstab line of type coffer mounts the
// volume with mount -a, and umount flushes it: a file written just before
// umount is in the store once umount returns. mount(8) finds its helpers
// only in /sbin, so the test runs in a private mount namespace
// (unshare(1)) with a tmpfs over /usr/sbin holding mount.coffer and
// umount.fuse.coffer, links to the coffer under test: nothing of the
// machine's /sbin changes. umount returning means the mount process
// uploaded what was pending (32 MiB, long enough to tell) and exited. An unknown option fails the mount, naming it.
func TestFstab(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("mount -a needs root")
	}
	for _, tool := range []string{"unshare", "mount", "umount", "findmnt"} {
		requireTool(t, tool)
	}
	v := newVolume(t, newLocalStore(t))
	dir := t.TempDir()
	fstab := filepath.Join(dir, "fstab")
	line := func(opts string) {
		t.Helper()
		entry := fmt.Sprintf("%s %s coffer key-file=%s,cache-dir=%s,writeback_delay=2s,_netdev,allow_other%s 0 0\n",
			v.store.url, v.mnt, v.keyFile, v.cacheDir, opts)
		if err := os.WriteFile(fstab, []byte("# coffer test\n"+entry), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`set -e
mount -t tmpfs -o mode=0755 coffer-sbin /usr/sbin
ln -s %[1]s /usr/sbin/mount.coffer
ln -s %[1]s /usr/sbin/umount.fuse.coffer
mount -T %[2]s -a
findmnt -n -o FSTYPE,OPTIONS %[3]s
printf 'written through fstab' > %[3]s/viafstab
head -c 33554432 /dev/zero > %[3]s/big
pid=$(cat %[4]s)
umount %[3]s
# Gone, or a zombie its adoptive parent has not reaped yet.
if [ -e /proc/$pid ] && ! grep -q ') Z' /proc/$pid/stat; then echo "the mount process still runs after umount"; exit 1; fi
echo unmounted
`, cofferBin, fstab, v.mnt, pidFile(v.mnt))
	run := func() (string, error) {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
		cmd.Env = cofferEnv(nil)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	line("")
	out, err := run()
	if err != nil || !strings.Contains(out, "fuse.coffer") || !strings.Contains(out, "allow_other") || !strings.HasSuffix(out, "unmounted\n") {
		t.Fatalf("mount -a and umount: %v\n%s", err, out)
	}
	if got := v.mustRun("cat", "/viafstab").stdout; got != "written through fstab" {
		t.Fatalf("after umount the store holds %q", got)
	}
	if got := v.mustRun("ls", "-l", "/big").stdout; !strings.Contains(got, " 33554432 ") {
		t.Fatalf("after umount the store holds %q", got)
	}

	line(",colour=blue")
	out, err = run()
	if err == nil || !strings.Contains(out, `unknown mount option "colour"`) {
		t.Fatalf("mount -a with an unknown option: %v\n%s", err, out)
	}
}
