package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	cfs "github.com/cofferfs/coffer/fs"
)

// The SDK's ranged GET baseline reads the big file as 32 MiB ranges, 8
// in flight: in three grids of cold 1 GiB reads from versitygw on
// loopback here (4-64 MiB ranges, 2-16 in flight, load 3-15), that had
// the best median in the least loaded one (1263 MB/s; one GET 389);
// README's Benchmarks has the figures.
const (
	defaultRangeSize = "32MiB"
	defaultRangeConc = 8
)

// config is what one run measures; flags default to BENCH_* variables.
type config struct {
	size      int64 // the big file
	files     int   // number of small files
	smallSize int64 // size of each small file
	rssSize   int64 // the file written while the mount's RSS is watched
	peers     []system
	rangeSize int64 // the SDK's ranged GET baseline: bytes per GET
	rangeConc int   // and GETs in flight
	cofferBin string
	serverBin string // the versitygw binary, for its version
	jsonPath  string // where the report goes
	svgPath   string // and its chart
	chartOnly bool   // only redraw the chart (and print the table) from jsonPath
	cipher    bool   // also run the cipher envelope/AES-GCM ratio benchmark
	phases    phases // the workloads to run
	prewarm   int64  // bytes of memory touched and freed before each phase (startPhase)

	endpoint, accessKey, secretKey string
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	do := run
	if cfg.chartOnly {
		do = redraw
	}
	if err := do(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string) (config, error) {
	var cfg config
	flags := flag.NewFlagSet("bench", flag.ContinueOnError)
	size := flags.String("size", envOr("BENCH_SIZE", "1GiB"), "big file size (env BENCH_SIZE)")
	flags.IntVar(&cfg.files, "files", atoiOr(os.Getenv("BENCH_FILES"), 2000), "number of small files (env BENCH_FILES; DESIGN's target is 10000)")
	small := flags.String("small-size", envOr("BENCH_SMALL_SIZE", "4KiB"), "size of each small file (env BENCH_SMALL_SIZE)")
	rss := flags.String("rss-size", envOr("BENCH_RSS_SIZE", "2GiB"), "file written while watching peak RSS (env BENCH_RSS_SIZE; DESIGN's target is 4GiB)")
	peers := flags.String("peers", envOr("BENCH_PEERS", "auto"), "auto (those on PATH), none, or a list: rclone,s3fs (env BENCH_PEERS)")
	rangeSize := flags.String("range-size", envOr("BENCH_RANGE_SIZE", defaultRangeSize), "the SDK's ranged GET baseline: bytes per GET (env BENCH_RANGE_SIZE)")
	flags.IntVar(&cfg.rangeConc, "range-conc", atoiOr(os.Getenv("BENCH_RANGE_CONC"), defaultRangeConc), "the SDK's ranged GET baseline: GETs in flight (env BENCH_RANGE_CONC)")
	flags.StringVar(&cfg.cofferBin, "coffer", "bin/coffer", "the coffer binary")
	flags.StringVar(&cfg.serverBin, "versitygw", "", "the versitygw binary serving COFFER_TEST_VERSITYGW_ENDPOINT, to record its version")
	flags.StringVar(&cfg.jsonPath, "json", envOr("BENCH_JSON", "bench/results.json"), "write the figures as JSON here (env BENCH_JSON; relative to the working directory, the repo root under make)")
	flags.StringVar(&cfg.svgPath, "svg", os.Getenv("BENCH_SVG"), "draw the chart here (env BENCH_SVG; default: the JSON's path with .svg)")
	flags.BoolVar(&cfg.chartOnly, "chart-only", false, "measure nothing: read -json, print its table and redraw -svg (no server needed)")
	flags.BoolVar(&cfg.cipher, "cipher", true, "run the cipher envelope/AES-GCM ratio benchmark (go test) too")
	prewarm := flags.String("prewarm", envOr("BENCH_PREWARM", "4GiB"), "memory touched and freed before each phase, at most a quarter of MemAvailable; 0: none (env BENCH_PREWARM; see startPhase)")
	phaseList := flags.String("phases", envOr("BENCH_PHASES", "all"), "the workloads to run: all, or a list of write,read,small,rss (read needs write; env BENCH_PHASES)")
	if err := flags.Parse(args); err != nil {
		return cfg, err
	}
	var err error
	for _, s := range []struct {
		dst  *int64
		text string
	}{{&cfg.size, *size}, {&cfg.smallSize, *small}, {&cfg.rssSize, *rss}, {&cfg.rangeSize, *rangeSize}, {&cfg.prewarm, *prewarm}} {
		if *s.dst, err = parseSize(s.text); err != nil {
			return cfg, err
		}
	}
	if cfg.files < 1 {
		return cfg, fmt.Errorf("-files %d: need at least 1", cfg.files)
	}
	if cfg.rangeConc < 1 {
		return cfg, fmt.Errorf("-range-conc %d: need at least 1", cfg.rangeConc)
	}
	if cfg.peers, err = parsePeers(*peers); err != nil {
		return cfg, err
	}
	if cfg.phases, err = parsePhases(*phaseList); err != nil {
		return cfg, err
	}
	if flags.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if cfg.svgPath == "" {
		cfg.svgPath = svgPathFor(cfg.jsonPath)
	}
	if cfg.chartOnly {
		return cfg, nil
	}
	if cfg.cofferBin, err = filepath.Abs(cfg.cofferBin); err != nil {
		return cfg, err
	}
	cfg.endpoint = os.Getenv("COFFER_TEST_VERSITYGW_ENDPOINT")
	cfg.accessKey = os.Getenv("COFFER_TEST_VERSITYGW_ACCESS_KEY")
	cfg.secretKey = os.Getenv("COFFER_TEST_VERSITYGW_SECRET_KEY")
	if cfg.endpoint == "" || cfg.accessKey == "" || cfg.secretKey == "" {
		return cfg, fmt.Errorf("COFFER_TEST_VERSITYGW_ENDPOINT/_ACCESS_KEY/_SECRET_KEY not set: run under scripts/with-servers.sh versitygw (make bench does)")
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config) error {
	work, err := os.MkdirTemp("", "coffer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	defer detachMounts(work) // after a failure: RemoveAll must not reach into a live mount
	srv := server{endpoint: cfg.endpoint, accessKey: cfg.accessKey, secretKey: cfg.secretKey}
	rep := newReport(cfg)
	start := time.Now()

	var figs [numSystems]results
	logf("raw SDK: put, multipart upload, get and ranged get (%s x %d) of %s", sizeString(cfg.rangeSize), cfg.rangeConc, sizeString(cfg.size))
	if err := measureSDK(ctx, srv, cfg, &figs); err != nil {
		return fmt.Errorf("raw SDK: %w", err)
	}

	systems := []mounter{&cofferMount{bin: cfg.cofferBin}}
	for _, p := range cfg.peers {
		systems = append(systems, newPeer(p))
	}
	for i, m := range systems {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := m.system()
		if why := m.missing(); why != "" {
			rep.Meta.Notes[s.key()] = why
			continue
		}
		if s != sysCoffer {
			rep.Meta.PeerVersions[s.key()] = peerVersion(s)
		}
		dir := filepath.Join(work, strconv.Itoa(i))
		bucket := fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano()%1e9)
		if err := srv.createBucket(ctx, bucket); err != nil {
			return err
		}
		// A phase that fails keeps the figures of the phases before it.
		if err := m.setup(ctx, srv, bucket, dir); err != nil {
			rep.Meta.Notes[s.key()] = "failed: " + err.Error()
		} else if figs[s], err = measureMount(ctx, m, cfg); err != nil {
			rep.Meta.Notes[s.key()] = "failed: " + err.Error()
		}
		if note := rep.Meta.Notes[s.key()]; s == sysCoffer && note != "" {
			return fmt.Errorf("coffer: %s", note)
		}
	}

	if cfg.cipher {
		logf("cipher: go test -bench EnvelopeRatio ./cipher/")
		if rep.Meta.Cipher, err = envelopeRatio(ctx); err != nil {
			logf("cipher benchmark: %v", err)
		}
	}
	rep.fill(&figs)
	rep.Meta.Load.End = loadAvg()
	rep.Meta.DurationS = math.Round(time.Since(start).Seconds())
	printTable(os.Stdout, rep)
	if err := writeReport(cfg.jsonPath, rep); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if err := writeChart(cfg.svgPath, rep); err != nil {
		return fmt.Errorf("draw the chart: %w", err)
	}
	logf("figures written to %s, chart to %s", cfg.jsonPath, cfg.svgPath)
	return nil
}

// redraw is -chart-only: the table and the chart of an earlier run's
// report.
func redraw(_ context.Context, cfg config) error {
	rep, err := readReport(cfg.jsonPath)
	if err != nil {
		return err
	}
	printTable(os.Stdout, rep)
	if err := writeChart(cfg.svgPath, rep); err != nil {
		return fmt.Errorf("draw the chart: %w", err)
	}
	logf("chart of %s written to %s", cfg.jsonPath, cfg.svgPath)
	return nil
}

// newReport starts the report of a run about to start: its meta, no
// figures yet.
func newReport(cfg config) *report {
	host, _ := os.Hostname()
	// scripts/with-servers.sh starts it with --keep-alive.
	server := "versitygw (keep-alive) on loopback"
	if v := serverVersion(cfg.serverBin); v != "" {
		server = "versitygw " + v + " (keep-alive) on loopback"
	}
	cold := "page cache dropped before each phase"
	if os.Geteuid() != 0 {
		cold = "not root: cold reads may hit the page cache"
	}
	if cfg.prewarm > 0 {
		cold += fmt.Sprintf("; %s of memory touched and freed before each phase", sizeString(cfg.prewarm))
	}
	return &report{Meta: meta{
		Date:           time.Now().UTC().Format(time.RFC3339),
		Host:           host,
		Cores:          runtime.NumCPU(),
		Load:           load{Start: loadAvg()},
		CofferRevision: buildRevision(cfg.cofferBin, cfg.jsonPath, cfg.svgPath),
		PeerVersions:   map[string]string{},
		Server:         server,
		ColdReads:      cold,
		Sizes:          sizes{BigFileBytes: cfg.size, SmallFiles: cfg.files, SmallFileBytes: cfg.smallSize, RSSFileBytes: cfg.rssSize},
		SDK: sdkSettings{
			PartSize: cfs.DefaultPartSize, UploadConcurrency: cfs.DefaultUploadConcurrency,
			RangeSize: cfg.rangeSize, RangeConcurrency: cfg.rangeConc,
		},
		Notes: map[string]string{},
	}}
}

// parsePeers reads BENCH_PEERS: the peers to try, in table order.
func parsePeers(spec string) ([]system, error) {
	switch spec {
	case "none", "":
		return nil, nil
	case "auto":
		return []system{sysRclone, sysS3fs}, nil
	}
	var peers []system
	for name := range strings.SplitSeq(spec, ",") {
		s, err := peerSystem(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("-peers %q: %w", spec, err)
		}
		if !slices.Contains(peers, s) {
			peers = append(peers, s)
		}
	}
	return peers, nil
}

// phases are the workloads a run measures (-phases).
type phases struct{ write, read, small, rss bool }

// parsePhases reads -phases: all, or a comma-separated list of write,
// read, small and rss. The cold read reads the big file the write
// phase wrote, so read needs write.
func parsePhases(spec string) (phases, error) {
	if spec == "all" || spec == "" {
		return phases{true, true, true, true}, nil
	}
	var p phases
	for name := range strings.SplitSeq(spec, ",") {
		switch strings.TrimSpace(name) {
		case "write":
			p.write = true
		case "read":
			p.read = true
		case "small":
			p.small = true
		case "rss":
			p.rss = true
		default:
			return p, fmt.Errorf("-phases %q: unknown phase %q: want write, read, small or rss", spec, name)
		}
	}
	if p.read && !p.write {
		return p, fmt.Errorf("-phases %q: read reads what write wrote: add write", spec)
	}
	return p, nil
}

// envelopeRatio runs the cipher package's ratio benchmark and returns its
// reported metrics (seal-ratio, open-ratio, seal-bare-MB/s, ...).
func envelopeRatio(ctx context.Context) (map[string]float64, error) {
	out, err := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "EnvelopeRatio", "-benchtime", "1x", "./cipher/").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, lastLines(string(out), 5))
	}
	m := map[string]float64{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if !strings.HasPrefix(line, "BenchmarkEnvelopeRatio") {
			continue
		}
		f := strings.Fields(line)
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no BenchmarkEnvelopeRatio line in: %s", lastLines(string(out), 5))
	}
	return m, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// parseSize reads 4096, 512KiB, 1GiB, 2G (binary units).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "iB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
