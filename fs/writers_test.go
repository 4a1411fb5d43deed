package fs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Writers' objects as a full-key volume reads them. The writer side is
// driven through cipher.WriterSession directly (writerStub), as a
// write-only mount, or a thief's own program, would store them.

// exportTestWriter adds a writer key of scope to tv's volume and returns
// its credential.
func exportTestWriter(t *testing.T, tv *testVol, scope string) *cipher.WriterCredential {
	t.Helper()
	ex, err := ExportWriter(context.Background(), tv.store, KeyOptions{Roots: []*cipher.RootKey{tv.root}}, scope, "test",
		func(*cipher.WriterCredential) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if key, _, _ := tv.objectKey(scope); scope != "/" && ex.ScopePrefix != key+"/" {
		t.Fatalf("scope prefix %q, want %q", ex.ScopePrefix, key+"/")
	}
	return ex.Credential
}

// writerStub stores objects as one writer session.
type writerStub struct {
	t     *testing.T
	tv    *testVol
	s     *cipher.WriterSession
	store blobstore.Store
}

// newWriterStub starts a session of cred and stores its epoch object.
func newWriterStub(t *testing.T, tv *testVol, cred *cipher.WriterCredential) *writerStub {
	t.Helper()
	s, err := cred.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	w := &writerStub{t: t, tv: tv, s: s, store: tv.store}
	key, data := s.EpochObject()
	w.putRaw(key, data, nil)
	return w
}

func (w *writerStub) putRaw(key string, data []byte, meta map[string]string) {
	w.t.Helper()
	_, err := w.store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{Metadata: meta, IfNoneMatch: true})
	if err != nil {
		w.t.Fatalf("put %s: %v", key, err)
	}
}

// put stores a file at p with mode perm and content data; it returns the
// object key.
func (w *writerStub) put(p string, perm uint32, data []byte) string {
	w.t.Helper()
	key, _, err := w.tv.objectKey(p)
	if err != nil {
		w.t.Fatal(err)
	}
	okey, err := w.s.NewObjectKey()
	if err != nil {
		w.t.Fatal(err)
	}
	now := time.Now().UnixNano()
	meta, err := w.s.SealMetadata(okey, p, cipher.Attr{Mode: syscall.S_IFREG | perm, UID: 1000, GID: 1000, MtimeNs: now, AtimeNs: now, CtimeNs: now})
	if err != nil {
		w.t.Fatal(err)
	}
	var body bytes.Buffer
	enc := okey.NewEncrypter(&body)
	enc.Write(data)
	if err := enc.Close(); err != nil {
		w.t.Fatal(err)
	}
	w.putRaw(key, body.Bytes(), meta)
	return key
}

