package cipher

import (
	"bytes"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
)

// The attack of issue 13, performed as a bucket writer can: from the bytes
// of a real config alone (no keyring, no root key), build a config whose
// entries open, under the user's real root key, a keyring of the forger's.
// The forger uses nothing of this package, only the standard library and
// the published format (integration/forgery_test.go does the same through
// the CLI).

// forgery says what the forger keeps of the real config.
type forgery struct {
	keepAuth     bool   // copy each entry's auth field as it is
	anchorSecret []byte // the forged keyring's anchor secret (nil: none)
	name         string
}

// forgedKeyring is what the forger knows of the keyring it planted.
type forgedKeyring struct {
	nameSecret, configSecret []byte
}

var forgeB64 = base64.RawURLEncoding

func forgeRandom(t *testing.T) []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func forgeDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := forgeB64.DecodeString(s)
	if err != nil {
		t.Fatalf("forger: %v", err)
	}
	return b
}

// forgeConfig returns a forged config built from real alone, and what the
// forger knows of it. It keeps the volume ID, the modes and every entry's
// id, kind, public key and Argon2 parameters; it seals a fresh KWK to each
// entry's public key (HPKE base mode, the real info), seals its own keyring
// under that KWK and MACs the body with its own config secret.
func forgeConfig(t *testing.T, real []byte, f forgery) ([]byte, forgedKeyring) {
	t.Helper()
	var outer struct {
		Format int    `json:"format"`
		Body   string `json:"body"`
		MAC    string `json:"mac"`
	}
	if err := json.Unmarshal(real, &outer); err != nil {
		t.Fatalf("forger: %v", err)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(forgeDecode(t, outer.Body), &body); err != nil {
		t.Fatalf("forger: %v", err)
	}
	var vidText string
	json.Unmarshal(body["volume_id"], &vidText)
	vid := forgeDecode(t, vidText)

	kwk := forgeRandom(t)
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(body["keys"], &entries); err != nil {
		t.Fatalf("forger: %v", err)
	}
	for _, e := range entries {
		var id, kind, public string
		json.Unmarshal(e["id"], &id)
		json.Unmarshal(e["kind"], &kind)
		json.Unmarshal(e["public"], &public)
		pub, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(forgeDecode(t, public))
		if err != nil {
			t.Fatalf("forger: %v", err)
		}
		info := append([]byte("coffer kwk v1"), vid...)
		info = append(append(append(info, id...), 0), kind...)
		wrapped, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, kwk)
		if err != nil {
			t.Fatalf("forger: %v", err)
		}
		e["wrapped"], _ = json.Marshal(forgeB64.EncodeToString(wrapped))
		if !f.keepAuth {
			delete(e, "auth")
		}
	}
	body["keys"], _ = json.Marshal(entries)

	known := forgedKeyring{nameSecret: forgeRandom(t), configSecret: forgeRandom(t)}
	keyring := map[string]any{
		"volume_id":     vidText,
		"name_secret":   forgeB64.EncodeToString(known.nameSecret),
		"local_secret":  forgeB64.EncodeToString(forgeRandom(t)),
		"config_secret": forgeB64.EncodeToString(known.configSecret),
		"current":       1,
		"keks":          []map[string]any{{"gen": 1, "key": forgeB64.EncodeToString(forgeRandom(t))}},
	}
	if f.anchorSecret != nil {
		keyring["anchor_secret"] = forgeB64.EncodeToString(f.anchorSecret)
	}
	plain, _ := json.Marshal(keyring)
	block, _ := aes.NewCipher(kwk)
	aead, _ := gocipher.NewGCMWithRandomNonce(block)
	sealed := aead.Seal(nil, nil, plain, append([]byte("coffer keyring v1"), vid...))
	body["keyring"], _ = json.Marshal(forgeB64.EncodeToString(sealed))

	bodyJSON, _ := json.Marshal(body)
	macKey, _ := hkdf.Key(sha256.New, known.configSecret, nil, "coffer config mac", 32)
	m := hmac.New(sha256.New, macKey)
	m.Write(bodyJSON)
	outer.Body, outer.MAC = forgeB64.EncodeToString(bodyJSON), forgeB64.EncodeToString(m.Sum(nil))
	out, _ := json.Marshal(outer)
	return out, known
}

