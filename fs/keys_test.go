package fs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// cheapPassphrase is a passphrase root key with cheap Argon2id
// parameters (the format stores whatever an entry was made with).
func cheapPassphrase(t testing.TB, p string) *cipher.RootKey {
	t.Helper()
	r, err := cipher.NewPassphraseKey([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetArgon2(cipher.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	return r
}

// openAs opens the volume of tv's store with roots, as a fresh mount.
func openAs(t testing.TB, tv *testVol, roots ...*cipher.RootKey) (*Volume, error) {
	t.Helper()
	opts := tv.options
	opts.Store, opts.Roots, opts.CacheDir, opts.ConfigRefresh = tv.store.Store, roots, t.TempDir(), -1
	v, err := OpenVolume(context.Background(), opts)
	if err == nil {
		t.Cleanup(func() { v.Close(context.Background()) })
	}
	return v, err
}

// TestRootKeyLifecycle: key add, then key remove of the old key; the old
// key opens nothing written afterwards, the new one opens everything.
func TestRootKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	old := tv.root
	writeFile(t, tv.Volume, "/before", []byte("written under the old key alone"))
	flush(t, tv.Volume)

	newKey := testRoot(t, 8)
	opts := KeyOptions{Roots: []*cipher.RootKey{old}}
	id, err := AddRootKey(ctx, tv.store, opts, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := newKey.SymID(); id != want {
		t.Fatalf("key add returned ID %s, want the key's fingerprint %s", id, want)
	}
	if _, err := AddRootKey(ctx, tv.store, opts, newKey); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("adding the same key again: %v", err)
	}
	l, err := ListKeys(ctx, tv.store, ListOptions{KeyOptions: opts})
	if err != nil || len(l.Keys) != 2 || l.Keys[1].ID != id || l.Keys[1].Added.IsZero() {
		t.Fatalf("key list after add: %+v, %v", l.Keys, err)
	}

	oldID, _ := old.SymID()
	before := getConfig(t, tv.store)
	refusals := []struct {
		name string
		opts RemoveOptions
		id   string
		want error
	}{
		{"the key in use", RemoveOptions{KeyOptions: opts}, oldID, ErrKeyInUse},
		{"a key file given besides", RemoveOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{newKey, old}}}, oldID, ErrKeyInUse},
		{"no such key", RemoveOptions{KeyOptions: opts}, "0123456789abcdef", ErrNoSuchKey},
	}
	for _, r := range refusals {
		if err := RemoveRootKey(ctx, tv.store, r.opts, r.id); !errors.Is(err, r.want) {
			t.Fatalf("remove %s: %v, want %v", r.name, err, r.want)
		}
		if !bytes.Equal(getConfig(t, tv.store), before) {
			t.Fatalf("a refused removal (%s) changed the config", r.name)
		}
	}
	if err := RemoveRootKey(ctx, tv.store, RemoveOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{newKey}}}, oldID); err != nil {
		t.Fatal(err)
	}
	// The last key is refused even with --force.
	before = getConfig(t, tv.store)
	if err := RemoveRootKey(ctx, tv.store, RemoveOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{newKey}}, Force: true}, id); !errors.Is(err, ErrLastKey) {
		t.Fatalf("removing the last key: %v, want ErrLastKey", err)
	}
	if !bytes.Equal(getConfig(t, tv.store), before) {
		t.Fatal("a refused removal of the last key changed the config")
	}

	// Written afterwards, through the new key.
	nv, err := openAs(t, tv, newKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, nv, "/after", []byte("written after the old key was removed"))
	flush(t, nv)
	for _, p := range []string{"/before", "/after"} {
		if _, err := tryRead(nv, p); err != nil {
			t.Fatalf("the new key cannot read %s: %v", p, err)
		}
	}
	if _, err := openAs(t, tv, old); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("the removed key opens the volume: %v", err)
	}
}

