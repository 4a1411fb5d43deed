package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// report is one run's figures as `make bench` writes them to $BENCH_JSON:
// one object per row, each holding every system's figure (null where
// not measured), and meta. The row keys say "1gib" whatever the run's
// sizes (the names are fixed by issue 11); meta.sizes has the real ones.
type report struct {
	Write   figures `json:"write_1gib_mbps"`
	Read    figures `json:"cold_read_1gib_mbps"`
	Create  figures `json:"small_create_s"`
	Ls      figures `json:"small_ls_s"`
	ReadAll figures `json:"small_read_s"`
	RSS     figures `json:"peak_rss_mib"`
	Meta    meta    `json:"meta"`
}

// figures is one row: each system's figure, nil where not measured.
type figures struct {
	Coffer       *float64 `json:"coffer"`
	SDKPut       *float64 `json:"sdk_put"`
	SDKMultipart *float64 `json:"sdk_multipart"`
	SDKGet       *float64 `json:"sdk_get"`
	SDKRangedGet *float64 `json:"sdk_ranged_get"`
	Rclone       *float64 `json:"rclone"`
	S3fs         *float64 `json:"s3fs"`
}

// meta says when, where and how the figures were measured.
type meta struct {
	Date           string            `json:"date"` // start of the run, RFC 3339, UTC
	Host           string            `json:"host"`
	Cores          int               `json:"cores"`
	Load           load              `json:"load"`
	CofferRevision string            `json:"coffer_revision"`
	PeerVersions   map[string]string `json:"peer_versions"` // by system key, for the peers on PATH
	Server         string            `json:"server"`
	ColdReads      string            `json:"cold_reads"` // whether the page cache was dropped
	DurationS      float64           `json:"duration_s"`
	Sizes          sizes             `json:"sizes"`
	SDK            sdkSettings       `json:"sdk"`
	// Notes says, by system key, why a system asked for has no figures
	// ("not installed", "failed: ...").
	Notes map[string]string `json:"notes,omitempty"`
	// Cipher is the envelope against bare AES-256-GCM benchmark's
	// metrics (seal-ratio, open-ratio, seal-MB/s, ...), when it ran.
	Cipher map[string]float64 `json:"cipher,omitempty"`
}

// load is /proc/loadavg's 1, 5 and 15 minute averages.
type load struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// sizes are the workloads' sizes.
type sizes struct {
	BigFileBytes   int64 `json:"big_file_bytes"` // written and read cold: the "1gib" rows
	SmallFiles     int   `json:"small_files"`
	SmallFileBytes int64 `json:"small_file_bytes"`
	RSSFileBytes   int64 `json:"rss_file_bytes"` // written while the peak RSS is watched
}

// sdkSettings are the raw SDK baselines' parameters.
type sdkSettings struct {
	PartSize          int64 `json:"part_size"`
	UploadConcurrency int   `json:"upload_concurrency"`
	RangeSize         int64 `json:"range_size"`
	RangeConcurrency  int   `json:"range_concurrency"`
}

// row returns the figures of metric m.
func (r *report) row(m metric) *figures {
	switch m {
	case writeMBs:
		return &r.Write
	case readMBs:
		return &r.Read
	case createSecs:
		return &r.Create
	case lsSecs:
		return &r.Ls
	case readAllSecs:
		return &r.ReadAll
	case rssMiB:
		return &r.RSS
	}
	panic(fmt.Sprintf("bench: no metric %d", m))
}

// at returns where system s's figure lives.
func (f *figures) at(s system) **float64 {
	switch s {
	case sysCoffer:
		return &f.Coffer
	case sysSDKPut:
		return &f.SDKPut
	case sysSDKMultipart:
		return &f.SDKMultipart
	case sysSDKGet:
		return &f.SDKGet
	case sysSDKRangedGet:
		return &f.SDKRangedGet
	case sysRclone:
		return &f.Rclone
	case sysS3fs:
		return &f.S3fs
	}
	panic(fmt.Sprintf("bench: no system %d", s))
}

// get returns system s's figure for m, false when not measured.
func (r *report) get(m metric, s system) (float64, bool) {
	if p := *r.row(m).at(s); p != nil {
		return *p, true
	}
	return 0, false
}

// set records a measured figure, rounded to 3 decimals (a measured
// figure is never 0: results uses 0 for "not measured").
func (r *report) set(m metric, s system, v float64) {
	v = math.Round(v*1000) / 1000
	*r.row(m).at(s) = &v
}

// measured reports whether system s has any figure.
func (r *report) measured(s system) bool {
	for m := range numMetrics {
		if _, ok := r.get(m, s); ok {
			return true
		}
	}
	return false
}

// fill records every non-zero figure of figs.
func (r *report) fill(figs *[numSystems]results) {
	for s := range numSystems {
		for m := range numMetrics {
			if v := figs[s][m]; v != 0 {
				r.set(m, s, v)
			}
		}
	}
}

// check rejects a report that cannot be drawn or compared: a figure
// that is not a positive number, a row with figures but none for coffer
// (every comparison is to coffer; a run that cannot measure coffer
// fails; a row of a phase not run, -phases, holds none), or a size that
// is not positive.
func (r *report) check() error {
	for m := range numMetrics {
		for s := range numSystems {
			if v, ok := r.get(m, s); ok && (!(v > 0) || math.IsInf(v, 0)) {
				return fmt.Errorf("%s.%s = %v: want a positive number or null", m.key(), s.key(), v)
			}
		}
		if _, ok := r.get(m, sysCoffer); !ok && r.rowMeasured(m) {
			return fmt.Errorf("%s: no figure for coffer", m.key())
		}
	}
	if sz := r.Meta.Sizes; sz.BigFileBytes <= 0 || sz.SmallFiles <= 0 || sz.SmallFileBytes <= 0 || sz.RSSFileBytes <= 0 {
		return fmt.Errorf("meta.sizes %+v: want every size positive", sz)
	}
	return nil
}

// rowMeasured reports whether row m holds any figure.
func (r *report) rowMeasured(m metric) bool {
	for s := range numSystems {
		if _, ok := r.get(m, s); ok {
			return true
		}
	}
	return false
}

// readReport reads a report written by writeReport; unknown keys, a
// second JSON value and unusable figures are errors.
func readReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: more than one JSON value", path)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// writeReport writes r as indented JSON to path, creating its directory;
// the file is replaced whole (written beside it, then renamed), so a
// failed run never leaves half a report.
func writeReport(path string, r *report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic replaces path with data, creating its directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// svgPathFor is where the chart goes when $BENCH_SVG is not set: beside
// the JSON, with .svg for its extension.
func svgPathFor(jsonPath string) string {
	return strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath)) + ".svg"
}
