// Package metrics is coffer's observability layer: a Prometheus registry
// per mount (coffer mount --metrics-addr) and the figures coffer stats
// prints.
//
// Two sources feed it. A blobstore.Store decorator (Metrics.Store) counts
// every request by operation and outcome, times it into a latency
// histogram, and counts body bytes up and down. A collector
// (Metrics.Watch) reads fs.Volume.Stats at every scrape: block cache hits
// and misses, the upload queue (files and staged bytes), uploads in
// flight, the journal's size (-1 until the upload journal feeds
// fs.VolumeStats.JournalBytes), and failed operations by errno.
//
// Invariants: no label or value carries a file name, an object key or a
// key: labels are operations, outcomes, layers, directions and errno
// names. The decorator changes nothing of what it forwards (a seekable
// body stays seekable, errors are returned as they came). The server
// listens on loopback unless the caller allows otherwise (CheckAddr).
//
// It must never: log, block a request on a metric, or expose anything a
// store listing would not already show to the mount's own user.
package metrics
