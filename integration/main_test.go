package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// cofferBin is the coffer binary built by TestMain; testHome is the HOME
// (and XDG directories) every coffer process of the run gets.
var cofferBin, testHome string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cofferBin = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", cofferBin, "github.com/cofferfs/coffer/cmd/coffer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building coffer:", err)
		return 1
	}
	testHome = filepath.Join(dir, "home")
	if err := os.MkdirAll(testHome, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// requireFUSE skips (or, under COFFER_REQUIRE_SERVERS=1, fails) a test
// that cannot mount.
func requireFUSE(t *testing.T) {
	t.Helper()
	msg := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		msg = "/dev/fuse is missing"
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			msg = "fusermount3 is missing (run scripts/deps.sh)"
		}
	}
	if msg == "" {
		return
	}
	if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
