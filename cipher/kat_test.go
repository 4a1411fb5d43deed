package cipher

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"
)

// Known-answer vectors: fixed keys, file IDs and (through
// cryptotest.SetGlobalRandom) fixed nonces in, exact bytes out. Any change
// of a format or a derivation fails TestKnownAnswers; regenerate with
//
//	go test ./cipher -run TestKnownAnswers -update
//
// only when the change is intended (and the format version bumped).

var update = flag.Bool("update", false, "rewrite cipher/testdata/vectors.json")

const vectorsFile = "testdata/vectors.json"

type katVectors struct {
	Note     string            `json:"note"`
	Keyring  string            `json:"keyring"`
	FileID   string            `json:"file_id"`
	DEK      string            `json:"dek"`
	SymKey   string            `json:"sym_key"`
	Derived  map[string]string `json:"derived"`
	Bodies   []katBody         `json:"bodies"`
	Metadata map[string]string `json:"metadata"`
	AttrPath string            `json:"attr_path"`
	Records  katRecords        `json:"records"`
	Long     katMeta           `json:"long_name"`
	Link     katMeta           `json:"link"`
	Inode    katMeta           `json:"inode"`
	Names    []katName         `json:"names"`
	Local    katLocal          `json:"local"`
	Configs  map[string]string `json:"configs"`
	KMS      katKMS            `json:"kms"`
	Writer   katWriter         `json:"writer"`
}

// katKMS is a config whose one entry is a kms root key: the root secret
// KMS would decrypt, and the (opaque, here made up) ciphertext stored.
type katKMS struct {
	Secret     string `json:"secret"`
	EntryID    string `json:"entry_id"`
	Ciphertext string `json:"ciphertext"`
	Config     string `json:"config"`
}

// katWriter is a writer key with fixed secrets in the vectors' keyring
// (keyring_with_writer: the writer revoked, its one epoch kept), its
// credential, one session's epoch object and an object it stored, and
// that object rewrapped by rotate (generation 2, v2 AAD).
type katWriter struct {
	Keyring    string            `json:"keyring_with_writer"`
	ID         string            `json:"id"`
	Seed       string            `json:"seed"`
	Auth       string            `json:"auth_secret"`
	Scope      string            `json:"scope"`
	PublicKey  string            `json:"public_key_sha256"`
	Credential string            `json:"credential"`
	Epoch      katEpoch          `json:"epoch"`
	Object     katMeta           `json:"object"`
	Body       string            `json:"body_hex"`
	Plain      string            `json:"plain"`
	Rotated    map[string]string `json:"rotated_metadata"`
	Derived    map[string]string `json:"derived"`
}

type katEpoch struct {
	Origin string `json:"origin"` // hex writer ID | epoch ID
	Key    string `json:"key"`    // E
	Object string `json:"object_hex"`
}

// katRecords are the plaintext attribute records (no randomness in them).
type katRecords struct {
	Attr  string `json:"attr"`
	Link  string `json:"link"`
	Inode string `json:"inode"`
}

// katMeta is one more object's metadata: a file at a long-named path, a
// link object at a path, or an inode object.
type katMeta struct {
	Path     string            `json:"path,omitempty"`
	FileID   string            `json:"file_id"`
	DEK      string            `json:"dek"`
	InodeID  string            `json:"inode_id,omitempty"`
	LinkID   string            `json:"link_id,omitempty"`
	Links    []string          `json:"links,omitempty"`
	Metadata map[string]string `json:"metadata"`
}

type katBody struct {
	PlainSize  int64  `json:"plain_size"`
	PlainSeed  uint64 `json:"plain_seed"`
	BodySHA256 string `json:"body_sha256"`
	BodyHex    string `json:"body_hex,omitempty"` // small bodies only
}

type katName struct {
	Parent string `json:"parent"`
	Name   string `json:"name"`
	Seg    string `json:"seg"`
	Long   string `json:"long,omitempty"`
}

