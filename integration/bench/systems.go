package main

import "fmt"

// system is one column of figures: a raw SDK baseline, coffer, or a peer.
// Each SDK baseline measures one row only: the two uploads the write,
// the two downloads the cold read.
type system int

const (
	sysSDKPut       system = iota // one PutObject of the big file
	sysSDKMultipart               // the same bytes as a parallel multipart upload
	sysSDKGet                     // one GetObject of the big file
	sysSDKRangedGet               // the same object as parallel ranged GETs
	sysCoffer
	sysRclone // rclone mount over a crypt remote
	sysS3fs
	numSystems
)

// key names the system in the JSON report.
func (s system) key() string {
	return [numSystems]string{"sdk_put", "sdk_multipart", "sdk_get", "sdk_ranged_get", "coffer", "rclone", "s3fs"}[s]
}

// name is how the table and the chart label the system.
func (s system) name() string {
	return [numSystems]string{"SDK PUT", "SDK multipart", "SDK GET", "SDK ranged GET", "coffer", "rclone crypt", "s3fs"}[s]
}

// peerSystem maps a BENCH_PEERS name to its system.
func peerSystem(name string) (system, error) {
	switch name {
	case "rclone":
		return sysRclone, nil
	case "s3fs":
		return sysS3fs, nil
	}
	return 0, fmt.Errorf("unknown peer %q: want rclone or s3fs", name)
}

// metric is one row of figures.
type metric int

const (
	writeMBs    metric = iota // big file written until stored
	readMBs                   // cold read of the big file
	createSecs                // small files created until stored
	lsSecs                    // cold ls -l of them
	readAllSecs               // cold read of them all
	rssMiB                    // peak RSS of the mount process storing the RSS file
	numMetrics
)

// key names the row in the JSON report. The names are fixed (issue 11)
// whatever the sizes of a run; the report's meta records the sizes.
func (m metric) key() string {
	return [numMetrics]string{"write_1gib_mbps", "cold_read_1gib_mbps", "small_create_s", "small_ls_s", "small_read_s", "peak_rss_mib"}[m]
}

// higherBetter says which way the row's figures improve.
func (m metric) higherBetter() bool { return m == writeMBs || m == readMBs }

// results holds one system's figures; 0 means not measured.
type results [numMetrics]float64
