package cipher

import (
	"bytes"
	"context"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// fakeKMS stands in for AWS KMS as cipher sees it: named keys (ID, ARN,
// alias) that AES-GCM-seal under the encryption context, and refuse a
// ciphertext made under another key or context, as KMS does. It counts
// Decrypt calls by the entry ID of the context. The integration tests run
// the real API (local-kms); this checks cipher's side alone.
type fakeKMS struct {
	keys     map[string]*fakeKMSKey // by ID, ARN and alias
	decrypts map[string]int         // by coffer-entry
	keyIDs   []string               // the KeyId of every Decrypt call
	encrypts int
	failWith error // returned by every Decrypt when set
}

type fakeKMSKey struct {
	arn      string
	aead     gocipher.AEAD
	disabled bool
}

var errFakeDisabled = errors.New("fake KMS: key is disabled")

func newFakeKMS() *fakeKMS {
	return &fakeKMS{keys: map[string]*fakeKMSKey{}, decrypts: map[string]int{}}
}

// addKey makes key id, reachable as id, its ARN and alias/NAME.
func (f *fakeKMS) addKey(id, alias string) *fakeKMSKey {
	block, _ := aes.NewCipher(randomKey())
	aead, _ := gocipher.NewGCMWithRandomNonce(block)
	k := &fakeKMSKey{arn: "arn:aws:kms:eu-west-1:111122223333:key/" + id, aead: aead}
	f.keys[id], f.keys[k.arn] = k, k
	if alias != "" {
		f.keys["alias/"+alias] = k
	}
	return k
}

func contextAAD(c map[string]string) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(c)) {
		b = fmt.Appendf(b, "%q=%q;", k, c[k])
	}
	return b
}

func (f *fakeKMS) Encrypt(_ context.Context, keyID string, plain []byte, c map[string]string) ([]byte, string, error) {
	k := f.keys[keyID]
	if k == nil {
		return nil, "", fmt.Errorf("fake KMS: no key %s", keyID)
	}
	f.encrypts++
	return k.aead.Seal([]byte(k.arn+"|"), nil, plain, contextAAD(c)), k.arn, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, keyID string, blob []byte, c map[string]string) ([]byte, error) {
	f.decrypts[c[KMSContextEntry]]++
	f.keyIDs = append(f.keyIDs, keyID)
	if f.failWith != nil {
		return nil, f.failWith
	}
	k := f.keys[keyID]
	if k == nil {
		return nil, fmt.Errorf("fake KMS: no key %s", keyID)
	}
	if k.disabled {
		return nil, errFakeDisabled
	}
	arn, sealed, ok := bytes.Cut(blob, []byte("|"))
	if !ok || string(arn) != k.arn {
		return nil, fmt.Errorf("%w: made under another key", ErrKMSCiphertext)
	}
	plain, err := k.aead.Open(nil, nil, sealed, contextAAD(c))
	if err != nil {
		return nil, fmt.Errorf("%w: context or ciphertext differ", ErrKMSCiphertext)
	}
	return plain, nil
}

func (f *fakeKMS) totalDecrypts() int {
	n := 0
	for _, c := range f.decrypts {
		n += c
	}
	return n
}

