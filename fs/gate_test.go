package fs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestOpsDuringDirRename: a mkdir, a symlink and a create with a write
// inside a directory while its rename copies it wait at their gate and
// then land where the directory went. Stored at once under the old path
// after the rename had listed it, the new directory and the symlink
// were neither copied nor deleted: /d came back beside /e holding them.
func TestOpsDuringDirRename(t *testing.T) {
	tv := storedBelowD(t, EncryptionClient)
	ctx := context.Background()
	ops := map[string]func() error{
		"mkdir": func() error {
			_, err := tv.Mkdir(ctx, "/d/sub", 0o755)
			return err
		},
		"symlink": func() error {
			_, err := tv.Symlink(ctx, "f", "/d/ln")
			return err
		},
		"create": func() error {
			h, _, err := tv.Create(ctx, "/d/new", 0o644, 0)
			if err != nil {
				return err
			}
			if _, err := h.WriteAt(ctx, []byte("new"), 0); err != nil {
				return err
			}
			return h.Close(ctx)
		},
	}
	var mu sync.Mutex
	waiting := 0
	allWait := make(chan struct{})
	tv.renameWait = func() {
		mu.Lock()
		defer mu.Unlock()
		if waiting++; waiting == len(ops) {
			close(allWait)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(ops))
	allDone := make(chan struct{})
	tv.renameStep = func() {
		for name, op := range ops {
			wg.Go(func() {
				if err := op(); err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
				}
			})
		}
		go func() { wg.Wait(); close(allDone) }()
		select {
		case <-allWait: // each at its gate
		case <-allDone: // none waited: the checks below say what it did
		}
	}
	if err := tv.Rename(ctx, "/d", "/e", 0); err != nil {
		t.Fatal(err)
	}
	<-allDone
	close(errs)
	for err := range errs {
		t.Errorf("during the rename: %v", err)
	}
	flush(t, tv.Volume)
	if got := storedNames(t, tv, "/"); got != "e" {
		t.Errorf("the store holds %q at the root, want e alone", got)
	}
	if got := storedNames(t, tv, "/e"); got != "f,ln,new,sub" {
		t.Errorf("the store holds %q in /e, want f,ln,new,sub", got)
	}
	fresh := tv.reopen(t)
	if got := readFile(t, fresh, "/e/new"); string(got) != "new" {
		t.Errorf("/e/new = %q", got)
	}
	if target, err := fresh.Readlink(ctx, "/e/ln"); err != nil || target != "f" {
		t.Errorf("readlink /e/ln = %q, %v", target, err)
	}
}

// TestNestedDirRenameDuringDirRename: a rename of a directory inside one
// being renamed waits for the outer rename and then moves the directory
// where it went. Run during the copies, it moved the objects at the old
// keys after the outer rename had listed them: the outer rename deleted
// them, so the inner directory's files were left only under /e/sub, and
// /d came back holding an empty-looking sub2.
func TestNestedDirRenameDuringDirRename(t *testing.T) {
	tv := storedBelowD(t, EncryptionClient)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/d/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/d/sub/x", []byte("x"))
	flush(t, tv.Volume)
	err := duringDirRename(t, tv, func() error {
		return tv.Rename(ctx, "/d/sub", "/d/sub2", 0)
	})
	if err != nil {
		t.Fatalf("rename /d/sub /d/sub2 during the rename of /d: %v", err)
	}
	if got := storedNames(t, tv, "/"); got != "e" {
		t.Errorf("the store holds %q at the root, want e alone", got)
	}
	if got := storedNames(t, tv, "/e"); got != "f,sub2" {
		t.Errorf("the store holds %q in /e, want f,sub2", got)
	}
	if got := readFile(t, tv.reopen(t), "/e/sub2/x"); string(got) != "x" {
		t.Errorf("/e/sub2/x = %q", got)
	}
}