// TestRemoveGivenKeyWithForce: --force removes the key that opened the
// volume when another remains.
func TestRemoveGivenKeyWithForce(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	other := testRoot(t, 9)
	opts := KeyOptions{Roots: []*cipher.RootKey{tv.root}}
	if _, err := AddRootKey(ctx, tv.store, opts, other); err != nil {
		t.Fatal(err)
	}
	// A passphrase has no fingerprint: the entry it opened is the one in use.
	pass := cheapPassphrase(t, "in use")
	passID, err := AddRootKey(ctx, tv.store, opts, pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := RemoveRootKey(ctx, tv.store, RemoveOptions{KeyOptions: KeyOptions{Roots: []*cipher.RootKey{pass}}}, passID); !errors.Is(err, ErrKeyInUse) {
		t.Fatalf("removing the passphrase given: %v, want ErrKeyInUse", err)
	}
	id, _ := tv.root.SymID()
	if err := RemoveRootKey(ctx, tv.store, RemoveOptions{KeyOptions: opts, Force: true}, id); err != nil {
		t.Fatal(err)
	}
	if _, err := openAs(t, tv, tv.root); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("the force-removed key still opens: %v", err)
	}
	if _, err := openAs(t, tv, other); err != nil {
		t.Fatal(err)
	}
}

func TestChangePassphraseCommand(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	oldPass, newPass := cheapPassphrase(t, "old passphrase"), cheapPassphrase(t, "new passphrase")
	id, err := AddRootKey(ctx, tv.store, KeyOptions{Roots: []*cipher.RootKey{tv.root}}, oldPass)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, tv.Volume, "/f", []byte("data"))
	flush(t, tv.Volume)
	before := getConfig(t, tv.store)
	for _, bad := range []struct {
		name     string
		old, new *cipher.RootKey
		want     error
	}{
		{"old is a key file", tv.root, newPass, ErrNotPassphrase},
		{"new is a key file", oldPass, testRoot(t, 3), ErrNotPassphrase},
		{"wrong old passphrase", cheapPassphrase(t, "wrong"), newPass, cipher.ErrNoKeyOpens},
	} {
		if _, err := ChangePassphrase(ctx, tv.store, KeyOptions{Roots: []*cipher.RootKey{bad.old}}, bad.new); !errors.Is(err, bad.want) {
			t.Fatalf("%s: %v, want %v", bad.name, err, bad.want)
		}
		if !bytes.Equal(getConfig(t, tv.store), before) {
			t.Fatalf("a refused passwd (%s) changed the config", bad.name)
		}
	}
	got, err := ChangePassphrase(ctx, tv.store, KeyOptions{Roots: []*cipher.RootKey{oldPass}}, newPass)
	if err != nil || got != id {
		t.Fatalf("passwd: id %s, %v; want the entry's ID %s kept", got, err, id)
	}
	if _, err := openAs(t, tv, oldPass); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("the old passphrase still opens: %v", err)
	}
	for _, r := range []*cipher.RootKey{newPass, tv.root} {
		v, err := openAs(t, tv, r)
		if err != nil {
			t.Fatalf("%s after passwd: %v", r, err)
		}
		if b := readFile(t, v, "/f"); string(b) != "data" {
			t.Fatalf("read %q", b)
		}
	}
}

// raceStore lets a test change the config between a command's read and
// its conditional write: before the conditional Puts of the config whose
// numbers (1-based) are in at (default: the first), it runs race.
type raceStore struct {
	blobstore.Store
	race func()
	at   []int
	n    int
}

func (s *raceStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts blobstore.PutOptions) (blobstore.ObjectInfo, error) {
	if key == ConfigKey && opts.IfMatch != "" {
		s.n++
		if slices.Contains(s.at, s.n) || s.at == nil && s.n == 1 {
			s.race()
		}
	}
	return s.Store.Put(ctx, key, body, size, opts)
}

