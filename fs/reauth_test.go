package fs

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// preAuth is cipher/testdata/preauth.json: configs written by coffer
// before entry authentication.
type preAuth struct {
	Config     string `json:"config"`
	ConfigSym  string `json:"config_sym"`
	SymKey     string `json:"sym_key"`
	Passphrase string `json:"passphrase"`
}

func loadPreAuth(t *testing.T) (preAuth, *cipher.RootKey) {
	t.Helper()
	raw, err := os.ReadFile("../cipher/testdata/preauth.json")
	if err != nil {
		t.Fatal(err)
	}
	var v preAuth
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	k, _ := hex.DecodeString(v.SymKey)
	root, err := cipher.NewSymKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return v, root
}

func getConfig(t *testing.T, st blobstore.Store) []byte {
	t.Helper()
	rc, _, err := st.Get(context.Background(), ConfigKey, blobstore.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putConfig(t *testing.T, st blobstore.Store, data []byte) {
	t.Helper()
	if _, err := st.Put(context.Background(), ConfigKey, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func openWith(st blobstore.Store, dir string, roots ...*cipher.RootKey) (*Volume, error) {
	return OpenVolume(context.Background(), Options{Store: st, Roots: roots, CacheDir: dir})
}

// putPreAuthObject stores a file /old in st the way a coffer from before
// entry authentication did, under the keyring of the pre-auth config.
func putPreAuthObject(t *testing.T, st blobstore.Store, config string, root *cipher.RootKey, content []byte) {
	t.Helper()
	c, err := cipher.ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := c.OpenPreAuth(root)
	if err != nil {
		t.Fatal(err)
	}
	lay := &clientLayout{kr: kr, names: kr.Names()}
	seg, _, err := lay.segment("/", "old")
	if err != nil {
		t.Fatal(err)
	}
	ok, _ := kr.NewObjectKey()
	meta, err := lay.sealMeta("/old", ok, cipher.Attr{Mode: 0o100644}, "")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	w := lay.encrypter(ok, &body)
	w.Write(content)
	w.Close()
	if _, err := st.Put(context.Background(), seg, &body, int64(body.Len()), blobstore.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

func TestReauthUpgradesPreAuthVolume(t *testing.T) {
	v, root := loadPreAuth(t)
	dir := t.TempDir()
	st, _ := testStore(t, dir)
	putConfig(t, st, []byte(v.ConfigSym))
	putPreAuthObject(t, st, v.ConfigSym, root, []byte("written before entry authentication"))
	ctx := context.Background()

	if _, err := openWith(st, t.TempDir(), root); !errors.Is(err, cipher.ErrConfigPreAuth) {
		t.Fatalf("mounting a pre-auth volume: %v, want ErrConfigPreAuth", err)
	}
	res, err := ReauthVolume(ctx, st, ReauthOptions{Roots: []*cipher.RootKey{root}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Upgraded || res.Checked != 1 || len(res.Keys) != 1 {
		t.Fatalf("result %+v", res)
	}
	vol, err := openWith(st, t.TempDir(), root)
	if err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	defer vol.Close(ctx)
	if got := readFile(t, vol, "/old"); string(got) != "written before entry authentication" {
		t.Fatalf("read %q", got)
	}
	// And again, now as an authenticated config.
	if res, err := ReauthVolume(ctx, st, ReauthOptions{Roots: []*cipher.RootKey{root}}); err != nil || res.Upgraded {
		t.Fatalf("second reauth: %+v, %v", res, err)
	}
}

// TestReauthRefusesForeignKeyring: a pre-auth config whose keyring did
// not write the volume's objects (what a forger who made its config look
// pre-auth must plant) is not upgraded, and nothing is written.
func TestReauthRefusesForeignKeyring(t *testing.T) {
	v, root := loadPreAuth(t)
	tv := newTestVolume(t, EncryptionClient)
	writeFile(t, tv.Volume, "/a", []byte("the volume's own file"))
	flush(t, tv.Volume)
	putConfig(t, tv.store, []byte(v.ConfigSym))
	_, err := ReauthVolume(context.Background(), tv.store, ReauthOptions{Roots: []*cipher.RootKey{root}, AllowEmpty: true})
	if !errors.Is(err, ErrKeyringNotTheVolumes) {
		t.Fatalf("reauth: %v, want ErrKeyringNotTheVolumes", err)
	}
	if got := getConfig(t, tv.store); string(got) != v.ConfigSym {
		t.Fatal("a refused upgrade wrote the config")
	}
}

func TestReauthEmptyPreAuthVolume(t *testing.T) {
	v, root := loadPreAuth(t)
	st, _ := testStore(t, t.TempDir())
	putConfig(t, st, []byte(v.ConfigSym))
	ctx := context.Background()
	if _, err := ReauthVolume(ctx, st, ReauthOptions{Roots: []*cipher.RootKey{root}}); !errors.Is(err, ErrNothingToCheck) {
		t.Fatalf("reauth of an empty pre-auth volume: %v, want ErrNothingToCheck", err)
	}
	if got := getConfig(t, st); string(got) != v.ConfigSym {
		t.Fatal("a refused upgrade wrote the config")
	}
	if res, err := ReauthVolume(ctx, st, ReauthOptions{Roots: []*cipher.RootKey{root}, AllowEmpty: true}); err != nil || !res.Upgraded || res.Checked != 0 {
		t.Fatalf("with AllowEmpty: %+v, %v", res, err)
	}
	vol, err := openWith(st, t.TempDir(), root)
	if err != nil {
		t.Fatal(err)
	}
	vol.Close(ctx)
}

func TestReauthNeedsEveryKey(t *testing.T) {
	v, root := loadPreAuth(t)
	st, _ := testStore(t, t.TempDir())
	putConfig(t, st, []byte(v.Config))
	_, err := ReauthVolume(context.Background(), st, ReauthOptions{Roots: []*cipher.RootKey{root}, AllowEmpty: true})
	if !errors.Is(err, cipher.ErrMissingRootKeys) {
		t.Fatalf("reauth with one of two keys: %v", err)
	}
	if got := getConfig(t, st); string(got) != v.Config {
		t.Fatal("a refused reauth wrote the config")
	}
	pass, err := cipher.NewPassphraseKey([]byte(v.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReauthVolume(context.Background(), st, ReauthOptions{Roots: []*cipher.RootKey{pass, root}, AllowEmpty: true}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*cipher.RootKey{root, pass} {
		vol, err := openWith(st, t.TempDir(), r)
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		vol.Close(context.Background())
	}
}

// racingStore changes the config just before ReauthVolume writes it.
type racingStore struct {
	blobstore.Store
	other []byte
}

func (s *racingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	if key == ConfigKey && s.other != nil {
		other := s.other
		s.other = nil
		if _, err := s.Store.Put(ctx, key, bytes.NewReader(other), int64(len(other)), blobstore.PutOptions{}); err != nil {
			return blobstore.ObjectInfo{}, err
		}
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

func TestReauthConditionalWrite(t *testing.T) {
	tv := newTestVolume(t, EncryptionClient)
	before := getConfig(t, tv.store)
	other := append(bytes.Clone(before), ' ') // any other version
	st := &racingStore{Store: tv.store, other: other}
	_, err := ReauthVolume(context.Background(), st, ReauthOptions{Roots: []*cipher.RootKey{tv.root}})
	if !errors.Is(err, blobstore.ErrPreconditionFailed) {
		t.Fatalf("reauth over a config changed meanwhile: %v", err)
	}
	if got := getConfig(t, tv.store); !bytes.Equal(got, other) {
		t.Fatal("reauth overwrote a config it had not read")
	}
	// Unraced, it re-authenticates, and the volume still opens.
	putConfig(t, tv.store, before)
	if _, err := ReauthVolume(context.Background(), tv.store, ReauthOptions{Roots: []*cipher.RootKey{tv.root}}); err != nil {
		t.Fatal(err)
	}
	if got := getConfig(t, tv.store); bytes.Equal(got, before) {
		t.Fatal("reauth wrote nothing")
	}
	vol, err := openWith(tv.store, filepath.Join(tv.dir, "cache2"), tv.root)
	if err != nil {
		t.Fatal(err)
	}
	vol.Close(context.Background())
}
