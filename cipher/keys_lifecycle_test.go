package cipher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// marshalled writes c and parses it back, as a later reader of the
// config object would see it.
func marshalled(t *testing.T, c *Config, kr *Keyring) *Config {
	t.Helper()
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyAddedTimes(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	kr := testKeyring(t)
	c, err := newConfigAt(func() time.Time { return at }, EncryptionClient, SSENone, "", kr, testSymKey(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return at.Add(time.Hour) }
	if _, err := c.AddKey(kr, testPassphrase(t, "p")); err != nil {
		t.Fatal(err)
	}
	p := marshalled(t, c, kr)
	if _, err := p.Open(testSymKey(t, 1)); err != nil {
		t.Fatal(err)
	}
	keys := p.Keys()
	if len(keys) != 2 || !keys[0].Added.Equal(at) || !keys[1].Added.Equal(at.Add(time.Hour)) {
		t.Fatalf("keys %+v, want added %v and %v", keys, at, at.Add(time.Hour))
	}

	// The added time is in the body the config MAC covers: changed, the
	// config does not open.
	forged := strings.Replace(string(p.body), fmt.Sprintf(`"added":%d`, at.Unix()), fmt.Sprintf(`"added":%d`, at.Unix()-86400), 1)
	if forged == string(p.body) {
		t.Fatal("no added field in the body")
	}
	fp, err := ParseConfig(marshalOuter([]byte(forged), p.mac))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fp.Open(testSymKey(t, 1)); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("a config with a changed added time: %v, want ErrConfigTampered", err)
	}

	// An entry without the field (written before it existed) lists no
	// time; a negative one is not a config coffer wrote.
	var body configBody
	json.Unmarshal(p.body, &body)
	for _, tc := range []struct {
		name, from, to string
		ok             bool
	}{
		{"absent", `"added":`, `"x":`, true},
		{"negative", `"added":`, `"added":-`, false},
	} {
		raw := strings.Replace(string(body.Keys[0]), tc.from, tc.to, 1)
		if tc.name == "absent" {
			var m map[string]any
			json.Unmarshal([]byte(raw), &m)
			delete(m, "x")
			b, _ := json.Marshal(m)
			raw = string(b)
		}
		if _, err := parseEntry(json.RawMessage(raw)); (err == nil) != tc.ok {
			t.Fatalf("%s added: parse error %v", tc.name, err)
		}
		if tc.ok {
			e, _ := parseEntry(json.RawMessage(raw))
			if e.Added != 0 {
				t.Fatalf("absent added parsed as %d", e.Added)
			}
		}
	}
}

func TestGenerationAdded(t *testing.T) {
	kr := testKeyring(t)
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	kr.now = func() time.Time { return at }
	if err := kr.AddGeneration(); err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalKeyring(kr.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := back.GenerationAdded(2); !ok || !got.Equal(at) {
		t.Fatalf("generation 2 added %v %v, want %v", got, ok, at)
	}
	if _, ok := back.GenerationAdded(1); !ok {
		t.Fatal("NewKeyring did not record when generation 1 was added")
	}
	if err := back.RetireGeneration(1); err != nil {
		t.Fatal(err)
	}
	if _, ok := back.GenerationAdded(1); ok {
		t.Fatal("a retired generation still has an added time")
	}
	// A keyring listing a generation twice is not one coffer wrote.
	j := strings.Replace(string(kr.marshal()), `"keks":[{`, `"keks":[{"gen":2,"key":"`+b64.EncodeToString(randomKey())+`"},{`, 1)
	if _, err := unmarshalKeyring([]byte(j)); err == nil {
		t.Fatal("a keyring with generation 2 twice was accepted")
	}
}

func TestChangePassphrase(t *testing.T) {
	sym, oldPass, newPass := testSymKey(t, 1), testPassphrase(t, "old"), testPassphrase(t, "new")
	c, kr, _ := newVolume(t, sym)
	id, err := c.AddKey(kr, oldPass)
	if err != nil {
		t.Fatal(err)
	}
	before := marshalled(t, c, kr)
	symID := c.Keys()[0].ID

	c, kr = openConfig(t, mustMarshal(t, before), oldPass)
	if c.OpenedBy() != id {
		t.Fatalf("OpenedBy %q, want the passphrase entry %q", c.OpenedBy(), id)
	}
	for _, bad := range []struct {
		id   string
		root *RootKey
		want string
	}{
		{symID, newPass, "not a passphrase"},
		{id, testSymKey(t, 9), "not a passphrase"},
		{"0000000000000000", newPass, "no key"},
	} {
		if err := c.ChangePassphrase(kr, bad.id, bad.root); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("ChangePassphrase(%s, %s): %v, want %q", bad.id, bad.root, err, bad.want)
		}
	}
	if err := c.ChangePassphrase(kr, id, newPass); err != nil {
		t.Fatal(err)
	}
	after := mustMarshal(t, marshalled(t, c, kr))
	p, err := ParseConfig(after)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Open(oldPass); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("old passphrase on the changed config: %v, want ErrNoKeyOpens", err)
	}
	for _, root := range []*RootKey{newPass, sym} {
		c2, kr2 := openConfig(t, after, root)
		if kr2.VolumeID() != kr.VolumeID() || !bytes.Equal(kr2.nameSecret, kr.nameSecret) {
			t.Fatalf("%s opens another keyring", root)
		}
		if ids := c2.Keys(); len(ids) != 2 || ids[1].ID != id {
			t.Fatalf("keys after passwd %+v, want the passphrase entry to keep ID %s", ids, id)
		}
	}
	// The old passphrase's entry opened a config whose KWK and config
	// secret are gone: its holder cannot open or MAC the new one.
	if bytes.Equal(configMACKeyOf(t, mustMarshal(t, before), oldPass), configMACKeyOf(t, after, newPass)) {
		t.Fatal("passwd kept the config secret")
	}
}

