package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCloseLeavesNoSpareStaging: staging keeps emptied files for reuse
// while mounted; Close deletes them, so an unmounted cache dir holds no
// staging litter (files with content, kept for recovery, would stay).
func TestCloseLeavesNoSpareStaging(t *testing.T) {
	for _, mode := range []string{EncryptionClient, EncryptionNone} {
		t.Run(mode, func(t *testing.T) {
			cacheDir := t.TempDir() // removed after the check below
			t.Cleanup(func() {      // runs after the volume's Close
				ents, err := os.ReadDir(filepath.Join(cacheDir, "staging"))
				if err != nil {
					t.Fatalf("staging dir: %v", err)
				}
				for _, e := range ents {
					t.Errorf("left in staging after Close: %s", e.Name())
				}
			})
			tv := newTestVolume(t, mode, func(o *Options) { o.CacheDir = cacheDir })
			for _, p := range []string{"/a", "/b", "/c"} {
				writeFile(t, tv.Volume, p, []byte("uploaded, so its staging file becomes a spare"))
			}
			if err := tv.Volume.Flush(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(filepath.Join(cacheDir, "staging"))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) == 0 {
				t.Fatal("no spare staging files before Close: the check after Close would prove nothing")
			}
		})
	}
}
