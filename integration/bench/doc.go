// Command bench measures coffer through a real FUSE mount against the raw
// S3 SDK and against peer filesystems (rclone mount with a crypt remote,
// s3fs-fuse), all on the same S3 server in one run, and prints one table
// of figures and ratios (DESIGN.md §8), and writes the same figures as
// JSON to -json ($BENCH_JSON, default bench/results.json): one object per
// row (write_1gib_mbps, cold_read_1gib_mbps, small_create_s, small_ls_s,
// small_read_s, peak_rss_mib) holding every system's figure (coffer,
// sdk_put, sdk_multipart, sdk_get, sdk_ranged_get, rclone, s3fs; null
// where not measured), plus meta: date, host, cores, load, coffer's
// revision, the server's and peers' versions, the sizes and the SDK
// settings. The row names are fixed: a run with another big-file size
// keeps "1gib" in them, and meta.sizes says what was measured. It then
// draws the report as an SVG bar chart with gonum.org/v1/plot to -svg
// ($BENCH_SVG, default: the JSON's path with .svg): a panel per row, a
// bar per system measured in it, each bar as long as the system's figure
// over coffer's (coffer = 1, stated in the title) and labelled with the
// figure. -chart-only measures nothing and needs no server: it reads
// -json, prints its table and redraws the chart. report_test.go checks
// the JSON round trip and the chart against testdata/results.json. `make bench` runs it under
// scripts/with-servers.sh versitygw, which exports the server's endpoint
// and credentials (COFFER_TEST_VERSITYGW_*).
//
// Every system gets the same workloads:
//   - one big file written with 1 MiB writes (as dd bs=1M does), timed
//     until stored: fsync, then unmount, which waits for pending uploads
//     and for the mount process to exit;
//   - a cold read of it: a fresh mount with an empty cache directory,
//     1 MiB reads;
//   - many small files created (create, write, close) until stored, then
//     a cold `ls -l` and a cold read of them all, each on a fresh mount;
//   - the peak RSS (VmHWM) of the mount process while it stores a larger
//     file.
//
// Every phase, the SDK baselines' too, starts the same way (startPhase):
// sync, the page cache dropped (when root), and -prewarm (BENCH_PREWARM,
// default 4 GiB, at most a quarter of MemAvailable) of memory touched and
// freed, so that no phase inherits another's cached pages or pays the
// host for memory the VM's balloon gave back (prewarm).
//
// -phases (BENCH_PHASES) runs some workloads only, e.g. -phases write for
// the write row (and its SDK baselines) alone.
//
// The raw SDK baselines use coffer's own S3 backend (the AWS SDK with
// unsigned payloads on loopback), two per row they apply to. Write: one
// PutObject of the big file's size (sdk_put) and the same bytes as a
// parallel multipart upload (blobstore.Upload with coffer's default
// 8 MiB parts, 8 in flight; sdk_multipart), which is how coffer stores a
// big file; on a server whose multipart completion copies the parts
// (versitygw) that is the lower, honest ceiling. Cold read, the page
// cache dropped before each: one GetObject of the object put (sdk_get)
// and the same object as parallel ranged GETs (-range-size, default
// 32 MiB, -range-conc in flight, default 8; sdk_ranged_get), the ceiling
// coffer's read-ahead can reach. The table joins each pair into one
// column: "SDK single" and "SDK parallel". Peers that are not on PATH
// are reported as not installed; they are never required.
//
// The bench never asserts anything: it reports. It needs root or
// fusermount3 for FUSE, and writes only under its own temporary directory
// and into buckets it creates on the server.
package main