// kmsVolume makes a volume whose only entry is a kms root under key1
// (named as "key1"), with kms entries under key2 and key3 added after.
func kmsVolume(t *testing.T, f *fakeKMS, extra ...string) (data []byte, kr *Keyring, ids []string) {
	t.Helper()
	ctx := context.Background()
	kr = testKeyring(t)
	root, err := NewKMSRootKey(ctx, f, kr.VolumeID(), "key1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConfig(EncryptionClient, SSENone, "", kr, root)
	if err != nil {
		t.Fatal(err)
	}
	ids = []string{c.Keys()[0].ID}
	for _, name := range extra {
		r, err := NewKMSRootKey(ctx, f, c.VolumeID(), name)
		if err != nil {
			t.Fatal(err)
		}
		id, err := c.AddKey(kr, r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if data, err = c.Marshal(kr); err != nil {
		t.Fatal(err)
	}
	return data, kr, ids
}

func newTestFakeKMS() *fakeKMS {
	f := newFakeKMS()
	f.addKey("key1", "one")
	f.addKey("key2", "two")
	f.addKey("key3", "")
	return f
}

// TestKMSRootKeyOpens: a kms entry opens the volume through one Decrypt
// call with the key named as at add time (ID, or its ARN), and the
// config's other kms entries get no call.
func TestKMSRootKeyOpens(t *testing.T) {
	f := newTestFakeKMS()
	data, kr, ids := kmsVolume(t, f, "key2", "arn:aws:kms:eu-west-1:111122223333:key/key3")
	for _, tc := range []struct {
		named string
		entry int
	}{
		{"key1", 0},
		{"arn:aws:kms:eu-west-1:111122223333:key/key1", 0}, // the ARN of a key named by ID
		{"key2", 1},
		{"key3", 2}, // the bare ID of a key named by ARN
	} {
		t.Run(tc.named, func(t *testing.T) {
			clear(f.decrypts)
			c, err := ParseConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			root, err := c.KMSRootKey(context.Background(), f, tc.named)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]int{ids[tc.entry]: 1}; !maps.Equal(f.decrypts, want) {
				t.Fatalf("Decrypt calls by entry %v, want %v", f.decrypts, want)
			}
			got, err := c.Open(root)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.marshal(), kr.marshal()) {
				t.Fatal("opened another keyring")
			}
			if root.Kind() != KindKMS || strings.Contains(fmt.Sprint(root), string(root.secret)) {
				t.Fatalf("root key %v", root)
			}
		})
	}
}

// TestKMSRootKeyFallback: a key named otherwise than at add time (here an
// alias) matches no stored name, so the entries are tried in order and the
// first that decrypts ends the search.
func TestKMSRootKeyFallback(t *testing.T) {
	f := newTestFakeKMS()
	data, _, ids := kmsVolume(t, f, "key2", "key3")
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	root, err := c.KMSRootKey(context.Background(), f, "alias/two")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{ids[0]: 1, ids[1]: 1}; !maps.Equal(f.decrypts, want) {
		t.Fatalf("Decrypt calls by entry %v, want %v (key3's entry untried)", f.decrypts, want)
	}
	if _, err := c.Open(root); err != nil {
		t.Fatal(err)
	}
	// A key that is none of the volume's: every entry tried, none opens.
	f.addKey("key4", "four")
	clear(f.decrypts)
	if _, err := c.KMSRootKey(context.Background(), f, "key4"); !errors.Is(err, ErrNoKeyOpens) || f.totalDecrypts() != 3 {
		t.Fatalf("key4: %v after %d calls, want ErrNoKeyOpens after 3", err, f.totalDecrypts())
	}
}

// TestKMSDecryptKeyIsTheUsers: the stored key names only choose the entry;
// Decrypt gets the key the user named even when the config names another
// (a forger's key, whose ciphertext would otherwise decrypt).
func TestKMSDecryptKeyIsTheUsers(t *testing.T) {
	f := newTestFakeKMS()
	data, _, _ := kmsVolume(t, f)
	forgerKey := f.addKey("forger", "")
	blob, _, _ := f.Encrypt(context.Background(), "forger", randomKey(), nil)
	planted := editEntries(t, data, func(es []map[string]any) {
		es[0]["kms"] = map[string]any{"key_id": "key1", "key_arn": forgerKey.arn, "ciphertext": b64.EncodeToString(blob)}
	})
	c, err := ParseConfig(planted)
	if err != nil {
		t.Fatal(err)
	}
	f.keyIDs = nil
	if _, err := c.KMSRootKey(context.Background(), f, "key1"); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("a ciphertext of the forger's key: %v, want ErrConfigTampered", err)
	}
	if !slices.Equal(f.keyIDs, []string{"key1"}) {
		t.Fatalf("Decrypt KeyIds %q, want only the named key1", f.keyIDs)
	}
}

