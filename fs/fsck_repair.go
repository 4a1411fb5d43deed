package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cache/staging"
	"github.com/cofferfs/coffer/cipher"
)

// What fsck repairs, and only with FsckOptions.Repair: it never removes
// an object of the store, only what holds no data.
//
//   - Multipart uploads in progress older than UploadAge: their parts are
//     no object's data (an upload that completes is no longer listed),
//     and a mount completes or aborts its own within minutes.
//   - In a cache dir no running mount uses: staging files (in staging/,
//     and those a mount's recovery set aside in lost+found/) that are
//     empty (spares), that do not open (unreadable by any mount), or
//     whose content the store holds at their path already (uploaded, then
//     the mount died before removing them); and the .broken copies of
//     torn journal tails, which replay never reads. A staging file whose
//     content the store does not hold is reported and kept: it may be the
//     only copy of a closed file.
//
// Checking a staging file opens it through a hard link in a private
// directory, so that nothing of the cache dir changes without Repair
// (staging.Dir.Open cuts bytes past a file's sealed size, which no reader
// ever sees, and that is all it writes).

// uploads reports multipart uploads in progress that are older than
// UploadAge, and aborts them with Repair.
func (c *checker) uploads(ctx context.Context) error {
	var old []blobstore.PendingUpload
	now := c.opts.Now()
	for u, err := range c.v.store.Uploads(ctx, "") {
		if err != nil {
			return fmt.Errorf("listing multipart uploads: %w", err)
		}
		c.rep.Uploads++
		if now.Sub(u.Initiated) >= c.opts.UploadAge {
			old = append(old, u)
		}
	}
	for _, u := range old {
		f := Finding{Kind: FindUpload, Key: u.Key,
			Err: fmt.Errorf("a multipart upload started %s (%s ago) was neither completed nor aborted",
				u.Initiated.UTC().Format(time.RFC3339), now.Sub(u.Initiated).Round(time.Second))}
		if p, err := c.pathOf(&storedObject{key: u.Key}); err == nil {
			f.Path = p
		}
		if c.opts.Repair {
			if err := c.v.store.AbortUpload(ctx, u); err != nil {
				f.Err = fmt.Errorf("%v; aborting it failed: %w", f.Err, err)
			} else {
				f.Repaired = true
			}
		}
		c.rep.Findings = append(c.rep.Findings, f)
	}
	return nil
}

// ErrCacheDirInUse is returned by Fsck when a running mount uses the
// cache dir it was asked to check.
var ErrCacheDirInUse = errors.New("a running mount uses this cache dir")

// cacheDir checks the leftovers of a mount's cache dir.
func (c *checker) cacheDir(ctx context.Context) error {
	dir := c.opts.CacheDir
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("cache dir %s is not a directory", dir)
	}
	if (c.opts.LiveMount != nil && c.opts.LiveMount(dir)) || journalLocked(filepath.Join(dir, "journal")) {
		return fmt.Errorf("%w (%s): unmount it first, or check without --cache-dir", ErrCacheDirInUse, dir)
	}
	if err := c.journalLeftovers(filepath.Join(dir, "journal")); err != nil {
		return err
	}
	if err := c.stagingLeftovers(ctx, filepath.Join(dir, "staging")); err != nil {
		return err
	}
	// The staging files a mount's recovery set aside, never uploaded as
	// whole (recover.go): the same rules.
	return c.stagingLeftovers(ctx, filepath.Join(dir, lostFound))
}

