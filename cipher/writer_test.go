package cipher

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writerVolume is a volume with a sym root key and one writer key of
// scope, its config reopened from its marshalled form (so the writer key
// went through the keyring's encoding).
type writerVolume struct {
	cfg  *Config
	kr   *Keyring
	cred *WriterCredential
	root *RootKey
	data []byte
}

func newWriterVolume(t *testing.T, scope string) *writerVolume {
	t.Helper()
	root := testSymKey(t, 7)
	c, kr, _ := newVolume(t, root)
	cred, err := c.ExportWriter(kr, scope, "backup host")
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	c, kr = openConfig(t, data, root)
	return &writerVolume{cfg: c, kr: kr, cred: cred, root: root, data: data}
}

func (v *writerVolume) session(t *testing.T) *WriterSession {
	t.Helper()
	s, err := v.cred.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// epochsOf is the EpochSource of a reader that fetches the epoch objects
// of sessions from a map, as fs fetches them from the store; it counts
// the calls.
type epochStore struct {
	kr      *Keyring
	objects map[Origin][]byte
	calls   int
}

func newEpochStore(kr *Keyring, sessions ...*WriterSession) *epochStore {
	e := &epochStore{kr: kr, objects: map[Origin][]byte{}}
	for _, s := range sessions {
		e.add(s)
	}
	return e
}

func (e *epochStore) add(s *WriterSession) {
	_, data := s.EpochObject()
	e.objects[s.Origin()] = data
}

func (e *epochStore) source(o Origin) (*Epoch, error) {
	e.calls++
	data, ok := e.objects[o]
	if !ok {
		return nil, errors.New("no such epoch object")
	}
	return e.kr.OpenEpoch(o, data)
}

// writerObject is one object a session stored: metadata and body.
type writerObject struct {
	path  string
	meta  map[string]string
	body  []byte
	plain []byte
	attr  Attr
}

func storeWriterObject(t *testing.T, s *WriterSession, path string, plain []byte) writerObject {
	t.Helper()
	o, err := s.NewObjectKey()
	if err != nil {
		t.Fatal(err)
	}
	a := Attr{Mode: 0o100640, UID: 1000, GID: 1000, MtimeNs: 1_765_000_000_000_000_001}
	meta, err := s.SealMetadata(o, path, a)
	if err != nil {
		t.Fatal(err)
	}
	return writerObject{path: path, meta: meta, body: encrypt(t, o, plain), plain: plain, attr: a}
}

// readerOpens opens a writer object as a full-key reader and checks that
// it yields the attributes and bytes stored.
func readerOpens(t *testing.T, kr *Keyring, epochs EpochSource, w writerObject) Origin {
	t.Helper()
	o, a, origin, err := kr.OpenAnyMetadata(w.meta, w.path, epochs)
	if err != nil {
		t.Fatalf("reader: %s: %v", w.path, err)
	}
	if a != w.attr || o.Origin() != origin {
		t.Fatalf("reader: %s: attributes %+v origin %v, want %+v", w.path, a, origin, w.attr)
	}
	plain, err := io.ReadAll(o.NewDecrypter(bytes.NewReader(w.body), int64(len(w.body))))
	if err != nil || !bytes.Equal(plain, w.plain) {
		t.Fatalf("reader: %s: body %v", w.path, err)
	}
	return origin
}

// TestWriterRoundTrip: what a writer session stores, a full-key reader
// opens (after the epoch verified) with its origin; the session reads back
// its own objects and nothing else; names are the volume's.
func TestWriterRoundTrip(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	ws := v.kr.Writers()
	if len(ws) != 1 || ws[0].ID != v.cred.Writer() || ws[0].Scope != "/backups/host1" || ws[0].Label != "backup host" || ws[0].Revoked {
		t.Fatalf("keyring writers %+v", ws)
	}
	s := v.session(t)
	if s.Origin().Writer != v.cred.Writer() || !s.Origin().IsWriter() {
		t.Fatalf("session origin %v", s.Origin())
	}
	key, data := s.EpochObject()
	if key != ".coffer/epochs/"+v.cred.Writer().String()+"/"+s.Origin().Epoch.String() || len(data) != epochObjectSize {
		t.Fatalf("epoch object %s of %d bytes", key, len(data))
	}
	if o, err := ParseEpochObjectKey(key); err != nil || o != s.Origin() {
		t.Fatalf("ParseEpochObjectKey(%s) = %v, %v", key, o, err)
	}
	epochs := newEpochStore(v.kr, s)
	objs := []writerObject{
		storeWriterObject(t, s, "/backups/host1", nil),
		storeWriterObject(t, s, "/backups/host1/etc/passwd", pseudoRandom(3*ChunkSize+5, 1)),
		storeWriterObject(t, s, "/backups/host1/"+strings.Repeat("long name ", 25), []byte("x")),
	}
	if objs[2].meta[MetaName] == "" {
		t.Fatal("a long name has no coffer-name")
	}
	for _, w := range objs {
		if _, ok := w.meta[MetaKEK]; ok {
			t.Fatalf("%s: a writer object carries coffer-kek", w.path)
		}
		if got := readerOpens(t, v.kr, epochs.source, w); got != s.Origin() {
			t.Fatalf("%s: origin %v, want %v", w.path, got, s.Origin())
		}
		if _, a, err := s.OpenMetadata(w.meta, w.path); err != nil || a != w.attr {
			t.Fatalf("the session reads back %s: %v", w.path, err)
		}
		if _, _, err := v.kr.OpenMetadata(w.meta, w.path); !errors.Is(err, ErrWriterOrigin) {
			t.Fatalf("OpenMetadata of a writer object: %v, want ErrWriterOrigin", err)
		}
		if _, err := v.kr.OpenObjectKey(w.meta); !errors.Is(err, ErrWriterOrigin) {
			t.Fatalf("OpenObjectKey of a writer object: %v, want ErrWriterOrigin", err)
		}
		if g, err := MetadataGeneration(w.meta); g != 0 || err != nil {
			t.Fatalf("MetadataGeneration of a writer object: %d, %v", g, err)
		}
	}
	if _, _, _, err := v.kr.OpenAnyMetadata(objs[1].meta, objs[1].path, nil); !errors.Is(err, ErrWriterOrigin) {
		t.Fatalf("OpenAnyMetadata without an epoch source: %v, want ErrWriterOrigin", err)
	}
	// Another session of the same writer, and the full key's objects,
	// are not this session's.
	other := storeWriterObject(t, v.session(t), "/backups/host1/other", []byte("other"))
	if _, _, err := s.OpenMetadata(other.meta, other.path); !errors.Is(err, ErrNotThisSession) {
		t.Fatalf("another session's object: %v, want ErrNotThisSession", err)
	}
	fk, _ := v.kr.NewObjectKey()
	full, err := v.kr.SealMetadata(fk, "/backups/host1/full", testAttr)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenMetadata(full, "/backups/host1/full"); !errors.Is(err, ErrNotThisSession) {
		t.Fatalf("a full-key object: %v, want ErrNotThisSession", err)
	}
	if _, _, origin, err := v.kr.OpenAnyMetadata(full, "/backups/host1/full", epochs.source); err != nil || origin.IsWriter() {
		t.Fatalf("OpenAnyMetadata of a full-key object: %v %v", origin, err)
	}
	// The session encrypts names as the keyring does.
	seg1, _, _ := s.Names().EncryptSegment("/backups", "host1")
	seg2, _, _ := v.kr.Names().EncryptSegment("/backups", "host1")
	if seg1 != seg2 {
		t.Fatal("the session's names differ from the volume's")
	}
	if !s.InScope("/backups/host1/x") || s.InScope("/backups/host10") || s.InScope("/backups") || s.InScope("/.coffer/x") {
		t.Fatal("InScope")
	}
	if _, err := s.SealMetadata(fk, "/backups/host1/f", testAttr); !errors.Is(err, ErrNotThisSession) {
		t.Fatalf("a session sealing a key not its own: %v", err)
	}
}

// TestWriterSessionScope: a session refuses to seal outside its scope,
// under /.coffer, or at a path that is not canonical.
func TestWriterSessionScope(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	s := v.session(t)
	o, _ := s.NewObjectKey()
	for _, p := range []string{"/backups/host10/x", "/backups", "/", "/etc/passwd"} {
		if _, err := s.SealMetadata(o, p, testAttr); !errors.Is(err, ErrOutOfScope) {
			t.Errorf("seal at %s: %v, want ErrOutOfScope", p, err)
		}
	}
	all := newWriterVolume(t, "/")
	s = all.session(t)
	o, _ = s.NewObjectKey()
	for _, p := range []string{"/.coffer", "/.coffer/inodes/x"} {
		if _, err := s.SealMetadata(o, p, testAttr); !errors.Is(err, ErrWriterRefused) {
			t.Errorf("seal at %s: %v, want ErrWriterRefused", p, err)
		}
	}
	if _, err := s.SealMetadata(o, "relative", testAttr); !errors.Is(err, ErrBadName) {
		t.Errorf("seal at a relative path: %v, want ErrBadName", err)
	}
	for _, scope := range []string{"", "backups", "/backups/", "/a//b", "/a/../b", "/.coffer", "/.coffer/epochs"} {
		if _, err := all.cfg.ExportWriter(all.kr, scope, ""); err == nil {
			t.Errorf("ExportWriter with scope %q accepted", scope)
		}
	}
	if _, err := all.cfg.ExportWriter(all.kr, "/x", "a\nb"); err == nil {
		t.Error("a label with a newline accepted")
	}
}

// TestWriterRotateAndAdopt: rotate rewraps a writer object under the
// current KEK bound to its origin and keeps coffer-origin, so it opens
// without its epoch; a full-key change keeps the origin (and the scope);
// only AdoptMetadata makes it a full-key object.
func TestWriterRotateAndAdopt(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	s := v.session(t)
	w := storeWriterObject(t, s, "/backups/host1/f", pseudoRandom(1000, 2))
	epochs := newEpochStore(v.kr, s)
	if err := v.kr.AddGeneration(); err != nil {
		t.Fatal(err)
	}
	rot, err := v.kr.RewrapAnyMetadata(w.meta, epochs.source)
	if err != nil {
		t.Fatal(err)
	}
	if rot[MetaOrigin] != w.meta[MetaOrigin] || rot[MetaKEK] != "2" || rot[MetaAttr] != w.meta[MetaAttr] {
		t.Fatalf("rotated metadata %v", rot)
	}
	if _, err := v.kr.RewrapMetadata(w.meta); !errors.Is(err, ErrWriterOrigin) {
		t.Fatalf("RewrapMetadata of a writer object: %v, want ErrWriterOrigin", err)
	}
	rotated := w
	rotated.meta = rot
	epochs.calls = 0
	if got := readerOpens(t, v.kr, nil, rotated); got != s.Origin() || epochs.calls != 0 {
		t.Fatalf("rotated: origin %v, %d epoch fetches", got, epochs.calls)
	}
	// The v2 wrap is bound to the origin: relabelled, or stripped into a
	// full-key object, it does not open.
	relabel := maps.Clone(rot)
	relabel[MetaOrigin] = b64.EncodeToString(Origin{Writer: s.Origin().Writer, Epoch: EpochID{1}}.bytes())
	if _, _, _, err := v.kr.OpenAnyMetadata(relabel, w.path, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("rotated object with another epoch: %v, want ErrAuth", err)
	}
	stripped := maps.Clone(rot)
	delete(stripped, MetaOrigin)
	if _, _, err := v.kr.OpenMetadata(stripped, w.path); !errors.Is(err, ErrAuth) {
		t.Fatalf("rotated object without its origin: %v, want ErrAuth", err)
	}
	// A full-key change (chmod) keeps the origin; out of scope it is refused.
	o, a, origin, err := v.kr.OpenAnyMetadata(rot, w.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Mode = 0o100600
	changed, err := v.kr.SealMetadata(o, w.path, a)
	if err != nil {
		t.Fatal(err)
	}
	if changed[MetaOrigin] != rot[MetaOrigin] {
		t.Fatal("a full-key change dropped the origin")
	}
	if _, got, gotOrigin, err := v.kr.OpenAnyMetadata(changed, w.path, nil); err != nil || got != a || gotOrigin != origin {
		t.Fatalf("after the change: %+v %v %v", got, gotOrigin, err)
	}
	if _, err := v.kr.SealMetadata(o, "/elsewhere/f", a); !errors.Is(err, ErrOutOfScope) {
		t.Fatalf("a writer's object moved out of its scope: %v, want ErrOutOfScope", err)
	}
	if _, err := v.kr.SealInodeMetadata(o, NewInodeID(), Inode{Attr: a, Links: LinkSet{}.With(NewLinkID())}); !errors.Is(err, ErrWriterOrigin) {
		t.Fatalf("a writer's object as an inode: %v, want ErrWriterOrigin", err)
	}
	adopted, err := v.kr.AdoptMetadata(o, "/elsewhere/f", a)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := adopted[MetaOrigin]; ok {
		t.Fatal("adopted metadata keeps coffer-origin")
	}
	o2, got, err := v.kr.OpenMetadata(adopted, "/elsewhere/f")
	if err != nil || got != a || o2.Origin().IsWriter() || o2.FileID() != o.FileID() {
		t.Fatalf("adopted object: %+v %v", got, err)
	}
}

// TestWriterKeyringEncoding: writer keys survive the keyring's encoding
// (the config reopened), revoked ones with their epochs; a keyring without
// writers encodes as before (no writers field).
func TestWriterKeyringEncoding(t *testing.T) {
	_, kr, _ := newVolume(t, testSymKey(t, 1))
	if bytes.Contains(kr.marshal(), []byte("writers")) {
		t.Fatal("a keyring without writers has a writers field")
	}
	v := newWriterVolume(t, "/b")
	s1, s2 := v.session(t), v.session(t)
	e1, err := v.kr.OpenEpoch(s1.Origin(), must(func() ([]byte, error) { _, d := s1.EpochObject(); return d, nil }()))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.kr.RevokeWriter(v.cred.Writer(), []*Epoch{e1}, time.Unix(1_800_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	if err := v.kr.RevokeWriter(v.cred.Writer(), nil, time.Now()); err == nil {
		t.Fatal("revoked twice")
	}
	data, err := v.cfg.Marshal(v.kr)
	if err != nil {
		t.Fatal(err)
	}
	_, kr2 := openConfig(t, data, v.root)
	if !bytes.Equal(kr2.marshal(), v.kr.marshal()) {
		t.Fatal("the keyring encodes differently after a round trip")
	}
	ws := kr2.Writers()
	if len(ws) != 1 || !ws[0].Revoked || ws[0].RevokedAt != time.Unix(1_800_000_000, 0).UTC() || len(ws[0].KnownEpochs) != 1 || ws[0].KnownEpochs[0] != s1.Origin().Epoch {
		t.Fatalf("writers after the round trip: %+v", ws)
	}
	epochs := newEpochStore(kr2, s1, s2)
	readerOpens(t, kr2, epochs.source, storeWriterObject(t, s1, "/b/kept", []byte("k")))
	if _, _, _, err := kr2.OpenAnyMetadata(storeWriterObject(t, s2, "/b/new", []byte("n")).meta, "/b/new", epochs.source); !errors.Is(err, ErrWriterRevoked) {
		t.Fatalf("the epoch begun after the revocation: %v, want ErrWriterRevoked", err)
	}
}

// TestWriterCredentialFile: the credential round-trips through its file
// (0600, refused when group-readable), LoadKey tells it from a sym key
// file, and it holds nothing that opens a stored object.
func TestWriterCredentialFile(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	dir := t.TempDir()
	path := filepath.Join(dir, "writer")
	if err := WriteWriterCredential(path, v.cred); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("credential mode %v", st.Mode())
	}
	if err := WriteWriterCredential(path, v.cred); err == nil {
		t.Fatal("WriteWriterCredential overwrote a file")
	}
	root, cred, err := LoadKey(path)
	if err != nil || root != nil || cred == nil {
		t.Fatalf("LoadKey of a credential: %v %v %v", root, cred, err)
	}
	if !bytes.Equal(cred.Marshal(), v.cred.Marshal()) || cred.Scope() != "/backups/host1" || cred.VolumeID() != v.kr.VolumeID() {
		t.Fatal("the credential changed through its file")
	}
	if err := cred.CheckConfig(v.cfg); err != nil {
		t.Fatal(err)
	}
	other, _, _ := newVolume(t, testSymKey(t, 9))
	if err := cred.CheckConfig(other); err == nil {
		t.Fatal("CheckConfig accepted another volume's config")
	}
	keyPath := filepath.Join(dir, "key")
	if err := WriteKeyFile(keyPath); err != nil {
		t.Fatal(err)
	}
	if root, cred, err := LoadKey(keyPath); err != nil || root == nil || cred != nil {
		t.Fatalf("LoadKey of a sym key: %v %v %v", root, cred, err)
	}
	if _, err := LoadKeyFile(path); !errors.Is(err, ErrIsWriterCredential) {
		t.Fatalf("LoadKeyFile of a credential: %v, want ErrIsWriterCredential", err)
	}
	os.Chmod(path, 0o640)
	if _, _, err := LoadKey(path); !errors.Is(err, ErrKeyFileMode) {
		t.Fatalf("a group-readable credential: %v, want ErrKeyFileMode", err)
	}
	// Nothing of the keyring's secrets but the name secret is in it.
	text := string(v.cred.Marshal())
	for name, secret := range map[string][]byte{
		"local secret": v.kr.localSecret, "config secret": v.kr.configSecret, "anchor secret": v.kr.anchorSecret,
		"KEK": v.kr.keks[1], "writer private key": v.kr.writers[v.cred.Writer()].seed,
	} {
		if strings.Contains(text, b64.EncodeToString(secret)) {
			t.Errorf("the credential holds the %s", name)
		}
	}
	if !strings.Contains(text, b64.EncodeToString(v.kr.nameSecret)) || strings.Contains(v.cred.String(), b64.EncodeToString(v.kr.nameSecret)) {
		t.Error("the name secret: in the credential, never in its String")
	}
}

// TestWriterCredentialParse: a credential is read strictly.
func TestWriterCredentialParse(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	good := string(v.cred.Marshal())
	for name, bad := range map[string]string{
		"another type":     strings.Replace(good, `"coffer writer credential"`, `"coffer writer credentials"`, 1),
		"version 2":        strings.Replace(good, `"version":1`, `"version":2`, 1),
		"an unknown field": strings.Replace(good, `{"type"`, `{"local_secret":"AA","type"`, 1),
		"encryption none":  strings.Replace(good, `"encryption":"client"`, `"encryption":"none"`, 1),
		"a bad scope":      strings.Replace(good, `"scope":"/backups/host1"`, `"scope":"/backups/../x"`, 1),
		"a short auth":     strings.Replace(good, `"auth_secret":"`, `"auth_secret":"AAAA`, 1),
		"an upper-case ID": strings.Replace(good, v.cred.Writer().String(), strings.ToUpper(v.cred.Writer().String()), 1),
		"trailing data":    good + "{}",
	} {
		if _, err := ParseWriterCredential([]byte(bad)); !errors.Is(err, ErrNotCredential) {
			t.Errorf("%s: %v, want ErrNotCredential", name, err)
		}
	}
	if _, err := ParseWriterCredential([]byte(good)); err != nil {
		t.Fatal(err)
	}
}

// TestAdoptWriters: a running mount takes a later config's writers and
// revocations, and refuses an older config that would undo a revocation.
func TestAdoptWriters(t *testing.T) {
	v := newWriterVolume(t, "/b")
	s := v.session(t)
	obj := storeWriterObject(t, s, "/b/f", []byte("f"))
	running := v.kr // a mount's keyring
	_, before := openConfig(t, v.data, v.root)
	// Revoked, with no epoch kept, in a later config.
	c, later := openConfig(t, v.data, v.root)
	if err := later.RevokeWriter(v.cred.Writer(), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	revokedData, err := c.Marshal(later)
	if err != nil {
		t.Fatal(err)
	}
	_, later = openConfig(t, revokedData, v.root)
	epochs := newEpochStore(running, s)
	readerOpens(t, running, epochs.source, obj)
	if changed, err := running.AdoptWriters(later); err != nil || !changed {
		t.Fatalf("AdoptWriters: %v %v", changed, err)
	}
	if _, _, _, err := running.OpenAnyMetadata(obj.meta, obj.path, epochs.source); !errors.Is(err, ErrWriterRevoked) {
		t.Fatalf("after the refresh: %v, want ErrWriterRevoked", err)
	}
	if changed, err := running.AdoptWriters(later); err != nil || changed {
		t.Fatalf("AdoptWriters again: %v %v", changed, err)
	}
	if _, err := running.AdoptWriters(before); err == nil {
		t.Fatal("an older config undid a revocation")
	}
	// A writer exported since shows up.
	c, k2 := openConfig(t, revokedData, v.root)
	if _, err := c.ExportWriter(k2, "/c", ""); err != nil {
		t.Fatal(err)
	}
	if changed, err := running.AdoptWriters(k2); err != nil || !changed || len(running.Writers()) != 2 {
		t.Fatalf("a new writer: %v %v %d", changed, err, len(running.Writers()))
	}
}

// TestWriterMetadataBudget: a writer object that just fits the metadata
// budget still fits once rotate adds coffer-kek (the budget counts it on
// writer objects too), and one byte more is ErrMetadataTooBig.
func TestWriterMetadataBudget(t *testing.T) {
	v := newWriterVolume(t, "/")
	s := v.session(t)
	o, _ := s.NewObjectKey()
	seal := func(n int) (map[string]string, error) {
		x, err := Xattrs{}.With("user.pad", bytes.Repeat([]byte{'x'}, n))
		if err != nil {
			t.Fatal(err)
		}
		return s.SealMetadata(o, "/f", Attr{Mode: 0o100600, Xattrs: x})
	}
	n := 0
	for lo, hi := 0, MetadataBudget; lo <= hi; {
		mid := (lo + hi) / 2
		if _, err := seal(mid); err == nil {
			n, lo = mid, mid+1
		} else if errors.Is(err, ErrMetadataTooBig) {
			hi = mid - 1
		} else {
			t.Fatal(err)
		}
	}
	if _, err := seal(n + 1); !errors.Is(err, ErrMetadataTooBig) {
		t.Fatalf("one byte over the largest fit: %v", err)
	}
	meta, err := seal(n)
	if err != nil {
		t.Fatal(err)
	}
	for g := 0; g < 3; g++ {
		if err := v.kr.AddGeneration(); err != nil {
			t.Fatal(err)
		}
	}
	v.kr.keks[4_000_000_000] = randomKey() // the widest coffer-kek
	v.kr.current = 4_000_000_000
	rot, err := v.kr.RewrapAnyMetadata(meta, newEpochStore(v.kr, s).source)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for name, val := range rot {
		total += len(name) + len(val)
	}
	if total > MetadataBudget {
		t.Fatalf("the rotated writer object holds %d bytes of coffer metadata, over %d", total, MetadataBudget)
	}
}

// TestWriterKeyringStrict: the keyring's writer entries decode strictly
// (it is authenticated data, but a format bug must not yield a half-read
// writer).
func TestWriterKeyringStrict(t *testing.T) {
	v := newWriterVolume(t, "/b")
	var j keyringJSON
	if err := json.Unmarshal(v.kr.marshal(), &j); err != nil {
		t.Fatal(err)
	}
	good := j.Writers[0]
	for name, ws := range map[string][]writerJSON{
		"epochs on a writer not revoked": {func() writerJSON { w := good; w.Epochs = "AAAA"; return w }()},
		"a revocation time alone":        {func() writerJSON { w := good; w.RevokedAt = 5; return w }()},
		"listed twice":                   {good, good},
		"a relative scope":               {func() writerJSON { w := good; w.Scope = "b"; return w }()},
		"a short seed":                   {func() writerJSON { w := good; w.Private = "AAAA"; return w }()},
		"epochs not sorted": {func() writerJSON {
			w := good
			w.Revoked = true
			rec := append(append(bytes.Repeat([]byte{2}, 16), make([]byte, 32)...), append(bytes.Repeat([]byte{1}, 16), make([]byte, 32)...)...)
			w.Epochs = b64.EncodeToString(rec)
			return w
		}()},
	} {
		j2 := j
		j2.Writers = ws
		data, _ := json.Marshal(j2)
		if _, err := unmarshalKeyring(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	j.Writers = []writerJSON{good}
	data, _ := json.Marshal(j)
	if _, err := unmarshalKeyring(data); err != nil {
		t.Fatal(err)
	}
}
