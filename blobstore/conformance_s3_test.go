//go:build s3

package blobstore_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/blobstore/storetest"
)

// serverLimits are the conformance tests a server cannot pass whatever
// the client does, with the reason; they are reported as skipped, by
// name, never dropped silently. Everything else in the suite runs.
var serverLimits = map[string]map[string]string{
	"versitygw": {
		"KeysNested": "versitygw's posix backend maps keys to files and directories: `a` and `a/b` cannot both exist (409 ExistingObjectIsDirectory)",
		"SpecialKeys": "versitygw refuses a /-separated key segment over 255 bytes (KeyTooLongError); " +
			"the suite stores 300- and 1024-byte segments (coffer hashes segments over 200 bytes)",
	},
	"seaweedfs": {
		"Delete": "SeaweedFS lists an emptied directory as a common prefix until its empty-folder cleaner runs (about 2 minutes)",
		"SpecialKeys": "SeaweedFS refuses a /-separated key segment over 255 bytes (KeyTooLongError); " +
			"the suite stores 300- and 1024-byte segments (coffer hashes segments over 200 bytes)",
	},
}

// runSuite runs every Test method of the suite, as Suite.Run does,
// except the named server limits, which it skips with their reason.
func runSuite(t *testing.T, suite *storetest.Suite, limits map[string]string) {
	v := reflect.ValueOf(suite)
	ran := 0
	for i := range v.Type().NumMethod() {
		m := v.Type().Method(i)
		name, ok := strings.CutPrefix(m.Name, "Test")
		if !ok {
			continue
		}
		fn, ok := v.Method(i).Interface().(func(*testing.T))
		if !ok {
			t.Fatalf("suite method %s has the wrong signature", m.Name)
		}
		ran++
		t.Run(name, func(t *testing.T) {
			if reason, ok := limits[name]; ok {
				t.Skip("server limitation: " + reason)
			}
			fn(t)
		})
	}
	if ran == 0 {
		t.Fatal("suite has no tests")
	}
	for name := range limits {
		if _, ok := v.Type().MethodByName("Test" + name); !ok {
			t.Errorf("limit listed for %s, which the suite no longer has", name)
		}
	}
}

// The conformance suite against each server: every test in a fresh
// bucket. No store prefix: the suite stores keys of the full 1024-byte
// S3 limit.
func TestS3Conformance(t *testing.T) {
	forServers(t, func(t *testing.T, srv s3Server) {
		suite := &storetest.Suite{NewStore: func(t testing.TB) blobstore.Store {
			s, _ := srv.newStore(t, "", nil)
			return s
		}}
		runSuite(t, suite, serverLimits[srv.name])
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
	runSuite(t, suite, serverLimits[srv.name])
}