// journalLocked reports a journal whose lock a live process holds.
func journalLocked(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// journalLeftovers finds the copies of torn journal tails (SEGMENT.broken).
func (c *checker) journalLeftovers(dir string) error {
	broken, err := filepath.Glob(filepath.Join(dir, "*.broken"))
	if err != nil {
		return err
	}
	for _, p := range broken {
		f := Finding{Kind: FindStaging, Key: p, Err: errors.New("the copy of a torn journal tail, which replay never reads")}
		c.repairFile(&f, p)
		c.rep.Findings = append(c.rep.Findings, f)
	}
	return nil
}

func (c *checker) repairFile(f *Finding, path string) {
	if !c.opts.Repair {
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Err = fmt.Errorf("%v; removing it failed: %w", f.Err, err)
		return
	}
	f.Repaired = true
}

// stagingLeftovers classifies the files of a staging directory.
func (c *checker) stagingLeftovers(ctx context.Context, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("staging dir: %w", err)
	}
	secret, err := c.localSecret()
	if err != nil {
		return err
	}
	look, err := os.MkdirTemp(filepath.Dir(dir), ".fsck-")
	if err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	defer os.RemoveAll(look)
	var sd *staging.Dir
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, name)
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !strings.HasSuffix(name, ".stg") {
			continue
		}
		if info.Size() == 0 {
			// A spare: the next mount reuses it; it holds nothing.
			f := Finding{Kind: FindStaging, Key: path, Err: errors.New("an empty spare staging file")}
			c.repairFile(&f, path)
			c.rep.Findings = append(c.rep.Findings, f)
			continue
		}
		if secret == nil {
			c.rep.Findings = append(c.rep.Findings, Finding{Kind: FindStaging, Key: path,
				Err: errors.New("a staging file that cannot be checked without the cache dir's local key (local.key is missing): kept")})
			continue
		}
		if sd == nil {
			if sd, err = staging.OpenDir(look, secret); err != nil {
				return err
			}
			defer sd.Close()
		}
		if err := os.Link(path, filepath.Join(look, name)); err != nil {
			return fmt.Errorf("staging file %s: %w", path, err)
		}
		f := c.stagingFile(ctx, sd, name, path)
		os.Remove(filepath.Join(look, name))
		if f != nil {
			c.rep.Findings = append(c.rep.Findings, *f)
		}
	}
	return nil
}

// stagingFile classifies one staging file: stale (removed with Repair)
// when it does not open or the store holds its content at its path;
// otherwise kept, and reported.
func (c *checker) stagingFile(ctx context.Context, sd *staging.Dir, name, path string) *Finding {
	sf, err := sd.Open(name)
	if err != nil {
		if !errors.Is(err, cipher.ErrAuth) {
			return &Finding{Kind: FindStaging, Key: path, Err: fmt.Errorf("a staging file that cannot be read (%v): kept", err)}
		}
		f := &Finding{Kind: FindStaging, Key: path, Err: fmt.Errorf("a staging file that does not open: %v", err)}
		c.repairFile(f, path)
		return f
	}
	defer sf.Close()
	var m stagedMeta
	if err := json.Unmarshal(sf.Meta(), &m); err != nil || !checkPath(m.Path) {
		f := &Finding{Kind: FindStaging, Key: path, Err: errors.New("a staging file whose record names no path")}
		c.repairFile(f, path)
		return f
	}
	same, err := c.storedEqual(ctx, m.Path, sf)
	if err != nil {
		return &Finding{Kind: FindStaging, Path: m.Path, Key: path, Err: fmt.Errorf("comparing a staging file with the store failed (%v): kept", err)}
	}
	if !same {
		return &Finding{Kind: FindStaging, Path: m.Path, Key: path,
			Err: fmt.Errorf("a staging file of %d bytes whose content the store does not hold: kept, it may be the only copy of a closed file", sf.Size())}
	}
	f := &Finding{Kind: FindStaging, Path: m.Path, Key: path, Err: errors.New("a staging file whose content the store holds already")}
	sf.Close()
	c.repairFile(f, path)
	return f
}

// storedEqual reports whether the store holds exactly sf's content at p.
func (c *checker) storedEqual(ctx context.Context, p string, sf *staging.File) (bool, error) {
	a, err := c.v.Stat(ctx, p)
	if errors.Is(err, syscall.ENOENT) || err == nil && (!a.IsRegular() || a.Size != sf.Size()) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	h, err := c.v.Open(ctx, p, os.O_RDONLY)
	if err != nil {
		return false, err
	}
	defer h.Close(ctx)
	want := sf.NewReader()
	buf, got := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < a.Size; {
		n, err := h.ReadAt(ctx, buf, off)
		if n == 0 && err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if n == 0 {
			return false, nil
		}
		if _, err := io.ReadFull(want, got[:n]); err != nil {
			return false, err
		}
		if !bytes.Equal(buf[:n], got[:n]) {
			return false, nil
		}
		off += int64(n)
	}
	return true, nil
}

// localSecret is the key of the cache dir's staging files: the keyring's
// local secret in client mode; in none mode the SSE-C key's, else the
// cache dir's local.key (nil when it is missing: never created here).
func (c *checker) localSecret() ([]byte, error) {
	if c.v.client {
		return c.v.lay.(*clientLayout).kr.LocalSecret(), nil
	}
	if len(c.v.opts.SSE.CKeys) > 0 {
		return cipher.LocalSecretFromKey(c.v.opts.SSE.CKeys[0]), nil
	}
	b, err := os.ReadFile(filepath.Join(c.opts.CacheDir, localKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("local key file of the cache dir: %v", err)
	}
	return b, nil
}