// TestConcurrentConfigChange: a config changed between a key command's
// read and its write is not overwritten: 412, ErrConfigChanged, the
// other writer's config kept.
func TestConcurrentConfigChange(t *testing.T) {
	ctx := context.Background()
	other := testRoot(t, 10)
	otherID, _ := other.SymID()
	for name, run := range map[string]func(st blobstore.Store, opts KeyOptions) error{
		"key add": func(st blobstore.Store, opts KeyOptions) error {
			_, err := AddRootKey(ctx, st, opts, testRoot(t, 11))
			return err
		},
		"key remove": func(st blobstore.Store, opts KeyOptions) error {
			return RemoveRootKey(ctx, st, RemoveOptions{KeyOptions: opts}, otherID)
		},
		"passwd": func(st blobstore.Store, _ KeyOptions) error {
			_, err := ChangePassphrase(ctx, st, KeyOptions{Roots: []*cipher.RootKey{cheapPassphrase(t, "p")}}, cheapPassphrase(t, "q"))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			tv := newTestVolume(t, EncryptionClient)
			opts := KeyOptions{Roots: []*cipher.RootKey{tv.root}}
			for _, k := range []*cipher.RootKey{other, cheapPassphrase(t, "p")} {
				if _, err := AddRootKey(ctx, tv.store, opts, k); err != nil {
					t.Fatal(err)
				}
			}
			var theirs []byte
			rs := &raceStore{Store: tv.store, race: func() {
				if _, err := AddRootKey(ctx, tv.store, opts, testRoot(t, 12)); err != nil {
					t.Error(err)
				}
				theirs = getConfig(t, tv.store)
			}}
			err := run(rs, opts)
			if !errors.Is(err, ErrConfigChanged) || !errors.Is(err, blobstore.ErrPreconditionFailed) {
				t.Fatalf("%s racing another writer: %v, want ErrConfigChanged", name, err)
			}
			if theirs == nil || !bytes.Equal(getConfig(t, tv.store), theirs) {
				t.Fatalf("%s overwrote the other writer's config", name)
			}
		})
	}
}

// TestKeyCommandsRefuseWrongKeyAndNone: the commands open the config with
// a key it lists, and have nothing to do in none mode.
func TestKeyCommandsRefuseWrongKeyAndNone(t *testing.T) {
	ctx := context.Background()
	tv := newTestVolume(t, EncryptionClient)
	wrong := KeyOptions{Roots: []*cipher.RootKey{testRoot(t, 99)}}
	before := getConfig(t, tv.store)
	if _, err := AddRootKey(ctx, tv.store, wrong, testRoot(t, 5)); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("key add with a wrong key: %v", err)
	}
	if _, err := ListKeys(ctx, tv.store, ListOptions{KeyOptions: wrong}); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("key list with a wrong key: %v", err)
	}
	if _, err := RotateVolume(ctx, tv.store, RotateOptions{KeyOptions: wrong, MountGrace: -1}); !errors.Is(err, cipher.ErrNoKeyOpens) {
		t.Fatalf("rotate with a wrong key: %v", err)
	}
	sse := KeyOptions{Roots: []*cipher.RootKey{tv.root}, SSE: blobstore.SSEConfig{Mode: blobstore.SSES3}}
	if _, err := AddRootKey(ctx, tv.store, sse, testRoot(t, 5)); !errors.Is(err, ErrModeMismatch) {
		t.Fatalf("key add with another SSE mode: %v", err)
	}
	if !bytes.Equal(getConfig(t, tv.store), before) {
		t.Fatal("a refused command changed the config")
	}
	none := newTestVolume(t, EncryptionNone)
	if _, err := AddRootKey(ctx, none.store, KeyOptions{}, testRoot(t, 5)); err == nil || !strings.Contains(err.Error(), "no root keys") {
		t.Fatalf("key add in none mode: %v", err)
	}
	if _, err := RotateVolume(ctx, none.store, RotateOptions{MountGrace: -1}); err == nil || !strings.Contains(err.Error(), "no root keys") {
		t.Fatalf("rotate in none mode: %v", err)
	}
}
