package journal

import (
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/cache/staging"
)

// BenchmarkAppendDone is the journal's cost per small file on the
// writer's side: one Append and one Done, the syncer running.
func BenchmarkAppendDone(b *testing.B) {
	j, _ := openTest(b, b.TempDir(), Options{})
	e := testEntry(1)
	for b.Loop() {
		id, err := j.Append(e)
		if err != nil {
			b.Fatal(err)
		}
		if err := j.Done(id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallFile is a small file's life in staging as fs gives it
// (Create, a 4 KiB write, commit, upload read, Remove), each file waiting
// hold for its upload (fs's writeback delay), without the journal and
// with it (Append at close, Done after the upload, the syncer fsyncing
// each staging file still pending at its batch). fs's times (writeback
// delay 2 s, SyncDelay 1 s) are scaled down to 40 and 20 ms, keeping what
// matters: every file is pending at its batch and fsynced once, in
// batches of about a hundred. "uploaded first" swaps the two: files are
// uploaded before their batch, as when SyncDelay exceeds the writeback
// delay. cpu-us/file is the process's user+system CPU time per file (the
// file system's own threads are not in it).
func BenchmarkSmallFile(b *testing.B) {
	type variant struct {
		name        string
		journal     bool
		hold, delay time.Duration
	}
	for _, vr := range []variant{
		{name: "none", hold: 40 * time.Millisecond},
		{name: "journal", journal: true, hold: 40 * time.Millisecond, delay: 20 * time.Millisecond},
		{name: "journal/uploaded-first", journal: true, hold: 20 * time.Millisecond, delay: 200 * time.Millisecond},
	} {
		b.Run(vr.name, func(b *testing.B) {
			d, err := staging.OpenDir(b.TempDir()+"/staging", testSecret)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			var j *Journal
			if vr.journal {
				j, _ = openTest(b, b.TempDir(), Options{SyncDelay: vr.delay})
			}
			type live struct {
				f  *staging.File
				id ID
				at time.Time
			}
			var queue []live
			finish := func(l live) {
				if _, err := io.Copy(io.Discard, l.f.NewReader()); err != nil {
					b.Fatal(err)
				}
				if err := l.f.Remove(); err != nil {
					b.Fatal(err)
				}
				if j != nil {
					if err := j.Done(l.id); err != nil {
						b.Fatal(err)
					}
				}
			}
			buf := make([]byte, 4096)
			meta := []byte(`{"path":"/some/dir/file-0000","mode":420,"uid":0,"gid":0,"mtime_ns":1700000000000000000}`)
			files := 0
			cpu0 := cpuTime()
			for b.Loop() {
				f, err := d.Create(meta)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.WriteAt(buf, 0); err != nil {
					b.Fatal(err)
				}
				v, err := f.Commit()
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				l := live{f: f, at: now}
				if j != nil {
					if l.id, err = j.Append(Entry{Staging: Staging(v), Blob: meta, Sync: f.Sync}); err != nil {
						b.Fatal(err)
					}
				}
				queue = append(queue, l)
				for len(queue) > 0 && (now.Sub(queue[0].at) > vr.hold || len(queue) > 8192) {
					finish(queue[0])
					queue = queue[1:]
				}
				files++
			}
			for _, l := range queue {
				finish(l)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(files), "cpu-us/file")
			if j != nil {
				s := j.Stats()
				b.ReportMetric(float64(s.StagingSyncs)/float64(files), "fsyncs/file")
				b.ReportMetric(float64(s.Appends)/float64(max(s.Batches, 1)), "files/batch")
			}
		})
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
