package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	cofferfs "github.com/cofferfs/coffer/fs"
	"github.com/cofferfs/coffer/metrics"
)

// mountMemoryLimit is the Go runtime's soft memory limit for a mount
// (GOMEMLIMIT overrides it): the GC works harder near it instead of
// letting the heap double.
const mountMemoryLimit = 256 << 20

// mountFlags are the flags of `coffer mount` beyond store and key flags.
type mountFlags struct {
	cacheDir          string
	cacheSize         byteSize
	partSize          byteSize
	writebackDelay    time.Duration
	metadataTTL       time.Duration
	retryBudget       time.Duration
	uploadConcurrency int
	allowOther        bool
	readOnly          bool
	writebackCache    bool
	daemon            bool
	logFile           string
	metricsAddr       string
	metricsRemote     bool
	writers           string
	writersPolicy     cofferfs.WritersPolicy
}

func newMountCommand(e *env) *cobra.Command {
	var (
		vf volumeFlags
		mf = mountFlags{
			cacheSize:         cofferfs.DefaultCacheSize,
			partSize:          cofferfs.DefaultPartSize,
			writebackDelay:    cofferfs.DefaultWritebackDelay,
			metadataTTL:       cofferfs.DefaultMetadataTTL,
			retryBudget:       cofferfs.DefaultRetryBudget,
			uploadConcurrency: cofferfs.DefaultUploadConcurrency,
		}
	)
	cmd := &cobra.Command{
		Use:   "mount [flags] MOUNTPOINT",
		Short: "Mount a coffer volume at MOUNTPOINT",
		Long: `Mount a coffer volume at MOUNTPOINT (an existing directory).

In the foreground (the default) coffer serves the mount until SIGINT
(Ctrl-C), SIGTERM or "coffer unmount MOUNTPOINT", then uploads what is
still pending, unmounts and exits. With --daemon it returns as soon as the
mount is ready and keeps serving it in the background.

Closed files are uploaded after --writeback-delay. Until then they are
kept in the upload journal of the cache dir: if the mount process dies,
the next mount with the same cache dir uploads them first and says how
many. "coffer unmount" and Ctrl-C wait for every upload and fail, naming
the files, when one could not be stored (they stay journalled).

With --key-file naming a writer credential (coffer key export-writer) the
mount is write-only: new files, directories and symbolic links inside the
credential's scope, and nothing else: reading, changing or removing
anything this mount did not write is EACCES (names stay visible).`,
		Example: `  coffer mount ~/vault
  coffer mount --store s3://bucket/vol --key-file ~/vol.key --daemon ~/vault
  coffer mount --store s3://bucket/vol --key-file host1.writer /mnt/backup`,
		Args: oneArg("MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := &mounter{e: e, vf: &vf, mf: &mf, logLevel: logLevel(cmd.Flags())}
			return m.run(cmd.Context(), args[0])
		},
	}
	f := cmd.Flags()
	vf.writerOK = true
	vf.register(f)
	f.StringVar(&mf.cacheDir, "cache-dir", "", "directory for everything this mount writes locally: block cache, staging (default $XDG_CACHE_HOME/coffer/VOLUME-ID; with --encryption none, none-HASH of the store and volume ID)")
	f.Var(&mf.cacheSize, "cache-size", "disk block cache bound")
	f.Var(&mf.partSize, "part-size", "multipart upload part size (at least 5MiB on S3)")
	f.DurationVar(&mf.writebackDelay, "writeback-delay", mf.writebackDelay, "how long a closed file waits before upload (0: at once)")
	f.DurationVar(&mf.metadataTTL, "metadata-ttl", mf.metadataTTL, "how long attributes and listings are trusted (0: not cached)")
	f.DurationVar(&mf.retryBudget, "retry-budget", mf.retryBudget, "how long an upload that is waited for (fsync, unmount) retries a store that keeps failing before it fails; every store request also ends within it (shorter budgets shorten the stall timeout of each request)")
	f.IntVar(&mf.uploadConcurrency, "upload-concurrency", mf.uploadConcurrency, "concurrent uploads and parts")
	f.BoolVar(&mf.allowOther, "allow-other", false, "let other users access the mount (needs user_allow_other in /etc/fuse.conf when not root)")
	f.BoolVar(&mf.readOnly, "read-only", false, "mount read-only")
	f.BoolVar(&mf.writebackCache, "writeback-cache", false, "kernel writeback cache: faster small writes, but changes by other clients are not seen while mounted and O_APPEND is not atomic across clients")
	f.BoolVar(&mf.daemon, "daemon", false, "serve the mount in the background; return once it is ready")
	f.StringVar(&mf.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0: any free port); coffer stats MOUNTPOINT prints them")
	f.BoolVar(&mf.metricsRemote, "metrics-allow-remote", false, "allow a --metrics-addr that is not loopback (whoever reaches it sees the mount's activity)")
	f.StringVar(&mf.writers, "writers", string(cofferfs.WritersRead), "files writer keys stored: read (after checking their writer, session and scope; xattr coffer.origin names it) or refuse (hidden)")
	f.StringVar(&mf.logFile, "log-file", "", "append logs to this file (default: stderr; with --daemon, coffer.log in the cache dir)")
	return cmd
}

