package fs

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// storedInodes lists the inode objects in the store.
func storedInodes(t *testing.T, s blobstore.Store) []string {
	t.Helper()
	var keys []string
	for e, err := range s.List(context.Background(), inodePrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Key)
	}
	return keys
}

func mustStat(t *testing.T, v *Volume, p string) Attr {
	t.Helper()
	a, err := v.Stat(context.Background(), p)
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return a
}

// checkLinks checks that every path shows nlink want and one st_ino.
func checkLinks(t *testing.T, v *Volume, want uint32, paths ...string) {
	t.Helper()
	var ino uint64
	for i, p := range paths {
		a := mustStat(t, v, p)
		if a.Nlink() != want {
			t.Errorf("%s: nlink %d, want %d", p, a.Nlink(), want)
		}
		if a.Ino == 0 || a.Ino >= 1<<63 {
			t.Errorf("%s: st_ino %#x", p, a.Ino)
		}
		if i == 0 {
			ino = a.Ino
		} else if a.Ino != ino {
			t.Errorf("%s: st_ino %#x, %s has %#x", p, a.Ino, paths[0], ino)
		}
	}
}

func TestHardLinks(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	v := tv.Volume
	if _, err := v.Mkdir(ctx, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("linked "), 30000) // several chunks
	writeFile(t, v, "/a", body)
	flush(t, v)
	before := mustStat(t, v, "/a")

	tv.store.reset()
	if _, err := v.Link(ctx, "/a", "/d/b"); err != nil {
		t.Fatal(err)
	}
	if c := tv.store.count("copy"); c != 1 {
		t.Errorf("first link: %d copies, want 1 (the body to the inode)", c)
	}
	checkLinks(t, v, 2, "/a", "/d/b")
	if a := mustStat(t, v, "/d/b"); !a.Ctime.After(before.Ctime) && !a.Ctime.Equal(before.Ctime) || a.Changes <= before.Changes {
		t.Errorf("ctime/changes did not move with the link count: %v/%d -> %v/%d", before.Ctime, before.Changes, a.Ctime, a.Changes)
	}
	if got := readFile(t, v, "/d/b"); !bytes.Equal(got, body) {
		t.Fatal("the second name reads other bytes")
	}
	if n := len(storedInodes(t, tv.store)); n != 1 {
		t.Fatalf("%d inode objects, want 1", n)
	}

	// A later link is one small object and a metadata copy of the inode.
	tv.store.reset()
	if _, err := v.Link(ctx, "/d/b", "/c"); err != nil {
		t.Fatal(err)
	}
	// (A second put may be the marker of /d storing its times.)
	if c, p := tv.store.count("copy"), tv.store.count("put"); c != 1 || p < 1 || p > 2 {
		t.Errorf("later link: %d copies, %d puts, want 1 and 1", c, p)
	}
	checkLinks(t, v, 3, "/a", "/d/b", "/c")
	wantErrno(t, func() error { _, err := v.Link(ctx, "/a", "/c"); return err }(), syscall.EEXIST)

	// A write through one name is read through the others.
	h, err := v.Open(ctx, "/c", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("CHANGED"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("CHANGED"), body[7:]...)
	if got := readFile(t, v, "/a"); !bytes.Equal(got, want) {
		t.Fatal("a write through /c is not read through /a (staged)")
	}
	flush(t, v)
	if got := readFile(t, v, "/d/b"); !bytes.Equal(got, want) {
		t.Fatal("a write through /c is not read through /d/b (stored)")
	}

	// chmod through one name is the inode's.
	mode := uint32(0o600)
	if _, err := v.SetAttr(ctx, "/d/b", SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if a := mustStat(t, v, "/a"); a.Mode&0o777 != 0o600 {
		t.Errorf("chmod through /d/b: /a has mode %o", a.Mode)
	}

	// A rename moves only the link.
	tv.store.reset()
	if err := v.Rename(ctx, "/c", "/d/c2", 0); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, v, 3, "/a", "/d/b", "/d/c2")

	// A fresh mount sees the same.
	w := tv.reopen(t)
	checkLinks(t, w, 3, "/a", "/d/b", "/d/c2")
	if got := readFile(t, w, "/d/c2"); !bytes.Equal(got, want) {
		t.Fatal("a fresh mount reads other bytes")
	}
	if a := mustStat(t, w, "/a"); a.Mode&0o777 != 0o600 {
		t.Errorf("a fresh mount: mode %o", a.Mode)
	}

	// Unlink drops one name at a time; the last one removes the inode.
	if err := v.Unlink(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, v, 2, "/d/b", "/d/c2")
	wantErrno(t, func() error { _, err := v.Stat(ctx, "/a"); return err }(), syscall.ENOENT)
	if err := v.Unlink(ctx, "/d/b"); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, v, 1, "/d/c2")
	if got := readFile(t, v, "/d/c2"); !bytes.Equal(got, want) {
		t.Fatal("the last name reads other bytes")
	}
	if err := v.Unlink(ctx, "/d/c2"); err != nil {
		t.Fatal(err)
	}
	if keys := storedInodes(t, tv.store); len(keys) != 0 {
		t.Fatalf("the last unlink left inodes %v", keys)
	}
	if ents, _ := v.ReadDir(ctx, "/d"); len(ents) != 0 {
		t.Fatalf("left in /d: %s", names(ents))
	}
}

