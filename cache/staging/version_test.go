package staging

import (
	"testing"
)

// A Version from Commit matches the file Open finds until the file
// changes; after any change, even one a crash cut short before it was
// committed, the reopened file no longer matches it. A reused spare name
// is told apart by its salt.
func TestVersion(t *testing.T) {
	changes := []struct {
		name   string
		change func(*File) error
	}{
		{"none", func(*File) error { return nil }},
		{"overwrite in place, uncommitted", func(f *File) error {
			_, err := f.WriteAt([]byte("XY"), 1)
			if err == nil {
				err = f.flushWB() // a block on disk, no new record of its own
			}
			return err
		}},
		{"whole block rewritten, uncommitted", func(f *File) error {
			_, err := f.WriteAt(pattern(bs, 9), 0)
			return err
		}},
		{"append, uncommitted", func(f *File) error {
			_, err := f.WriteAt([]byte("more"), 2*bs+10)
			return err
		}},
		{"truncate", func(f *File) error { return f.Truncate(5) }},
		{"meta", func(f *File) error { return f.SetMeta([]byte("other")) }},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDir(t, bs)
			f := mustCreate(t, d, []byte("m"))
			if _, err := f.WriteAt(pattern(2*bs+10, 1), 0); err != nil {
				t.Fatal(err)
			}
			v, err := f.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if v.Name != f.Name() || v.Size != 2*bs+10 || v.Seq == 0 {
				t.Fatalf("Commit = %+v", v)
			}
			if again, _ := f.Commit(); again != v {
				t.Fatalf("second Commit without a change = %+v, want %+v", again, v)
			}
			if err := c.change(f); err != nil {
				t.Fatal(err)
			}
			// A crash: the file is reopened without Close.
			g, err := d.Open(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if got := g.Version(); (got == v) != (c.name == "none") {
				t.Fatalf("reopened Version = %+v, committed %+v: match %v after change %q", got, v, got == v, c.name)
			}
		})
	}

	t.Run("reused name", func(t *testing.T) {
		d := newTestDir(t, bs)
		f := mustCreate(t, d, nil)
		f.WriteAt([]byte("abc"), 0)
		v, err := f.Commit()
		if err != nil {
			t.Fatal(err)
		}
		// The refill Create started must not add a spare after f's.
		d.refills.Wait()
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
		g := mustCreate(t, d, nil)
		g.WriteAt([]byte("xyz"), 0)
		w, err := g.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if w.Name != v.Name {
			t.Fatalf("spare not reused: %s, then %s", v.Name, w.Name)
		}
		if w.Salt == v.Salt {
			t.Fatal("a new file on a reused name has the old salt")
		}
	})
}
