package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	cfs "github.com/cofferfs/coffer/fs"
)

// column is one column of figures in the table: the SDK's one-request
// and parallel baselines each join two systems, one per row they measure.
type column struct {
	name    string
	systems []system
}

// value is the column's figure for m and the system it comes from, or
// false when none of its systems measured m.
func (c column) value(figs *[numSystems]results, m metric) (float64, system, bool) {
	for _, s := range c.systems {
		if v := figs[s][m]; v != 0 {
			return v, s, true
		}
	}
	return 0, 0, false
}

// row describes how one metric is labelled and printed.
type row struct {
	label  string
	format string
}

func rows(cfg config) [numMetrics]row {
	return [numMetrics]row{
		writeMBs:    {fmt.Sprintf("write %s until stored (MB/s)", sizeString(cfg.size)), "%.0f"},
		readMBs:     {fmt.Sprintf("cold read %s (MB/s)", sizeString(cfg.size)), "%.0f"},
		createSecs:  {fmt.Sprintf("%d files of %s created until stored (s)", cfg.files, sizeString(cfg.smallSize)), "%.2f"},
		lsSecs:      {"cold ls -l of them (s)", "%.2f"},
		readAllSecs: {"cold read of them all (s)", "%.2f"},
		rssMiB:      {fmt.Sprintf("peak RSS writing %s (MiB)", sizeString(cfg.rssSize)), "%.0f"},
	}
}

// printTable prints the figures of every column (the SDK's one-request
// and parallel baselines, coffer, the peers), then coffer's ratio to
// each SDK baseline and its advantage over each peer (how many times
// faster or smaller: above 1 means coffer does better).
func printTable(out io.Writer, cfg config, build, loadStart string, start time.Time, figs [numSystems]results, notes [numSystems]string, cipher map[string]float64) {
	host, _ := os.Hostname()
	fmt.Fprintf(out, "\ncoffer bench  %s  host %s, %d cores, load average %s at start, %s at end, %s\n",
		start.UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), loadStart, loadAvg(), time.Since(start).Round(time.Second))
	cold := "page cache dropped before cold reads"
	if os.Geteuid() != 0 {
		cold = "not root: cold reads may hit the page cache"
	}
	fmt.Fprintf(out, "coffer %s; versitygw on loopback (%s); every phase on a fresh mount; %s\n\n", build, cfg.endpoint, cold)

	single := column{"SDK single", []system{sysSDKPut, sysSDKGet}}
	parallel := column{"SDK parallel", []system{sysSDKMultipart, sysSDKRangedGet}}
	coffer := column{sysCoffer.name(), []system{sysCoffer}}
	cols := []column{single, parallel, coffer}
	var peers []column
	for _, p := range cfg.peers {
		c := column{p.name(), []system{p}}
		cols = append(cols, c)
		if figs[p] != (results{}) {
			peers = append(peers, c)
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{""}
	for _, c := range cols {
		header = append(header, c.name)
	}
	header = append(header, "coffer/single", "coffer/parallel")
	for _, p := range peers {
		header = append(header, "vs "+p.name)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")

	// Labels padded to one width read left-aligned in right-aligned cells.
	width := 0
	for _, r := range rows(cfg) {
		width = max(width, len(r.label))
	}
	for m, r := range rows(cfg) {
		m := metric(m)
		line := []string{fmt.Sprintf("%-*s", width, r.label)}
		for _, c := range cols {
			line = append(line, cell(c, &figs, &notes, m, r.format))
		}
		cv, _, _ := coffer.value(&figs, m)
		for _, sdk := range []column{single, parallel} {
			v, _, _ := sdk.value(&figs, m)
			line = append(line, ratio(cv, v, "%.2f"))
		}
		for _, p := range peers {
			v, _, _ := p.value(&figs, m)
			if m.higherBetter() {
				line = append(line, ratio(cv, v, "%.1fx"))
			} else {
				line = append(line, ratio(v, cv, "%.1fx"))
			}
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	tw.Flush()

	fmt.Fprintln(out)
	for s, note := range notes {
		if note != "" {
			fmt.Fprintf(out, "%s: %s\n", system(s).name(), note)
		}
	}
	fmt.Fprintf(out, "SDK single: one PutObject, one GetObject. SDK parallel: the same bytes as a multipart upload in %s parts, %d in flight (as coffer uploads a big file), and as ranged GETs of %s, %d in flight.\n",
		sizeString(cfs.DefaultPartSize), cfs.DefaultUploadConcurrency, sizeString(cfg.rangeSize), cfg.rangeConc)
	fmt.Fprintln(out, "coffer/single, coffer/parallel: coffer's figure over the SDK's; vs PEER: how many times coffer is faster (or smaller); above 1 is better. JuiceFS is not driven by this bench.")
	if cipher != nil {
		fmt.Fprintf(out, "cipher, 64 KiB chunks, best of 25 rounds: seal %.2f of bare AES-256-GCM (%.0f vs %.0f MB/s), open %.2f (%.0f vs %.0f MB/s)\n",
			cipher["seal-ratio"], cipher["seal-MB/s"], cipher["seal-bare-MB/s"],
			cipher["open-ratio"], cipher["open-MB/s"], cipher["open-bare-MB/s"])
	}
}

// buildRevision names the commit the coffer binary was built from, with
// "+dirty" when the working tree had changes. Without VCS stamps in the
// binary (GOFLAGS=-buildvcs=false) it names the checkout's state instead.
func buildRevision(bin string) string {
	rev, dirty := "", ""
	if info, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				rev = s.Value[:12]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		return "built from " + rev + dirty
	}
	head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "(build revision unknown)"
	}
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		dirty = "+dirty"
	}
	return "from checkout " + strings.TrimSpace(string(head)) + dirty
}

func cell(c column, figs *[numSystems]results, notes *[numSystems]string, m metric, format string) string {
	if v, _, ok := c.value(figs, m); ok {
		return fmt.Sprintf(format, v)
	}
	for _, s := range c.systems {
		switch {
		case notes[s] == "not installed":
			return notes[s]
		case notes[s] != "":
			return "failed"
		}
	}
	return "-"
}

func ratio(a, b float64, format string) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf(format, a/b)
}