type katLocal struct {
	Secret string `json:"secret"`
	Salt   string `json:"salt"`
	Index  uint64 `json:"index"`
	Plain  string `json:"plain"`
	Sealed string `json:"sealed"`
}

func fixedBytes(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// katKeyring is a keyring with fixed secrets (not random ones).
func katKeyring(t testing.TB) *Keyring {
	t.Helper()
	j, _ := json.Marshal(keyringJSON{
		VolumeID:     b64.EncodeToString(fixedBytes(16, 0x11)),
		NameSecret:   b64.EncodeToString(fixedBytes(32, 0x22)),
		LocalSecret:  b64.EncodeToString(fixedBytes(32, 0x33)),
		ConfigSecret: b64.EncodeToString(fixedBytes(32, 0x44)),
		AnchorSecret: b64.EncodeToString(fixedBytes(32, 0x4a)),
		Current:      2,
		KEKs: []kekJSON{
			{Gen: 1, Key: b64.EncodeToString(fixedBytes(32, 0x55))},
			{Gen: 2, Key: b64.EncodeToString(fixedBytes(32, 0x66))},
		},
	})
	kr, err := unmarshalKeyring(j)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

var katNames = []struct{ parent, name string }{
	{"/", "a"}, {"/", "hello.txt"}, {"/dir", "hello.txt"}, {"/dir/sub", strings.Repeat("x", 16)},
	{"/", strings.Repeat("long", 50)},
}

var (
	katLongPath = "/dir/" + strings.Repeat("long name ", 20)
	katLink     = Link{Inode: InodeID(fixedBytes(16, 0xb1)), ID: LinkID(fixedBytes(16, 0xb2))}
)

func katInode() Inode {
	return Inode{Attr: testAttr, Links: LinkSet{}.With(katLink.ID).With(LinkID(fixedBytes(16, 0xb0)))}
}

func (m *katMeta) fill(o *ObjectKey, meta map[string]string) {
	m.FileID, m.DEK, m.Metadata = o.fileID.String(), hex.EncodeToString(o.dek[:]), meta
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func generateVectors(t *testing.T) katVectors {
	cryptotest.SetGlobalRandom(t, 20261127)
	kr := katKeyring(t)
	fid := FileID(fixedBytes(16, 0x77))
	dek := fixedBytes(32, 0x88)
	o := newObjectKey(fid, dek, 2)
	sym := fixedBytes(32, 0x99)
	v := katVectors{
		Note:    "coffer format 1 (attributes v2) known answers; see kat_test.go",
		Keyring: b64.EncodeToString(kr.marshal()),
		FileID:  hex.EncodeToString(fid[:]),
		DEK:     hex.EncodeToString(dek),
		SymKey:  hex.EncodeToString(sym),
		Derived: map[string]string{
			"chunk_key":      hex.EncodeToString(deriveKey(dek, nil, infoChunk)),
			"attr_key":       hex.EncodeToString(deriveKey(dek, nil, infoAttr)),
			"dek_wrap_key_2": hex.EncodeToString(deriveKey(fixedBytes(32, 0x66), fid[:], infoDEKWrap)),
			"eme_key":        hex.EncodeToString(deriveKey(fixedBytes(32, 0x22), nil, infoNameEME)),
			"tweak_key":      hex.EncodeToString(deriveKey(fixedBytes(32, 0x22), nil, infoNameTweak)),
			"config_mac_key": hex.EncodeToString(kr.configMACKey()),
			"none_mac_key":   hex.EncodeToString(noneMACKey()),
			"local_from_key": hex.EncodeToString(LocalSecretFromKey(sym)),
			"sym_key_id":     symID(sym),
			"anchor":         hex.EncodeToString(kr.anchor()),
			"entry_auth_sym": hex.EncodeToString(deriveKey(sym, nil, infoEntryAuth)),
		},
		AttrPath: "/dir/file",
		Configs:  map[string]string{},
	}
	for _, size := range []int64{0, 1, 100, ChunkSize, ChunkSize + 1, 3 * ChunkSize} {
		body := encrypt(t, o, pseudoRandom(size, uint64(size)+1))
		sum := sha256.Sum256(body)
		kb := katBody{PlainSize: size, PlainSeed: uint64(size) + 1, BodySHA256: hex.EncodeToString(sum[:])}
		if len(body) <= 200 {
			kb.BodyHex = hex.EncodeToString(body)
		}
		v.Bodies = append(v.Bodies, kb)
	}
	meta, err := kr.SealMetadata(o, v.AttrPath, testAttr)
	if err != nil {
		t.Fatal(err)
	}
	v.Metadata = meta
	for _, n := range katNames {
		seg, long, err := kr.Names().EncryptSegment(n.parent, n.name)
		if err != nil {
			t.Fatal(err)
		}
		v.Names = append(v.Names, katName{Parent: n.parent, Name: n.name, Seg: seg, Long: long})
	}
	ls := mustSealer(t, kr.LocalSecret(), fixedBytes(LocalSaltSize, 0xaa))
	v.Local = katLocal{
		Secret: hex.EncodeToString(kr.LocalSecret()), Salt: hex.EncodeToString(fixedBytes(LocalSaltSize, 0xaa)),
		Index: 5, Plain: hex.EncodeToString([]byte("local block")),
		Sealed: hex.EncodeToString(ls.Seal(nil, []byte("local block"), 5)),
	}
	root, _ := NewSymKey(sym)
	katClock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	c, err := newConfigAt(katClock, EncryptionClient, SSEKMS, "arn:aws:kms:eu-west-1:111122223333:key/k", kr, root)
	if err != nil {
		t.Fatal(err)
	}
	pass := testPassphrase(t, "kat passphrase")
	if _, err := c.AddKey(kr, pass); err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	v.Configs["client"] = string(data)
	none, _ := NewConfig(EncryptionNone, SSEC, "", nil, nil)
	data, _ = none.Marshal(nil)
	v.Configs["none"] = string(data)
	// Drawn last, so the vectors above keep the nonces they always had.
	v.Records = katRecords{
		Attr:  hex.EncodeToString(testAttr.encode()),
		Link:  hex.EncodeToString(katLink.encode()),
		Inode: hex.EncodeToString(katInode().encode()),
	}
	longKey := newObjectKey(FileID(fixedBytes(16, 0x71)), fixedBytes(32, 0x81), 2)
	v.Long = katMeta{Path: katLongPath}
	v.Long.fill(longKey, must(kr.SealMetadata(longKey, katLongPath, Attr{Mode: 0o40755, MtimeNs: 1})))
	linkKey := newObjectKey(FileID(fixedBytes(16, 0x72)), fixedBytes(32, 0x82), 2)
	v.Link = katMeta{Path: "/dir/name", InodeID: katLink.Inode.String(), LinkID: katLink.ID.String()}
	v.Link.fill(linkKey, must(kr.SealLinkMetadata(linkKey, v.Link.Path, katLink)))
	inodeKey := newObjectKey(FileID(fixedBytes(16, 0x73)), fixedBytes(32, 0x83), 2)
	v.Inode = katMeta{InodeID: katLink.Inode.String()}
	for id := range katInode().Links.All() {
		v.Inode.Links = append(v.Inode.Links, id.String())
	}
	v.Inode.fill(inodeKey, must(kr.SealInodeMetadata(inodeKey, katLink.Inode, katInode())))
	v.KMS = katKMSVector(t, kr)
	v.Writer = katWriterVector(t)
	return v
}

// katKMSVector draws its randomness after every vector above.
func katKMSVector(t *testing.T, kr *Keyring) katKMS {
	secret, blob := fixedBytes(32, 0xc1), []byte("kat KMS ciphertext blob")
	root := &RootKey{kind: KindKMS, secret: secret, kms: &kmsRoot{entryID: "c1c1c1c1c1c1c1c1", volume: kr.VolumeID(),
		keyID: "alias/coffer-kat", keyARN: "arn:aws:kms:eu-west-1:111122223333:key/kat", blob: blob}}
	katClock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	c, err := newConfigAt(katClock, EncryptionClient, SSENone, "", kr, root)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	return katKMS{Secret: hex.EncodeToString(secret), EntryID: root.kms.entryID, Ciphertext: hex.EncodeToString(blob), Config: string(data)}
}

// katWriterKey is the vectors' writer key: fixed ID, seed, auth secret.
func katWriterKey(t testing.TB) *writerKey {
	w, err := newWriterKey(WriterID(fixedBytes(8, 0xd1)), fixedBytes(writerSeedSize, 0xd2))
	if err != nil {
		t.Fatal(err)
	}
	w.auth, w.scope, w.label = fixedBytes(32, 0xd3), "/backups/host1", "kat host"
	return w
}

const katWriterPath = "/backups/host1/etc/hosts"

func katWriterVector(t testing.TB) katWriter {
	kr := katKeyring(t)
	w := katWriterKey(t)
	kr.writers = map[WriterID]*writerKey{w.id: w}
	cred := &WriterCredential{Encryption: EncryptionClient, volumeID: kr.volumeID, writer: w.id, label: w.label, scope: w.scope,
		nameSecret: kr.nameSecret, public: w.priv.PublicKey().Bytes(), auth: w.auth}
	s, err := cred.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	_, epochData := s.EpochObject()
	o := newObjectKey(FileID(fixedBytes(16, 0xd4)), fixedBytes(32, 0xd5), 0)
	o.origin = s.origin
	plain := []byte("127.0.0.1 localhost\n")
	meta, err := s.SealMetadata(o, katWriterPath, testAttr)
	if err != nil {
		t.Fatal(err)
	}
	body := encrypt(t, o, plain)
	epochs := func(Origin) (*Epoch, error) { return kr.OpenEpoch(s.origin, epochData) }
	rotated, err := kr.RewrapAnyMetadata(meta, epochs)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := kr.OpenEpoch(s.origin, epochData)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.RevokeWriter(w.id, []*Epoch{ep}, time.Unix(1_800_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	pubSum := sha256.Sum256(cred.public)
	kw := katWriter{
		Keyring: b64.EncodeToString(kr.marshal()),
		ID:      w.id.String(), Seed: hex.EncodeToString(w.seed), Auth: hex.EncodeToString(w.auth), Scope: w.scope,
		PublicKey: hex.EncodeToString(pubSum[:]), Credential: string(cred.Marshal()),
		Epoch:  katEpoch{Origin: hex.EncodeToString(s.origin.bytes()), Key: hex.EncodeToString(s.key), Object: hex.EncodeToString(epochData)},
		Object: katMeta{Path: katWriterPath}, Body: hex.EncodeToString(body), Plain: hex.EncodeToString(plain), Rotated: rotated,
		Derived: map[string]string{
			"epoch_auth_key": hex.EncodeToString(deriveKey(w.auth, nil, infoEpochAuth)),
			"wdek_wrap_key":  hex.EncodeToString(deriveKey(s.key, o.fileID[:], infoWDEKWrap)),
		},
	}
	kw.Object.fill(o, meta)
	return kw
}

func TestKnownAnswers(t *testing.T) {
	got := generateVectors(t)
	gotJSON, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	gotJSON = append(gotJSON, '\n')
	path := filepath.FromSlash(vectorsFile)
	if *update {
		if err := os.WriteFile(path, gotJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
	wantJSON, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want katVectors
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatal(err)
	}
	// First the stored vectors must open: this part does not depend on how
	// Go's crypto consumes randomness, only on the format.
	checkVectorsOpen(t, want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("output differs from %s: a format or derivation changed (diff the file after -update)", path)
	}
}

func checkVectorsOpen(t *testing.T, v katVectors) {
	t.Helper()
	krJSON, _ := b64.DecodeString(v.Keyring)
	kr, err := unmarshalKeyring(krJSON)
	if err != nil {
		t.Fatal(err)
	}
	o, attr, err := kr.OpenMetadata(v.Metadata, v.AttrPath)
	if err != nil || attr != testAttr {
		t.Fatalf("stored metadata: %+v %v", attr, err)
	}
	if hex.EncodeToString(o.dek[:]) != v.DEK || o.FileID().String() != v.FileID {
		t.Fatal("stored metadata unwraps to another DEK or file ID")
	}
	if v.Records.Attr != hex.EncodeToString(testAttr.encode()) || v.Records.Link != hex.EncodeToString(katLink.encode()) ||
		v.Records.Inode != hex.EncodeToString(katInode().encode()) {
		t.Fatal("stored plaintext records differ from today's encoding")
	}
	checkKey := func(what string, o *ObjectKey, m katMeta) {
		t.Helper()
		if o.fileID.String() != m.FileID || hex.EncodeToString(o.dek[:]) != m.DEK {
			t.Fatalf("stored %s metadata unwraps to another DEK or file ID", what)
		}
	}
	o2, attr, err := kr.OpenMetadata(v.Long.Metadata, v.Long.Path)
	if err != nil || attr != (Attr{Mode: 0o40755, MtimeNs: 1}) || v.Long.Metadata[MetaName] == "" {
		t.Fatalf("stored long-named metadata: %+v %v", attr, err)
	}
	checkKey("long-named", o2, v.Long)
	if name, err := kr.Names().DecryptSegment("/dir", hashLong(v.Long.Metadata[MetaName]), v.Long.Metadata[MetaName]); err != nil || "/dir/"+name != v.Long.Path {
		t.Fatalf("stored coffer-name: %q %v", name, err)
	}
	o2, link, err := kr.OpenLink(v.Link.Metadata, v.Link.Path)
	if err != nil || link != katLink || link.Inode.String() != v.Link.InodeID || link.ID.String() != v.Link.LinkID {
		t.Fatalf("stored link metadata: %+v %v", link, err)
	}
	checkKey("link", o2, v.Link)
	o2, in, err := kr.FollowLink(v.Inode.Metadata, link)
	if err != nil || in != katInode() || in.Links.Len() != len(v.Inode.Links) {
		t.Fatalf("stored inode metadata: %+v %v", in, err)
	}
	checkKey("inode", o2, v.Inode)
	for _, b := range v.Bodies {
		if b.BodyHex == "" {
			continue
		}
		body, _ := hex.DecodeString(b.BodyHex)
		plain, err := io.ReadAll(o.NewDecrypter(bytes.NewReader(body), int64(len(body))))
		if err != nil || !bytes.Equal(plain, pseudoRandom(b.PlainSize, b.PlainSeed)) {
			t.Fatalf("stored body of %d bytes: %v", b.PlainSize, err)
		}
	}
	for _, n := range v.Names {
		name, err := kr.Names().DecryptSegment(n.Parent, n.Seg, n.Long)
		if err != nil || name != n.Name {
			t.Fatalf("stored name %q: %q %v", n.Name, name, err)
		}
	}
	secret, _ := hex.DecodeString(v.Local.Secret)
	salt, _ := hex.DecodeString(v.Local.Salt)
	sealed, _ := hex.DecodeString(v.Local.Sealed)
	plain, err := mustSealer(t, secret, salt).Open(nil, sealed, v.Local.Index)
	if err != nil || hex.EncodeToString(plain) != v.Local.Plain {
		t.Fatalf("stored local block: %v", err)
	}
	sym, _ := hex.DecodeString(v.SymKey)
	root, _ := NewSymKey(sym)
	for _, roots := range [][]*RootKey{{root}, {testPassphrase(t, "kat passphrase")}} {
		c, err := ParseConfig([]byte(v.Configs["client"]))
		if err != nil {
			t.Fatal(err)
		}
		ckr, err := c.Open(roots...)
		if err != nil || ckr.VolumeID() != kr.VolumeID() || c.SSE != SSEKMS {
			t.Fatalf("stored client config with %s: %v", roots[0], err)
		}
	}
	c, err := ParseConfig([]byte(v.Configs["none"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(); err != nil || c.Encryption != EncryptionNone {
		t.Fatalf("stored none config: %v", err)
	}
	checkKMSVector(t, v.KMS, kr)
	checkWriterVector(t, v.Writer)
}

func checkKMSVector(t *testing.T, v katKMS, kr *Keyring) {
	t.Helper()
	c, err := ParseConfig([]byte(v.Config))
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := hex.DecodeString(v.Ciphertext)
	secret, _ := hex.DecodeString(v.Secret)
	e := c.KMSEntries()
	if len(e) != 1 || e[0].ID != v.EntryID || !bytes.Equal(c.entries[0].kmsBlob, blob) {
		t.Fatalf("stored kms config lists %+v", e)
	}
	root := &RootKey{kind: KindKMS, secret: secret, kms: &kmsRoot{entryID: v.EntryID}}
	got, err := c.Open(root)
	if err != nil || !bytes.Equal(got.marshal(), kr.marshal()) {
		t.Fatalf("stored kms config: %v", err)
	}
}

func checkWriterVector(t *testing.T, v katWriter) {
	t.Helper()
	krJSON, _ := b64.DecodeString(v.Keyring)
	kr, err := unmarshalKeyring(krJSON)
	if err != nil {
		t.Fatal(err)
	}
	ws := kr.Writers()
	if len(ws) != 1 || ws[0].ID.String() != v.ID || !ws[0].Revoked || len(ws[0].KnownEpochs) != 1 {
		t.Fatalf("stored writer keyring: %+v", ws)
	}
	cred, err := ParseWriterCredential([]byte(v.Credential))
	if err != nil || cred.Writer().String() != v.ID || cred.Scope() != v.Scope {
		t.Fatalf("stored credential: %v", err)
	}
	if sum := sha256.Sum256(cred.public); hex.EncodeToString(sum[:]) != v.PublicKey {
		t.Fatal("stored credential: another public key")
	}
	originBytes, _ := hex.DecodeString(v.Epoch.Origin)
	var origin Origin
	copy(origin.Writer[:], originBytes)
	copy(origin.Epoch[:], originBytes[8:])
	data, _ := hex.DecodeString(v.Epoch.Object)
	ep, err := kr.OpenEpoch(origin, data)
	if err != nil || hex.EncodeToString(ep.key) != v.Epoch.Key {
		t.Fatalf("stored epoch object: %v", err)
	}
	epochs := func(Origin) (*Epoch, error) { return ep, nil }
	body, _ := hex.DecodeString(v.Body)
	plain, _ := hex.DecodeString(v.Plain)
	for _, meta := range []map[string]string{v.Object.Metadata, v.Rotated} {
		o, a, got, err := kr.OpenAnyMetadata(meta, v.Object.Path, epochs)
		if err != nil || a != testAttr || got != origin || o.FileID().String() != v.Object.FileID || hex.EncodeToString(o.dek[:]) != v.Object.DEK {
			t.Fatalf("stored writer object: %v", err)
		}
		if p, err := io.ReadAll(o.NewDecrypter(bytes.NewReader(body), int64(len(body)))); err != nil || !bytes.Equal(p, plain) {
			t.Fatalf("stored writer body: %v", err)
		}
	}
}