// TestDirRenameDrainsActiveOps: a directory rename waits for an
// operation that passed its gate below the directory before the rename
// began, so that what it stores is moved too. Not waiting, the rename
// listed the directory first and left the new directory behind at the
// old path.
func TestDirRenameDrainsActiveOps(t *testing.T) {
	tv := storedBelowD(t, EncryptionClient)
	ctx := context.Background()
	o, err := tv.begin(ctx, "/d/late")
	if err != nil {
		t.Fatal(err)
	}
	draining := make(chan struct{})
	tv.drainWait = sync.OnceFunc(func() { close(draining) })
	renamed := make(chan error, 1)
	go func() { renamed <- tv.Rename(ctx, "/d", "/e", 0) }()
	select {
	case <-draining:
	case err := <-renamed:
		t.Fatalf("the rename ended (%v) while an operation below /d was active", err)
	}
	// The operation's body, past its gate: what Mkdir does after begin.
	if _, err := tv.mkdir(ctx, "/d/late", 0o755); err != nil {
		t.Fatal(err)
	}
	tv.end(o)
	if err := <-renamed; err != nil {
		t.Fatal(err)
	}
	if got := storedNames(t, tv, "/"); got != "e" {
		t.Errorf("the store holds %q at the root, want e alone", got)
	}
	if got := storedNames(t, tv, "/e"); got != "f,late" {
		t.Errorf("the store holds %q in /e, want f,late", got)
	}
}

// TestParkedDirRename: a directory rename that was active below another
// directory when that one's rename began parks while it waits for its
// turn (drains do not wait for it), then renames the directory where the
// first rename moved it. Waited for by the drain, the two renames waited
// for each other.
func TestParkedDirRename(t *testing.T) {
	tv := storedBelowD(t, EncryptionClient)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/d/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/d/sub/x", []byte("x"))
	flush(t, tv.Volume)
	// The inner rename, past its gate before the outer one begins.
	inner, err := tv.begin(ctx, "/d/sub", "/d/sub2")
	if err != nil {
		t.Fatal(err)
	}
	draining := make(chan struct{})
	tv.drainWait = sync.OnceFunc(func() { close(draining) })
	outerDone := make(chan error, 1)
	go func() { outerDone <- tv.Rename(ctx, "/d", "/e", 0) }()
	select {
	case <-draining:
	case err := <-outerDone:
		t.Fatalf("rename /d /e ended (%v) while a rename below /d was active", err)
	}
	innerDone := make(chan error, 1)
	go func() {
		err := tv.rename(ctx, inner, 0)
		tv.end(inner)
		innerDone <- err
	}()
	for range 2 {
		select {
		case err := <-outerDone:
			if err != nil {
				t.Errorf("rename /d /e: %v", err)
			}
		case err := <-innerDone:
			if err != nil {
				t.Errorf("rename /d/sub /d/sub2: %v", err)
			}
		case <-time.After(time.Minute):
			// Not t.Fatal: closing the volume would wait for them too.
			panic("TestParkedDirRename: a minute on, the two renames still wait for each other")
		}
	}
	if got := storedNames(t, tv, "/"); got != "e" {
		t.Errorf("the store holds %q at the root, want e alone", got)
	}
	if got := storedNames(t, tv, "/e"); got != "f,sub2" {
		t.Errorf("the store holds %q in /e, want f,sub2", got)
	}
	if got := readFile(t, tv.reopen(t), "/e/sub2/x"); string(got) != "x" {
		t.Errorf("/e/sub2/x = %q", got)
	}
}

// TestGateWaitInterrupted: an operation waiting at its gate gives up
// when its request is interrupted (ctx), and is no longer counted.
func TestGateWaitInterrupted(t *testing.T) {
	tv := storedBelowD(t, EncryptionClient)
	waitCtx, cancel := context.WithCancel(context.Background())
	err := duringDirRename(t, tv, func() error {
		tv.renameWait = cancel
		_, err := tv.Stat(waitCtx, "/d/f")
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("stat interrupted at its gate: %v, want context.Canceled", err)
	}
	tv.mu.Lock()
	n := len(tv.ops)
	tv.mu.Unlock()
	if n != 0 {
		t.Errorf("%d operations counted after all ended", n)
	}
}
