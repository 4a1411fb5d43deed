package cipher

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// testdata/preauth.json holds configs written by coffer before entry
// authentication, kept as they were: they stand for the volumes that
// exist. integration/ uses them too.
type preAuthVector struct {
	Config      string `json:"config"` // sym key and passphrase entries
	VolumeID    string `json:"volume_id"`
	ConfigSym   string `json:"config_sym"` // a sym key entry only
	VolumeIDSym string `json:"volume_id_sym"`
	SymKey      string `json:"sym_key"`
	Passphrase  string `json:"passphrase"`
}

func loadPreAuth(t *testing.T) (preAuthVector, *RootKey, *RootKey) {
	t.Helper()
	raw, err := os.ReadFile("testdata/preauth.json")
	if err != nil {
		t.Fatal(err)
	}
	var v preAuthVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	k, _ := hex.DecodeString(v.SymKey)
	sym, err := NewSymKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return v, sym, testPassphrase(t, v.Passphrase)
}

func parse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPreAuthConfigRefusedByOpen(t *testing.T) {
	v, sym, pass := loadPreAuth(t)
	for _, root := range []*RootKey{sym, pass} {
		_, err := parse(t, v.Config).Open(root)
		if !errors.Is(err, ErrConfigPreAuth) || !errors.Is(err, ErrConfigTampered) {
			t.Fatalf("%s: %v, want ErrConfigPreAuth (and ErrConfigTampered)", root, err)
		}
	}
	// A wrong key is told it is wrong, not to upgrade.
	if _, err := parse(t, v.Config).Open(testSymKey(t, 3)); !errors.Is(err, ErrNoKeyOpens) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestPreAuthUpgrade(t *testing.T) {
	v, sym, pass := loadPreAuth(t)
	c := parse(t, v.Config)
	kr, err := c.OpenPreAuth(sym)
	if err != nil {
		t.Fatal(err)
	}
	if kr.VolumeID().String() != v.VolumeID || kr.anchor() != nil {
		t.Fatalf("pre-auth keyring: volume %s, anchor %x", kr.VolumeID(), kr.anchor())
	}
	o, _ := kr.NewObjectKey()
	meta, err := kr.SealMetadata(o, "/f", testAttr)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is written, and no key added, before Reauth.
	if _, err := c.Marshal(kr); err == nil {
		t.Fatal("Marshal of an unauthenticated config")
	}
	if _, err := c.AddKey(kr, testSymKey(t, 4)); err == nil {
		t.Fatal("AddKey on an unauthenticated config")
	}
	// Reauth needs every entry's root key and says which is missing.
	err = c.Reauth(kr, sym)
	if !errors.Is(err, ErrMissingRootKeys) || !strings.Contains(err.Error(), c.Keys()[1].ID+" (passphrase)") {
		t.Fatalf("Reauth with the sym key alone: %v", err)
	}
	if err := c.Reauth(kr, sym, pass, testSymKey(t, 5)); err == nil || !strings.Contains(err.Error(), "root key 3 of the 3 given") {
		t.Fatalf("Reauth with a key of no entry: %v", err)
	}
	if err := c.Reauth(kr, pass, sym); err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []*RootKey{sym, pass} {
		c2, kr2 := openConfig(t, data, root)
		if c2.VolumeID() != kr.VolumeID() || len(c2.Keys()) != 2 {
			t.Fatalf("%s: upgraded config: volume %s, keys %v", root, c2.VolumeID(), c2.Keys())
		}
		if _, _, err := kr2.OpenMetadata(meta, "/f"); err != nil {
			t.Fatalf("%s: an object of the pre-auth keyring does not open after the upgrade: %v", root, err)
		}
	}
	if _, err := parse(t, string(data)).OpenPreAuth(sym); err == nil {
		t.Fatal("OpenPreAuth of an upgraded config")
	}
}

// TestAuthStripped: removing the auth fields of a config with entry
// authentication does not make it a pre-auth config: its keyring has an
// anchor, and its MAC covers the fields.
func TestAuthStripped(t *testing.T) {
	root := testSymKey(t, 1)
	c, kr, _ := newVolume(t, root)
	c.entries[0].auth = nil
	stripped := c.entries[0].marshal()
	if bytes.Contains(stripped, []byte(`"auth"`)) {
		t.Fatalf("entry still has auth: %s", stripped)
	}
	body := configBody{
		VolumeID: b64.EncodeToString(c.volumeID[:]), Encryption: EncryptionClient,
		Keys: []json.RawMessage{stripped}, Keyring: b64.EncodeToString(c.sealed),
	}
	bodyJSON, _ := json.Marshal(body)
	// Even MACed with the real config secret (which a forger lacks).
	data := marshalOuter(bodyJSON, configMAC(kr.configMACKey(), bodyJSON))
	if _, err := parse(t, string(data)).Open(root); !errors.Is(err, ErrConfigTampered) || errors.Is(err, ErrConfigPreAuth) {
		t.Fatalf("Open: %v, want ErrConfigTampered, not ErrConfigPreAuth", err)
	}
	if _, err := parse(t, string(data)).OpenPreAuth(root); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("OpenPreAuth: %v", err)
	}

	// One entry of two stripped, under a valid MAC: the other key's
	// entry verifies, but a config coffer wrote has auth on every entry.
	second := testSymKey(t, 2)
	c, kr, _ = newVolume(t, root)
	if _, err := c.AddKey(kr, second); err != nil {
		t.Fatal(err)
	}
	c.entries[1].auth = nil
	body.Keys = []json.RawMessage{c.entries[0].marshal(), c.entries[1].marshal()}
	body.VolumeID, body.Keyring = b64.EncodeToString(c.volumeID[:]), b64.EncodeToString(c.sealed)
	bodyJSON, _ = json.Marshal(body)
	data = marshalOuter(bodyJSON, configMAC(kr.configMACKey(), bodyJSON))
	if _, err := parse(t, string(data)).Open(root); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("Open of a config with one entry stripped: %v", err)
	}
}

