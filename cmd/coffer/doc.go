// Command coffer mounts an S3 bucket (or a local directory) as an
// encrypted filesystem.
//
// This package is the command line only: it parses flags, resolves the
// defaults of DESIGN.md §6 (store URL, key files, cache directory),
// opens the store and the volume through the blobstore and fs packages,
// mounts them with fs/fusefs, and turns every failure into one line on
// stderr that says what was wrong and what to do. Every command that
// opens a volume (mount, and the offline commands) goes through the one
// path in volume.go: flags, then store and config, then the volume with
// its keys and mode checks.
//
// The offline commands (offline.go, ls.go, cat.go, get.go, put.go,
// rm.go, fsck.go) open the volume like mount, work several files at a
// time, name every failure on stderr, go on, and exit 1 if any failed.
// A mount records a state file beside its pid file in the run dir
// (mountstate.go: pid, mountpoint, store, cache dir, metrics address),
// which coffer stats reads to find the metrics and fsck --repair to
// refuse a cache dir a live mount uses. Called as mount.coffer or
// umount.fuse.coffer (fstab.go), coffer translates mount(8)'s and
// umount(8)'s calls into coffer mount --daemon and coffer unmount.
//
// How a mount ends (control.go): a mount also serves a Unix socket beside
// its pid file; coffer unmount connects before it unmounts, and the mount
// answers, once its last uploads are done, with its final report: the
// files whose upload failed (they stay in the upload journal of the cache
// dir) and the conflict copies stored. unmount prints them and exits 1
// when a file was not uploaded, or when the mount died without a report;
// the report carries plaintext paths and so never touches disk (a daemon
// only counts them in its log file). A foreground mount ends with the
// same report on its stderr and exit code. What recovery did at mount
// (fs.Volume.Recovered) is one line on stderr; a daemon child passes it
// to its parent as a "note:" line on the ready pipe. --retry-budget sets
// fs's budget for uploads that are waited for and, when shorter than the
// S3 backend's own budget, shortens that backend's stall timeout and
// backoff cap to a twelfth of it (storeRetry), so no request outlasts it.
//
// Beyond DESIGN.md §6: `coffer key reauth` (key.go) takes every root key
// as repeatable --key-file / --passphrase-file flags, and so do key add,
// key list and key remove (keycmds.go; any one listed key opens the
// volume); key add prints the new key's ID alone on stdout; key list
// takes --count=false (no HEAD per object); rotate (rotate.go) takes
// --concurrency, --mount-grace (the wait for running mounts, 0 when none
// runs) and --new-generation (add a generation even when an unfinished
// rotation would be resumed), and --sse-c-new-key-file rotates the SSE-C
// key only; passwd (passwd.go) takes no --key-file. With --encryption
// none the default cache directory is none-<hash of store URL, endpoint
// and volume ID> (cachedir.go), since such a config is not authenticated.
// An error line names the command path ("coffer key add: ...").
//
// Invariants:
//   - Exit codes: 0 success, 1 failure, 2 usage error.
//   - Key material never appears in argv, the environment, logs or error
//     messages: keys are always passed as file paths, including to the
//     background child that `mount --daemon` starts.
//   - Logs at info level and above never carry plaintext names or file
//     contents.
//
// It must never: decide anything about formats or layout (that belongs to
// cipher, blobstore and fs), or print a stack trace for a user error.
package main
