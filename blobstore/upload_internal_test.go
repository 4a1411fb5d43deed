package blobstore

import "testing"

func TestUploaderPartSize(t *testing.T) {
	cases := []struct {
		size, part, want int64
	}{
		{-1, 0, DefaultPartSize},
		{100, 0, DefaultPartSize},
		{MaxParts * DefaultPartSize, 0, DefaultPartSize},
		{MaxParts*DefaultPartSize + 1, 0, DefaultPartSize + 1<<20},
		{5 << 40, 5 << 20, 525 << 20}, // 5 TiB, S3's object limit
	}
	for _, c := range cases {
		u := newUploader(nil, "k", c.size, UploadOptions{PartSize: c.part})
		if u.partSize != c.want {
			t.Errorf("size %d, part %d: part size %d, want %d", c.size, c.part, u.partSize, c.want)
		}
		if c.size > 0 && (c.size+u.partSize-1)/u.partSize > MaxParts {
			t.Errorf("size %d needs more than %d parts of %d", c.size, MaxParts, u.partSize)
		}
	}
}

func TestUploadRefusesTooManyPoolParts(t *testing.T) {
	pool := NewPartPool(1<<20, 2)
	_, err := Upload(t.Context(), nil, "k", nil, MaxParts<<20+1, UploadOptions{Pool: pool})
	if err == nil {
		t.Fatal("an upload needing more than MaxParts parts of the pool's size started")
	}
}
