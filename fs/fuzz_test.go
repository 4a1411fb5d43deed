package fs

import (
	"syscall"
	"testing"
	"time"
)

// FuzzPlainMeta: s3fs-style metadata from any tool never panics and
// always yields a file type.
func FuzzPlainMeta(f *testing.F) {
	f.Add("33188", "1000", "1000", "1700000000")
	f.Add("", "x", "-1", "1.5e9")
	f.Add("16877", "0", "0", "NaN")
	f.Add("4294967295", "99999999999", "", "1e300")
	l := &plainLayout{}
	f.Fuzz(func(t *testing.T, mode, uid, gid, mtime string) {
		meta := map[string]string{"mode": mode, "uid": uid, "gid": gid, "mtime": mtime}
		_, a, err := l.openMeta("/x", "x", meta, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if a.Mode&syscall.S_IFMT == 0 {
			t.Fatalf("no file type in %o", a.Mode)
		}
	})
}

// FuzzCheckPath: accepted paths split and join back to themselves.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/", "/a", "/a/b", "a", "/a/", "//", "/a/../b", "/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !checkPath(p) || p == "/" {
			return
		}
		dir, name := splitPath(p)
		if joinPath(dir, name) != p || !checkPath(dir) || name == "" {
			t.Fatalf("%q splits into %q %q", p, dir, name)
		}
	})
}
