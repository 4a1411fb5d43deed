package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/cofferfs/coffer/blobstore"
	cfs "github.com/cofferfs/coffer/fs"
)

// server is the S3 server every system talks to.
type server struct {
	endpoint, accessKey, secretKey string
}

const region = "us-east-1"

func (srv server) createBucket(ctx context.Context, bucket string) error {
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(srv.endpoint),
		Region:       region,
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: srv.accessKey, SecretAccessKey: srv.secretKey}, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// measureSDK measures the raw SDK baselines, through coffer's S3 backend
// (the AWS SDK, unsigned payload on loopback), into figs: one PutObject
// of the big file's size (sdk_put) and the same bytes as a parallel
// multipart upload with coffer's default part size and concurrency
// (sdk_multipart); then one
// GetObject of the object put (sdk_get) and the same object as ranged
// GETs of cfg.rangeSize, cfg.rangeConc in flight (sdk_ranged_get).
// coffer stores a big file as a multipart upload, and a server may
// complete those more slowly than a single PUT (versitygw copies every
// part into the final object), so the multipart write is the ceiling
// coffer can reach on that server; coffer reads ahead with parallel
// ranged GETs, so the ranged download is its read ceiling. Only the
// baselines of cfg.phases run (the PUT also serves the reads).
func measureSDK(ctx context.Context, srv server, cfg config, figs *[numSystems]results) error {
	size := cfg.size
	bucket := fmt.Sprintf("bench-sdk-%d", time.Now().UnixNano()%1e9)
	if err := srv.createBucket(ctx, bucket); err != nil {
		return err
	}
	store, err := blobstore.NewS3(ctx, bucket, "", blobstore.Options{
		Endpoint: srv.endpoint, Region: region, PathStyle: true,
		AccessKeyID: srv.accessKey, SecretAccessKey: srv.secretKey,
		Concurrency: max(cfg.rangeConc, cfs.DefaultUploadConcurrency),
	})
	if err != nil {
		return err
	}
	defer store.Close()

	if !cfg.phases.write && !cfg.phases.read {
		return nil
	}
	startPhase(cfg.prewarm)
	start := time.Now()
	if _, err := store.Put(ctx, "big", io.LimitReader(zeros{}, size), size, blobstore.PutOptions{}); err != nil {
		return err
	}
	figs[sysSDKPut][writeMBs] = mbps(size, time.Since(start))

	if cfg.phases.write {
		startPhase(cfg.prewarm)
		start = time.Now()
		if _, err := blobstore.Upload(ctx, store, "big-multipart", io.LimitReader(zeros{}, size), size, blobstore.UploadOptions{
			PartSize: cfs.DefaultPartSize, Concurrency: cfs.DefaultUploadConcurrency,
		}); err != nil {
			return fmt.Errorf("multipart upload: %w", err)
		}
		figs[sysSDKMultipart][writeMBs] = mbps(size, time.Since(start))
		if err := store.Delete(ctx, "big-multipart"); err != nil {
			return err
		}
	}
	if !cfg.phases.read {
		return nil
	}

	startPhase(cfg.prewarm)
	start = time.Now()
	if err := getRange(ctx, store, "big", 0, -1, size); err != nil {
		return err
	}
	figs[sysSDKGet][readMBs] = mbps(size, time.Since(start))

	startPhase(cfg.prewarm)
	start = time.Now()
	if err := rangedGet(ctx, store, "big", size, cfg.rangeSize, cfg.rangeConc); err != nil {
		return fmt.Errorf("ranged get: %w", err)
	}
	figs[sysSDKRangedGet][readMBs] = mbps(size, time.Since(start))
	return nil
}

// rangedGet reads the size bytes of key as ranged GETs of rangeSize,
// conc of them in flight, and checks that each returns its whole range.
func rangedGet(ctx context.Context, store *blobstore.S3, key string, size, rangeSize int64, conc int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for off := int64(0); off < size; off += rangeSize {
		g.Go(func() error {
			n := min(rangeSize, size-off)
			return getRange(gctx, store, key, off, n, n)
		})
	}
	return g.Wait()
}

// getRange reads length bytes of key from off (-1: to the end) in 1 MiB
// reads and checks that want bytes came.
func getRange(ctx context.Context, store *blobstore.S3, key string, off, length, want int64) error {
	rc, _, err := store.Get(ctx, key, blobstore.GetOptions{Offset: off, Length: length})
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.CopyBuffer(io.Discard, rc, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("get %s at %d returned %d bytes, want %d", key, off, n, want)
	}
	return nil
}

