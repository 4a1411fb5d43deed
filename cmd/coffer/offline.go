package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	cofferfs "github.com/cofferfs/coffer/fs"
)

// The offline commands (ls, cat, get, put, rm, fsck) open the volume
// through volumeFlags.open, exactly as mount does, and drive package fs
// directly: no FUSE. Each reports every failure naming its file, goes on
// with the others, and exits 1 if any failed.

// offlineConcurrency bounds the files a tree copy or removal works on at
// once.
const offlineConcurrency = 8

// volumePath turns a command-line PATH into a canonical volume path:
// relative paths start at the root, "." and ".." are resolved, and "" is
// the root.
func volumePath(arg string) (string, error) {
	if strings.ContainsRune(arg, 0) {
		return "", usagef("path %q contains a NUL byte", arg)
	}
	p := path.Clean("/" + arg)
	return p, nil
}

// openOffline opens the volume for an offline command: read-only unless
// the command writes, uploads at once on close, owned by the caller.
func (f *volumeFlags) openOffline(ctx context.Context, e *env, write bool) (*openedVolume, error) {
	return f.open(ctx, e, cofferfs.Options{
		ReadOnly:       !write,
		KeepNoIndexes:  true,
		WritebackDelay: -1,
		UID:            uint32(os.Getuid()),
		GID:            uint32(os.Getgid()),
	})
}

// closeVolume closes v and reports an upload that failed at close.
func closeVolume(ctx context.Context, v *openedVolume, err *error) {
	if cerr := v.Close(context.WithoutCancel(ctx)); cerr != nil && *err == nil {
		*err = fmt.Errorf("closing the volume: %w", cerr)
	}
}

// failures collects the per-file failures of one command: each is printed
// at once, as "coffer CMD: message", and the command exits 1 at the end.
type failures struct {
	cmd string
	w   io.Writer
	mu  sync.Mutex
	n   int
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	printError(f.w, f.cmd, err)
}

func (f *failures) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.n {
	case 0:
		return nil
	case 1:
		return errReported{"1 error (named above)"}
	}
	return errReported{fmt.Sprintf("%d errors (each named above)", f.n)}
}

// errReported is the summary error of a command whose failures were
// printed one by one already.
type errReported struct{ msg string }

func (e errReported) Error() string { return e.msg }

// describe words an error of package fs for a person: "PATH: no such file
// or directory".
func describe(p string, err error) error {
	var pe *cofferfs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if en := cofferfs.Errno(err); en != 0 && en != syscall.EIO {
		return fmt.Errorf("%s: %s", p, en.Error())
	}
	return fmt.Errorf("%s: %w", p, err)
}

// transfer shows the progress of a copy: a bar of bytes on a terminal,
// else a plain line every few seconds.
type transfer struct {
	w          io.Writer
	cmd        string
	bar        *progressbar.ProgressBar
	mu         sync.Mutex
	files      int
	totalFiles int
	bytes      int64
	totalBytes int64
	last       time.Time
}

func newTransfer(w io.Writer, cmd string, files int, bytes int64) *transfer {
	t := &transfer{w: w, cmd: cmd, totalFiles: files, totalBytes: bytes, last: time.Now()}
	if f, ok := w.(*os.File); ok && isTerminal(f) && files > 1 {
		t.bar = progressbar.NewOptions64(bytes,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(cmd),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return t
}

// add counts n more bytes copied; file marks the end of one file.
func (t *transfer) add(n int64, file bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes += n
	if file {
		t.files++
	}
	if t.bar != nil {
		t.bar.Add64(n)
		return
	}
	if t.totalFiles > 1 && time.Since(t.last) >= 3*time.Second {
		t.last = time.Now()
		fmt.Fprintf(t.w, "coffer %s: %d of %d files, %s of %s\n", t.cmd, t.files, t.totalFiles, humanBytes(t.bytes), humanBytes(t.totalBytes))
	}
}

func (t *transfer) finish() {
	if t.bar != nil {
		t.bar.Finish()
	}
}

// copyBuffer is the size of one read or write of a copy: large enough
// for the read-ahead to stream.
const copyBuffer = 1 << 20

// volumeReader reads a volume file sequentially.
type volumeReader struct {
	ctx context.Context
	h   *cofferfs.Handle
	off int64
}

func (r *volumeReader) Read(p []byte) (int, error) {
	n, err := r.h.ReadAt(r.ctx, p, r.off)
	r.off += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// minArgs requires at least one argument, named what in the message.
func minArgs(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return &usageError{err: fmt.Errorf("missing %s", what), hint: c.CommandPath() + " --help"}
		}
		return nil
	}
}

// fuseDev is a local device number as the kernel hands it to a FUSE
// filesystem, the form coffer stores (Linux's 32-bit new_encode_dev:
// major below 4096, minor below 1<<20).
func fuseDev(dev uint64) (uint32, error) {
	major, minor := unix.Major(dev), unix.Minor(dev)
	if major >= 1<<12 || minor >= 1<<20 {
		return 0, fmt.Errorf("device number %d:%d does not fit in 32 bits", major, minor)
	}
	return minor&0xff | major<<8 | (minor&^0xff)<<12, nil
}

// localDev is the local device number of a stored one (fuseDev's inverse).
func localDev(rdev uint32) uint64 {
	return unix.Mkdev(rdev>>8&0xfff, rdev&0xff|rdev>>12&0xfff00)
}

// volumeEntry is one entry of a volume tree.
type volumeEntry struct {
	path string
	attr cofferfs.Attr
}

// walkVolume lists the tree under directory root (root excluded),
// listing up to offlineConcurrency directories at once. Directories come
// before what they hold; failures are added to fail and their subtrees
// skipped.
func walkVolume(ctx context.Context, v *cofferfs.Volume, root string, fail *failures) []volumeEntry {
	var (
		mu  sync.Mutex
		out []volumeEntry
		wg  sync.WaitGroup
		sem = make(chan struct{}, offlineConcurrency)
	)
	var walk func(dir string)
	walk = func(dir string) {
		defer wg.Done()
		sem <- struct{}{}
		ents, err := v.ReadDir(ctx, dir)
		<-sem
		if err != nil {
			fail.add(describe(dir, err))
			return
		}
		mu.Lock()
		for _, ent := range ents {
			out = append(out, volumeEntry{path: joinVolumePath(dir, ent.Name), attr: ent.Attr})
		}
		mu.Unlock()
		for _, ent := range ents {
			if ent.Attr.IsDir() {
				wg.Add(1)
				go walk(joinVolumePath(dir, ent.Name))
			}
		}
	}
	wg.Add(1)
	walk(root)
	wg.Wait()
	slices.SortFunc(out, func(a, b volumeEntry) int { return strings.Compare(a.path, b.path) })
	return out
}

// depth is the number of segments of a path.
func depth(p string) int { return strings.Count(strings.Trim(p, "/"), "/") }