// mounter runs one `coffer mount`.
type mounter struct {
	e        *env
	vf       *volumeFlags
	mf       *mountFlags
	logLevel string
	log      *slog.Logger
}

// mountPlan is everything resolved from flags before any network I/O.
type mountPlan struct {
	mountpoint string
	*volumePlan
}

func (m *mounter) run(ctx context.Context, mountpoint string) error {
	var rep *readyReporter
	if fd, child := daemonChildFD(m.e); child && m.mf.daemon {
		rep = newReadyReporter(fd)
	}
	err := m.mount(ctx, mountpoint, rep)
	if rep != nil {
		rep.failed(err) // a no-op once the mount was ready
	}
	return err
}

func (m *mounter) mount(ctx context.Context, mountpoint string, rep *readyReporter) error {
	var err error
	m.log, err = newLogger(m.e.stderr, m.logLevel)
	if err != nil {
		return err
	}
	plan, err := m.plan(mountpoint)
	if err != nil {
		return err
	}
	if err := checkFUSE(); err != nil {
		return err
	}
	if m.mf.daemon && rep == nil {
		return startDaemon(ctx, plan.mountpoint, m.e.stderr)
	}
	return m.serve(ctx, plan, rep)
}

// plan checks the flags, the mountpoint and the keys: every failure that
// needs no network, reported before a daemon is started.
func (m *mounter) plan(mountpoint string) (*mountPlan, error) {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	fi, err := os.Stat(mp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("mountpoint %s does not exist: create it with mkdir -p %s", mp, mp)
	case err != nil:
		return nil, fmt.Errorf("mountpoint %s: %w; if a coffer mount died there, run coffer unmount %s", mp, err, mp)
	case !fi.IsDir():
		return nil, fmt.Errorf("mountpoint %s is not a directory", mp)
	}
	if mounted, err := isMounted(mp); err != nil {
		return nil, err
	} else if mounted {
		return nil, fmt.Errorf("%s is already a mount point: unmount it first (coffer unmount %s)", mp, mp)
	}
	vp, err := m.vf.plan(m.e, m.mf.check)
	if err != nil {
		return nil, err
	}
	return &mountPlan{mountpoint: mp, volumePlan: vp}, nil
}

// check validates the mount flags that need no network.
func (mf *mountFlags) check() error {
	if mf.uploadConcurrency < 1 {
		return usagef("--upload-concurrency must be at least 1")
	}
	if mf.partSize < 5<<20 {
		return usagef("--part-size must be at least 5MiB (the S3 minimum)")
	}
	if mf.metricsAddr != "" {
		if err := metrics.CheckAddr(mf.metricsAddr, mf.metricsRemote); err != nil {
			return &usageError{err: fmt.Errorf("--metrics-addr: %w", err)}
		}
	} else if mf.metricsRemote {
		return usagef("--metrics-allow-remote needs --metrics-addr")
	}
	if mf.retryBudget < 100*time.Millisecond {
		return usagef("--retry-budget must be at least 100ms")
	}
	var err error
	if mf.writersPolicy, err = cofferfs.ParseWritersPolicy(mf.writers); err != nil {
		return &usageError{err: err}
	}
	return nil
}

