package cipher

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestConfigRoundTrip(t *testing.T) {
	for _, root := range []*RootKey{testSymKey(t, 1), testPassphrase(t, "correct horse")} {
		c, kr, data := newVolume(t, root)
		c2, kr2 := openConfig(t, data, root)
		if kr2.VolumeID() != kr.VolumeID() || c2.VolumeID() != kr.VolumeID() {
			t.Fatalf("%s: volume ID changed", root)
		}
		if c2.Encryption != EncryptionClient || c2.SSE != "" {
			t.Fatalf("%s: modes %q %q", root, c2.Encryption, c2.SSE)
		}
		if !bytes.Equal(kr2.marshal(), kr.marshal()) {
			t.Fatalf("%s: keyring changed", root)
		}
		again, err := c2.Marshal(kr2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("%s: Marshal of an unchanged config is not byte-identical", root)
		}
		if got := c.Keys(); len(got) != 1 || got[0].Kind != root.Kind() {
			t.Fatalf("%s: keys %v", root, got)
		}
	}
}

func TestConfigNoneMode(t *testing.T) {
	c, err := NewConfig(EncryptionNone, SSEC, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Encryption != "" {
		t.Fatal("ParseConfig filled fields before Open")
	}
	if p.ClaimedEncryption() != EncryptionNone {
		t.Fatalf("claimed %q", p.ClaimedEncryption())
	}
	kr, err := p.Open()
	if err != nil || kr != nil {
		t.Fatalf("Open = %v, %v", kr, err)
	}
	if p.Encryption != EncryptionNone || p.SSE != SSEC || p.VolumeID() != c.VolumeID() {
		t.Fatalf("opened none config: %+v", p)
	}
	tampered := strings.Replace(string(data), p.claimedBodyB64(), p.claimedBodyB64()[:5]+"A"+p.claimedBodyB64()[6:], 1)
	if p2, err := ParseConfig([]byte(tampered)); err == nil {
		if _, err := p2.Open(); !errors.Is(err, ErrConfigTampered) && !errors.Is(err, ErrNotConfig) {
			t.Fatalf("tampered none config: %v", err)
		}
	}
}

func (c *Config) claimedBodyB64() string { return b64.EncodeToString(c.body) }

func TestConfigModeValidation(t *testing.T) {
	kr, root := testKeyring(t), testSymKey(t, 1)
	for _, tc := range []struct {
		enc, sse, kms string
		kr            *Keyring
		root          *RootKey
	}{
		{"plain", "", "", kr, root},
		{EncryptionClient, "sse-x", "", kr, root},
		{EncryptionClient, SSES3, "arn:key", kr, root},
		{EncryptionClient, "", "", nil, nil},
		{EncryptionNone, "", "", kr, root},
	} {
		if _, err := NewConfig(tc.enc, tc.sse, tc.kms, tc.kr, tc.root); err == nil {
			t.Errorf("NewConfig(%q, %q, %q) accepted", tc.enc, tc.sse, tc.kms)
		}
	}
	if _, err := NewConfig(EncryptionClient, SSEKMS, "arn:aws:kms:k", kr, root); err != nil {
		t.Error(err)
	}
}

func TestConfigWrongKey(t *testing.T) {
	_, _, data := newVolume(t, testSymKey(t, 1))
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []*RootKey{testSymKey(t, 2), testPassphrase(t, "nope")} {
		if _, err := c.Open(wrong); !errors.Is(err, ErrNoKeyOpens) {
			t.Fatalf("%s: %v", wrong, err)
		}
	}
	if _, err := c.Open(); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("no key: %v", err)
	}
	_, _, pdata := newVolume(t, testPassphrase(t, "right"))
	pc, _ := ParseConfig(pdata)
	if _, err := pc.Open(testPassphrase(t, "wrong")); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

// TestConfigAnyByteChanged changes every byte of the config object (body
// and MAC alike) and expects a typed error every time.
func TestConfigAnyByteChanged(t *testing.T) {
	root := testSymKey(t, 1)
	_, _, data := newVolume(t, root)
	for i := range data {
		for _, delta := range []byte{1, 0x20} {
			mutated := bytes.Clone(data)
			mutated[i] ^= delta
			c, err := ParseConfig(mutated)
			if err == nil {
				_, err = c.Open(root)
			}
			if err == nil {
				t.Fatalf("byte %d ^ %#x: config still opens", i, delta)
			}
			if !errors.Is(err, ErrNotConfig) && !errors.Is(err, ErrConfigTampered) && !errors.Is(err, ErrNoKeyOpens) {
				t.Fatalf("byte %d ^ %#x: untyped error %v", i, delta, err)
			}
		}
	}
}

// TestConfigBodyChanged changes the body under a valid encoding: the MAC (or
// an entry the key matches) must catch it as tampering.
func TestConfigBodyChanged(t *testing.T) {
	root := testSymKey(t, 1)
	_, _, data := newVolume(t, root)
	c, _ := ParseConfig(data)
	for i := range c.body {
		body := bytes.Clone(c.body)
		body[i] ^= 1
		c2, err := ParseConfig(marshalOuter(body, c.mac))
		if err == nil {
			_, err = c2.Open(root)
		}
		if err == nil {
			t.Fatalf("body byte %d changed: config opens", i)
		}
		if !errors.Is(err, ErrNotConfig) && !errors.Is(err, ErrConfigTampered) && !errors.Is(err, ErrNoKeyOpens) {
			t.Fatalf("body byte %d: untyped error %v", i, err)
		}
	}
	mac := bytes.Clone(c.mac)
	mac[0] ^= 1
	c3, err := ParseConfig(marshalOuter(c.body, mac))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Open(root); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("MAC changed: %v", err)
	}
}

func TestParseConfigRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "{}", "null", `{"format":2,"body":"","mac":""}`, "not json", `{"format":1,"body":"e30","mac":"AAAA"}`} {
		if _, err := ParseConfig([]byte(in)); !errors.Is(err, ErrNotConfig) {
			t.Errorf("ParseConfig(%q) = %v", in, err)
		}
	}
}

func TestAddRemoveKeyAndRotate(t *testing.T) {
	sym, pass := testSymKey(t, 1), testPassphrase(t, "second")
	c, kr, _ := newVolume(t, sym)
	id, err := c.AddKey(kr, pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddKey(kr, sym); err == nil {
		t.Fatal("same sym key added twice")
	}
	if err := kr.AddGeneration(); err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	// Either key opens the volume and sees generation 2.
	for _, root := range []*RootKey{sym, pass} {
		_, kr2 := openConfig(t, data, root)
		if kr2.CurrentGeneration() != 2 || len(kr2.Generations()) != 2 {
			t.Fatalf("%s: generations %v", root, kr2.Generations())
		}
	}
	// Rotation with only the passphrase at hand.
	c3, kr3 := openConfig(t, data, pass)
	if err := kr3.AddGeneration(); err != nil {
		t.Fatal(err)
	}
	data3, err := c3.Marshal(kr3)
	if err != nil {
		t.Fatal(err)
	}
	if _, kr4 := openConfig(t, data3, sym); kr4.CurrentGeneration() != 3 {
		t.Fatalf("sym key sees generation %d after rotation by the passphrase", kr4.CurrentGeneration())
	}
	// Removing the passphrase: it no longer opens, the sym key still does,
	// and the keyring-wrapping key and config secret changed.
	c5, kr5 := openConfig(t, data3, sym)
	oldKWK, oldMAC := c5.kwk, kr5.configMACKey()
	if err := c5.RemoveKey(id); err != nil {
		t.Fatal(err)
	}
	if err := c5.RemoveKey(symID(sym.secret)); err == nil {
		t.Fatal("removed the last key")
	}
	data5, err := c5.Marshal(kr5)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c5.kwk, oldKWK) || bytes.Equal(kr5.configMACKey(), oldMAC) {
		t.Fatal("key removal kept the keyring-wrapping key or config secret")
	}
	p, _ := ParseConfig(data5)
	if _, err := p.Open(pass); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("removed passphrase: %v", err)
	}
	if _, kr6 := openConfig(t, data5, sym); kr6.CurrentGeneration() != 3 {
		t.Fatal("sym key lost generations")
	}
	if keys := c5.Keys(); len(keys) != 1 || keys[0].Kind != KindSym {
		t.Fatalf("keys after removal: %v", keys)
	}
}

func TestConfigRefusesAbsurdArgon2(t *testing.T) {
	pass := testPassphrase(t, "p")
	c, kr, _ := newVolume(t, pass)
	c.entries[0].params = Argon2Params{Time: 1, MemoryKiB: 64 << 20, Threads: 1}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(data); !errors.Is(err, ErrNotConfig) {
		t.Fatalf("64 GiB Argon2 accepted: %v", err)
	}
}

func TestKeyringGenerations(t *testing.T) {
	kr := testKeyring(t)
	if err := kr.RetireGeneration(1); err == nil {
		t.Fatal("retired the current generation")
	}
	kr.AddGeneration()
	kr.AddGeneration()
	if err := kr.RetireGeneration(2); err != nil {
		t.Fatal(err)
	}
	if err := kr.RetireGeneration(2); err == nil {
		t.Fatal("retired generation 2 twice")
	}
	if g := kr.Generations(); len(g) != 2 || g[0] != 1 || g[1] != 3 || kr.CurrentGeneration() != 3 {
		t.Fatalf("generations %v current %d", g, kr.CurrentGeneration())
	}
}
