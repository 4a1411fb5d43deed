package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The crash test re-executes the test binary as a child that appends and
// completes records in a journal until it is killed with SIGKILL (by
// itself at a chosen step, or by the parent at a random moment), and
// reports every step on stdout before and after it. The parent then
// replays the journal and checks it against what the child reported.

const crashEnv = "COFFER_JOURNAL_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashEnv); spec != "" {
		crashChild(spec)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashSpec is the child's instructions: dir|first index|count|kill point|hit.
type crashSpec struct {
	dir         string
	first, n    int
	point       string
	hit         int
	segmentSize int64
}

func (s crashSpec) String() string {
	return fmt.Sprintf("%s|%d|%d|%s|%d|%d", s.dir, s.first, s.n, s.point, s.hit, s.segmentSize)
}

func parseSpec(v string) crashSpec {
	p := strings.Split(v, "|")
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	return crashSpec{dir: p[0], first: atoi(p[1]), n: atoi(p[2]), point: p[3], hit: atoi(p[4]), segmentSize: int64(atoi(p[5]))}
}

func say(format string, args ...any) {
	os.Stdout.Write(fmt.Appendf(nil, format+"\n", args...)) // one write(2): in the pipe before the next step
}

func crashChild(v string) {
	spec := parseSpec(v)
	hits := 0
	opts := Options{SegmentSize: spec.segmentSize, crash: func(point string) {
		if point == spec.point {
			if hits++; hits == spec.hit {
				say("K %s", point)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}}
	j, rec, err := Open(spec.dir, testSecret, opts)
	if err != nil {
		say("E %v", err)
		os.Exit(1)
	}
	var pending []ID
	for _, r := range rec.Pending {
		say("R %d %s %v", r.ID, r.Blob, r.Durable)
		pending = append(pending, r.ID)
	}
	say("O")
	// Held until the parent has checked the lock (while this process
	// surely lives).
	bufio.NewReader(os.Stdin).ReadString('\n')
	for k := range spec.n {
		idx := spec.first + k
		say("a %d", idx)
		id, err := j.Append(testEntry(idx))
		if err != nil {
			say("E %v", err)
			os.Exit(1)
		}
		say("A %d %d", id, idx)
		pending = append(pending, id)
		if len(pending) > 10 || k%3 == 2 {
			d := pending[0]
			pending = pending[1:]
			say("d %d", d)
			if err := j.Done(d); err != nil {
				say("E %v", err)
				os.Exit(1)
			}
			say("D %d", d)
		}
		if k%7 == 6 {
			if err := j.Sync(context.Background(), id); err != nil {
				say("E %v", err)
				os.Exit(1)
			}
			say("S %d", id)
		}
	}
	j.Close()
	say("C")
}

// crashModel is what the parent knows of the journal from the child's
// reports.
type crashModel struct {
	sure       map[ID]int // appended (Append returned) and no Done begun
	appending  int        // index of an Append begun and not returned, or -1
	completing ID         // ID of a Done begun and not returned, or 0
	killedAt   map[string]int
	nextIndex  int
}

func newModel() *crashModel {
	return &crashModel{sure: map[ID]int{}, appending: -1, killedAt: map[string]int{}, nextIndex: 1}
}

// run starts a child on dir, reads its reports, and (killAfter > 0) kills
// it after that many Appends returned.
func (m *crashModel) run(t *testing.T, spec crashSpec, killAfter int) {
	t.Helper()
	spec.first = m.nextIndex
	m.nextIndex += spec.n
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+spec.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	appended := 0
	sc := bufio.NewScanner(out)
	var child []string
	for sc.Scan() {
		line := sc.Text()
		child = append(child, line)
		f := strings.Fields(line)
		num := func(k int) int { n, _ := strconv.Atoi(f[k]); return n }
		switch f[0] {
		case "R":
			// The child's own replay must agree with the model too; the
			// parent's replay below checks the same rules.
		case "O":
			m.checkReplay(t, child, spec)
			// The child holds the journal: another process cannot.
			if _, _, err := Open(spec.dir, testSecret, Options{}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
				t.Fatalf("Open while a child holds the journal: %v", err)
			}
			io.WriteString(in, "go\n")
		case "a":
			m.appending = num(1)
		case "A":
			m.sure[ID(num(1))] = num(2)
			m.appending = -1
			if appended++; killAfter > 0 && appended == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		case "d":
			m.completing = ID(num(1))
			delete(m.sure, m.completing)
		case "D":
			m.completing = 0
		case "K":
			m.killedAt[f[1]]++
		case "E":
			t.Fatalf("child failed: %s", line)
		}
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); err != nil && !(ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL) {
		t.Fatalf("child %v: %v", spec, err)
	}
}

// checkReplay checks the child's R lines (just before its O line) against
// the model and folds the uncertain steps into it.
func (m *crashModel) checkReplay(t *testing.T, lines []string, spec crashSpec) {
	t.Helper()
	var got []Record
	for _, l := range lines {
		f := strings.Fields(l)
		if f[0] != "R" {
			continue
		}
		id, _ := strconv.Atoi(f[1])
		got = append(got, Record{ID: ID(id), Blob: []byte(f[2]), Durable: f[3] == "true"})
	}
	m.check(t, got, spec.String())
}

// check compares a replay with the model: every sure record is there with
// its contents, nothing is there that was never appended or whose Done
// returned; an Append or Done cut short by the kill may have happened or
// not.
func (m *crashModel) check(t *testing.T, got []Record, what string) {
	t.Helper()
	seen := map[ID]bool{}
	for k, r := range got {
		if k > 0 && r.ID <= got[k-1].ID {
			t.Fatalf("%s: replay out of order: %d after %d", what, r.ID, got[k-1].ID)
		}
		if !r.Durable {
			t.Fatalf("%s: record %d not durable without a machine restart", what, r.ID)
		}
		idx, ok := m.sure[r.ID]
		switch {
		case ok:
		case r.ID == m.completing:
			idx, ok = m.completingIdx(r)
		case m.appending >= 0 && string(r.Blob) == string(testEntry(m.appending).Blob):
			idx, ok = m.appending, true
		}
		if !ok {
			t.Fatalf("%s: replay has record %d (%s), never appended or already done; model %v, appending %d, completing %d",
				what, r.ID, r.Blob, m.sure, m.appending, m.completing)
		}
		if string(r.Blob) != string(testEntry(idx).Blob) {
			t.Fatalf("%s: record %d holds %s, appended %s", what, r.ID, r.Blob, testEntry(idx).Blob)
		}
		seen[r.ID] = true
		m.sure[r.ID] = idx
	}
	for id, idx := range m.sure {
		if !seen[id] {
			t.Fatalf("%s: record %d (entry %d) was appended and is not replayed", what, id, idx)
		}
	}
	m.appending, m.completing = -1, 0
}

// completingIdx recovers the entry index of a record whose Done was cut
// short from its blob.
func (m *crashModel) completingIdx(r Record) (int, bool) {
	s := string(r.Blob)
	i := strings.LastIndex(s, "-")
	j := strings.Index(s[i:], `"`)
	if i < 0 || j < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s[i+1 : i+j])
	return n, err == nil
}

// parentCheck replays dir in the test process and checks it.
func (m *crashModel) parentCheck(t *testing.T, dir string) {
	t.Helper()
	rec := pendingOf(t, dir, Options{})
	if rec.Damage != nil && !rec.Damage.Cut {
		t.Fatalf("damage after a kill: %v", rec.Damage)
	}
	m.check(t, rec.Pending, "parent replay")
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary some 70 times")
	}
	points := []string{"append.written", "done.written", "batch.marked", "rotate.synced",
		"segment.written", "segment.synced", "segment.deleted", "open.cut"}
	dir := t.TempDir()
	m := newModel()
	const seg = 2048
	for _, point := range points {
		for _, hit := range []int{1, 2, 4} {
			if point == "open.cut" {
				// Leave a torn frame for the next Open to cut.
				segs := segments(t, dir)
				f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0, 0, 1, 0, 0xff, 0xff, 0xfe, 0xff, 1, 2, 3})
				f.Close()
				hit = 1
			}
			// A child killed at the step, then one killed during its
			// recovery (or later), then the parent's replay.
			m.run(t, crashSpec{dir: dir, n: 300, point: point, hit: hit, segmentSize: seg}, 0)
			m.run(t, crashSpec{dir: dir, n: 20, point: "segment.written", hit: 1, segmentSize: seg}, 0)
			m.parentCheck(t, dir)
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 12 {
		m.run(t, crashSpec{dir: dir, n: 200, segmentSize: seg}, 1+rng.IntN(150))
		m.parentCheck(t, dir)
	}
	for _, p := range points {
		if m.killedAt[p] == 0 {
			t.Errorf("no child was killed at %s", p)
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range m.killedAt {
			if !yield(k) {
				return
			}
		}
	})
	t.Logf("kills by step: %v (%v); %d records pending at the end", names, m.killedAt, len(m.sure))
}
