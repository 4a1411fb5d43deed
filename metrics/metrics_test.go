package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
)

// seekCheck records whether Put bodies reach the store seekable.
type seekCheck struct {
	blobstore.Store
	seekable []bool
}

func (s *seekCheck) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	_, ok := body.(io.ReadSeeker)
	s.seekable = append(s.seekable, ok)
	return s.Store.Put(ctx, key, body, size, opts)
}

// TestStoreMetrics: the decorator counts requests by operation and
// outcome, times them, counts body bytes both ways, keeps seekable bodies
// seekable, and what it serves parses back into the same figures.
func TestStoreMetrics(t *testing.T) {
	local, err := blobstore.NewLocal(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	inner := &seekCheck{Store: local}
	m := New()
	st := m.Store(inner)
	defer st.Close()
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 1000)
	if _, err := st.Put(ctx, "a", bytes.NewReader(data), 1000, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "b", io.LimitReader(bytes.NewReader(data), 300), 300, blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(inner.seekable) != 2 || !inner.seekable[0] || inner.seekable[1] {
		t.Errorf("seekable bodies: %v, want [true false]", inner.seekable)
	}
	rc, _, err := st.Get(ctx, "a", blobstore.GetOptions{Offset: 100, Length: 500})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if _, err := st.Head(ctx, "missing"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "a", bytes.NewReader(nil), 0, blobstore.PutOptions{IfNoneMatch: true}); !errors.Is(err, blobstore.ErrPreconditionFailed) {
		t.Fatal(err)
	}
	up, err := st.Multipart(ctx, "mp", blobstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := up.UploadPart(ctx, 1, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Complete(ctx, []blobstore.Part{p}); err != nil {
		t.Fatal(err)
	}
	for range st.List(ctx, "", "") {
	}

	srv, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s, err := Scrape(ctx, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if s.BytesUp != 1000+300+1000 || s.BytesDown != 500 {
		t.Errorf("bytes up %v (want 2300), down %v (want 500)", s.BytesUp, s.BytesDown)
	}
	want := map[string]map[string]float64{
		"put":                {"ok": 2, "precondition_failed": 1},
		"get":                {"ok": 1},
		"head":               {"not_found": 1},
		"multipart_create":   {"ok": 1},
		"multipart_part":     {"ok": 1},
		"multipart_complete": {"ok": 1},
		"list":               {"ok": 1},
	}
	got := map[string]OpStats{}
	for _, o := range s.Requests {
		got[o.Op] = o
	}
	for op, outcomes := range want {
		o := got[op]
		var n float64
		for out, c := range outcomes {
			n += c
			if o.Outcomes[out] != c {
				t.Errorf("%s %s: %v, want %v", op, out, o.Outcomes[out], c)
			}
		}
		if float64(o.Count) != n {
			t.Errorf("%s: %d latency samples, want %v", op, o.Count, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("operations %v, want %v", got, want)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:9464", false, true},
		{"[::1]:9464", false, true},
		{"localhost:0", false, true},
		{"127.0.0.2:1", false, true},
		{"0.0.0.0:9464", false, false},
		{"192.0.2.1:9464", false, false},
		{":9464", false, false},
		{"0.0.0.0:9464", true, true},
		{"127.0.0.1", false, false},
	} {
		err := CheckAddr(tt.addr, tt.remote)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%q, %v) = %v, want ok %v", tt.addr, tt.remote, err, tt.ok)
		}
		if err != nil && strings.HasSuffix(tt.addr, ":9464") && !strings.Contains(err.Error(), "--metrics-allow-remote") {
			t.Errorf("CheckAddr(%q): %v does not name the flag", tt.addr, err)
		}
	}
}
