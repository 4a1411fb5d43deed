package main

import (
	"bytes"
	"fmt"
	"image/color"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The chart's layout, in points: two columns of panels, one panel per
// row of the table, under a header of three lines.
const (
	chartWidth  = 760
	panelHeight = 150
	headerLines = 3
	lineHeight  = 16
	chartPad    = 10
	barWidth    = 13
	panelCols   = 2
)

// sans is the chart's typeface at size: Liberation Sans, which plot
// bundles and measures text with. The SVG names it as its font-family;
// svgFonts adds the metric-compatible fallbacks a browser is likelier
// to have.
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

const svgFonts = "font-family:Liberation Sans,Arimo,Arial,Helvetica,sans-serif;"

// color is the fill of a system's bars: greys for the SDK baselines,
// coffer in blue, a colour per peer.
func (s system) color() color.Color {
	return [numSystems]color.RGBA{
		sysSDKPut:       {0xb0, 0xb0, 0xb0, 0xff},
		sysSDKMultipart: {0x70, 0x70, 0x70, 0xff},
		sysSDKGet:       {0xb0, 0xb0, 0xb0, 0xff},
		sysSDKRangedGet: {0x70, 0x70, 0x70, 0xff},
		sysCoffer:       {0x1f, 0x77, 0xb4, 0xff},
		sysRclone:       {0xff, 0x7f, 0x0e, 0xff},
		sysS3fs:         {0x2c, 0xa0, 0x2c, 0xff},
	}[s]
}

// unit is what row m's figures count.
func unit(m metric) string {
	switch m {
	case writeMBs, readMBs:
		return "MB/s"
	case rssMiB:
		return "MiB"
	}
	return "s"
}

// chartSVG draws r as an SVG bar chart: one panel per row, one bar per
// system measured in that row, each as long as the system's figure over
// coffer's (coffer's bar is 1) and labelled with the figure itself.
func chartSVG(r *report) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	panelRows := (int(numMetrics) + panelCols - 1) / panelCols
	header := vg.Length(2*chartPad + headerLines*lineHeight)
	w, h := vg.Length(chartWidth), header+vg.Length(panelRows*panelHeight+chartPad)
	canvas := vgsvg.New(w, h)
	dc := draw.New(canvas)

	mt := r.Meta
	lines := [headerLines]string{
		fmt.Sprintf("coffer bench, %s: each bar is a system's figure relative to coffer's (coffer = 1); labels give the figures", showDate(mt.Date)),
		fmt.Sprintf("%s; host %s, %d cores, load %s at start; coffer %s; %s file, %d x %s files, RSS while writing %s",
			mt.Server, mt.Host, mt.Cores, mt.Load.Start, mt.CofferRevision, sizeString(mt.Sizes.BigFileBytes),
			mt.Sizes.SmallFiles, sizeString(mt.Sizes.SmallFileBytes), sizeString(mt.Sizes.RSSFileBytes)),
		fmt.Sprintf("SDK multipart: %s parts, %d in flight; SDK ranged GET: %s ranges, %d in flight%s",
			sizeString(mt.SDK.PartSize), mt.SDK.UploadConcurrency, sizeString(mt.SDK.RangeSize), mt.SDK.RangeConcurrency, absent(r)),
	}
	for i, line := range lines {
		size := vg.Points(9)
		if i == 0 {
			size = vg.Points(11)
		}
		sty := text.Style{Font: sans(size), Handler: plot.DefaultTextHandler, XAlign: draw.XLeft, YAlign: draw.YTop}
		dc.FillText(sty, vg.Point{X: chartPad, Y: h - chartPad - vg.Length(i*lineHeight)}, line)
	}

	plots := make([][]*plot.Plot, panelRows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, panelCols)
	}
	for m := range numMetrics {
		if !r.rowMeasured(m) {
			continue // a phase not run (-phases): no panel
		}
		p, err := panel(r, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.key(), err)
		}
		plots[int(m)/panelCols][int(m)%panelCols] = p
	}
	tiles := draw.Tiles{
		Rows: panelRows, Cols: panelCols,
		PadX: 20, PadY: 14, PadLeft: chartPad, PadRight: chartPad + 10, PadBottom: chartPad,
	}
	body := draw.Crop(dc, 0, 0, 0, -header)
	for i, row := range plot.Align(plots, tiles, body) {
		for j, c := range row {
			if p := plots[i][j]; p != nil {
				p.Draw(c)
			}
		}
	}
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte(svgFonts)), nil
}

// panel is row m's plot: horizontal bars, the systems in table order
// from the top.
func panel(r *report, m metric) (*plot.Plot, error) {
	var bars []system
	for s := range numSystems {
		if _, ok := r.get(m, s); ok {
			bars = append(bars, s)
		}
	}
	ref, _ := r.get(m, sysCoffer) // check made sure it is there
	p := plot.New()
	for _, t := range []*text.Style{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.X.Tick.Label, &p.Y.Tick.Label} {
		t.Font = sans(vg.Points(9))
	}
	better := "lower is better"
	if m.higherBetter() {
		better = "higher is better"
	}
	p.Title.Text = label(m, r.Meta.Sizes) + ", " + better
	p.Title.TextStyle.Font = sans(vg.Points(10))
	p.X.Label.Text = "relative to coffer"
	p.X.Min = 0

	n := len(bars)
	names := make([]string, n)
	labels := plotter.XYLabels{XYs: make(plotter.XYs, n), Labels: make([]string, n)}
	for i, s := range bars {
		y := float64(n - 1 - i) // the first system on top
		v, _ := r.get(m, s)
		rel := v / ref
		b, err := plotter.NewBarChart(plotter.Values{rel}, barWidth)
		if err != nil {
			return nil, err
		}
		b.Horizontal, b.XMin, b.Color, b.LineStyle.Width = true, y, s.color(), 0
		p.Add(b)
		names[n-1-i] = s.name()
		labels.XYs[i] = plotter.XY{X: rel, Y: y}
		labels.Labels[i] = format(m, v) + " " + unit(m)
		if s != sysCoffer {
			labels.Labels[i] += fmt.Sprintf(" (%.2fx)", rel)
		}
	}
	lbl, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	lbl.Offset = vg.Point{X: vg.Points(3)}
	for i := range lbl.TextStyle {
		lbl.TextStyle[i].Font = sans(vg.Points(8))
		lbl.TextStyle[i].YAlign = draw.YCenter
	}
	p.Add(lbl)
	p.NominalY(names...)
	p.Y.Min, p.Y.Max = -0.6, float64(n)-0.4 // room above the top bar and below the last
	return p, nil
}

// absent says, for the chart's header, which systems the run asked for
// have no figures or only some, and why.
func absent(r *report) string {
	var out []string
	for s := range numSystems {
		note, ok := r.Meta.Notes[s.key()]
		switch {
		case !ok:
			continue
		case strings.HasPrefix(note, "failed") && r.measured(s):
			note = "failed after some phases"
		case strings.HasPrefix(note, "failed"):
			note = "failed"
		}
		out = append(out, s.name()+" "+note)
	}
	if len(out) == 0 {
		return ""
	}
	return "; " + strings.Join(out, ", ")
}

// showDate shows an RFC 3339 date to the minute, as it came when it
// does not parse.
func showDate(date string) string {
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return date
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// writeChart draws r to path as SVG.
func writeChart(path string, r *report) error {
	svg, err := chartSVG(r)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, svg)
}
