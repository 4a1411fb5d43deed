package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/metrics"
)

func newStatsCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "stats MOUNTPOINT",
		Short: "Print the figures of a running mount (it needs --metrics-addr)",
		Long: `Print what the coffer mount at MOUNTPOINT has done: store requests by
operation and outcome with their mean latency, bytes up and down, block
cache hits and misses, the upload queue, the journal's size and failed
operations by errno. They are the mount's Prometheus metrics, read from
the address it serves them at, so the mount must run with --metrics-addr.`,
		Example: `  coffer mount --metrics-addr 127.0.0.1:9464 --daemon ~/vault
  coffer stats ~/vault`,
		Args: oneArg("MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			mp, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			st, ok := e.readMountState(mp)
			if !ok {
				return fmt.Errorf("no running coffer mount of this user at %s (none recorded in %s)", mp, e.runDir())
			}
			if st.MetricsAddr == "" {
				return fmt.Errorf("the mount at %s serves no metrics: mount it with --metrics-addr 127.0.0.1:PORT to use coffer stats", mp)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			snap, err := metrics.Scrape(ctx, st.MetricsAddr)
			if err != nil {
				return fmt.Errorf("reading the metrics of the mount at %s from %s: %w", mp, st.MetricsAddr, err)
			}
			printStats(e.stdout, st, snap)
			return nil
		},
	}
}

func printStats(w io.Writer, st mountState, s *metrics.Snapshot) {
	fmt.Fprintf(w, "mount %s (store %s, pid %d), metrics at http://%s/metrics\n\n", st.Mountpoint, st.Store, st.PID, st.MetricsAddr)
	fmt.Fprintln(w, "store requests:")
	if len(s.Requests) == 0 {
		fmt.Fprintln(w, "  none yet")
	}
	for _, o := range s.Requests {
		var parts []string
		for _, out := range slices.Sorted(maps.Keys(o.Outcomes)) {
			parts = append(parts, fmt.Sprintf("%s %.0f", out, o.Outcomes[out]))
		}
		mean := ""
		if o.Count > 0 {
			mean = fmt.Sprintf(", mean %s", time.Duration(o.Seconds/float64(o.Count)*float64(time.Second)).Round(10*time.Microsecond))
		}
		fmt.Fprintf(w, "  %-18s %s%s\n", o.Op, strings.Join(parts, ", "), mean)
	}
	fmt.Fprintf(w, "bytes:          up %s, down %s\n", humanBytes(int64(s.BytesUp)), humanBytes(int64(s.BytesDown)))
	for _, layer := range []string{"memory", "disk"} {
		h, m := s.CacheHits[layer], s.CacheMiss[layer]
		ratio := ""
		if h+m > 0 {
			ratio = fmt.Sprintf(" (%.0f%% hits)", 100*h/(h+m))
		}
		fmt.Fprintf(w, "cache (%s): %s%.0f hits, %.0f misses%s\n", layer, strings.Repeat(" ", 6-len(layer)), h, m, ratio)
	}
	fmt.Fprintf(w, "disk cache:     %s\n", humanBytes(int64(s.CacheBytes)))
	fmt.Fprintf(w, "upload queue:   %.0f files, %s pending, %.0f uploading\n", s.QueueFiles, humanBytes(int64(s.Pending)), s.Uploading)
	if s.Journal < 0 {
		fmt.Fprintln(w, "journal:        none")
	} else {
		fmt.Fprintf(w, "journal:        %s\n", humanBytes(int64(s.Journal)))
	}
	if len(s.Errors) == 0 {
		fmt.Fprintln(w, "errors:         none")
		return
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(s.Errors)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, s.Errors[name]))
	}
	fmt.Fprintf(w, "errors:         %s\n", strings.Join(parts, ", "))
}

// humanBytes is n for a person: "1.5 MiB", "300 B".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}