// TestForgedKeyringRefused: a forged config does not open under the real
// root key, whatever the forger keeps of the real entries, for sym and
// passphrase entries, alone or side by side.
func TestForgedKeyringRefused(t *testing.T) {
	sym, pass := testSymKey(t, 1), testPassphrase(t, "correct horse")
	both := func(t *testing.T) []byte {
		c, kr, _ := newVolume(t, testSymKey(t, 1))
		if _, err := c.AddKey(kr, testPassphrase(t, "correct horse")); err != nil {
			t.Fatal(err)
		}
		data, err := c.Marshal(kr)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, vol := range []struct {
		name  string
		make  func(t *testing.T) []byte
		roots []*RootKey
	}{
		{"sym entry", func(t *testing.T) []byte { _, _, d := newVolume(t, sym); return d }, []*RootKey{sym}},
		{"passphrase entry", func(t *testing.T) []byte { _, _, d := newVolume(t, pass); return d }, []*RootKey{pass}},
		{"sym and passphrase entries", both, []*RootKey{sym, pass}},
	} {
		anchor := forgeRandom(t)
		for _, f := range []forgery{
			{name: "fresh entries"},
			{name: "fresh entries, forger's anchor", anchorSecret: anchor},
			{name: "real auth kept", keepAuth: true},
			{name: "real auth kept, forger's anchor", keepAuth: true, anchorSecret: anchor},
		} {
			t.Run(vol.name+"/"+f.name, func(t *testing.T) {
				real := vol.make(t)
				forged, known := forgeConfig(t, real, f)
				for _, root := range vol.roots {
					c, err := ParseConfig(forged)
					if err != nil {
						t.Fatalf("ParseConfig: %v", err)
					}
					kr, err := c.Open(root)
					if err == nil {
						leak := kr.Names() != nil && string(kr.nameSecret) == string(known.nameSecret)
						t.Fatalf("%s opened the forged config (keyring is the forger's: %v)", root, leak)
					}
					if !errors.Is(err, ErrConfigTampered) {
						t.Fatalf("%s: %v, want ErrConfigTampered", root, err)
					}
				}
				// The real config still opens with every key.
				for _, root := range vol.roots {
					openConfig(t, real, root)
				}
			})
		}
		// Control: the forgery is complete. Opened the way coffer opened
		// configs before entry authentication (OpenPreAuth), it yields the
		// forger's keyring: only the entries' auth stops the variants above.
		t.Run(vol.name+"/control", func(t *testing.T) {
			forged, known := forgeConfig(t, vol.make(t), forgery{})
			for _, root := range vol.roots {
				c, err := ParseConfig(forged)
				if err != nil {
					t.Fatal(err)
				}
				kr, err := c.OpenPreAuth(root)
				if err != nil {
					t.Fatalf("%s: the forgery is incomplete: %v", root, err)
				}
				if !bytes.Equal(kr.nameSecret, known.nameSecret) || !bytes.Equal(kr.configSecret, known.configSecret) {
					t.Fatalf("%s: opened a keyring that is not the forger's", root)
				}
			}
		})
	}
}

// TestRemovedKeyUntilReauth is the limit DESIGN.md §9 states: a removed
// root key whose holder kept the keyring knows the anchor secret, so it
// can still plant a keyring the remaining keys accept; after Reauth it
// cannot.
func TestRemovedKeyUntilReauth(t *testing.T) {
	sym, pass := testSymKey(t, 1), testPassphrase(t, "removed")
	c, kr, _ := newVolume(t, sym)
	passID, err := c.AddKey(kr, pass)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	// The passphrase's holder keeps what its key opens.
	_, kept := openConfig(t, data, pass)
	oldAnchorSecret := bytes.Clone(kept.anchorSecret)

	c, kr = openConfig(t, data, sym)
	if err := c.RemoveKey(passID); err != nil {
		t.Fatal(err)
	}
	removed, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kr.anchorSecret, oldAnchorSecret) {
		t.Fatal("key removal changed the anchor: the other entries would need their root keys")
	}
	swap := forgery{keepAuth: true, anchorSecret: oldAnchorSecret}
	forged, known := forgeConfig(t, removed, swap)
	if _, got := openConfig(t, forged, sym); !bytes.Equal(got.nameSecret, known.nameSecret) {
		t.Fatal("the swapped keyring did not open: the test does not show the limit")
	}

	c, kr = openConfig(t, removed, sym)
	if err := c.Reauth(kr, sym); err != nil {
		t.Fatal(err)
	}
	reauthed, err := c.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ = forgeConfig(t, reauthed, swap)
	p, err := ParseConfig(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Open(sym); !errors.Is(err, ErrConfigTampered) {
		t.Fatalf("after Reauth, a keyring planted with the old anchor: %v, want ErrConfigTampered", err)
	}
	openConfig(t, reauthed, sym)
}
