package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"
)

// TestStreamingWriteOnMount (versitygw, a real mount): a big file written
// in 1 MiB writes has its multipart upload in progress on the server
// before it is closed; then rsync's pattern (close, utimens, rename of
// the temporary file) stores it under its final name with its mtime, the
// temporary name gone and no multipart upload left.
func TestStreamingWriteOnMount(t *testing.T) {
	store := newS3Store(t, "versitygw")
	v := newVolume(t, store)
	v.mount()
	direct := store.open(t)
	pending := func() int {
		n := 0
		for _, err := range direct.Uploads(context.Background(), "") {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	data := make([]byte, 40<<20)
	rand.Read(data)
	f, err := os.Create(v.path(".big.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off : off+1<<20]); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); pending() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no multipart upload in progress while the file is open")
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1600000000, 0)
	if err := os.Chtimes(v.path(".big.tmp"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(v.path(".big.tmp"), v.path("big")); err != nil {
		t.Fatal(err)
	}
	v.unmount()
	v.cacheDir = v.cacheDir + "-fresh"
	v.mount()
	got, err := os.ReadFile(v.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not what was written", len(got))
	}
	st, err := os.Stat(v.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(mtime) {
		t.Errorf("mtime %v, want %v", st.ModTime(), mtime)
	}
	if _, err := os.Stat(v.path(".big.tmp")); !os.IsNotExist(err) {
		t.Errorf("the temporary name is still there (err %v)", err)
	}
	if n := pending(); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}
