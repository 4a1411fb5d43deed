package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// column is one column of figures in the table: the SDK's one-request
// and parallel baselines each join two systems, one per row they measure.
type column struct {
	name    string
	systems []system
}

// value is the column's figure for m, false when none of its systems
// measured m.
func (c column) value(r *report, m metric) (float64, bool) {
	for _, s := range c.systems {
		if v, ok := r.get(m, s); ok {
			return v, true
		}
	}
	return 0, false
}

// label is how the table and the chart name row m, sizes included.
func label(m metric, sz sizes) string {
	switch m {
	case writeMBs:
		return fmt.Sprintf("write %s until stored (MB/s)", sizeString(sz.BigFileBytes))
	case readMBs:
		return fmt.Sprintf("cold read %s (MB/s)", sizeString(sz.BigFileBytes))
	case createSecs:
		return fmt.Sprintf("%d files of %s created until stored (s)", sz.SmallFiles, sizeString(sz.SmallFileBytes))
	case lsSecs:
		return "cold ls -l of them (s)"
	case readAllSecs:
		return "cold read of them all (s)"
	case rssMiB:
		return fmt.Sprintf("peak RSS writing %s (MiB)", sizeString(sz.RSSFileBytes))
	}
	panic(fmt.Sprintf("bench: no metric %d", m))
}

// format prints a figure of row m: MB/s and MiB whole, seconds to 10 ms.
func format(m metric, v float64) string {
	if m == writeMBs || m == readMBs || m == rssMiB {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// peerColumns lists the peers the run asked for (measured, or with a
// note saying why not), in table order.
func peerColumns(r *report) []system {
	var peers []system
	for _, s := range []system{sysRclone, sysS3fs} {
		if _, noted := r.Meta.Notes[s.key()]; noted || r.measured(s) {
			peers = append(peers, s)
		}
	}
	return peers
}

// printTable prints the figures of every column (the SDK's one-request
// and parallel baselines, coffer, the peers), then coffer's ratio to
// each SDK baseline and its advantage over each peer (how many times
// faster or smaller: above 1 means coffer does better).
func printTable(out io.Writer, r *report) {
	mt := r.Meta
	fmt.Fprintf(out, "\ncoffer bench  %s  host %s, %d cores, load average %s at start, %s at end, %.0fs\n",
		showDate(mt.Date), mt.Host, mt.Cores, mt.Load.Start, mt.Load.End, mt.DurationS)
	fmt.Fprintf(out, "coffer %s; %s; every phase on a fresh mount; %s\n\n", mt.CofferRevision, mt.Server, mt.ColdReads)

	single := column{"SDK single", []system{sysSDKPut, sysSDKGet}}
	parallel := column{"SDK parallel", []system{sysSDKMultipart, sysSDKRangedGet}}
	coffer := column{sysCoffer.name(), []system{sysCoffer}}
	cols := []column{single, parallel, coffer}
	var peers []column
	for _, p := range peerColumns(r) {
		c := column{p.name(), []system{p}}
		cols = append(cols, c)
		if r.measured(p) {
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
	for m := range numMetrics {
		width = max(width, len(label(m, mt.Sizes)))
	}
	for m := range numMetrics {
		line := []string{fmt.Sprintf("%-*s", width, label(m, mt.Sizes))}
		for _, c := range cols {
			line = append(line, cell(r, c, m))
		}
		cv, _ := coffer.value(r, m)
		for _, sdk := range []column{single, parallel} {
			v, _ := sdk.value(r, m)
			line = append(line, ratio(cv, v, "%.2f"))
		}
		for _, p := range peers {
			v, _ := p.value(r, m)
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
	for s := range numSystems {
		if note := mt.Notes[s.key()]; note != "" {
			fmt.Fprintf(out, "%s: %s\n", s.name(), note)
		}
	}
	fmt.Fprintf(out, "SDK single: one PutObject, one GetObject. SDK parallel: the same bytes as a multipart upload in %s parts, %d in flight (as coffer uploads a big file), and as ranged GETs of %s, %d in flight.\n",
		sizeString(mt.SDK.PartSize), mt.SDK.UploadConcurrency, sizeString(mt.SDK.RangeSize), mt.SDK.RangeConcurrency)
	fmt.Fprintln(out, "coffer/single, coffer/parallel: coffer's figure over the SDK's; vs PEER: how many times coffer is faster (or smaller); above 1 is better. JuiceFS is not driven by this bench.")
	if c := mt.Cipher; c != nil {
		fmt.Fprintf(out, "cipher, 64 KiB chunks, best of 25 rounds: seal %.2f of bare AES-256-GCM (%.0f vs %.0f MB/s), open %.2f (%.0f vs %.0f MB/s)\n",
			c["seal-ratio"], c["seal-MB/s"], c["seal-bare-MB/s"], c["open-ratio"], c["open-MB/s"], c["open-bare-MB/s"])
	}
}

func cell(r *report, c column, m metric) string {
	if v, ok := c.value(r, m); ok {
		return format(m, v)
	}
	for _, s := range c.systems {
		switch note := r.Meta.Notes[s.key()]; {
		case note == "not installed":
			return note
		case note != "":
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

// buildRevision names the commit the coffer binary was built from, with
// "+dirty" when the working tree had changes. Without VCS stamps in the
// binary (GOFLAGS=-buildvcs=false) it names the checkout's state instead,
// where changes to the bench's own outputs (a committed report an
// earlier run rewrote) do not count.
func buildRevision(bin string, outputs ...string) string {
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
		return rev + dirty
	}
	head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	args := []string{"status", "--porcelain", "--untracked-files=no", "--", ":/"}
	if top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		for _, o := range outputs {
			abs, err := filepath.Abs(o)
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(strings.TrimSpace(string(top)), abs); err == nil && filepath.IsLocal(rel) {
				args = append(args, ":(top,exclude)"+rel)
			}
		}
	}
	if st, err := exec.Command("git", args...).Output(); err == nil && len(st) > 0 {
		dirty = "+dirty"
	}
	return strings.TrimSpace(string(head)) + dirty
}

// serverVersion is the module version a Go binary was built at
// (versitygw from scripts/tools.sh: "v1.8.0"), "" when unknown.
func serverVersion(bin string) string {
	if bin == "" {
		return ""
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return ""
	}
	return info.Main.Version
}

// peerVersion is the first line of a peer's version output
// ("rclone v1.60.1-DEV", "Amazon Simple Storage Service File System V1.90 ...").
func peerVersion(s system) string {
	arg := "version"
	if s == sysS3fs {
		arg = "--version"
	}
	out, err := exec.Command(s.key(), arg).Output()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