// An open file keeps its link count when another name of it goes.
func TestHardLinkOpenAcrossUnlink(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	writeFile(t, v, "/a", []byte("hello"))
	if _, err := v.Link(ctx, "/a", "/b"); err != nil {
		t.Fatal(err)
	}
	h, err := v.Open(ctx, "/a", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if err := v.Unlink(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	if a := h.Stat(); a.Nlink() != 1 {
		t.Errorf("fstat after unlinking one of two names: nlink %d, want 1", a.Nlink())
	}
	if _, err := h.WriteAt(ctx, []byte("J"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, v, "/b"); string(got) != "Jello" {
		t.Errorf("/b reads %q after a write through the unlinked name's handle", got)
	}
}

// deleteHookStore calls afterDelete once a Delete of an inode object has
// been done.
type deleteHookStore struct {
	blobstore.Store
	afterDelete func()
}

func (s *deleteHookStore) Delete(ctx context.Context, key string) error {
	err := s.Store.Delete(ctx, key)
	if strings.HasPrefix(key, inodePrefix) && s.afterDelete != nil {
		s.afterDelete()
	}
	return err
}

// TestHardLinkLastUnlinkDuringWrite: while the last name of a linked
// file open here is unlinked, a write and fsync through the open handle
// wait until the file is removed. Run once the inode object was deleted
// (the old code let them), its upload met no inode, took that for
// another mount's change, and stored the removed file again as a
// conflict copy.
func TestHardLinkLastUnlinkDuringWrite(t *testing.T) {
	ctx := context.Background()
	var hs *deleteHookStore
	tv := stalled(t, EncryptionClient, func(o *Options) {
		hs = &deleteHookStore{Store: o.Store}
		o.Store = hs
	})
	writeFile(t, tv.Volume, "/a", []byte("hello"))
	if _, err := tv.Link(ctx, "/a", "/b"); err != nil {
		t.Fatal(err)
	}
	if err := tv.Unlink(ctx, "/b"); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	h, err := tv.Open(ctx, "/a", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	write := func() error {
		if _, err := h.WriteAt(ctx, []byte("J"), 0); err != nil {
			return err
		}
		return h.Fsync(ctx)
	}
	later := make(chan error, 1)
	hs.afterDelete = func() {
		hs.afterDelete = nil
		tv.mu.Lock()
		f := tv.files["/a"]
		tv.mu.Unlock()
		if f != nil && f.upMu.TryRLock() {
			// Nothing holds the upload lock: write now, inside the
			// unlink, as a handle could.
			f.upMu.RUnlock()
			later <- write()
			return
		}
		// The unlink holds it: a write now waits for the unlink.
		go func() { later <- write() }()
	}
	if err := tv.Unlink(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	if err := <-later; err != nil {
		t.Fatalf("write and fsync during the unlink: %v", err)
	}
	b := make([]byte, 5)
	if n, err := h.ReadAt(ctx, b, 0); n != 5 || string(b) != "Jello" {
		t.Errorf("the open handle reads %q (%v) after its write", b[:n], err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	if got := storedNames(t, tv, "/"); got != "" {
		t.Errorf("the store holds %q after the last name was unlinked, want nothing", got)
	}
	if got := storedInodes(t, tv.store); len(got) != 0 {
		t.Errorf("inode objects left: %v", got)
	}
}

func TestHardLinkLimits(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	writeFile(t, v, "/f", []byte("x"))
	if _, err := v.Mkdir(ctx, "/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, func() error { _, err := v.Link(ctx, "/dir", "/dir2"); return err }(), syscall.EPERM)
	wantErrno(t, func() error { _, err := v.Link(ctx, "/nope", "/x"); return err }(), syscall.ENOENT)
	n := 1
	var err error
	for ; n < 200; n++ {
		if _, err = v.Link(ctx, "/f", "/f"+strings.Repeat("l", 1)+string(rune('A'+n%26))+time.Duration(n).String()); err != nil {
			break
		}
	}
	wantErrno(t, err, syscall.EMLINK)
	if n < 20 {
		t.Fatalf("EMLINK after %d links", n)
	}
	if a := mustStat(t, v, "/f"); int(a.Nlink()) != n {
		t.Errorf("nlink %d after %d names", a.Nlink(), n)
	}
}

func TestHardLinkNoneMode(t *testing.T) {
	v := newTestVolume(t, EncryptionNone).Volume
	writeFile(t, v, "/f", []byte("x"))
	_, err := v.Link(context.Background(), "/f", "/g")
	wantErrno(t, err, syscall.EPERM)
}

// Forged links are EIO, never another file's bytes.
func TestHardLinkForgery(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MetadataTTL = -1 })
	v := tv.Volume
	writeFile(t, v, "/a", []byte("file one"))
	writeFile(t, v, "/x", []byte("file two"))
	if _, err := v.Link(ctx, "/a", "/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Link(ctx, "/x", "/y"); err != nil {
		t.Fatal(err)
	}
	key := func(p string) string {
		k, _, err := v.objectKey(p)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	head := func(k string) blobstore.ObjectInfo {
		info, err := tv.store.Head(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	kr := v.keyring()
	inodeOf := func(p string) cipher.InodeID {
		_, l, err := kr.OpenLink(head(key(p)).Metadata, p)
		if err != nil {
			t.Fatal(err)
		}
		return l.Inode
	}
	put := func(k string, meta map[string]string) {
		if _, err := tv.store.Put(ctx, k, bytes.NewReader(nil), 0, blobstore.PutOptions{Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	eio := func(what, p string) {
		t.Helper()
		if got, err := tryRead(v, p); Errno(err) != syscall.EIO {
			t.Errorf("%s: read %s: %q %v, want EIO", what, p, got, err)
		}
	}

	// 1. A link object copied under another name (its path is in its AAD).
	if _, err := tv.store.Copy(ctx, key("/a"), key("/z"), blobstore.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	eio("link copied to another name", "/z")

	// 2. A link of this volume's keys pointing at the other inode, with a
	// link ID not in its live set.
	okey, _ := kr.NewObjectKey()
	meta, err := kr.SealLinkMetadata(okey, "/w", cipher.Link{Inode: inodeOf("/x"), ID: cipher.NewLinkID()})
	if err != nil {
		t.Fatal(err)
	}
	put(key("/w"), meta)
	eio("link ID not in the live set", "/w")

	// 3. Inode object of /a replaced by /x's inode object (coffer-ino and
	// the object name disagree).
	ia, ix := inodeKey(inodeOf("/a")), inodeKey(inodeOf("/x"))
	if _, err := tv.store.Copy(ctx, ix, ia, blobstore.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	eio("inode object copied under another inode's name", "/a")
	eio("inode object copied under another inode's name", "/b")
	if got := readFile(t, v, "/y"); string(got) != "file two" {
		t.Errorf("/y reads %q", got)
	}

	// 4. A dangling link.
	if err := tv.store.Delete(ctx, ix); err != nil {
		t.Fatal(err)
	}
	eio("dangling link", "/y")
}

// utimensat through a name of a file still open since its create (mode
// 0), after a link: the time set is the time shown through both names.
func TestHardLinkUtimensOpenFile(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	if _, err := v.Mkdir(ctx, "/e", 0o700); err != nil {
		t.Fatal(err)
	}
	h, _, err := v.Create(ctx, "/e/d", 0, syscall.O_RDWR|syscall.O_CREAT)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if _, err := v.Link(ctx, "/e/d", "/c"); err != nil {
		t.Fatal(err)
	}
	// Through the name it was opened by, then through the other (the
	// FUSE layer picks either name of a shared inode).
	for i, through := range []string{"/e/d", "/c"} {
		mt := time.Unix(612828971+int64(i), 631027021)
		if _, err := v.SetAttr(ctx, through, SetAttr{Mtime: &mt}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/e/d", "/c"} {
			if a := mustStat(t, v, p); !a.Mtime.Equal(mt) {
				t.Errorf("set through %s: %s: mtime %v, want %v", through, p, a.Mtime, mt)
			}
		}
		if a := h.Stat(); !a.Mtime.Equal(mt) {
			t.Errorf("set through %s: fstat: mtime %v, want %v", through, a.Mtime, mt)
		}
	}
}

// A directory rename moves the link objects below it; the inode stays.
func TestHardLinkDirRename(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	v := tv.Volume
	if _, err := v.Mkdir(ctx, "/e", 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, v, "/e/d", []byte("in a dir"))
	if _, err := v.Link(ctx, "/e/d", "/c"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(ctx, "/e", "/f", 0); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, v, 2, "/f/d", "/c")
	w := tv.reopen(t)
	checkLinks(t, w, 2, "/f/d", "/c")
	if got := readFile(t, w, "/f/d"); string(got) != "in a dir" {
		t.Fatalf("read %q", got)
	}
	if err := w.Unlink(ctx, "/f/d"); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, w, 1, "/c")
}

// Exerciser seed 5: a file open through a name that moved by rename and
// then lost, written through a handle opened by its remaining name.
func TestHardLinkOpenRenameUnlinkWrite(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	h2, _, err := v.Create(ctx, "/a", 0o644, syscall.O_RDWR|syscall.O_CREAT)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close(ctx)
	if _, err := v.Link(ctx, "/a", "/b"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(ctx, "/a", "/c", 0); err != nil {
		t.Fatal(err)
	}
	h3, err := v.Open(ctx, "/b", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h3.Close(ctx)
	if err := v.Unlink(ctx, "/c"); err != nil {
		t.Fatal(err)
	}
	h4, err := v.Open(ctx, "/b", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h4.Close(ctx)
	data := bytes.Repeat([]byte{7}, 182632)
	if _, err := h4.WriteAt(ctx, data, 8789); err != nil {
		t.Fatal(err)
	}
	for i, h := range []*Handle{h2, h3, h4} {
		if a := h.Stat(); a.Size != 191421 || a.Nlink() != 1 {
			t.Errorf("handle %d: size %d nlink %d, want 191421 and 1", i, a.Size, a.Nlink())
		}
	}
	if a := mustStat(t, v, "/b"); a.Size != 191421 {
		t.Errorf("/b: size %d", a.Size)
	}
}

// Exerciser seeds 6, 8: a rename of a name moves the ctime shown
// through a file open by another name.
func TestHardLinkRenameCtimeOpenFile(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	h, _, err := v.Create(ctx, "/d", 0o600, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_EXCL)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if _, err := v.Link(ctx, "/d", "/e"); err != nil {
		t.Fatal(err)
	}
	before := mustStat(t, v, "/e")
	if err := v.Rename(ctx, "/e", "/a", 0); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Attr{mustStat(t, v, "/a"), mustStat(t, v, "/d"), h.Stat()} {
		if a.Changes <= before.Changes || a.Ctime.Before(before.Ctime) {
			t.Errorf("ctime/changes after rename: %v/%d, before %v/%d", a.Ctime, a.Changes, before.Ctime, before.Changes)
		}
	}
}

// Exerciser seed 4: an open file whose name is unlinked after a
// directory rename moved its other name keeps writing to the inode.
func TestHardLinkUnlinkAfterDirRename(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	v := tv.Volume
	if _, err := v.Mkdir(ctx, "/e", 0o777); err != nil {
		t.Fatal(err)
	}
	h, _, err := v.Create(ctx, "/c", 0o444, syscall.O_RDWR|syscall.O_CREAT)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Link(ctx, "/c", "/e/a"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(ctx, "/e", "/b", 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(ctx, "/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("late"), 10); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, v)
	if got := readFile(t, tv.reopen(t), "/b/a"); len(got) != 14 || string(got[10:]) != "late" {
		t.Fatalf("/b/a after a write through the unlinked name: %q", got)
	}
}

// TestRotateHardLinks: rotate rewraps inode and link objects like any
// object, retires the old generation, and every name still reads.
func TestRotateHardLinks(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.WritebackDelay = -1 })
	v := tv.Volume
	body := bytes.Repeat([]byte("rotated "), 20000)
	writeFile(t, v, "/a", body)
	writeFile(t, v, "/plain", []byte("one name"))
	for _, p := range []string{"/b", "/c"} {
		if _, err := v.Link(ctx, "/a", p); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, v)
	res, err := RotateVolume(ctx, tv.store, RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	// The inode, three link objects, /plain.
	if res.Objects != 5 || res.Rewrapped != 5 || fmt.Sprint(res.Retired) != "[1]" {
		t.Fatalf("rotate: %+v, want 5 objects rewrapped and generation 1 retired", res)
	}
	if gens := generations(t, tv.store); len(gens) != 1 || gens[2] != 5 {
		t.Fatalf("generations after rotate: %v", gens)
	}
	nv, err := openAs(t, tv, tv.root)
	if err != nil {
		t.Fatal(err)
	}
	checkLinks(t, nv, 3, "/a", "/b", "/c")
	for _, p := range []string{"/a", "/b", "/c"} {
		if got := readFile(t, nv, p); !bytes.Equal(got, body) {
			t.Fatalf("%s after rotation: %d bytes", p, len(got))
		}
	}
	if err := nv.Unlink(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, nv, 2, "/b", "/c")
}

// TestFsckHardLinks: a clean tree with links has no findings (Deep
// included); a link outside its inode's live set, a dangling link, an
// inode no name links to and an inode listing a link no name holds are
// reported, and Repair removes the first and the third.
func TestFsckHardLinks(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MetadataTTL = -1 })
	v := tv.Volume
	writeFile(t, v, "/a", bytes.Repeat([]byte("x"), 100000))
	writeFile(t, v, "/x", []byte("second file"))
	for _, l := range [][2]string{{"/a", "/b"}, {"/a", "/c"}, {"/x", "/y"}} {
		if _, err := v.Link(ctx, l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, v)
	rep := fsck(t, v, FsckOptions{Deep: true})
	if len(rep.Findings) != 0 || rep.Inodes != 2 || rep.Files != 5 || rep.Bytes != 100000+11 || rep.Chunks == 0 {
		t.Fatalf("clean tree with links: %+v\n%s", rep, findingsOf(rep))
	}
	key := func(p string) string {
		k, _, err := v.objectKey(p)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	kr := v.keyring()
	linkOf := func(p string) cipher.Link {
		info, err := tv.store.Head(ctx, key(p))
		if err != nil {
			t.Fatal(err)
		}
		_, l, err := kr.OpenLink(info.Metadata, p)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, x := linkOf("/a"), linkOf("/x")
	// A stale link: a name whose ID left the live set.
	okey, _ := kr.NewObjectKey()
	meta, err := kr.SealLinkMetadata(okey, "/stale", cipher.Link{Inode: a.Inode, ID: cipher.NewLinkID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.store.Put(ctx, key("/stale"), bytes.NewReader(nil), 0, blobstore.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	// /c's object gone without its ID leaving the set: nlink one too many.
	if err := tv.store.Delete(ctx, key("/c")); err != nil {
		t.Fatal(err)
	}
	// /x's inode copied to a new inode ID no name links to, and /x's
	// inode removed: /x and /y dangle.
	orphan := cipher.NewInodeID()
	info, _ := tv.store.Head(ctx, inodeKey(x.Inode))
	o2, in, err := kr.OpenInode(info.Metadata, x.Inode)
	if err != nil {
		t.Fatal(err)
	}
	om, err := kr.SealInodeMetadata(o2, orphan, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.store.Copy(ctx, inodeKey(x.Inode), inodeKey(orphan), blobstore.CopyOptions{Metadata: om}); err != nil {
		t.Fatal(err)
	}
	if err := tv.store.Delete(ctx, inodeKey(x.Inode)); err != nil {
		t.Fatal(err)
	}
	rep = fsck(t, v, FsckOptions{})
	got := findingsOf(rep)
	for _, want := range []string{
		"link: /stale: link ", "not in the live set",
		"link: /x: dangling", "link: /y: dangling",
		"no name links to it",
		"lists 3 links, 2 names hold them",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings lack %q:\n%s", want, got)
		}
	}
	if len(rep.Findings) != 5 {
		t.Errorf("%d findings, want 5:\n%s", len(rep.Findings), got)
	}
	rep = fsck(t, v, FsckOptions{Repair: true})
	repaired := 0
	for _, f := range rep.Findings {
		if f.Repaired {
			repaired++
		}
	}
	if repaired != 2 {
		t.Errorf("repair: %d repaired, want 2 (the stale link, the orphaned inode):\n%s", repaired, findingsOf(rep))
	}
	if _, err := tv.store.Head(ctx, key("/stale")); err == nil {
		t.Error("the stale link is still stored")
	}
	if _, err := tv.store.Head(ctx, inodeKey(orphan)); err == nil {
		t.Error("the orphaned inode is still stored")
	}
	if rep = fsck(t, v, FsckOptions{}); len(rep.Findings) != 3 {
		t.Errorf("after repair: %d findings, want 3 (two dangling, one count):\n%s", len(rep.Findings), findingsOf(rep))
	}
	if got := readFile(t, v, "/b"); len(got) != 100000 {
		t.Errorf("/b after repair: %d bytes", len(got))
	}
}

// Exerciser seed 5: a file never stored, renamed over one name of a
// hard link, removes that name only, not the inode the others read.
func TestHardLinkStagedRenameOverLink(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	writeFile(t, v, "/d", []byte("linked"))
	if _, err := v.Link(ctx, "/d", "/e"); err != nil {
		t.Fatal(err)
	}
	h, _, err := v.Create(ctx, "/c", 0o644, syscall.O_RDWR|syscall.O_CREAT|syscall.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(ctx, "/c", "/d", 0); err != nil {
		t.Fatal(err)
	}
	h.Close(ctx)
	checkLinks(t, v, 1, "/e")
	if got := readFile(t, v, "/e"); string(got) != "linked" {
		t.Fatalf("/e reads %q", got)
	}
	if _, err := v.Link(ctx, "/e", "/c"); err != nil {
		t.Fatal(err)
	}
	checkLinks(t, v, 2, "/e", "/c")
}

// Exerciser seed 5: a file open at a name that a rename replaces keeps
// its other name and its link count.
func TestHardLinkRenameOverOpenLink(t *testing.T) {
	ctx := context.Background()
	v := newTestVolume(t, EncryptionClient).Volume
	h, _, err := v.Create(ctx, "/c", 0, syscall.O_RDWR|syscall.O_CREAT|syscall.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if err := v.Rename(ctx, "/c", "/d", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Link(ctx, "/d", "/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Symlink(ctx, "d/e", "/e"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(ctx, "/e", "/d", 0); err != nil {
		t.Fatal(err)
	}
	if a := h.Stat(); a.Nlink() != 1 {
		t.Errorf("fstat after a rename over one of two names: nlink %d, want 1", a.Nlink())
	}
	checkLinks(t, v, 1, "/c")
	if _, err := h.WriteAt(ctx, []byte("still"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, v, "/c"); string(got) != "still" {
		t.Errorf("/c reads %q", got)
	}
}

// TestHardLinksTwoMounts: two mounts of one volume agree on link counts
// and inode numbers once the metadata TTL has passed, whichever of them
// links or unlinks.
func TestHardLinksTwoMounts(t *testing.T) {
	const ttl = 10 * time.Second
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MetadataTTL = ttl })
	a := tv.Volume
	writeFile(t, a, "/f", []byte("shared body"))
	flush(t, a)
	b := tv.reopen(t)
	now := &manualTime{t: time.Now()}
	a.meta.now, b.meta.now = now.Now, now.Now
	if n := mustStat(t, b, "/f").Nlink(); n != 1 { // cached in b
		t.Fatalf("nlink %d before any link", n)
	}

	if _, err := a.Link(ctx, "/f", "/g"); err != nil {
		t.Fatal(err)
	}
	now.advance(ttl + time.Millisecond)
	checkLinks(t, b, 2, "/f", "/g")
	if mustStat(t, a, "/g").Ino != mustStat(t, b, "/g").Ino {
		t.Error("the two mounts give /g different inode numbers")
	}

	if _, err := b.Link(ctx, "/g", "/h"); err != nil {
		t.Fatal(err)
	}
	now.advance(ttl + time.Millisecond)
	checkLinks(t, a, 3, "/f", "/g", "/h")

	if err := a.Unlink(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	now.advance(ttl + time.Millisecond)
	checkLinks(t, b, 2, "/g", "/h")
	_, err := b.Stat(ctx, "/f")
	wantErrno(t, err, syscall.ENOENT)
	if got := readFile(t, b, "/h"); string(got) != "shared body" {
		t.Fatalf("/h = %q", got)
	}
}

// TestLinkedUploadKeepsOtherMountsLinks: a mount that uploads new content
// of a hard-linked file stores the inode's live set as the store holds
// it then, so a name another mount linked meanwhile (after this one
// opened the file) survives the upload, and reads the new content.
func TestLinkedUploadKeepsOtherMountsLinks(t *testing.T) {
	const ttl = 10 * time.Second
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MetadataTTL = ttl })
	a := tv.Volume
	writeFile(t, a, "/f", []byte("first body"))
	if _, err := a.Link(ctx, "/f", "/g"); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	b := tv.reopen(t)
	now := &manualTime{t: time.Now()}
	a.meta.now, b.meta.now = now.Now, now.Now

	h, err := b.Open(ctx, "/f", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Link(ctx, "/g", "/h"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("second body"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, b)

	c := tv.reopen(t)
	checkLinks(t, c, 3, "/f", "/g", "/h")
	for _, p := range []string{"/f", "/g", "/h"} {
		if got, err := tryRead(c, p); err != nil || string(got) != "second body" {
			t.Errorf("%s after the other mount's upload: %q, %v", p, got, err)
		}
	}
	now.advance(ttl + time.Millisecond)
	checkLinks(t, a, 3, "/f", "/g", "/h")
}