// forgedCredential is cred with fields of its JSON replaced, as a thief
// could edit a stolen one.
func forgedCredential(t *testing.T, cred *cipher.WriterCredential, set map[string]any) *cipher.WriterCredential {
	t.Helper()
	var j map[string]any
	if err := json.Unmarshal(cred.Marshal(), &j); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		j[k] = v
	}
	raw, _ := json.Marshal(j)
	c, err := cipher.ParseWriterCredential(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriterFilesRead(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/mine", []byte("full key"))
	flush(t, tv.Volume)
	cred := exportTestWriter(t, tv, "/in")
	w := newWriterStub(t, tv, cred)
	w.put("/in/a", 0o644, []byte("from the writer"))
	w.put("/in/suid", 0o4755, []byte("#!/bin/sh\n"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // several chunks
	w.put("/in/big", 0o600, big)

	v := tv.reopen(t) // its keyring knows the writer
	if got := readFile(t, v, "/in/a"); string(got) != "from the writer" {
		t.Fatalf("/in/a = %q", got)
	}
	if got := readFile(t, v, "/in/big"); !bytes.Equal(got, big) {
		t.Fatal("/in/big read back different")
	}
	a, err := v.Stat(ctx, "/in/a")
	if err != nil || a.Origin != w.s.Origin() || a.Mode != syscall.S_IFREG|0o644 {
		t.Fatalf("stat /in/a: %+v, %v (want origin %v)", a, err, w.s.Origin())
	}
	if a, _ := v.Stat(ctx, "/in/suid"); a.Mode != syscall.S_IFREG|0o755 {
		t.Fatalf("a writer's set-uid file shows mode %o, want the bit cleared", a.Mode)
	}
	if val, err := v.Getxattr(ctx, "/in/a", OriginXattr); err != nil || string(val) != w.s.Origin().String() {
		t.Fatalf("getxattr coffer.origin = %q, %v", val, err)
	}
	if names, err := v.Listxattr(ctx, "/in/a"); err != nil || len(names) != 1 || names[0] != OriginXattr {
		t.Fatalf("listxattr = %v, %v", names, err)
	}
	_, err = v.Getxattr(ctx, "/mine", OriginXattr)
	wantErrno(t, err, syscall.ENODATA)
	wantErrno(t, v.Setxattr(ctx, "/in/a", OriginXattr, []byte("writer 00 epoch 00"), 0), syscall.EPERM)
	wantErrno(t, v.Removexattr(ctx, "/in/a", OriginXattr), syscall.EPERM)
	ents, err := v.ReadDir(ctx, "/in")
	if err != nil || names(ents) != "a,big,suid" {
		t.Fatalf("readdir /in = %v, %v", names(ents), err)
	}
	for _, e := range ents {
		if e.Attr.Origin != w.s.Origin() {
			t.Fatalf("listed %s with origin %v", e.Name, e.Attr.Origin)
		}
	}
	// A full-key change keeps the origin (the DEK rewrapped bound to it),
	// a rename too, inside the writer's scope only.
	mode := uint32(0o600)
	if _, err := v.SetAttr(ctx, "/in/a", SetAttr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(ctx, "/in/a", "/in/renamed", 0); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, v.Rename(ctx, "/in/renamed", "/mine-too", 0), syscall.EXDEV)
	v2 := tv.reopen(t)
	if a, err := v2.Stat(ctx, "/in/renamed"); err != nil || a.Origin != w.s.Origin() || a.Mode&0o777 != 0o600 {
		t.Fatalf("after chmod and rename: %+v, %v", a, err)
	}
	if got := readFile(t, v2, "/in/renamed"); string(got) != "from the writer" {
		t.Fatalf("/in/renamed = %q", got)
	}
	_, err = v2.Stat(ctx, "/mine-too")
	wantErrno(t, err, syscall.ENOENT)
}

func TestWritersRefuseHides(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/in", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/in/mine", []byte("full key"))
	flush(t, tv.Volume)
	w := newWriterStub(t, tv, exportTestWriter(t, tv, "/in"))
	w.put("/in/theirs", 0o644, []byte("writer"))

	opts := tv.options
	opts.CacheDir = t.TempDir()
	opts.Writers = WritersRefuse
	v, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(ctx)
	ents, err := v.ReadDir(ctx, "/in")
	if err != nil || names(ents) != "mine" {
		t.Fatalf("readdir /in = %v, %v", names(ents), err)
	}
	_, err = v.Stat(ctx, "/in/theirs")
	wantErrno(t, err, syscall.ENOENT)
	if got := readFile(t, v, "/in/mine"); string(got) != "full key" {
		t.Fatalf("/in/mine = %q", got)
	}
}

// TestWriterForgeries: objects a full-key volume must refuse (EIO, the
// rest of the volume unharmed), each made from what a writer host holds
// or from public bytes.
func TestWriterForgeries(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	credA := exportTestWriter(t, tv, "/a")
	credB := exportTestWriter(t, tv, "/b")
	a := newWriterStub(t, tv, credA)
	b := newWriterStub(t, tv, credB)
	a.put("/a/good", 0o644, []byte("a's"))
	b.put("/b/good", 0o644, []byte("b's"))

	// A credential edited to scope "/": the reader checks the scope the
	// keyring holds.
	wide := newWriterStub(t, tv, forgedCredential(t, credA, map[string]any{"scope": "/"}))
	wide.put("/outside", 0o644, []byte("out of scope"))
	// A credential whose auth secret is not the writer's: an epoch sealed
	// to the real public key without WA.
	noAuth := newWriterStub(t, tv, forgedCredential(t, credA, map[string]any{"auth_secret": strings.Repeat("A", 43)}))
	noAuth.put("/a/noauth", 0o644, []byte("no auth secret"))
	// B's epoch object copied over the epoch of a session of A (an epoch
	// swapped between writers).
	swapped := newWriterStub(t, tv, credA)
	swapped.put("/a/swapped", 0o644, []byte("swapped epoch"))
	_, bEpoch := b.s.EpochObject()
	key, _ := swapped.s.EpochObject()
	if _, err := tv.store.Put(ctx, key, bytes.NewReader(bEpoch), int64(len(bEpoch)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// An object sealed by a session of A at /b, its origin rewritten to
	// B's session: B's epoch opens and /b is B's scope, but the DEK wrap
	// is bound to A's origin.
	rkey := wide.put("/b/relabeled", 0o644, []byte("relabeled"))
	rinfo, err := tv.store.Head(ctx, rkey)
	if err != nil {
		t.Fatal(err)
	}
	bo := b.s.Origin()
	rinfo.Metadata[cipher.MetaOrigin] = base64.RawURLEncoding.EncodeToString(append(bo.Writer[:], bo.Epoch[:]...))
	if _, err := tv.store.Copy(ctx, rkey, rkey, blobstore.CopyOptions{Metadata: rinfo.Metadata}); err != nil {
		t.Fatal(err)
	}
	// A device node, which a writer's own program can seal.
	devKey, _, _ := tv.objectKey("/a/dev")
	dkey, _ := a.s.NewObjectKey()
	dmeta, err := a.s.SealMetadata(dkey, "/a/dev", cipher.Attr{Mode: syscall.S_IFBLK | 0o666, Rdev: 0x0801})
	if err != nil {
		t.Fatal(err)
	}
	var dbody bytes.Buffer
	denc := dkey.NewEncrypter(&dbody)
	denc.Close()
	a.putRaw(devKey, dbody.Bytes(), dmeta)
	// A session whose epoch object is missing.
	missing := newWriterStub(t, tv, credA)
	missing.put("/a/missing", 0o644, []byte("epoch gone"))
	mkey, _ := missing.s.EpochObject()
	tv.store.Delete(ctx, mkey)

	// A writer's object taken for one under .coffer/ (hard-link inodes,
	// say) is refused whatever it holds.
	goodKey, _, _ := tv.objectKey("/a/good")
	ginfo, err := tv.store.Head(ctx, goodKey)
	if err != nil {
		t.Fatal(err)
	}
	v := tv.reopen(t)
	l := v.lay.(*clientLayout)
	if _, _, err := l.openAny("/a/good", goodKey, ginfo.Metadata); err != nil {
		t.Fatalf("open /a/good: %v", err)
	}
	if _, _, err := l.openAny("/a/good", reservedName+"/inodes/"+goodKey, ginfo.Metadata); !errors.Is(err, cipher.ErrWriterRefused) {
		t.Fatalf("a writer's object under .coffer/: %v", err)
	}
	for _, p := range []string{"/a/good", "/b/good"} {
		if _, err := tryRead(v, p); err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
	}
	forged := []string{"/outside", "/a/noauth", "/a/swapped", "/a/missing", "/b/relabeled", "/a/dev"}
	for _, p := range forged {
		_, err := tryRead(v, p)
		wantErrno(t, err, syscall.EIO)
		_, err = v.Stat(ctx, p)
		wantErrno(t, err, syscall.EIO)
	}
	if _, err := v.ReadDir(ctx, "/a"); err != nil {
		t.Fatalf("readdir /a: %v", err)
	}
	// Fsck names every one of them.
	rep, err := v.Fsck(ctx, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	epochs := 0
	for _, f := range rep.Findings {
		switch {
		case f.Path != "":
			found[f.Path] = true
		case f.Kind == FindWriter && strings.HasPrefix(f.Key, cipher.EpochsPrefix):
			epochs++
		default:
			t.Errorf("unexpected finding %v", f)
		}
	}
	for _, p := range forged {
		if !found[p] {
			t.Errorf("fsck found nothing wrong with %s: %v", p, rep.Findings)
		}
	}
	// The epochs of the session without WA and of the swapped one.
	if len(found) != len(forged) || epochs != 2 {
		t.Fatalf("fsck: %d paths, %d epochs: %v", len(found), epochs, rep.Findings)
	}
}

// TestWriterRevoked: after revocation the files of the sessions kept stay
// readable and those of a session started afterwards are refused.
func TestWriterRevoked(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	cred := exportTestWriter(t, tv, "/in")
	before := newWriterStub(t, tv, cred)
	before.put("/in/before", 0o644, []byte("before"))
	if _, err := RevokeWriter(ctx, tv.store, RevokeOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, Now: time.Now()}, cred.Writer()); err != nil {
		t.Fatal(err)
	}
	after := newWriterStub(t, tv, cred)
	after.put("/in/after", 0o644, []byte("after"))
	// The thief also replaces the kept epoch's object with one of its own
	// under the same epoch ID.
	v := tv.reopen(t)
	if got := readFile(t, v, "/in/before"); string(got) != "before" {
		t.Fatalf("/in/before = %q", got)
	}
	_, err := tryRead(v, "/in/after")
	wantErrno(t, err, syscall.EIO)
	if !errors.Is(err, cipher.ErrWriterRevoked) {
		t.Fatalf("err = %v, want ErrWriterRevoked", err)
	}
}

// TestRotateKeepsOrigin: rotate rewraps a writer's object under the KEK,
// bound to its origin, which it keeps; it opens without its epoch after.
func TestRotateKeepsOrigin(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	w := newWriterStub(t, tv, exportTestWriter(t, tv, "/in"))
	key := w.put("/in/a", 0o644, []byte("rotate me"))
	res, err := RotateVolume(ctx, tv.store, RotateOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, MountGrace: -1})
	if err != nil || res.Rewrapped != 1 {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	info, err := tv.store.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := cipher.ObjectOrigin(info.Metadata); o != w.s.Origin() || info.Metadata[cipher.MetaKEK] == "" {
		t.Fatalf("after rotate: origin %v, metadata %v", o, info.Metadata)
	}
	ekey, _ := w.s.EpochObject()
	tv.store.Delete(ctx, ekey)
	v := tv.reopen(t)
	if got := readFile(t, v, "/in/a"); string(got) != "rotate me" {
		t.Fatalf("/in/a = %q", got)
	}
	if a, _ := v.Stat(ctx, "/in/a"); a.Origin != w.s.Origin() {
		t.Fatalf("origin after rotate: %v", a.Origin)
	}
}

func TestAdopt(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	writeFile(t, tv.Volume, "/mine", []byte("full key"))
	flush(t, tv.Volume)
	w := newWriterStub(t, tv, exportTestWriter(t, tv, "/in"))
	key := w.put("/in/a", 0o640, []byte("adopt me"))
	v := tv.reopen(t)
	if err := v.Adopt(ctx, "/in/a"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, v.Adopt(ctx, "/mine"), syscall.EINVAL)
	wantErrno(t, v.Adopt(ctx, "/nope"), syscall.ENOENT)
	info, err := tv.store.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := cipher.ObjectOrigin(info.Metadata); o.IsWriter() {
		t.Fatalf("adopted object keeps origin %v", o)
	}
	// Without the epoch object, and with the writer revoked dropping its
	// epochs, the adopted file still opens.
	ekey, _ := w.s.EpochObject()
	tv.store.Delete(ctx, ekey)
	if _, err := RevokeWriter(ctx, tv.store, RevokeOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, DropEpochs: true}, w.s.Origin().Writer); err != nil {
		t.Fatal(err)
	}
	v2 := tv.reopen(t)
	if got := readFile(t, v2, "/in/a"); string(got) != "adopt me" {
		t.Fatalf("/in/a = %q", got)
	}
	a, err := v2.Stat(ctx, "/in/a")
	if err != nil || a.Origin.IsWriter() || a.Mode&0o777 != 0o640 {
		t.Fatalf("adopted: %+v, %v", a, err)
	}
	_, err = v2.Getxattr(ctx, "/in/a", OriginXattr)
	wantErrno(t, err, syscall.ENODATA)
}

// openWriterVolume opens tv's store write-only with cred.
func openWriterVolume(t *testing.T, tv *testVol, cred *cipher.WriterCredential) *Volume {
	t.Helper()
	opts := tv.options
	opts.Roots, opts.Writer, opts.CacheDir = nil, cred, t.TempDir()
	w, err := OpenVolume(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func TestWriteOnlyVolume(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	for _, d := range []string{"/in", "/in/olddir", "/in/emptydir", "/out"} {
		if _, err := tv.Mkdir(ctx, d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, tv.Volume, "/in/old", []byte("the full key's"))
	writeFile(t, tv.Volume, "/out/x", []byte("outside"))
	flush(t, tv.Volume)
	cred := exportTestWriter(t, tv, "/in")

	w := openWriterVolume(t, tv, cred)
	writeFile(t, w, "/in/new", []byte("written by the writer"))
	if _, err := w.Mkdir(ctx, "/in/newdir", 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, w, "/in/newdir/f", []byte("deeper"))
	writeFile(t, w, "/in/olddir/inside", []byte("into an existing directory"))
	if _, err := w.Symlink(ctx, "new", "/in/link"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Mknod(ctx, "/in/fifo", syscall.S_IFIFO|0o644, 0); err != nil {
		t.Fatal(err)
	}
	_, err := w.Mknod(ctx, "/in/dev", syscall.S_IFCHR|0o644, 0x0103)
	wantErrno(t, err, syscall.EPERM)
	if got := readFile(t, w, "/in/new"); string(got) != "written by the writer" {
		t.Fatalf("the writer reads back %q", got)
	}
	if a, err := w.Stat(ctx, "/in/newdir"); err != nil || a.Mode != syscall.S_IFDIR|0o750 {
		t.Fatalf("stat own dir: %+v, %v", a, err)
	}
	flush(t, w)

	// Everything not of this session.
	_, err = w.Stat(ctx, "/in/old")
	wantErrno(t, err, syscall.EACCES)
	_, err = tryRead(w, "/in/old")
	wantErrno(t, err, syscall.EACCES)
	_, err = w.Open(ctx, "/in/old", syscall.O_WRONLY)
	wantErrno(t, err, syscall.EACCES)
	_, _, err = w.Create(ctx, "/in/old", 0o644, syscall.O_WRONLY|syscall.O_TRUNC)
	wantErrno(t, err, syscall.EACCES)
	wantErrno(t, w.Unlink(ctx, "/in/old"), syscall.EACCES)
	wantErrno(t, w.Rename(ctx, "/in/new", "/in/old", 0), syscall.EACCES)
	wantErrno(t, w.Rename(ctx, "/in/old", "/in/elsewhere", 0), syscall.EACCES)
	wantErrno(t, w.Truncate(ctx, "/in/old", 0), syscall.EACCES)
	mode := uint32(0o777)
	_, err = w.SetAttr(ctx, "/in/old", SetAttr{Mode: &mode})
	wantErrno(t, err, syscall.EACCES)
	wantErrno(t, w.Setxattr(ctx, "/in/old", "user.x", []byte("y"), 0), syscall.EACCES)
	_, err = w.Getxattr(ctx, "/in/old", "user.x")
	wantErrno(t, err, syscall.EACCES)
	wantErrno(t, w.Rmdir(ctx, "/in/emptydir"), syscall.EACCES)
	wantErrno(t, w.Rename(ctx, "/in/emptydir", "/in/moved", 0), syscall.EACCES)
	_, err = w.SetAttr(ctx, "/in/olddir", SetAttr{Mode: &mode})
	wantErrno(t, err, syscall.EACCES)
	// Outside the scope nothing is created.
	_, _, err = w.Create(ctx, "/out/y", 0o644, syscall.O_WRONLY)
	wantErrno(t, err, syscall.EACCES)
	_, err = w.Mkdir(ctx, "/top", 0o755)
	wantErrno(t, err, syscall.EACCES)
	_, err = w.Stat(ctx, "/out/x")
	wantErrno(t, err, syscall.EACCES)
	// Names and sizes stay visible.
	ents, err := w.ReadDir(ctx, "/in")
	if err != nil || names(ents) != "emptydir,fifo,link,new,newdir,old,olddir" {
		t.Fatalf("readdir /in = %v, %v", names(ents), err)
	}
	for _, e := range ents {
		if e.Name == "old" && e.Attr.Size != int64(len("the full key's")) {
			t.Fatalf("old listed with size %d", e.Attr.Size)
		}
	}
	// The listing cached old's name and size: still nothing more.
	_, err = w.Stat(ctx, "/in/old")
	wantErrno(t, err, syscall.EACCES)
	_, err = tryRead(w, "/in/old")
	wantErrno(t, err, syscall.EACCES)
	wantErrno(t, w.Unlink(ctx, "/in/old"), syscall.EACCES)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	v := tv.reopen(t)
	for p, want := range map[string]string{
		"/in/old": "the full key's", "/in/new": "written by the writer", "/in/newdir/f": "deeper",
		"/in/olddir/inside": "into an existing directory", "/out/x": "outside",
	} {
		if got := readFile(t, v, p); string(got) != want {
			t.Fatalf("%s = %q, want %q", p, got, want)
		}
	}
	if target, err := v.Readlink(ctx, "/in/link"); err != nil || target != "new" {
		t.Fatalf("readlink = %q, %v", target, err)
	}
	for _, p := range []string{"/in/new", "/in/newdir", "/in/newdir/f", "/in/link"} {
		if a, err := v.Stat(ctx, p); err != nil || !a.Origin.IsWriter() || a.Origin.Writer != cred.Writer() {
			t.Fatalf("%s: %+v, %v", p, a, err)
		}
	}
	if a, _ := v.Stat(ctx, "/in/old"); a.Origin.IsWriter() || a.Mode&0o777 != 0o644 {
		t.Fatalf("/in/old changed: %+v", a)
	}
	if _, err := v.Stat(ctx, "/in/emptydir"); err != nil {
		t.Fatalf("/in/emptydir: %v", err)
	}
}

// TestWriteOnlyScopeWithoutObjects: the scope and its ancestors need no
// object; the writer creates none outside the scope.
func TestWriteOnlyScopeWithoutObjects(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	cred := exportTestWriter(t, tv, "/backups/host1")
	w := openWriterVolume(t, tv, cred)
	for _, p := range []string{"/backups", "/backups/host1"} {
		if a, err := w.Stat(ctx, p); err != nil || !a.IsDir() {
			t.Fatalf("stat %s: %+v, %v", p, a, err)
		}
	}
	_, err := w.Mkdir(ctx, "/backups/host2", 0o755)
	wantErrno(t, err, syscall.EACCES)
	writeFile(t, w, "/backups/host1/a", []byte("a"))
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v := tv.reopen(t)
	if got := readFile(t, v, "/backups/host1/a"); string(got) != "a" {
		t.Fatalf("/backups/host1/a = %q", got)
	}
	if ents, err := v.ReadDir(ctx, "/backups"); err != nil || names(ents) != "host1" {
		t.Fatalf("readdir /backups = %v, %v", names(ents), err)
	}
}

// TestWriteOnlyRecovery: a write-only mount that died with files
// journalled uploads them at its next opening, sealed by that new session
// (DESIGN.md: a recovery seals journalled uploads under a new epoch).
func TestWriteOnlyRecovery(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	cred := exportTestWriter(t, tv, "/in")
	opts := tv.options
	opts.Roots, opts.Writer, opts.CacheDir = nil, cred, t.TempDir()
	w, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.clock = &fakeClock{} // its uploads never fire
	want := map[string][]byte{"/in/a": randomBytes(1000), "/in/b": randomBytes(70000)}
	for p, data := range want {
		writeFile(t, w, p, data)
	}
	first := w.Writer().Origin()
	crash(t, w)

	w2, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	second := w2.Writer().Origin()
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatal("the second opening reused the first session")
	}
	v := tv.reopen(t)
	for p, data := range want {
		if got := readFile(t, v, p); !bytes.Equal(got, data) {
			t.Fatalf("%s read back different", p)
		}
		if a, _ := v.Stat(ctx, p); a.Origin != second {
			t.Fatalf("%s: origin %v, want the recovering session %v", p, a.Origin, second)
		}
	}
}

// TestWriteOnlyChecksVolume: a writer trusts the store's config for its
// volume ID only, and that must be the credential's; the modes asked for
// must be the credential's.
func TestWriteOnlyChecksVolume(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	other := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	cred := exportTestWriter(t, tv, "/")
	opts := other.options
	opts.Roots, opts.Writer, opts.CacheDir = nil, cred, t.TempDir()
	if _, err := OpenVolume(ctx, opts); err == nil || !strings.Contains(err.Error(), "this writer credential is for volume") {
		t.Fatalf("another volume's store: %v", err)
	}
	opts = tv.options
	opts.Roots, opts.Writer, opts.CacheDir = nil, cred, t.TempDir()
	opts.SSE = blobstore.SSEConfig{Mode: blobstore.SSES3}
	if _, err := OpenVolume(ctx, opts); err == nil || !strings.Contains(err.Error(), "the writer credential says --sse") {
		t.Fatalf("another SSE mode: %v", err)
	}
	opts.SSE, opts.Roots = blobstore.SSEConfig{}, []*cipher.RootKey{tv.root}
	if _, err := OpenVolume(ctx, opts); err == nil {
		t.Fatal("a credential and a root key together opened")
	}
	for _, key := range append(epochKeys(t, tv), epochKeys(t, other)...) {
		t.Fatalf("a refused opening stored epoch %s", key)
	}
}

func epochKeys(t *testing.T, tv *testVol) []string {
	t.Helper()
	var keys []string
	for e, err := range tv.store.List(context.Background(), cipher.EpochsPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Key)
	}
	return keys
}

// TestWriterRevokedWhileMounted: a running full-key volume takes a
// revocation from the refreshed config and drops the epochs it cached.
func TestWriterRevokedWhileMounted(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient, func(o *Options) { o.MetadataTTL = -1 })
	ctx := context.Background()
	cred := exportTestWriter(t, tv, "/in")
	w := newWriterStub(t, tv, cred)
	w.put("/in/a", 0o644, []byte("readable until revoked"))
	// The volume learns of the writer from its config, as a mount would.
	if changed, err := tv.watch.refresh(ctx); err != nil || !changed {
		t.Fatalf("refresh: %v, %v", changed, err)
	}
	if got := readFile(t, tv.Volume, "/in/a"); string(got) != "readable until revoked" {
		t.Fatalf("/in/a = %q", got)
	}
	if _, err := RevokeWriter(ctx, tv.store, RevokeOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{tv.root}}, DropEpochs: true}, cred.Writer()); err != nil {
		t.Fatal(err)
	}
	if changed, err := tv.watch.refresh(ctx); err != nil || !changed {
		t.Fatalf("refresh after the revocation: %v, %v", changed, err)
	}
	_, err := tryRead(tv.Volume, "/in/a")
	wantErrno(t, err, syscall.EIO)
}

// createOnlyStore is the bucket policy README gives a writer: objects
// are created (If-None-Match) and never changed; a copy, an overwrite
// and a delete are refused.
type createOnlyStore struct{ blobstore.Store }

func (s createOnlyStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	if !opts.IfNoneMatch {
		return blobstore.ObjectInfo{}, fmt.Errorf("put %s without If-None-Match: %w", key, blobstore.ErrAccessDenied)
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

func (s createOnlyStore) Copy(ctx context.Context, src, dst string, opts blobstore.CopyOptions) (blobstore.ObjectInfo, error) {
	return blobstore.ObjectInfo{}, fmt.Errorf("copy to %s: %w", dst, blobstore.ErrAccessDenied)
}

func (s createOnlyStore) Delete(ctx context.Context, key string) error {
	return fmt.Errorf("delete %s: %w", key, blobstore.ErrAccessDenied)
}

// TestWriterHeldMarkers: under the create-only policy a writer makes a
// tree as tar x does, directories re-timed and chmodded after they were
// filled, a nested one emptied and removed, and all of it reaches the
// store at unmount with the attributes set last: each marker stored
// once. Until then the store holds no marker of the writer's.
func TestWriterHeldMarkers(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	ctx := context.Background()
	if _, err := tv.Mkdir(ctx, "/in", 0o755); err != nil {
		t.Fatal(err)
	}
	flush(t, tv.Volume)
	cred := exportTestWriter(t, tv, "/in")
	opts := tv.options
	opts.Roots, opts.Writer, opts.CacheDir = nil, cred, t.TempDir()
	opts.Store = createOnlyStore{tv.options.Store}
	w, err := OpenVolume(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })

	for _, d := range []string{"/in/a", "/in/a/b", "/in/a/gone", "/in/empty", "/in/p", "/in/p/q"} {
		if _, err := w.Mkdir(ctx, d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	wantErrno(t, w.Rmdir(ctx, "/in/p"), syscall.ENOTEMPTY) // a held directory below
	for _, d := range []string{"/in/p/q", "/in/p"} {
		if err := w.Rmdir(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, w, "/in/a/f", []byte("in a"))
	writeFile(t, w, "/in/a/b/g", []byte("in b"))
	if err := w.Rmdir(ctx, "/in/a"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a held directory holding files: %v, want ENOTEMPTY", err)
	}
	wantErrno(t, w.Rmdir(ctx, "/in/a/b"), syscall.ENOTEMPTY)
	if err := w.Rmdir(ctx, "/in/a/gone"); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_700_000_000, 0)
	mode := uint32(0o751)
	for _, d := range []string{"/in/a", "/in/a/b", "/in/empty"} {
		if _, err := w.SetAttr(ctx, d, SetAttr{Mode: &mode, Mtime: &mt, Atime: &mt}); err != nil {
			t.Fatalf("utime and chmod of %s under the create-only policy: %v", d, err)
		}
		if a, err := w.Stat(ctx, d); err != nil || a.Mode != syscall.S_IFDIR|0o751 || !a.Mtime.Equal(mt) {
			t.Fatalf("stat %s: %+v, %v", d, a, err)
		}
	}
	if ents, err := w.ReadDir(ctx, "/in"); err != nil || names(ents) != "a,empty" {
		t.Fatalf("readdir /in = %v, %v", names(ents), err)
	}
	key, _, err := tv.objectKey("/in/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.store.Store.Head(ctx, key+"/"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("the marker of /in/a before unmount: %v, want none", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("unmount: %v", err)
	}

	v := tv.reopen(t)
	for _, d := range []string{"/in/a", "/in/a/b", "/in/empty"} {
		a, err := v.Stat(ctx, d)
		if err != nil || a.Mode != syscall.S_IFDIR|0o751 || !a.Mtime.Equal(mt) || !a.Origin.IsWriter() {
			t.Errorf("%s after the writer's unmount: %+v, %v", d, a, err)
		}
	}
	if _, err := v.Stat(ctx, "/in/a/gone"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("/in/a/gone: %v, want ENOENT", err)
	}
	if got := readFile(t, v, "/in/a/b/g"); string(got) != "in b" {
		t.Errorf("/in/a/b/g = %q", got)
	}
}
