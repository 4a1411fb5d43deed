package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferfs/coffer/cache/journal"
)

// This file is crash recovery (DESIGN.md §5): OpenVolume replays the
// cache dir's upload journal and uploads what a dead run left behind
// before the volume is used. Each pending record names a staging file
// and the version it was closed at:
//
//	staging file                          what recovery does
//	missing, or another file (salt)       stored or dropped before the crash: record done
//	its version, record durable           uploaded under the record's path, attributes and
//	                                      condition (conflicts as for any upload, conflict.go;
//	                                      an object carrying a tag of the record is this
//	                                      upload, done before the crash): then done
//	another version, or not durable,      never uploaded as whole: moved to lost+found/
//	  or unreadable                       (still sealed) for coffer fsck --cache-dir --repair, one
//	                                      warning; record done
//
// and every staging file no record names (being written when the run
// died, or its record lost to damage the journal reports) goes to
// lost+found/ too, except one whose file had been unlinked while open,
// which is deleted. A file whose recovery upload fails (the store
// unreachable) stays journalled and joins the upload pipeline as a
// waiting file: served from staging, retried in the background.
//
// Every step leaves the journal and staging as a rerun expects: a record
// is done only after its file is stored, set aside or found gone, and an
// upload journals its tag before it starts, so a second crash during
// recovery loses nothing and uploads nothing twice. A read-only volume
// leaves everything as it is for a read-write mount.

// RecoveryReport is what OpenVolume's recovery found and did.
type RecoveryReport struct {
	// Recovered counts the journalled files now stored: uploaded (as
	// conflict copies for Conflicts of them), or found stored already.
	Recovered int
	Conflicts int
	// Pending counts journalled files still to upload: their upload
	// failed (retried in the background) or the volume is read-only.
	Pending int
	// SetAside are the staging files moved to LostFound, never uploaded
	// as whole; Dropped counts those deleted (unlinked while open).
	SetAside  []string
	Dropped   int
	LostFound string
	// Damage is the journal's, if replay met any.
	Damage *journal.Damage
}

// Recovered returns what OpenVolume's recovery did.
func (v *Volume) Recovered() RecoveryReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.recovered
}

// recoveryProgress is how often a long recovery logs its progress.
const recoveryProgress = 5 * time.Second

// recover replays the journal Open found (v.local.recovery).
func (v *Volume) recover(ctx context.Context) error {
	rec := v.local.recovery
	v.local.recovery = journal.Recovery{}
	rep := RecoveryReport{Damage: rec.Damage}
	if d := rec.Damage; d != nil {
		v.log.Warn("upload journal: damage found; staging files whose records were lost are kept in lost+found", "damage", d.Error())
	}
	if v.opts.ReadOnly {
		if n := len(rec.Pending); n > 0 {
			v.log.Warn("upload journal: files closed but not uploaded by an earlier mount of this cache dir wait for a read-write mount", "files", n)
			rep.Pending = n
		}
		v.setRecovered(rep)
		return nil
	}
	named := map[string]bool{} // staging files a record names
	var todo []*file
	for _, r := range rec.Pending {
		f, err := v.recoveredFile(r, &rep)
		if err != nil {
			return err
		}
		if f != nil {
			named[r.Staging.Name] = true
			todo = append(todo, f)
		}
	}
	if err := v.sweepStaging(named, &rep); err != nil {
		return err
	}
	v.uploadRecovered(ctx, todo, &rep)
	if len(rep.SetAside) > 0 {
		rep.LostFound = v.local.dir + "/" + lostFound
		v.log.Warn("staging files that cannot be uploaded as whole (being written when coffer stopped, changed after their journal record, or their record lost) were moved, still sealed, for coffer fsck --cache-dir --repair",
			"files", len(rep.SetAside), "dir", rep.LostFound)
	}
	if rep.Recovered+rep.Pending > 0 {
		v.log.Info(fmt.Sprintf("recovered %d files", rep.Recovered),
			"conflict_copies", rep.Conflicts, "still_pending", rep.Pending, "set_aside", len(rep.SetAside))
	}
	v.setRecovered(rep)
	return nil
}

func (v *Volume) setRecovered(rep RecoveryReport) {
	v.mu.Lock()
	v.recovered = rep
	v.mu.Unlock()
}

// recoveredFile decides about one pending record: the waiting file to
// upload, or nil when there is nothing to upload (the record is then
// done). An error is local trouble (the journal or cache dir failing).
func (v *Volume) recoveredFile(r journal.Record, rep *RecoveryReport) (*file, error) {
	done := func() error {
		if err := v.local.journal.Done(r.ID); err != nil {
			return fmt.Errorf("upload journal: %w", err)
		}
		return nil
	}
	var m stagedMeta
	if err := json.Unmarshal(r.Blob, &m); err != nil || !checkPath(m.Path) || m.Path == "/" {
		// Authenticated, so written by coffer: a format it no longer reads.
		v.log.Warn("upload journal: a record does not decode; its staging file is kept", "err", err)
		if err := v.setAside(r.Staging.Name, rep); err != nil {
			return nil, err
		}
		return nil, done()
	}
	st, err := v.local.openStaging(r.Staging.Name)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return nil, done() // stored (or dropped), then the run died before the record was done
	case err != nil:
		v.logEvent(slog.LevelWarn, "recovery: a journalled staging file does not read back; kept, not uploaded", m.Path, "", "err", err)
		if err := v.setAside(r.Staging.Name, rep); err != nil {
			return nil, err
		}
		return nil, done()
	}
	ver := st.Version()
	if ver.Salt != r.Staging.Salt {
		// Its name was reused by a later staging file: this one is gone.
		st.Close()
		return nil, done()
	}
	if journal.Staging(ver) != r.Staging || !r.Durable {
		st.Close()
		why := "it changed after its journal record (written again when coffer stopped)"
		if !r.Durable {
			why = "the machine restarted before it was known to be on disk"
		}
		v.logEvent(slog.LevelWarn, "recovery: a journalled file is not uploaded as whole: "+why+"; its staging file is kept", m.Path, "")
		if err := v.setAside(r.Staging.Name, rep); err != nil {
			return nil, err
		}
		return nil, done()
	}
	f := &file{
		v: v, path: m.Path, st: st, dirty: true,
		attr:     m.attr(),
		excl:     m.Excl,
		replaces: m.Replaces,
		jid:      r.ID, jver: ver,
		tags: m.Tags,
	}
	if len(f.tags) > 0 {
		f.jtag = f.tags[len(f.tags)-1]
	}
	return f, nil
}

