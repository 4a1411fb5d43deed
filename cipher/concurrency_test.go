package cipher

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// TestConcurrentUse shares one ObjectKey and one Keyring between
// goroutines, as a mount does (run with -race to check the locking).
func TestConcurrentUse(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	plain := pseudoRandom(1000, 9)
	var wg sync.WaitGroup
	errs := make(chan error, 8*100)
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				sealed := o.SealChunk(nil, plain, 0, true)
				got, err := o.OpenChunk(nil, sealed, 0, int64(len(plain)))
				if err == nil && !bytes.Equal(got, plain) {
					err = errors.New("chunk opened to other bytes")
				}
				if err != nil {
					errs <- err
				}
			}
			if g == 0 {
				if err := kr.AddGeneration(); err != nil {
					errs <- err
				}
			}
			meta, err := kr.SealMetadata(o, "/f", testAttr)
			if err == nil {
				_, _, err = kr.OpenMetadata(meta, "/f")
			}
			if err == nil {
				_, _, err = kr.Names().EncryptSegment("/", "name")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