// TestKMSRootKeyErrors: denied, disabled and unreachable are the key's
// or the network's, returned as they are after that one call; a volume
// without kms entries makes no call.
func TestKMSRootKeyErrors(t *testing.T) {
	f := newTestFakeKMS()
	data, _, _ := kmsVolume(t, f, "key2")
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	f.keys["key1"].disabled = true
	if _, err := c.KMSRootKey(context.Background(), f, "key1"); !errors.Is(err, errFakeDisabled) || f.totalDecrypts() != 1 {
		t.Fatalf("disabled key: %v after %d calls", err, f.totalDecrypts())
	}
	// Its second key still opens the volume.
	root, err := c.KMSRootKey(context.Background(), f, "key2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(root); err != nil {
		t.Fatal(err)
	}
	unreachable := errors.New("dial tcp 127.0.0.1:9: connection refused")
	f.failWith = unreachable
	clear(f.decrypts)
	if _, err := c.KMSRootKey(context.Background(), f, "alias/nothing"); !errors.Is(err, unreachable) || f.totalDecrypts() != 1 {
		t.Fatalf("unreachable: %v after %d calls, want the error after 1", err, f.totalDecrypts())
	}
	f.failWith = nil

	_, _, sym := newVolume(t, testSymKey(t, 3))
	c, err = ParseConfig(sym)
	if err != nil {
		t.Fatal(err)
	}
	clear(f.decrypts)
	if _, err := c.KMSRootKey(context.Background(), f, "key1"); !errors.Is(err, ErrNoKMSEntry) || f.totalDecrypts() != 0 {
		t.Fatalf("sym volume: %v after %d calls", err, f.totalDecrypts())
	}
}

// editEntries rewrites the key entries of a config's body (the MAC no
// longer matches: KMSRootKey runs before Open checks it).
func editEntries(t *testing.T, data []byte, edit func(entries []map[string]any)) []byte {
	t.Helper()
	return editEntryList(t, data, func(es []map[string]any) []map[string]any { edit(es); return es })
}

// editEntryList is editEntries whose edit may drop or add entries.
func editEntryList(t *testing.T, data []byte, edit func(entries []map[string]any) []map[string]any) []byte {
	t.Helper()
	var outer configOuter
	if err := json.Unmarshal(data, &outer); err != nil {
		t.Fatal(err)
	}
	raw, _ := b64.DecodeString(outer.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	var entries []map[string]any
	for _, e := range body["keys"].([]any) {
		entries = append(entries, e.(map[string]any))
	}
	body["keys"] = edit(entries)
	raw, _ = json.Marshal(body)
	out, _ := json.Marshal(configOuter{Format: outer.Format, Body: b64.EncodeToString(raw), MAC: outer.MAC})
	return out
}

// TestKMSCiphertextMoved: the root secret's ciphertext copied into another
// entry of the volume, or into another volume's config (under that
// volume's entry ID, or keeping its own entry), does not decrypt: the
// encryption context names volume and entry.
func TestKMSCiphertextMoved(t *testing.T) {
	f := newTestFakeKMS()
	data, _, ids := kmsVolume(t, f, "key2")
	other, _, _ := kmsVolume(t, f)
	kmsField := func(data []byte, id string) map[string]any {
		var field map[string]any
		editEntries(t, data, func(es []map[string]any) {
			for _, e := range es {
				if e["id"] == id {
					field = e["kms"].(map[string]any)
				}
			}
		})
		return field
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		named string
	}{
		// Entry 1 takes entry 0's kms field whole, entry 0 is dropped.
		{"into another entry", editEntryList(t, data, func(es []map[string]any) []map[string]any {
			es[1]["kms"] = es[0]["kms"]
			return es[1:]
		}), "key1"},
		{"into another volume's entry", editEntries(t, other, func(es []map[string]any) {
			es[0]["kms"] = kmsField(data, ids[0])
		}), "key1"},
		{"with its entry into another volume", editEntries(t, other, func(es []map[string]any) {
			es[0]["id"], es[0]["kms"] = ids[0], kmsField(data, ids[0])
		}), "key1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			root, err := c.KMSRootKey(context.Background(), f, tc.named)
			if err == nil {
				_, err = c.Open(root)
				t.Fatalf("the moved ciphertext decrypted (Open: %v)", err)
			}
			if !errors.Is(err, ErrConfigTampered) {
				t.Fatalf("%v, want ErrConfigTampered", err)
			}
		})
	}
}

// TestKMSEntryForged: the entry authentication covers kms entries. A
// forger who keeps every entry (the KMS ciphertext included) but plants
// its own keyring gets a config the real KMS root key does not open.
func TestKMSEntryForged(t *testing.T) {
	f := newTestFakeKMS()
	data, _, _ := kmsVolume(t, f, "key2")
	for _, fg := range []forgery{{name: "fresh"}, {name: "auth kept", keepAuth: true}, {name: "anchor", keepAuth: true, anchorSecret: forgeRandom(t)}} {
		t.Run(fg.name, func(t *testing.T) {
			forged, _ := forgeConfig(t, data, fg)
			c, err := ParseConfig(forged)
			if err != nil {
				t.Fatal(err)
			}
			root, err := c.KMSRootKey(context.Background(), f, "key2")
			if err != nil {
				t.Fatalf("KMSRootKey: %v", err) // the ciphertext is the real one
			}
			if _, err := c.Open(root); !errors.Is(err, ErrConfigTampered) {
				t.Fatalf("forged config: %v, want ErrConfigTampered", err)
			}
		})
	}
	// Control: the same forgery opens the way configs opened before entry
	// authentication.
	forged, _ := forgeConfig(t, data, forgery{})
	c, _ := ParseConfig(forged)
	root, _ := c.KMSRootKey(context.Background(), f, "key1")
	if _, err := c.OpenPreAuth(root); err != nil {
		t.Fatalf("the forgery is incomplete: %v", err)
	}
}