// mounter is one filesystem under test.
type mounter interface {
	system() system
	// missing says why the system cannot run here ("" when it can).
	missing() string
	// setup prepares a volume in bucket, keeping local files under dir.
	setup(ctx context.Context, srv server, bucket, dir string) error
	// mount mounts the volume afresh, with an empty cache, and returns
	// the mountpoint and the pid of the process serving it.
	mount(ctx context.Context) (mnt string, pid int, err error)
	// unmount returns once everything written is stored and the mount
	// process has exited.
	unmount(ctx context.Context) error
}

// measureMount runs the workloads of cfg.phases on m, each phase on a
// fresh mount.
func measureMount(ctx context.Context, m mounter, cfg config) (results, error) {
	var r results
	if cfg.phases.write {
		if err := measureWrite(ctx, m, cfg, &r); err != nil {
			return r, err
		}
	}
	if cfg.phases.read {
		if err := measureRead(ctx, m, cfg, &r); err != nil {
			return r, err
		}
	}
	if cfg.phases.small {
		if err := measureSmall(ctx, m, cfg, &r); err != nil {
			return r, err
		}
	}
	if cfg.phases.rss {
		return r, measureRSS(ctx, m, cfg, &r)
	}
	return r, nil
}

// measureWrite is the write phase: the big file written until stored.
func measureWrite(ctx context.Context, m mounter, cfg config, r *results) error {
	logf("%s: write %s", m.system().name(), sizeString(cfg.size))
	p, err := phase(ctx, m, cfg, true, func(mnt string) error {
		return writeFile(ctx, filepath.Join(mnt, "big"), cfg.size)
	})
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	r[writeMBs] = mbps(cfg.size, p.took)
	return nil
}

// measureRead is the cold read of the big file the write phase wrote.
func measureRead(ctx context.Context, m mounter, cfg config, r *results) error {
	logf("%s: cold read", m.system().name())
	p, err := phase(ctx, m, cfg, false, func(mnt string) error {
		return readFile(ctx, filepath.Join(mnt, "big"), cfg.size)
	})
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	r[readMBs] = mbps(cfg.size, p.took)
	return nil
}

// measureSmall creates the small files until stored, then lists them
// and reads them all cold.
func measureSmall(ctx context.Context, m mounter, cfg config, r *results) error {
	logf("%s: %d small files", m.system().name(), cfg.files)
	p, err := phase(ctx, m, cfg, true, func(mnt string) error {
		return createFiles(ctx, filepath.Join(mnt, "small"), cfg.files, cfg.smallSize)
	})
	if err != nil {
		return fmt.Errorf("small files: %w", err)
	}
	r[createSecs] = p.took.Seconds()

	if p, err = phase(ctx, m, cfg, false, func(mnt string) error {
		return listLong(ctx, filepath.Join(mnt, "small"), cfg.files)
	}); err != nil {
		return fmt.Errorf("ls -l: %w", err)
	}
	r[lsSecs] = p.took.Seconds()

	if p, err = phase(ctx, m, cfg, false, func(mnt string) error {
		return readFiles(ctx, filepath.Join(mnt, "small"), cfg.files, cfg.smallSize)
	}); err != nil {
		return fmt.Errorf("read small files: %w", err)
	}
	r[readAllSecs] = p.took.Seconds()
	return nil
}

// measureRSS watches the peak RSS of the mount storing the RSS file.
func measureRSS(ctx context.Context, m mounter, cfg config, r *results) error {
	logf("%s: peak RSS writing %s", m.system().name(), sizeString(cfg.rssSize))
	p, err := phase(ctx, m, cfg, true, func(mnt string) error {
		return writeFile(ctx, filepath.Join(mnt, "rss"), cfg.rssSize)
	})
	if err != nil {
		return fmt.Errorf("RSS run: %w", err)
	}
	r[rssMiB] = float64(p.peakRSS) / (1 << 20)
	return nil
}

// phaseResult is how long a phase's work took and the mount process's
// peak RSS meanwhile.
type phaseResult struct {
	took    time.Duration
	peakRSS int64
}

// phase mounts m afresh (after startPhase), runs work on the mountpoint
// and unmounts. The time includes the unmount when untilStored: that is
// when the data is safe in the store.
func phase(ctx context.Context, m mounter, cfg config, untilStored bool, work func(mnt string) error) (phaseResult, error) {
	var p phaseResult
	if err := ctx.Err(); err != nil {
		return p, err
	}
	startPhase(cfg.prewarm)
	mnt, pid, err := m.mount(ctx)
	if err != nil {
		return p, fmt.Errorf("mount: %w", err)
	}
	rss := watchRSS(pid)
	start := time.Now()
	err = work(mnt)
	p.took = time.Since(start)
	// The unmount runs to its end even when ctx was cancelled (Ctrl-C):
	// a mount left behind would outlive the server.
	if uerr := m.unmount(context.WithoutCancel(ctx)); err == nil && uerr != nil {
		err = fmt.Errorf("unmount: %w", uerr)
	}
	if untilStored {
		p.took = time.Since(start)
	}
	p.peakRSS = rss()
	return p, err
}