// storeRetry is the S3 retry settings of a retry budget: the defaults
// (whose RetryBudget is the default budget) for a budget as long or
// longer, where fs retries whole uploads for the rest; for a shorter one a
// stall timeout and backoff cap of a twelfth of it, so one request (6
// attempts, 5 waits) ends within the budget too.
func storeRetry(budget time.Duration) (stall, maxBackoff time.Duration) {
	if budget >= cofferfs.DefaultRetryBudget {
		return 0, 0
	}
	return budget / 12, budget / 12
}

// serve opens the volume, mounts it, and serves it until unmounted. rep,
// when set, is told once the mount is ready (daemon child).
func (m *mounter) serve(ctx context.Context, p *mountPlan, rep *readyReporter) error {
	// Catch SIGINT and SIGTERM from here on: one that arrives while the
	// mount is being set up unmounts it as soon as it is ready.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// Background uploads must outlive the signal that ends the mount.
	volCtx := context.WithoutCancel(ctx)
	if os.Getenv("GOMEMLIMIT") == "" {
		// Measured: a cold 2 GiB read peaks at 320 MB RSS without a
		// limit, 270 MB with this one, at the same speed.
		debug.SetMemoryLimit(mountMemoryLimit)
	}
	p.store.StallTimeout, p.store.MaxBackoff = storeRetry(m.mf.retryBudget)
	store, cfg, err := p.openStore(ctx, storeConcurrency(m.mf.uploadConcurrency))
	if err != nil {
		return err
	}
	defer store.Close()
	var met *metrics.Metrics
	if m.mf.metricsAddr != "" {
		met = metrics.New()
		store = met.Store(store)
	}

	cacheDir := m.mf.cacheDir
	if cacheDir == "" {
		root, err := m.e.defaultCacheRoot()
		if err != nil {
			return err
		}
		cacheDir = filepath.Join(root, defaultCacheName(p.encryption, p.url, m.vf.store.effectiveEndpoint(m.e), cfg))
		if p.writer != nil {
			// Its own: a writer's local secret is not the volume's.
			cacheDir += "-writer-" + p.writer.Writer().String()
		}
	}
	if cacheDir, err = filepath.Abs(cacheDir); err != nil {
		return fmt.Errorf("--cache-dir: %w", err)
	}
	if err := ensureDir(cacheDir, 0o700); err != nil {
		return err
	}
	if rep != nil || m.mf.logFile != "" {
		closeLog, err := m.redirectLog(cacheDir, rep != nil)
		if err != nil {
			return err
		}
		defer closeLog()
	}

	namesOnTerminal := m.logLevel == "debug" && rep == nil && !m.mf.daemon && m.mf.logFile == ""
	vol, err := p.openVolume(volCtx, store, cfg, cofferfs.Options{
		CacheDir:          cacheDir,
		CacheSize:         int64(m.mf.cacheSize),
		WritebackDelay:    nonZero(m.mf.writebackDelay),
		UploadConcurrency: m.mf.uploadConcurrency,
		PartSize:          int64(m.mf.partSize),
		MetadataTTL:       nonZero(m.mf.metadataTTL),
		RetryBudget:       m.mf.retryBudget,
		ReadOnly:          m.mf.readOnly,
		Writers:           m.mf.writersPolicy,
		UID:               uint32(os.Getuid()),
		GID:               uint32(os.Getgid()),
		Logger:            m.log,
		// Plaintext names only on the terminal, never in a log file
		// coffer writes (DESIGN.md §5).
		LogPlaintextNames: namesOnTerminal,
	})
	if err != nil {
		return err
	}
	metricsAddr := ""
	if met != nil {
		met.Watch(vol)
		srv, err := met.Serve(m.mf.metricsAddr)
		if err != nil {
			vol.Close(volCtx)
			return fmt.Errorf("--metrics-addr %s: %w", m.mf.metricsAddr, err)
		}
		defer srv.Close()
		metricsAddr = srv.Addr()
	}
	if note := recoveryNote(vol.Recovered()); note != "" {
		if rep != nil {
			rep.note(note)
		} else {
			fmt.Fprintln(m.e.stderr, "coffer: "+note)
		}
	}
	mnt, err := mountFUSE(vol, p.mountpoint, fuseOptions{
		allowOther: m.mf.allowOther,
		readOnly:   m.mf.readOnly,
		writeback:  m.mf.writebackCache,
		fsName:     p.url,
		debug:      namesOnTerminal, // go-fuse's trace shows names and data
		logger:     m.log,
	})
	if err != nil {
		vol.Close(volCtx)
		return fmt.Errorf("mounting at %s: %w", p.mountpoint, err)
	}
	removePid, err := m.e.writePidFile(p.mountpoint)
	if err != nil {
		mnt.Unmount()
		vol.Close(volCtx)
		return err
	}
	defer removePid()
	removeState, err := m.e.writeMountState(mountState{PID: os.Getpid(), Mountpoint: p.mountpoint, Store: p.url, CacheDir: cacheDir, MetricsAddr: metricsAddr})
	if err != nil {
		mnt.Unmount()
		vol.Close(volCtx)
		return err
	}
	defer removeState()
	// The socket sits in the run directory writePidFile checked private.
	ctl, err := listenControl(m.e.controlSocket(p.mountpoint))
	if err != nil {
		m.log.Warn("coffer unmount will not learn how this mount ends", "err", err)
	} else {
		defer ctl.close()
	}

	m.log.Info("mounted", "store", p.url, "mountpoint", p.mountpoint, "encryption", p.encryption, "sse", p.sse.Mode.Name(), "cache_dir", cacheDir, "metrics", metricsAddr)
	if s := vol.Writer(); s != nil {
		m.log.Info("write-only", "writer", s.Origin().Writer.String(), "epoch", s.Origin().Epoch.String(), "scope", s.Credential().Scope())
	}
	if rep != nil {
		rep.ready()
		os.Chdir("/")
	} else {
		fmt.Fprintf(m.e.stderr, "coffer: %s mounted at %s; press Ctrl-C (or run coffer unmount %s) to unmount\n", p.url, p.mountpoint, p.mountpoint)
	}

	m.waitUnmounted(mnt, p.mountpoint, sigs)
	return m.finish(volCtx, vol, ctl, cacheDir, rep != nil)
}