// TestKMSEntryLifecycle: removing a kms entry, and rewrapping after a
// removal, need no KMS call; the remaining kms key still opens, and
// Reauth takes kms root keys like any other.
func TestKMSEntryLifecycle(t *testing.T) {
	f := newTestFakeKMS()
	data, _, ids := kmsVolume(t, f, "key2")
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	root1, err := c.KMSRootKey(context.Background(), f, "key1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := c.Open(root1)
	if err != nil {
		t.Fatal(err)
	}
	calls, encs := f.totalDecrypts(), f.encrypts
	if err := c.RemoveKey(ids[0]); err != nil {
		t.Fatal(err)
	}
	removed, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	if f.totalDecrypts() != calls || f.encrypts != encs {
		t.Fatal("removing a key called KMS")
	}
	c, err = ParseConfig(removed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(root1); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("the removed kms key: %v, want ErrNoKeyOpens", err)
	}
	root2, err := c.KMSRootKey(context.Background(), f, "key2")
	if err != nil {
		t.Fatal(err)
	}
	if kr, err = c.Open(root2); err != nil {
		t.Fatal(err)
	}
	if err := c.Reauth(kr, root2); err != nil {
		t.Fatal(err)
	}
	reauthed, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	openConfig(t, reauthed, root2)
	// A kms root key opened from a config cannot add an entry, and one
	// made for another volume is refused.
	if _, err := c.AddKey(kr, root2); err == nil {
		t.Fatal("AddKey took a kms root key opened from a config")
	}
	stray, err := NewKMSRootKey(context.Background(), f, VolumeID{1}, "key3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddKey(kr, stray); err == nil || !strings.Contains(err.Error(), "made for volume") {
		t.Fatalf("a kms root key of another volume: %v", err)
	}
	same, _ := NewKMSRootKey(context.Background(), f, c.VolumeID(), "key2")
	if _, err := c.AddKey(kr, same); err == nil || !strings.Contains(err.Error(), "already opens") {
		t.Fatalf("a second entry for the same KMS key: %v", err)
	}
}

// TestKMSEntryParse: the kms field belongs to kms entries, and is checked.
func TestKMSEntryParse(t *testing.T) {
	f := newTestFakeKMS()
	data, _, _ := kmsVolume(t, f)
	_, _, sym := newVolume(t, testSymKey(t, 4))
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"kms entry without kms field", editEntries(t, data, func(es []map[string]any) { delete(es[0], "kms") })},
		{"sym entry with a kms field", editEntries(t, sym, func(es []map[string]any) {
			es[0]["kms"] = map[string]any{"key_id": "k", "key_arn": "k", "ciphertext": "AA"}
		})},
		{"empty ciphertext", editEntries(t, data, func(es []map[string]any) { es[0]["kms"].(map[string]any)["ciphertext"] = "" })},
		{"oversized ciphertext", editEntries(t, data, func(es []map[string]any) {
			es[0]["kms"].(map[string]any)["ciphertext"] = b64.EncodeToString(make([]byte, kmsBlobMax+1))
		})},
		{"key ARN with a newline", editEntries(t, data, func(es []map[string]any) { es[0]["kms"].(map[string]any)["key_arn"] = "a\nb" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseConfig(tc.data); !errors.Is(err, ErrNotConfig) {
				t.Fatalf("%v, want ErrNotConfig", err)
			}
		})
	}
}

func TestKMSEncryptionContext(t *testing.T) {
	var v VolumeID
	rand.Read(v[:])
	got := KMSEncryptionContext(v, "0123456789abcdef")
	want := map[string]string{"coffer-volume": v.String(), "coffer-entry": "0123456789abcdef", "coffer-purpose": "root v1"}
	if !maps.Equal(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}
