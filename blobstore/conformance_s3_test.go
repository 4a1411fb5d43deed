//go:build s3

package blobstore_test

import (
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/blobstore/storetest"
)

// The conformance suite, unchanged, against each server: every test in a
// fresh bucket. No store prefix: the suite stores keys of the full
// 1024-byte S3 limit.
func TestS3Conformance(t *testing.T) {
	forServers(t, func(t *testing.T, srv s3Server) {
		suite := &storetest.Suite{NewStore: func(t testing.TB) blobstore.Store {
			s, _ := srv.newStore(t, "", nil)
			return s
		}}
		suite.Run(t)
	})
}

// The same suite in sse-c mode on SeaweedFS: every operation carries
// the customer key.
func TestS3ConformanceSSEC(t *testing.T) {
	srv := server(t, "seaweedfs")
	suite := &storetest.Suite{NewStore: func(t testing.TB) blobstore.Store {
		s, _ := srv.newStore(t, "", func(o *blobstore.Options) {
			o.SSE = blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: [][]byte{testKey(1)}}
		})
		return s
	}}
	suite.Run(t)
}