// recoveryNote is the line telling what recovery did at mount, or "".
func recoveryNote(r cofferfs.RecoveryReport) string {
	var parts []string
	if r.Recovered > 0 || r.Pending > 0 {
		s := fmt.Sprintf("recovered %d files closed but not uploaded by the last mount of this cache dir", r.Recovered)
		if r.Conflicts > 0 {
			s += fmt.Sprintf(" (%d as conflict copies)", r.Conflicts)
		}
		if r.Pending > 0 {
			s += fmt.Sprintf("; %d still to upload (retried in the background)", r.Pending)
		}
		parts = append(parts, s)
	}
	if len(r.SetAside) > 0 {
		parts = append(parts, fmt.Sprintf("%d staging files that cannot be uploaded as whole are kept in %s for coffer fsck --cache-dir --repair", len(r.SetAside), r.LostFound))
	}
	return strings.Join(parts, "; ")
}

// waitUnmounted blocks until the mount ends: unmounted from outside, or by
// coffer itself on SIGINT/SIGTERM. A busy mount stays mounted and the user
// is told what to do.
func (m *mounter) waitUnmounted(mnt fuseMount, mountpoint string, sigs <-chan os.Signal) {
	done := make(chan struct{})
	go func() {
		mnt.Wait()
		close(done)
	}()
	for {
		select {
		case <-done:
			return
		case s := <-sigs:
			m.log.Info("unmounting", "signal", s.String())
			if err := mnt.Unmount(); err != nil {
				m.log.Error("cannot unmount: close the files and shells using it, then press Ctrl-C again or run coffer unmount", "mountpoint", mountpoint, "err", err)
			}
		}
	}
}

