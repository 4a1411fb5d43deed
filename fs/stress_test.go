package fs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConcurrentOperations runs creates, writes, renames, reads, chmods
// and unlinks from several goroutines with uploads racing them, then
// checks what survived.
func TestConcurrentOperations(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = time.Millisecond })
	ctx := context.Background()
	v := tv.Volume
	v.Mkdir(ctx, "/s", 0o755)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				p := fmt.Sprintf("/s/g%d-%d", g, i)
				content := bytes.Repeat([]byte{byte(g), byte(i)}, 1000*(i%5))
				h, _, err := v.Create(ctx, p+".tmp", 0o644, syscall.O_EXCL|syscall.O_RDWR)
				if err != nil {
					errs <- err
					return
				}
				h.WriteAt(ctx, content, 0)
				if i%7 == 0 {
					h.Fsync(ctx)
				}
				h.Close(ctx)
				if err := v.Rename(ctx, p+".tmp", p, 0); err != nil {
					errs <- err
					return
				}
				m := uint32(0o600)
				if _, err := v.SetAttr(ctx, p, SetAttr{Mode: &m}); err != nil {
					errs <- err
					return
				}
				got, err := tryRead(v, p)
				if err != nil || !bytes.Equal(got, content) {
					errs <- fmt.Errorf("%s: %d bytes, %v", p, len(got), err)
					return
				}
				if i%3 == 0 {
					if err := v.Unlink(ctx, p); err != nil {
						errs <- err
						return
					}
				}
				if i%10 == 0 {
					v.ReadDir(ctx, "/s")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flush(t, v)
	v2 := tv.reopen(t)
	ents, err := v2.ReadDir(ctx, "/s")
	if err != nil || len(ents) != 8*20 {
		t.Fatalf("%d entries, %v", len(ents), err)
	}
	for _, e := range ents {
		if e.Attr.Mode&0o777 != 0o600 {
			t.Fatalf("%s mode %o", e.Name, e.Attr.Mode)
		}
		var g, i int
		fmt.Sscanf(e.Name, "g%d-%d", &g, &i)
		want := bytes.Repeat([]byte{byte(g), byte(i)}, 1000*(i%5))
		if got := readFile(t, v2, "/s/"+e.Name); !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes", e.Name, len(got))
		}
	}
}