func mustMarshal(t *testing.T, c *Config) []byte {
	t.Helper()
	out := marshalOuter(c.body, c.mac)
	return out
}

func configMACKeyOf(t *testing.T, data []byte, root *RootKey) []byte {
	t.Helper()
	_, kr := openConfig(t, data, root)
	return kr.configMACKey()
}

// TestEntryKeyOpensLaterConfigs: the entry key a mount keeps opens the
// versions of its config that later key and rotate commands write, and
// refuses what Open would refuse, without its root key.
func TestEntryKeyOpensLaterConfigs(t *testing.T) {
	for _, root := range []*RootKey{testSymKey(t, 1), testPassphrase(t, "mounted")} {
		t.Run(string(root.Kind()), func(t *testing.T) {
			other := testSymKey(t, 2)
			c, kr, _ := newVolume(t, root)
			otherID, err := c.AddKey(kr, other)
			if err != nil {
				t.Fatal(err)
			}
			data := mustMarshal(t, marshalled(t, c, kr))
			mounted, _ := openConfig(t, data, root)
			ek := mounted.EntryKey()
			if ek == nil || strings.Contains(ek.String(), string(root.secret)) {
				t.Fatalf("entry key %v", ek)
			}
			opens := func(t *testing.T, data []byte) (*Keyring, error) {
				t.Helper()
				p, err := ParseConfig(data)
				if err != nil {
					t.Fatal(err)
				}
				return ek.Open(p)
			}

			// rotate: a new generation, then the old one retired; key
			// remove of another key (new KWK and config secret); reauth.
			c, kr = openConfig(t, data, other)
			if err := kr.AddGeneration(); err != nil {
				t.Fatal(err)
			}
			rotated := mustMarshal(t, marshalled(t, c, kr))
			if got, err := opens(t, rotated); err != nil || got.CurrentGeneration() != 2 {
				t.Fatalf("after rotate: %v, current %v", err, got)
			}
			c, kr = openConfig(t, rotated, root)
			kr.RetireGeneration(1)
			if err := c.RemoveKey(otherID); err != nil {
				t.Fatal(err)
			}
			removed := mustMarshal(t, marshalled(t, c, kr))
			if got, err := opens(t, removed); err != nil || len(got.Generations()) != 1 {
				t.Fatalf("after retire and key remove: %v", err)
			}
			c, kr = openConfig(t, removed, root)
			if err := c.Reauth(kr, root); err != nil {
				t.Fatal(err)
			}
			reauthed := mustMarshal(t, marshalled(t, c, kr))
			if _, err := opens(t, reauthed); err != nil {
				t.Fatalf("after reauth: %v", err)
			}

			// Refusals: forgeries, the entry gone, a none-mode config.
			for _, f := range []forgery{{name: "fresh"}, {name: "auth kept", keepAuth: true, anchorSecret: forgeRandom(t)}} {
				forged, _ := forgeConfig(t, reauthed, f)
				if _, err := opens(t, forged); !errors.Is(err, ErrConfigTampered) {
					t.Fatalf("forgery %s: %v, want ErrConfigTampered", f.name, err)
				}
			}
			c, kr = openConfig(t, reauthed, root)
			if _, err := c.AddKey(kr, other); err != nil {
				t.Fatal(err)
			}
			if err := c.RemoveKey(ek.id); err != nil {
				t.Fatal(err)
			}
			if _, err := opens(t, mustMarshal(t, marshalled(t, c, kr))); !errors.Is(err, ErrNoKeyOpens) {
				t.Fatalf("own entry removed: %v, want ErrNoKeyOpens", err)
			}
			none, _ := NewConfig(EncryptionNone, SSENone, "", nil, nil)
			noneData, _ := none.Marshal(nil)
			if _, err := opens(t, noneData); !errors.Is(err, ErrConfigTampered) {
				t.Fatalf("none-mode config: %v, want ErrConfigTampered", err)
			}
		})
	}
	// A changed passphrase keeps the entry's ID but not its salt: the
	// old entry key no longer opens.
	pass := testPassphrase(t, "before")
	_, _, data := newVolume(t, pass)
	c, kr := openConfig(t, data, pass)
	ek := c.EntryKey()
	if err := c.ChangePassphrase(kr, ek.id, testPassphrase(t, "after")); err != nil {
		t.Fatal(err)
	}
	p := marshalled(t, c, kr)
	if _, err := ek.Open(p); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("after passwd: %v, want ErrNoKeyOpens", err)
	}
}

