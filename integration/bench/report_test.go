package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const fixture = "testdata/results.json"

func readFixture(t *testing.T) *report {
	t.Helper()
	r, err := readReport(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReportRoundTrip reads the fixture, writes it and reads it back:
// the same report, every row with exactly the seven system keys (null
// where not measured) and exactly the six row keys plus meta.
func TestReportRoundTrip(t *testing.T) {
	r := readFixture(t)
	if v, ok := r.get(readMBs, sysSDKRangedGet); !ok || v != 1188.5 {
		t.Fatalf("cold_read_1gib_mbps.sdk_ranged_get = %v, %v; want 1188.5", v, ok)
	}
	if _, ok := r.get(writeMBs, sysSDKGet); ok {
		t.Fatal("write_1gib_mbps.sdk_get is null in the fixture but read as measured")
	}

	path := filepath.Join(t.TempDir(), "out", "results.json")
	if err := writeReport(path, r); err != nil {
		t.Fatal(err)
	}
	back, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip changed the report:\nwrote %+v\nread  %+v", r, back)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	wantRows := []string{"write_1gib_mbps", "cold_read_1gib_mbps", "small_create_s", "small_ls_s", "small_read_s", "peak_rss_mib"}
	wantSystems := []string{"coffer", "sdk_put", "sdk_multipart", "sdk_get", "sdk_ranged_get", "rclone", "s3fs"}
	if got, want := sortedKeys(doc), sorted(append(slices.Clone(wantRows), "meta")); !slices.Equal(got, want) {
		t.Fatalf("top-level keys %q, want %q", got, want)
	}
	for _, row := range wantRows {
		var figs map[string]*float64
		if err := json.Unmarshal(doc[row], &figs); err != nil {
			t.Fatalf("%s: %v", row, err)
		}
		if got := sortedKeys(figs); !slices.Equal(got, sorted(wantSystems)) {
			t.Fatalf("%s has keys %q, want %q", row, got, sorted(wantSystems))
		}
	}
	var rows map[string]map[string]*float64
	delete(doc, "meta")
	raw, _ := json.Marshal(doc)
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	if v := rows["write_1gib_mbps"]["sdk_get"]; v != nil {
		t.Fatalf("write_1gib_mbps.sdk_get = %v, want null", *v)
	}
	if v := rows["peak_rss_mib"]["s3fs"]; v == nil || *v != 17 {
		t.Fatalf("peak_rss_mib.s3fs = %v, want 17", v)
	}
}

// TestReportFill checks that a run's figures land in their rows and
// systems, rounded, and that unmeasured (zero) figures stay null.
func TestReportFill(t *testing.T) {
	var figs [numSystems]results
	figs[sysSDKPut][writeMBs] = 449.12345
	figs[sysSDKRangedGet][readMBs] = 1188.5
	figs[sysCoffer] = results{271, 859, 3.75, 1.36, 1.67, 118}
	r := &report{}
	r.fill(&figs)
	if v, ok := r.get(writeMBs, sysSDKPut); !ok || v != 449.123 {
		t.Fatalf("write.sdk_put = %v, %v; want 449.123", v, ok)
	}
	if v, ok := r.get(readMBs, sysSDKRangedGet); !ok || v != 1188.5 {
		t.Fatalf("read.sdk_ranged_get = %v, %v; want 1188.5", v, ok)
	}
	if v, ok := r.get(rssMiB, sysCoffer); !ok || v != 118 {
		t.Fatalf("rss.coffer = %v, %v; want 118", v, ok)
	}
	for _, c := range []struct {
		m metric
		s system
	}{{readMBs, sysSDKPut}, {writeMBs, sysSDKRangedGet}, {lsSecs, sysRclone}} {
		if v, ok := r.get(c.m, c.s); ok {
			t.Fatalf("%s.%s = %v, want null", c.m.key(), c.s.key(), v)
		}
	}
	if r.measured(sysS3fs) || !r.measured(sysSDKPut) {
		t.Fatalf("measured: s3fs %v, sdk_put %v; want false, true", r.measured(sysS3fs), r.measured(sysSDKPut))
	}
}

// TestReadReportRejects: a report that is not what writeReport writes
// is refused with an error naming what is wrong.
func TestReadReportRejects(t *testing.T) {
	good, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown row", `"small_ls_s"`, `"small_ls_ms"`, "small_ls_ms"},
		{"unknown system", `"rclone": 19.4`, `"juicefs": 19.4`, "juicefs"},
		{"negative figure", `"coffer": 3.75`, `"coffer": -3.75`, "small_create_s.coffer"},
		{"zero figure", `"s3fs": 0.69`, `"s3fs": 0`, "small_ls_s.s3fs"},
		{"no coffer", `"coffer": 859`, `"coffer": null`, "cold_read_1gib_mbps: no figure for coffer"},
		{"text for a figure", `"sdk_put": 449`, `"sdk_put": "449"`, "sdk_put"},
		{"no size", `"small_files": 2000`, `"small_files": 0`, "meta.sizes"},
		{"two values", "\n}\n", "\n}\n{}\n", "more than one JSON value"},
		{"truncated", `"meta"`, `"meta`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.old, tc.new, 1)
			if bad == string(good) {
				t.Fatalf("fixture has no %q to replace", tc.old)
			}
			path := filepath.Join(t.TempDir(), "bad.json")
			if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readReport(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("readReport: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestChart draws the fixture: well-formed SVG whose text names every
// system with a figure, gives each figure and states the normalisation.
func TestChart(t *testing.T) {
	r := readFixture(t)
	svg, err := chartSVG(r)
	if err != nil {
		t.Fatal(err)
	}
	root, texts := parseSVG(t, svg)
	if root != "svg" {
		t.Fatalf("root element <%s>, want <svg>", root)
	}
	all := strings.Join(texts, "\n")
	for s := range numSystems {
		if !r.measured(s) {
			t.Fatalf("the fixture should measure every system; %s has no figure", s.key())
		}
		if !slices.Contains(texts, s.name()) {
			t.Errorf("no text %q (the bars' label for %s) in the chart", s.name(), s.key())
		}
	}
	for _, want := range []string{
		"relative to coffer's (coffer = 1)", "2026-11-27 10:45 UTC", "versitygw v1.8.0",
		"1188 MB/s (1.38x)", "859 MB/s", "11.94 s (3.18x)", "17 MiB (0.14x)",
		"write 1 GiB until stored (MB/s), higher is better", "peak RSS writing 2 GiB (MiB), lower is better",
		"rclone crypt failed after some phases",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("chart text lacks %q", want)
		}
	}
	if !bytes.Contains(svg, []byte(svgFonts)) {
		t.Errorf("chart does not name the fallback fonts %q", svgFonts)
	}
}

// TestPartialRun: a run of some phases only (-phases) leaves the other
// rows without figures; such a report passes the checks and is drawn
// without their panels.
func TestPartialRun(t *testing.T) {
	r := readFixture(t)
	*r.row(lsSecs) = figures{}
	if err := r.check(); err != nil {
		t.Fatalf("a report without the ls row: %v", err)
	}
	svg, err := chartSVG(r)
	if err != nil {
		t.Fatal(err)
	}
	_, texts := parseSVG(t, svg)
	all := strings.Join(texts, "\n")
	if strings.Contains(all, "ls -l") || !strings.Contains(all, "write 1 GiB until stored") {
		t.Errorf("the chart of a run without the ls row:\n%s", all)
	}
}

// TestChartOnly runs -chart-only as the command line would: no server,
// the SVG path derived from the JSON's, the table printed and the chart
// of the report written.
func TestChartOnly(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "results.json")
	if err := os.WriteFile(jsonPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCH_SVG", "")
	t.Setenv("COFFER_TEST_VERSITYGW_ENDPOINT", "")
	cfg, err := parseConfig([]string{"-chart-only", "-json", jsonPath})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "results.svg"); cfg.svgPath != want {
		t.Fatalf("svg path %q, want %q", cfg.svgPath, want)
	}
	if err := redraw(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(cfg.svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, texts := parseSVG(t, svg); !slices.Contains(texts, "SDK ranged GET") {
		t.Fatalf("redrawn chart lacks the SDK ranged GET bar: %q", texts)
	}

	// A report that does not read leaves no chart behind.
	if err := os.WriteFile(jsonPath, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cfg.svgPath); err != nil {
		t.Fatal(err)
	}
	if err := redraw(context.Background(), cfg); err == nil {
		t.Fatal("redraw of an empty report succeeded")
	}
	if _, err := os.Stat(cfg.svgPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("chart written from an empty report: %v", err)
	}
}

// parseSVG decodes svg as XML to its end and returns the root element's
// name and the text of every <text> element.
func parseSVG(t *testing.T, svg []byte) (root string, texts []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			inText = tok.Name.Local == "text"
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(tok)))
			}
		}
	}
	if root == "" {
		t.Fatal("chart has no root element")
	}
	return root, texts
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sorted(keys)
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// TestParsePhases: -phases selects workloads; the cold read needs the
// write that makes its file, and an unknown phase is refused.
func TestParsePhases(t *testing.T) {
	for spec, want := range map[string]phases{
		"all":         {true, true, true, true},
		"write":       {write: true},
		"write, read": {write: true, read: true},
		"small,rss":   {small: true, rss: true},
	} {
		if got, err := parsePhases(spec); err != nil || got != want {
			t.Errorf("parsePhases(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, spec := range []string{"read", "write,reads"} {
		if _, err := parsePhases(spec); err == nil {
			t.Errorf("parsePhases(%q) succeeded", spec)
		}
	}
}