// attr is the file's attributes as journalled. Extended attributes that
// no longer pass cipher's checks are left out (the record is sealed, so
// only a format change could bring one).
func (m *stagedMeta) attr() Attr {
	a := Attr{
		Mode: m.Mode, UID: m.UID, GID: m.GID, Changes: m.Changes,
		Mtime: time.Unix(0, m.MtimeNs), Atime: time.Unix(0, m.AtimeNs), Ctime: time.Unix(0, m.CtimeNs),
	}
	names := slices.Sorted(maps.Keys(m.Xattrs))
	for _, name := range names {
		if x, err := a.Xattrs.With(name, m.Xattrs[name]); err == nil {
			a.Xattrs = x
		}
	}
	return a
}

// setAside moves a staging file to lost+found; one already gone is no
// error.
func (v *Volume) setAside(name string, rep *RecoveryReport) error {
	to, err := v.local.setAside(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recovery: keeping a staging file in %s: %w", lostFound, err)
	}
	rep.SetAside = append(rep.SetAside, to)
	return nil
}

// sweepStaging deals with the staging files no record names: deleted when
// their file was unlinked while open, else set aside.
func (v *Volume) sweepStaging(named map[string]bool, rep *RecoveryReport) error {
	names, err := v.local.staging.List()
	if err != nil {
		return err
	}
	for _, name := range names {
		if named[name] {
			continue
		}
		st, err := v.local.openStaging(name)
		if err == nil {
			var m stagedMeta
			removed := json.Unmarshal(st.Meta(), &m) == nil && m.Removed
			if removed {
				if err := st.Remove(); err != nil {
					return err
				}
				rep.Dropped++
				continue
			}
			st.Close()
		} else if errors.Is(err, iofs.ErrNotExist) {
			continue
		}
		if err := v.setAside(name, rep); err != nil {
			return err
		}
	}
	return nil
}

// uploadRecovered uploads the recovered files, those of one path one
// after another in journal order, different paths in parallel. A file
// whose upload fails stays journalled as a waiting file of the volume.
func (v *Volume) uploadRecovered(ctx context.Context, todo []*file, rep *RecoveryReport) {
	if len(todo) == 0 {
		return
	}
	var byPath [][]*file
	idx := map[string]int{}
	for _, f := range todo {
		i, ok := idx[f.path]
		if !ok {
			i = len(byPath)
			idx[f.path] = i
			byPath = append(byPath, nil)
		}
		byPath[i] = append(byPath[i], f)
	}
	v.log.Info("recovering: uploading files closed but not uploaded by the last run", "files", len(todo))
	var stored, conflicts, pending atomic.Int64
	var unreachable atomic.Bool // a transient failure: the rest wait in the background
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(recoveryProgress)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				v.log.Info("recovering", "uploaded", stored.Load(), "of", len(todo))
			}
		}
	}()
	fanOut(ctx, v.opts.UploadConcurrency, len(byPath), func(ctx context.Context, i int) error {
		for k, f := range byPath[i] {
			p := f.path
			v.mu.Lock()
			busy := v.files[p] != nil
			if !busy {
				v.files[p] = f
			}
			v.mu.Unlock()
			if busy {
				// An earlier record of p still waits: this one waits for
				// the next mount.
				pending.Add(int64(len(byPath[i]) - k))
				for _, g := range byPath[i][k:] {
					g.st.Close()
				}
				return nil
			}
			if unreachable.Load() {
				// Not tried now: the store just failed another upload.
				f.mu.Lock()
				f.scheduleLocked(retryDelay(1))
				f.mu.Unlock()
				pending.Add(1)
				continue
			}
			err := f.upload(ctx)
			f.mu.Lock()
			moved := f.path != p
			f.mu.Unlock()
			switch {
			case err != nil:
				v.logEvent(slog.LevelWarn, "recovery: upload failed; the file stays journalled and is retried", p, "", "err", err)
				pending.Add(1)
				if retryable(err) {
					unreachable.Store(true)
				}
			case moved:
				conflicts.Add(1)
				stored.Add(1)
			default:
				stored.Add(1)
			}
		}
		return nil
	})
	close(stop)
	wg.Wait()
	rep.Recovered += int(stored.Load())
	rep.Conflicts += int(conflicts.Load())
	rep.Pending += int(pending.Load())
}
