package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/blobstore"
)

// markerScan looks for plaintext markers: in file names, contents and
// extended attributes under local directories, and in the keys, metadata
// and bodies of a store.
type markerScan struct {
	markers  [][]byte
	findings []string // each once
	seen     map[string]bool
}

func newMarkerScan(markers ...string) *markerScan {
	s := &markerScan{seen: map[string]bool{}}
	for _, m := range markers {
		s.markers = append(s.markers, []byte(m))
	}
	return s
}

func (s *markerScan) check(where string, data []byte) {
	for _, m := range s.markers {
		f := fmt.Sprintf("%s holds %q", where, m)
		if !s.seen[f] && bytes.Contains(data, m) {
			s.seen[f] = true
			s.findings = append(s.findings, f)
		}
	}
}

// dir scans every name, file and xattr under root. A missing root, or one
// without files, is an error: a scan of nothing proves nothing.
func (s *markerScan) dir(root string) error {
	files, err := s.walk(root)
	if err == nil && files == 0 {
		err = fmt.Errorf("scanning %s: no files at all", root)
	}
	return err
}

// dirMaybeEmpty is dir for a directory that may rightly hold no files.
func (s *markerScan) dirMaybeEmpty(root string) error {
	_, err := s.walk(root)
	return err
}

func (s *markerScan) walk(root string) (int, error) {
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		s.check("name "+filepath.Join(filepath.Base(root), rel), []byte(rel))
		s.xattrs(p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s.check("symlink "+p, []byte(target))
		case d.Type().IsRegular():
			files++
			return s.file(p)
		}
		return nil
	})
	if err != nil {
		return files, fmt.Errorf("scanning %s: %w", root, err)
	}
	return files, nil
}

// file scans a file in overlapping windows, so memory stays bounded and
// a marker across a window edge is still found.
func (s *markerScan) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	overlap := 0
	for _, m := range s.markers {
		overlap = max(overlap, len(m))
	}
	buf := make([]byte, 0, 1<<20+overlap)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		s.check("content of "+path, buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		keep := min(overlap, len(buf))
		copy(buf, buf[len(buf)-keep:])
		buf = buf[:keep]
	}
}

func (s *markerScan) xattrs(path string) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		return
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(path, names); err != nil {
		return
	}
	for _, name := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		s.check("xattr name on "+path, []byte(name))
		vsize, err := unix.Lgetxattr(path, name, nil)
		if err != nil || vsize == 0 {
			continue
		}
		val := make([]byte, vsize)
		if vsize, err = unix.Lgetxattr(path, name, val); err == nil {
			s.check("xattr "+name+" on "+path, val[:vsize])
		}
	}
}

// store scans every key, metadata value and body of st.
func (s *markerScan) store(st blobstore.Store) error {
	ctx := context.Background()
	objects := 0
	for e, err := range st.List(ctx, "", "") {
		if err != nil {
			return err
		}
		objects++
		s.check("object key "+e.Key, []byte(e.Key))
		rc, info, err := st.Get(ctx, e.Key, blobstore.GetOptions{Length: -1})
		if err != nil {
			return fmt.Errorf("get %s: %w", e.Key, err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("get %s: %w", e.Key, err)
		}
		s.check("body of "+e.Key, body)
		if len(info.Metadata) == 0 {
			if info, err = st.Head(ctx, e.Key); err != nil {
				return fmt.Errorf("head %s: %w", e.Key, err)
			}
		}
		for k, v := range info.Metadata {
			s.check("metadata "+k+" of "+e.Key, []byte(k+"="+v))
		}
	}
	if objects == 0 {
		return fmt.Errorf("the store lists no objects")
	}
	return nil
}

// TestMarkerScanFinds is the control: the scan finds markers where they
// are plain, so a clean scan means something.
func TestMarkerScanFinds(t *testing.T) {
	dir := t.TempDir()
	marker := "cofmark" + randomHex(8)
	writeFile(t, filepath.Join(dir, "plain"), append(bytes.Repeat([]byte{'x'}, 1<<20-3), marker...)) // across a window edge
	writeFile(t, filepath.Join(dir, "name-"+marker), []byte("nothing"))
	s := newMarkerScan(marker)
	if err := s.dir(dir); err != nil {
		t.Fatal(err)
	}
	if len(s.findings) != 2 {
		t.Fatalf("control scan found %v, want the content and the name", s.findings)
	}
	local := &storeRef{url: filepath.Join(dir, "store")}
	st := local.open(t)
	if _, err := st.Put(context.Background(), "k-"+marker, strings.NewReader("body "+marker), int64(len("body "+marker)), blobstore.PutOptions{Metadata: map[string]string{"m": marker}}); err != nil {
		t.Fatal(err)
	}
	s = newMarkerScan(marker)
	if err := s.store(st); err != nil {
		t.Fatal(err)
	}
	if len(s.findings) != 3 {
		t.Fatalf("control store scan found %v, want key, body and metadata", s.findings)
	}
}
