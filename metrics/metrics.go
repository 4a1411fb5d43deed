package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	cofferfs "github.com/cofferfs/coffer/fs"
)

// Metric names, the contract with dashboards and with coffer stats.
const (
	NameRequests     = "coffer_store_requests_total"
	NameLatency      = "coffer_store_request_duration_seconds"
	NameBytes        = "coffer_store_bytes_total"
	NameCacheHits    = "coffer_cache_hits_total"
	NameCacheMisses  = "coffer_cache_misses_total"
	NameCacheBytes   = "coffer_cache_disk_bytes"
	NameQueueFiles   = "coffer_upload_queue_files"
	NamePendingBytes = "coffer_upload_pending_bytes"
	NameUploading    = "coffer_uploads_in_flight"
	NameJournalBytes = "coffer_journal_bytes"
	NameErrors       = "coffer_errors_total"
)

// Metrics is one mount's metrics registry.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	bytesUp   prometheus.Counter
	bytesDown prometheus.Counter
}

// New returns a registry with the store metrics and the Go runtime's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameRequests, Help: "Object-store requests by operation and outcome.",
	}, []string{"op", "outcome"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: NameLatency, Help: "Object-store request latency (for GET: until the response, before the body streams).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1 ms .. ~60 s
	}, []string{"op"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameBytes, Help: "Object body bytes sent to (up) and received from (down) the store.",
	}, []string{"direction"})
	m.bytesUp, m.bytesDown = bytes.WithLabelValues("up"), bytes.WithLabelValues("down")
	m.reg.MustRegister(m.requests, m.latency, bytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the underlying registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Watch adds the figures of a volume, read at every scrape: block cache
// hits and misses, the upload queue, the journal's size, errors by errno.
func (m *Metrics) Watch(v *cofferfs.Volume) {
	m.reg.MustRegister(&volumeCollector{stats: v.Stats})
}

var (
	descHits    = prometheus.NewDesc(NameCacheHits, "Block cache hits by layer.", []string{"layer"}, nil)
	descMisses  = prometheus.NewDesc(NameCacheMisses, "Block cache misses by layer.", []string{"layer"}, nil)
	descCache   = prometheus.NewDesc(NameCacheBytes, "Size of the disk block cache.", nil, nil)
	descQueue   = prometheus.NewDesc(NameQueueFiles, "Files with changes not yet stored (open, waiting for writeback, or uploading).", nil, nil)
	descPending = prometheus.NewDesc(NamePendingBytes, "Staged bytes of the files not yet stored.", nil, nil)
	descUp      = prometheus.NewDesc(NameUploading, "Uploads holding an upload slot.", nil, nil)
	descJournal = prometheus.NewDesc(NameJournalBytes, "Size of the upload journal on disk (-1: no journal).", nil, nil)
	descErrors  = prometheus.NewDesc(NameErrors, "Failed filesystem operations by errno.", []string{"errno"}, nil)
)

type volumeCollector struct {
	stats func() cofferfs.VolumeStats
}

func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descMisses, descCache, descQueue, descPending, descUp, descJournal, descErrors} {
		ch <- d
	}
}

func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descHits, float64(s.Cache.MemHits), "memory")
	counter(descHits, float64(s.Cache.DiskHits), "disk")
	counter(descMisses, float64(s.Cache.MemMisses), "memory")
	counter(descMisses, float64(s.Cache.DiskMisses), "disk")
	gauge(descCache, float64(s.Cache.DiskBytes))
	gauge(descQueue, float64(s.PendingFiles))
	gauge(descPending, float64(s.PendingBytes))
	gauge(descUp, float64(s.Uploading))
	gauge(descJournal, float64(s.JournalBytes))
	for name, n := range s.Errors {
		counter(descErrors, float64(n), name)
	}
}

// CheckAddr refuses a listen address that is not loopback unless
// allowRemote: metrics name no file, but they show activity to whoever
// can reach them.
func CheckAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: want HOST:PORT (e.g. 127.0.0.1:9464): %w", addr, err)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("metrics address %s is not loopback: anyone who reaches it sees this mount's activity; give --metrics-allow-remote to serve it there anyway", addr)
	}
	return nil
}

// Server serves /metrics until Close.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Serve listens on addr (port 0: any free port) and serves the registry
// at /metrics in the background.
func (m *Metrics) Serve(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
