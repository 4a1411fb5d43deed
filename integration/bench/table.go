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
)

// column is one system's figures, or why it has none.
type column struct {
	name string
	res  results
	note string // "not installed", "failed: ..."
}

// row describes how one metric is labelled, printed and compared.
type row struct {
	label        string
	format       string
	higherBetter bool
}

func rows(cfg config) [numMetrics]row {
	return [numMetrics]row{
		writeMBs:    {fmt.Sprintf("write %s until stored (MB/s)", sizeString(cfg.size)), "%.0f", true},
		readMBs:     {fmt.Sprintf("cold read %s (MB/s)", sizeString(cfg.size)), "%.0f", true},
		createSecs:  {fmt.Sprintf("%d files of %s created until stored (s)", cfg.files, sizeString(cfg.smallSize)), "%.2f", false},
		lsSecs:      {"cold ls -l of them (s)", "%.2f", false},
		readAllSecs: {"cold read of them all (s)", "%.2f", false},
		rssMiB:      {fmt.Sprintf("peak RSS writing %s (MiB)", sizeString(cfg.rssSize)), "%.0f", false},
	}
}

// printTable prints the figures of every column (the SDK's single PUT,
// the SDK's multipart upload, coffer, the peers), then coffer's ratio to
// each SDK baseline and its advantage over each peer (how many times faster or
// smaller: above 1 means coffer does better).
func printTable(out io.Writer, cfg config, build, loadStart string, start time.Time, cols []column, cipher map[string]float64) {
	host, _ := os.Hostname()
	fmt.Fprintf(out, "\ncoffer bench  %s  host %s, %d cores, load average %s at start, %s at end, %s\n",
		start.UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), loadStart, loadAvg(), time.Since(start).Round(time.Second))
	cold := "page cache dropped before cold reads"
	if os.Geteuid() != 0 {
		cold = "not root: cold reads may hit the page cache"
	}
	fmt.Fprintf(out, "coffer %s; versitygw on loopback (%s); every phase on a fresh mount; %s\n\n", build, cfg.endpoint, cold)

	put, multipart, coffer := cols[0], cols[1], cols[2]
	var peers []column
	for _, c := range cols[3:] {
		if c.res != (results{}) {
			peers = append(peers, c)
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{""}
	for _, c := range cols {
		header = append(header, c.name)
	}
	header = append(header, "coffer/PUT", "coffer/multipart")
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
		line := []string{fmt.Sprintf("%-*s", width, r.label)}
		for _, c := range cols {
			line = append(line, cell(c, metric(m), r.format))
		}
		line = append(line, ratio(coffer.res[m], put.res[m], "%.2f"), ratio(coffer.res[m], multipart.res[m], "%.2f"))
		for _, p := range peers {
			if r.higherBetter {
				line = append(line, ratio(coffer.res[m], p.res[m], "%.1fx"))
			} else {
				line = append(line, ratio(p.res[m], coffer.res[m], "%.1fx"))
			}
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	tw.Flush()

	fmt.Fprintln(out)
	for _, c := range cols {
		if c.note != "" {
			fmt.Fprintf(out, "%s: %s\n", c.name, c.note)
		}
	}
	fmt.Fprintln(out, "SDK PUT: one PutObject (one GetObject for the read); SDK multipart: the same bytes in 8 MiB parts, 8 in flight, as coffer uploads a big file.")
	fmt.Fprintln(out, "coffer/PUT, coffer/multipart: coffer's figure over the SDK's; vs PEER: how many times coffer is faster (or smaller); above 1 is better. JuiceFS is not driven by this bench.")
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

func cell(c column, m metric, format string) string {
	switch {
	case c.res[m] != 0:
		return fmt.Sprintf(format, c.res[m])
	case c.note == "not installed":
		return c.note
	case c.note != "":
		return "failed"
	}
	return "-"
}

func ratio(a, b float64, format string) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf(format, a/b)
}
