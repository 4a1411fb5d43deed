package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cache/staging"
)

// TestStoreHoldsNoPlaintext writes marked names and contents and scans
// every byte the store keeps on disk (the local store's files, or under
// versitygw its bucket directory: files and the extended attributes that
// hold object metadata), the cache directory, and every object's
// metadata as the store returns it, for them.
func TestStoreHoldsNoPlaintext(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	v := tv.Volume
	const nameMark, dataMark = "SECRETNAMEMARK", "SECRETDATAMARK"
	v.Mkdir(ctx, "/"+nameMark+"dir", 0o755)
	writeFile(t, v, "/"+nameMark+"dir/"+nameMark+strings.Repeat("x", 240), []byte(strings.Repeat(dataMark, 10000)))
	writeFile(t, v, "/"+nameMark+"dir/small", []byte(dataMark))
	v.Symlink(ctx, nameMark+"target", "/"+nameMark+"link")
	flush(t, v)
	readFile(t, tv.Volume, "/"+nameMark+"dir/small")
	readFile(t, tv.Volume, "/"+nameMark+"dir/"+nameMark+strings.Repeat("x", 240))
	dirs := []string{tv.dir}
	if !strings.HasPrefix(tv.storeDir, tv.dir+"/") {
		dirs = append(dirs, tv.storeDir) // versitygw's bucket
	}
	stored, scanned := 0, 0
	for _, dir := range dirs {
		for p, b := range storeFiles(t, dir) {
			scanned++
			if strings.HasPrefix(p, tv.storeDir+"/") {
				stored++
			}
			for _, m := range []string{nameMark, dataMark, strings.ToLower(nameMark)} {
				if strings.Contains(p, m) || bytes.Contains(b, []byte(m)) {
					t.Fatalf("%s holds plaintext %q", p, m)
				}
			}
		}
	}
	if scanned < 5 || stored < 4 { // config, marker, two files, symlink
		t.Fatalf("scanned only %d files, %d of the store", scanned, stored)
	}
	for e, err := range tv.store.List(ctx, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		info, err := tv.store.Head(ctx, e.Key)
		if err != nil {
			t.Fatal(err)
		}
		for k, val := range info.Metadata {
			if strings.Contains(k+val, nameMark) || strings.Contains(k+val, dataMark) {
				t.Fatalf("metadata of %s holds plaintext", e.Key)
			}
		}
	}
}

func objectKeyOf(t *testing.T, v *Volume, p string) string {
	t.Helper()
	k, _, err := v.objectKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTamperedObjectIsEIO flips one body byte: reading the file fails
// with EIO, other files are unaffected.
func TestTamperedObjectIsEIO(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/a", bytes.Repeat([]byte("a"), 100000))
	writeFile(t, tv.Volume, "/b", []byte("bbb"))
	flush(t, tv.Volume)
	key := objectKeyOf(t, tv.Volume, "/a")
	rc, info, err := tv.store.Get(ctx, key, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	body[len(body)-20] ^= 1
	if _, err := tv.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), blobstore.PutOptions{Metadata: info.Metadata}); err != nil {
		t.Fatal(err)
	}
	v2 := tv.reopen(t)
	_, err = tryRead(v2, "/a")
	wantErrno(t, err, syscall.EIO)
	if got := readFile(t, v2, "/b"); string(got) != "bbb" {
		t.Fatalf("/b = %q", got)
	}
}