func TestReauth(t *testing.T) {
	sym, pass := testSymKey(t, 1), testPassphrase(t, "second")
	c, kr, _ := newVolume(t, sym)
	if _, err := c.AddKey(kr, pass); err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	c, kr = openConfig(t, data, pass)
	anchor, kwk, mac := kr.anchor(), c.kwk, kr.configMACKey()
	name, before := kr.nameSecret, kr.marshal()
	if err := c.Reauth(kr, sym); !errors.Is(err, ErrMissingRootKeys) {
		t.Fatalf("Reauth without the passphrase: %v", err)
	}
	if !bytes.Equal(kr.anchor(), anchor) {
		t.Fatal("a refused Reauth changed the anchor")
	}
	if err := c.Reauth(kr, sym, pass); err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(kr.anchor(), anchor) || bytes.Equal(c.kwk, kwk) || bytes.Equal(kr.configMACKey(), mac) {
		t.Fatal("Reauth kept the anchor, the KWK or the config secret")
	}
	if !bytes.Equal(kr.nameSecret, name) || bytes.Equal(kr.marshal(), before) {
		t.Fatal("Reauth changed the name secret, or left the keyring as it was")
	}
	for _, root := range []*RootKey{sym, pass} {
		if _, kr2 := openConfig(t, out, root); !bytes.Equal(kr2.anchor(), kr.anchor()) {
			t.Fatalf("%s: opened another anchor", root)
		}
	}
	// The old config's entry tags do not authenticate the new keyring.
	oldEntries := parse(t, string(data)).entries
	c3, _ := openConfig(t, out, sym)
	for i, e := range c3.entries {
		if bytes.Equal(e.auth, oldEntries[i].auth) {
			t.Fatalf("entry %s kept its auth tag", e.ID)
		}
	}
}

// TestPreAuthSymOnly: the one-key pre-auth volume upgrades with its key
// alone, and its upgraded config is the one the fuzz seed reaches.
func TestPreAuthSymOnly(t *testing.T) {
	v, sym, _ := loadPreAuth(t)
	c := parse(t, v.ConfigSym)
	if _, err := c.Open(sym); !errors.Is(err, ErrConfigPreAuth) {
		t.Fatalf("Open: %v", err)
	}
	kr, err := c.OpenPreAuth(sym)
	if err != nil || kr.VolumeID().String() != v.VolumeIDSym {
		t.Fatalf("OpenPreAuth: %v", err)
	}
	if err := c.Reauth(kr, sym); err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	openConfig(t, data, sym)
}

// TestReauthChecksEveryGivenKey: Reauth re-authenticates only a keyring
// every given key's entry accepts as it stands.
func TestReauthChecksEveryGivenKey(t *testing.T) {
	a, b := testSymKey(t, 1), testSymKey(t, 2)
	c, kr, _ := newVolume(t, a)
	if _, err := c.AddKey(kr, b); err != nil {
		t.Fatal(err)
	}
	c.entries[1].auth[0] ^= 1 // b's entry does not accept this keyring
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	c, kr = openConfig(t, data, a)
	if err := c.Reauth(kr, a, b); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("Reauth over an entry that does not authenticate the keyring: %v", err)
	}
}
