package blobstore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
)

const crashDirEnv = "COFFER_LOCAL_CRASH_DIR"

// TestLocalCrashHelper is the child process of TestLocalCrashSafety: it
// writes objects (single puts and multipart uploads) until killed. Each
// body is one byte value repeated, named in the "seq" metadata.
func TestLocalCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestLocalCrashSafety")
	}
	ctx := context.Background()
	l, err := blobstore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for seq := 1; ; seq++ {
		key := fmt.Sprintf("k/%d", seq%7)
		n := (seq * 389_111) % (3 << 20)
		body := bytes.Repeat([]byte{byte(seq)}, n)
		opts := blobstore.PutOptions{Metadata: map[string]string{"seq": strconv.Itoa(seq)}}
		if seq%3 == 0 {
			_, err = blobstore.Upload(ctx, l, key, bytes.NewReader(body), int64(n), blobstore.UploadOptions{PutOptions: opts, PartSize: 256 << 10, Concurrency: 3})
		} else {
			_, err = l.Put(ctx, key, bytes.NewReader(body), int64(n), opts)
		}
		if err != nil {
			t.Fatal(err)
		}
		if seq == 1 {
			fmt.Println(crashStarted) // the parent kills only a writer that got going
		}
	}
}

// TestLocalCrashSafety kills a writing process at random moments: every
// object the next open sees is whole, and the dead writer's temp files
// are gone.
func TestLocalCrashSafety(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the helper process")
	}
	ctx := context.Background()
	dir := t.TempDir()
	killedMidWrite := 0 // rounds whose kill left temp files behind
	// At least 4 rounds, and more (up to 20) until one kill landed
	// mid-write: on a loaded machine a kill can land between objects.
	for round := 0; round < 4 || (killedMidWrite == 0 && round < 20); round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the writer stored its first object (however slowly
		// the test binary started), then let it run a varying while.
		if !waitForLine(out, crashStarted) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the writer never started", round)
		}
		time.Sleep(time.Duration(50+(round%4)*120) * time.Millisecond)
		cmd.Process.Kill()
		go io.Copy(io.Discard, out)
		cmd.Wait()
		before := len(strayTemp(dir))

		l, err := blobstore.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for e, err := range l.List(ctx, "", "") {
			if err != nil {
				t.Fatalf("round %d: List: %v", round, err)
			}
			rc, info, err := l.Get(ctx, e.Key, blobstore.GetOptions{Length: -1})
			if err != nil {
				t.Fatalf("round %d: Get(%q): %v", round, e.Key, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			seq, _ := strconv.Atoi(info.Metadata["seq"])
			if int64(len(b)) != info.Size || !bytes.Equal(b, bytes.Repeat([]byte{byte(seq)}, len(b))) {
				t.Fatalf("round %d: %q (seq %d, %d bytes) is not whole", round, e.Key, seq, len(b))
			}
			seen++
		}
		stray := strayTemp(dir)
		l.Close()
		if len(stray) > 0 {
			t.Fatalf("round %d: temp files left after reopening: %q", round, stray)
		}
		t.Logf("round %d: %d whole objects after the kill; the reopen removed %d temp files", round, seen, before)
		if before > 0 {
			killedMidWrite++
		}
	}
	// Without a kill mid-write, "no half-written object is visible" and
	// "temp files are removed" were never put to the test.
	if killedMidWrite == 0 {
		t.Fatal("no kill left temp files behind (or strayTemp looks in the wrong place): the crash was never mid-write")
	}
}

const crashStarted = "coffer-crash-helper: writing"

// waitForLine reads r until a line equal to want (true) or EOF (false).
func waitForLine(r io.Reader, want string) bool {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == want {
			return true
		}
	}
	return false
}

// strayTemp lists the files in the store's temp dirs, lock files aside.
func strayTemp(dir string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(dir, "tmp"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".lock") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
