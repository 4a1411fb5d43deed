// Package integration holds coffer's end-to-end tests: each one builds
// the coffer binary, mounts a volume for real through FUSE (coffer mount
// --daemon) against the local backend and against versitygw, and drives
// the mount with the os package and real tools (cp -a, diff, rsync, git,
// dd). SeaweedFS covers the SSE-C mode.
//
// The servers come from scripts/with-servers.sh (COFFER_TEST_VERSITYGW_*,
// COFFER_TEST_SEAWEEDFS_*). Without them, or without /dev/fuse, the
// tests skip, unless COFFER_REQUIRE_SERVERS=1 (set by the Makefile), in
// which case they fail.
//
// Invariants the tests hold coffer to: byte-exact contents across
// unmount and remount, POSIX errors where POSIX has them, and no
// plaintext name or content anywhere in the store or the cache directory.
package integration