// writeFile writes size zero bytes in 1 MiB writes (what dd bs=1M does),
// then fsyncs and closes.
func writeFile(ctx context.Context, path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return f.Close()
}

// readFile reads path in 1 MiB reads and checks its length.
func readFile(ctx context.Context, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for ctx.Err() == nil {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("read %d bytes of %s, want %d", n, path, size)
	}
	return nil
}

// createFiles creates n files of size bytes in a new directory, one after
// another: create, write, close, as tar or cp do.
func createFiles(ctx context.Context, dir string, n int, size int64) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	data := bytes.Repeat([]byte("coffer bench\n"), int(size)/13+1)[:size]
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// listLong runs `ls -l dir` and checks that it lists n entries.
func listLong(ctx context.Context, dir string, n int) error {
	out, err := exec.CommandContext(ctx, "ls", "-l", dir).Output()
	if err != nil {
		return fmt.Errorf("ls -l: %w", err)
	}
	// The first line is "total N".
	if got := bytes.Count(out, []byte("\n")) - 1; got != n {
		return fmt.Errorf("ls -l listed %d entries, want %d", got, n)
	}
	return nil
}

// readFiles reads every file of dir, which must hold n files of size
// bytes.
func readFiles(ctx context.Context, dir string, n int, size int64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) != n {
		return fmt.Errorf("%d entries, want %d", len(entries), n)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if int64(len(b)) != size {
			return fmt.Errorf("%s: %d bytes, want %d", e.Name(), len(b), size)
		}
	}
	return nil
}

// watchRSS polls the VmHWM (peak resident set) of pid until the returned
// function is called, which returns the last value read: VmHWM only
// grows, and the process may have exited by then.
func watchRSS(pid int) func() int64 {
	stop, done := make(chan struct{}), make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := vmHWM(pid); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		return <-done
	}
}

func vmHWM(pid int) (int64, error) {
	return procBytes(fmt.Sprintf("/proc/%d/status", pid), "VmHWM")
}

// procBytes reads a "Field:   N kB" line of a /proc file such as
// /proc/meminfo or /proc/PID/status, in bytes.
func procBytes(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// startPhase puts the machine in the same state before every phase of
// every system, SDK baselines included:
//   - what earlier phases left dirty is written back (sync), so a phase
//     does not pay for its predecessor's data (seen on versitygw: three
//     1 GiB multipart uploads in a row, their completions took 0.3, 0.5
//     and 1.3 s as the dirty pages of the ones before piled up past the
//     kernel's background writeback threshold);
//   - the page cache is dropped (when root), so reads reach the mount and
//     the server's disk, and no phase starts with another's pages cached;
//   - prewarm bytes of anonymous memory are touched and freed (prewarm).
func startPhase(prewarmBytes int64) {
	syscall.Sync()
	if os.Geteuid() == 0 {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
			logf("drop caches: %v", err)
		}
	}
	prewarm(prewarmBytes)
}

// prewarm touches n bytes of fresh anonymous memory and frees it, so the
// phase that follows finds that much memory its kernel can hand out
// cheaply. On a VM whose balloon reports free memory to the host (this
// bench's Firecracker machines: virtio-balloon free page reporting), a
// page freed a few seconds ago has gone back to the host, and the first
// touch of it costs the guest a host fault: there, 2 GiB of clean page
// cache left by one phase made versitygw spend 4.3-4.5 s of CPU instead
// of 2.6-2.9 s storing the next 1 GiB (README, "Benchmarks"). Which
// system pays, and how much, then depends on what ran before it and on
// the host; real machines pay nothing of the kind.
func prewarm(n int64) {
	if n <= 0 {
		return
	}
	avail, err := procBytes("/proc/meminfo", "MemAvailable")
	if err != nil {
		logf("prewarm: %v", err)
		return
	}
	n = min(n, avail/4) &^ (1<<20 - 1)
	if n <= 0 {
		return
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		logf("prewarm: %v", err)
		return
	}
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
	if err := syscall.Munmap(b); err != nil {
		logf("prewarm: %v", err)
	}
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