// finish uploads everything still pending, with progress on stderr, then
// closes the volume and reports how it went to every coffer unmount
// waiting on the control socket. Files whose final upload failed, or that
// a second signal left pending, stay journalled for the next mount; the
// error names them (a daemon, whose errors go to its log file, gives
// only their count: no plaintext name on disk).
func (m *mounter) finish(ctx context.Context, vol *cofferfs.Volume, ctl *controlServer, cacheDir string, daemon bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := newFlushProgress(m.e.stderr, m.log)
	err := vol.Flush(ctx, progress.update)
	progress.done()
	rep := &finalReport{CacheDir: cacheDir}
	for _, c := range vol.Conflicts() {
		rep.Conflicts = append(rep.Conflicts, reportedConflict{Path: c.Path, Copy: c.Copy})
	}
	interrupted := ctx.Err() != nil
	var fe *cofferfs.FlushError
	switch {
	case interrupted:
		for _, p := range vol.Pending() {
			rep.Failed = append(rep.Failed, reportedFile{Path: p, Error: "interrupted"})
		}
	case errors.As(err, &fe):
		for _, f := range fe.Failed {
			rep.Failed = append(rep.Failed, reportedFile{Path: f.Path, Error: uploadCause(f.Err)})
		}
	case err != nil:
		rep.Err = err.Error()
	}
	if cerr := vol.CloseKeepingPending(); cerr != nil && rep.Err == "" {
		rep.Err = "closing the volume: " + cerr.Error()
	}
	if ctl != nil {
		ctl.finish(rep)
	}
	if !daemon {
		for _, l := range rep.conflictLines() {
			fmt.Fprintln(m.e.stderr, l)
		}
	} else if n := len(rep.Conflicts); n > 0 {
		m.log.Warn("conflict copies were stored during this mount (coffer unmount names them)", "files", n)
	}
	switch {
	case len(rep.Failed) > 0:
		ferr := rep.failedError(!daemon)
		if interrupted {
			ferr = fmt.Errorf("interrupted while uploading pending files: %w", ferr)
		}
		m.log.Error("unmounted; some files were not uploaded", "files", len(rep.Failed), "journal", cacheDir)
		return ferr
	case rep.Err != "":
		return errors.New(rep.Err)
	}
	m.log.Info("unmounted; all files uploaded")
	return nil
}

// uploadCause is a failed upload's error without the path (which the
// report gives beside it).
func uploadCause(err error) string {
	var pe *cofferfs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// redirectLog sends logs (and, in a daemon child, the Go runtime's own
// stderr) to --log-file or to coffer.log in the cache dir.
func (m *mounter) redirectLog(cacheDir string, daemon bool) (func(), error) {
	path := m.mf.logFile
	if path == "" {
		path = filepath.Join(cacheDir, "coffer.log")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log file: %w", err)
	}
	if daemon {
		syscall.Dup2(int(f.Fd()), 2)
	}
	log, err := newLogger(f, m.logLevel)
	if err != nil {
		f.Close()
		return nil, err
	}
	m.log = log
	return func() { f.Close() }, nil
}

// nonZero maps a user's 0 ("none") to the fs convention (negative: none;
// 0: default).
func nonZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// flushProgress shows how many files are still being uploaded: a bar on a
// terminal, a line every few seconds otherwise.
type flushProgress struct {
	w       io.Writer
	log     *slog.Logger
	bar     progressBar
	total   int
	last    time.Time
	started bool
}

func newFlushProgress(w io.Writer, log *slog.Logger) *flushProgress {
	return &flushProgress{w: w, log: log}
}

func (p *flushProgress) update(pending int) {
	if !p.started {
		if pending == 0 {
			return
		}
		p.started, p.total, p.last = true, pending, time.Now()
		p.bar = newProgressBar(p.w, pending, "uploading pending files")
		p.log.Info("uploading pending files", "files", pending)
	}
	if pending > p.total {
		p.total = pending
		p.bar.setTotal(pending)
	}
	p.bar.set(p.total - pending)
	if p.bar.plain() && time.Since(p.last) > 3*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "coffer: %d of %d pending files uploaded\n", p.total-pending, p.total)
	}
}

func (p *flushProgress) done() {
	if p.started {
		p.bar.finish()
	}
}

// checkFUSE reports what is missing for a FUSE mount, before the store is
// contacted: the device, and for other users than root fusermount3 and
// access to the device.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing: load the fuse kernel module (modprobe fuse), or run where FUSE is available")
	}
	if os.Geteuid() == 0 {
		return nil
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return fmt.Errorf("fusermount3 not found: install the fuse3 package (scripts/deps.sh)")
	}
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("no access to /dev/fuse (%v): it must be readable and writable by this user (usually mode 0666)", err)
	}
	return nil
}