func TestAdoptGenerations(t *testing.T) {
	root := testSymKey(t, 1)
	_, _, data := newVolume(t, root)
	_, mounted := openConfig(t, data, root)
	o, _ := mounted.NewObjectKey()
	oldMeta, err := mounted.SealMetadata(o, "/f", testAttr)
	if err != nil {
		t.Fatal(err)
	}

	c, kr := openConfig(t, data, root)
	kr.AddGeneration()
	rotated := mustMarshal(t, marshalled(t, c, kr))
	_, newer := openConfig(t, rotated, root)
	if changed, err := mounted.AdoptGenerations(newer); err != nil || !changed || mounted.CurrentGeneration() != 2 {
		t.Fatalf("adopt rotated: changed %v, %v, current %d", changed, err, mounted.CurrentGeneration())
	}
	if changed, err := mounted.AdoptGenerations(newer); err != nil || changed {
		t.Fatalf("adopt the same again: changed %v, %v", changed, err)
	}
	if _, err := mounted.OpenObjectKey(oldMeta); err != nil {
		t.Fatalf("generation 1 stopped opening before it was retired: %v", err)
	}
	c, kr = openConfig(t, rotated, root)
	kr.RetireGeneration(1)
	retired := mustMarshal(t, marshalled(t, c, kr))
	_, newest := openConfig(t, retired, root)
	if _, err := mounted.AdoptGenerations(newest); err != nil {
		t.Fatal(err)
	}
	if _, err := mounted.OpenObjectKey(oldMeta); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("an object of a retired generation: %v, want ErrBadMetadata", err)
	}

	c, kr = openConfig(t, retired, root)
	kr.AddGeneration()
	_, third := openConfig(t, mustMarshal(t, marshalled(t, c, kr)), root)
	if _, err := mounted.AdoptGenerations(third); err != nil || mounted.CurrentGeneration() != 3 {
		t.Fatalf("adopt a second rotation: %v", err)
	}

	// Rollbacks: the config before rotation, the one that still had
	// generation 1 (a replay that would bring its KEK back), the one
	// before the second rotation (an older current generation).
	for name, old := range map[string][]byte{"before rotation": data, "before retirement": rotated, "before the second rotation": retired} {
		_, replay := openConfig(t, old, root)
		if _, err := mounted.AdoptGenerations(replay); err == nil || !strings.Contains(err.Error(), "older config") {
			t.Fatalf("replay of the config %s: %v, want a rollback refusal", name, err)
		}
		if mounted.CurrentGeneration() != 3 || len(mounted.Generations()) != 2 {
			t.Fatalf("a refused replay changed the keyring: %v", mounted.Generations())
		}
	}
	// Another volume's keyring, or another KEK under a known number.
	_, _, otherData := newVolume(t, root)
	_, other := openConfig(t, otherData, root)
	if _, err := mounted.AdoptGenerations(other); err == nil {
		t.Fatal("adopted the generations of another volume")
	}
	_, swapped := openConfig(t, retired, root)
	swapped.keks[2] = randomKey()
	swapped.current = 3
	swapped.keks[3] = third.keks[3]
	if _, err := mounted.AdoptGenerations(swapped); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("another KEK under generation 2: %v", err)
	}
}

func TestRewrapObjectKey(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	meta, _ := kr.SealMetadata(o, "/f", testAttr)
	kr.AddGeneration()
	kr.RetireGeneration(1)
	if _, err := kr.RewrapMetadata(meta); err == nil {
		t.Fatal("RewrapMetadata unwrapped under a retired generation")
	}
	out, err := kr.RewrapObjectKey(meta, o)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := MetadataGeneration(out); g != 2 {
		t.Fatalf("rewrapped onto generation %d, want 2", g)
	}
	if _, a, err := kr.OpenMetadata(out, "/f"); err != nil || a != testAttr {
		t.Fatalf("rewrapped metadata: %v", err)
	}
	other, _ := kr.NewObjectKey()
	if _, err := kr.RewrapObjectKey(meta, other); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("another object's key: %v, want ErrBadMetadata", err)
	}
}
