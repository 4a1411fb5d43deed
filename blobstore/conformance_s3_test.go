//go:build s3

package blobstore_test

import (
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/blobstore/storetest"
)

// serverSuite is the conformance suite with the server's declared
// limits: the tests that would cross one check that the server refuses
// it instead (see storetest.Suite).
func serverSuite(srv s3Server, newStore func(t testing.TB) blobstore.Store) *storetest.Suite {
	suite := &storetest.Suite{NewStore: newStore}
	switch srv.name {
	case "versitygw":
		// posix backend: keys are files and directories, names are
		// at most 255 bytes.
		suite.FileDirConflict = true
		suite.MaxSegmentLen = 255
		// a copy with REPLACE sets xattrs only: the file's mtime,
		// LastModified, stays.
		suite.MetadataCopyKeepsLastModified = true
	case "seaweedfs":
		// filer entries are at most 255 bytes; emptied directories
		// stay listed until the empty-folder cleaner runs (~2 min).
		suite.MaxSegmentLen = 255
		suite.EmptyPrefixesLinger = true
	}
	return suite
}

// The conformance suite against each server: every test in a fresh
// bucket. No store prefix: the suite stores keys of the full 1024-byte
// S3 limit.
func TestS3Conformance(t *testing.T) {
	forServers(t, func(t *testing.T, srv s3Server) {
		serverSuite(srv, func(t testing.TB) blobstore.Store {
			s, _ := srv.newStore(t, "", nil)
			return s
		}).Run(t)
	})
}

// The same suite in sse-c mode on SeaweedFS: every operation carries
// the customer key.
func TestS3ConformanceSSEC(t *testing.T) {
	srv := server(t, "seaweedfs")
	serverSuite(srv, func(t testing.TB) blobstore.Store {
		s, _ := srv.newStore(t, "", func(o *blobstore.Options) {
			o.SSE = blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: [][]byte{testKey(1)}}
		})
		return s
	}).Run(t)
}
