package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Snapshot is one scrape of a mount's metrics, as coffer stats prints it.
type Snapshot struct {
	Requests   []OpStats // by operation name
	BytesUp    float64
	BytesDown  float64
	CacheHits  map[string]float64 // by layer
	CacheMiss  map[string]float64
	CacheBytes float64
	QueueFiles float64
	Pending    float64
	Uploading  float64
	Journal    float64            // -1: no journal
	Errors     map[string]float64 // by errno name
}

// OpStats are the requests of one store operation.
type OpStats struct {
	Op       string
	Outcomes map[string]float64
	Count    uint64  // from the histogram
	Seconds  float64 // total latency
}

// Scrape fetches http://addr/metrics and decodes coffer's figures.
func Scrape(ctx context.Context, addr string) (*Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return Parse(resp.Body)
}

// Parse decodes coffer's figures from the text exposition format.
func Parse(r io.Reader) (*Snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("decoding metrics: %w", err)
	}
	s := &Snapshot{CacheHits: map[string]float64{}, CacheMiss: map[string]float64{}, Errors: map[string]float64{}, Journal: -1}
	ops := map[string]*OpStats{}
	op := func(name string) *OpStats {
		if ops[name] == nil {
			ops[name] = &OpStats{Op: name, Outcomes: map[string]float64{}}
		}
		return ops[name]
	}
	each := func(name string, f func(m *dto.Metric)) {
		if fam := fams[name]; fam != nil {
			for _, m := range fam.GetMetric() {
				f(m)
			}
		}
	}
	each(NameRequests, func(m *dto.Metric) {
		op(label(m, "op")).Outcomes[label(m, "outcome")] += m.GetCounter().GetValue()
	})
	each(NameLatency, func(m *dto.Metric) {
		o := op(label(m, "op"))
		o.Count += m.GetHistogram().GetSampleCount()
		o.Seconds += m.GetHistogram().GetSampleSum()
	})
	each(NameBytes, func(m *dto.Metric) {
		switch label(m, "direction") {
		case "up":
			s.BytesUp = m.GetCounter().GetValue()
		case "down":
			s.BytesDown = m.GetCounter().GetValue()
		}
	})
	each(NameCacheHits, func(m *dto.Metric) { s.CacheHits[label(m, "layer")] = m.GetCounter().GetValue() })
	each(NameCacheMisses, func(m *dto.Metric) { s.CacheMiss[label(m, "layer")] = m.GetCounter().GetValue() })
	each(NameErrors, func(m *dto.Metric) { s.Errors[label(m, "errno")] = m.GetCounter().GetValue() })
	gauge := func(name string, dst *float64) {
		each(name, func(m *dto.Metric) { *dst = m.GetGauge().GetValue() })
	}
	gauge(NameCacheBytes, &s.CacheBytes)
	gauge(NameQueueFiles, &s.QueueFiles)
	gauge(NamePendingBytes, &s.Pending)
	gauge(NameUploading, &s.Uploading)
	gauge(NameJournalBytes, &s.Journal)
	if fams[NameRequests] == nil && fams[NameQueueFiles] == nil {
		return nil, fmt.Errorf("not a coffer mount's metrics (no %s)", NameRequests)
	}
	for _, o := range ops {
		s.Requests = append(s.Requests, *o)
	}
	sort.Slice(s.Requests, func(i, j int) bool { return s.Requests[i].Op < s.Requests[j].Op })
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