// TestCopiedOverIsEIO copies object B over A's key: A fails with EIO (its
// attributes are bound to B's path), B still reads.
func TestCopiedOverIsEIO(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/a", []byte("aaa"))
	writeFile(t, tv.Volume, "/b", []byte("bbb"))
	flush(t, tv.Volume)
	if _, err := tv.store.Copy(ctx, objectKeyOf(t, tv.Volume, "/b"), objectKeyOf(t, tv.Volume, "/a"), blobstore.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	v2 := tv.reopen(t)
	_, err := v2.Stat(ctx, "/a")
	wantErrno(t, err, syscall.EIO)
	_, err = tryRead(v2, "/a")
	wantErrno(t, err, syscall.EIO)
	if got := readFile(t, v2, "/b"); string(got) != "bbb" {
		t.Fatalf("/b = %q", got)
	}
	ents, err := v2.ReadDir(ctx, "/")
	if err != nil || names(ents) != "a,b" {
		t.Fatalf("readdir = %s, %v", names(ents), err)
	}
}

// TestUndecodableNamesSkipped: foreign objects in a client volume are
// skipped in listings.
func TestUndecodableNamesSkipped(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/ok", []byte("ok"))
	flush(t, tv.Volume)
	for _, k := range []string{"plain-name", "AAAA", "~bogus"} {
		tv.store.Put(ctx, k, bytes.NewReader(nil), 0, blobstore.PutOptions{})
	}
	ents, err := tv.reopen(t).ReadDir(ctx, "/")
	if err != nil || names(ents) != "ok" {
		t.Fatalf("readdir = %s, %v", names(ents), err)
	}
}

// TestImplicitDirectories: prefixes without a marker are 0700 dirs of
// the mounting user (client mode), 0755 in none mode.
func TestImplicitDirectories(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tv := newTestVolume(t, mode)
			ctx := context.Background()
			v := tv.Volume
			v.Mkdir(ctx, "/d", 0o755)
			writeFile(t, v, "/d/f", []byte("f"))
			flush(t, v)
			if err := tv.store.Delete(ctx, objectKeyOf(t, v, "/d")+"/"); err != nil {
				t.Fatal(err)
			}
			v2 := tv.reopen(t)
			a, err := v2.Stat(ctx, "/d")
			want := uint32(0o700)
			if mode == EncryptionNone {
				want = 0o755
			}
			if err != nil || !a.IsDir() || a.Mode&0o777 != want || a.UID != 1000 {
				t.Fatalf("stat = %+v, %v", a, err)
			}
			m := uint32(0o711)
			if _, err := v2.SetAttr(ctx, "/d", SetAttr{Mode: &m}); err != nil {
				t.Fatal(err)
			}
			a, _ = tv.reopen(t).Stat(ctx, "/d")
			if a.Mode&0o777 != 0o711 {
				t.Fatalf("chmod of implicit dir: %o", a.Mode)
			}
			// Emptying an implicit directory keeps it.
			v.Mkdir(ctx, "/e", 0o755)
			writeFile(t, v, "/e/f", []byte("f"))
			flush(t, v)
			tv.store.Delete(ctx, objectKeyOf(t, v, "/e")+"/")
			v3 := tv.reopen(t)
			if err := v3.Unlink(ctx, "/e/f"); err != nil {
				t.Fatal(err)
			}
			if a, err := tv.reopen(t).Stat(ctx, "/e"); err != nil || !a.IsDir() {
				t.Fatalf("emptied implicit dir: %+v %v", a, err)
			}
		})
	}
}

// TestPlainLayoutIsS3fsCompatible checks names, bodies and metadata of
// --encryption none.
func TestPlainLayoutIsS3fsCompatible(t *testing.T) {
	tv := newTestVolume(t, EncryptionNone)
	ctx := context.Background()
	tv.Mkdir(ctx, "/dir", 0o750)
	writeFile(t, tv.Volume, "/dir/file.txt", []byte("hello"))
	flush(t, tv.Volume)
	rc, info, err := tv.store.Get(ctx, "dir/file.txt", blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if string(body) != "hello" || info.Metadata["mode"] != "33188" || info.Metadata["uid"] != "1000" || info.Metadata["mtime"] == "" {
		t.Fatalf("body %q meta %v", body, info.Metadata)
	}
	m, err := tv.store.Head(ctx, "dir/")
	if err != nil || m.Metadata["mode"] != "16872" {
		t.Fatalf("marker %v %v", m.Metadata, err)
	}
	// An object written by another tool, without metadata.
	tv.store.Put(ctx, "dir/foreign", strings.NewReader("abc"), 3, blobstore.PutOptions{})
	a, err := tv.reopen(t).Stat(ctx, "/dir/foreign")
	if err != nil || a.Size != 3 || a.Mode != syscall.S_IFREG|0o644 || a.UID != 1000 {
		t.Fatalf("foreign = %+v %v", a, err)
	}
}

// TestStagingIsSealedAndRecoverable: a staged file's content and its
// recorded path never appear in the clear under the cache directory,
// and the staging file records the path for recovery.
func TestStagingIsSealedAndRecoverable(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = time.Hour })
	ctx := context.Background()
	const mark = "STAGEDSECRETMARK"
	writeFile(t, tv.Volume, "/"+mark, []byte(strings.Repeat(mark, 1000)))
	if err := tv.Rename(ctx, "/"+mark, "/"+mark+"2", 0); err != nil {
		t.Fatal(err)
	}
	files := storeFiles(t, filepath.Join(tv.dir, "cache"))
	for p, b := range files {
		if strings.Contains(p, mark) || bytes.Contains(b, []byte(mark)) {
			t.Fatalf("%s holds plaintext", p)
		}
	}
	sd, err := staging.OpenDir(filepath.Join(tv.dir, "cache", "staging"), tv.localSecret())
	if err != nil {
		t.Fatal(err)
	}
	names, err := sd.List()
	if err != nil || len(names) != 1 {
		t.Fatalf("staging files %v %v", names, err)
	}
	sf, err := sd.Open(names[0])
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	var m stagedMeta
	if err := json.Unmarshal(sf.Meta(), &m); err != nil || m.Path != "/"+mark+"2" || m.Mode != syscall.S_IFREG|0o644 {
		t.Fatalf("recorded %+v, %v", m, err)
	}
}

// localSecret returns the volume's local secret (client mode).
func (tv *testVol) localSecret() []byte {
	return tv.lay.(*clientLayout).kr.LocalSecret()
}
