package blobstore_test

import (
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/blobstore/storetest"
)

func newLocal(t testing.TB) blobstore.Store {
	l, err := blobstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func TestLocalConformance(t *testing.T) {
	s := &storetest.Suite{NewStore: newLocal}
	s.Run(t)
}
