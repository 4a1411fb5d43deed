package integration

import (
	"bytes"
	"context"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Issue 13 through the CLI: whoever can write the bucket replaces
// .coffer/config with one built from its public bytes alone; coffer
// mount with the user's real key must refuse it and serve nothing.

const configKey = ".coffer/config"

// forgeConfig builds a forged config from the bytes of a real one, as a
// bucket writer can (stdlib only; cipher/forgery_test.go has the same
// forger at the package level): the volume ID, modes and every entry's
// id, kind, public key and Argon2 parameters are kept, a fresh KWK is
// HPKE-sealed to each entry's public key with the real info, and the
// forger's keyring is sealed under it and MACed with the forger's config
// secret. keepAuth keeps the entries' auth fields; anchor puts an anchor
// secret of the forger's in its keyring.
func forgeConfig(t *testing.T, real []byte, keepAuth, anchor bool) []byte {
	t.Helper()
	b64 := base64.RawURLEncoding
	random := func() []byte { b := make([]byte, 32); rand.Read(b); return b }
	decode := func(s string) []byte {
		b, err := b64.DecodeString(s)
		if err != nil {
			t.Fatalf("forger: %v", err)
		}
		return b
	}
	var outer struct {
		Format int    `json:"format"`
		Body   string `json:"body"`
		MAC    string `json:"mac"`
	}
	var body map[string]json.RawMessage
	var entries []map[string]json.RawMessage
	var vidText string
	if json.Unmarshal(real, &outer) != nil || json.Unmarshal(decode(outer.Body), &body) != nil ||
		json.Unmarshal(body["keys"], &entries) != nil || json.Unmarshal(body["volume_id"], &vidText) != nil {
		t.Fatalf("forger: cannot read the config %s", real)
	}
	vid := decode(vidText)
	kwk := random()
	for _, e := range entries {
		var id, kind, public string
		json.Unmarshal(e["id"], &id)
		json.Unmarshal(e["kind"], &kind)
		json.Unmarshal(e["public"], &public)
		pub, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(decode(public))
		if err != nil {
			t.Fatalf("forger: %v", err)
		}
		info := append([]byte("coffer kwk v1"), vid...)
		info = append(append(append(info, id...), 0), kind...)
		wrapped, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, kwk)
		if err != nil {
			t.Fatalf("forger: %v", err)
		}
		e["wrapped"], _ = json.Marshal(b64.EncodeToString(wrapped))
		if !keepAuth {
			delete(e, "auth")
		}
	}
	body["keys"], _ = json.Marshal(entries)
	configSecret := random()
	keyring := map[string]any{
		"volume_id": vidText, "name_secret": b64.EncodeToString(random()), "local_secret": b64.EncodeToString(random()),
		"config_secret": b64.EncodeToString(configSecret), "current": 1,
		"keks": []map[string]any{{"gen": 1, "key": b64.EncodeToString(random())}},
	}
	if anchor {
		keyring["anchor_secret"] = b64.EncodeToString(random())
	}
	plain, _ := json.Marshal(keyring)
	block, _ := aes.NewCipher(kwk)
	aead, _ := gocipher.NewGCMWithRandomNonce(block)
	body["keyring"], _ = json.Marshal(b64.EncodeToString(aead.Seal(nil, nil, plain, append([]byte("coffer keyring v1"), vid...))))
	bodyJSON, _ := json.Marshal(body)
	macKey, _ := hkdf.Key(sha256.New, configSecret, nil, "coffer config mac", 32)
	m := hmac.New(sha256.New, macKey)
	m.Write(bodyJSON)
	outer.Body, outer.MAC = b64.EncodeToString(bodyJSON), b64.EncodeToString(m.Sum(nil))
	out, _ := json.Marshal(outer)
	return out
}

// noneConfig is a config without client-side encryption for volume ID
// vid (base64url), MACed under the public none-mode key: anyone can write
// one.
func noneConfig(vid string) []byte {
	b64 := base64.RawURLEncoding
	body := []byte(`{"volume_id":"` + vid + `","encryption":"none","sse":"","sse_kms_key_id":"","keys":[]}`)
	macKey, _ := hkdf.Key(sha256.New, []byte("coffer config without client-side encryption"), nil, "coffer config mac", 32)
	m := hmac.New(sha256.New, macKey)
	m.Write(body)
	out, _ := json.Marshal(struct {
		Format int    `json:"format"`
		Body   string `json:"body"`
		MAC    string `json:"mac"`
	}{1, b64.EncodeToString(body), b64.EncodeToString(m.Sum(nil))})
	return out
}

func getS3(t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putS3(t *testing.T, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// objectKeys lists the bucket.
func objectKeys(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	return keys
}

// reauthArgs is the coffer key reauth command line of v.
func reauthArgs(v *volume, extra ...string) []string {
	return append([]string{"key"}, v.args("reauth", extra...)...)
}

// TestForgedConfig replaces the config of a volume holding a file with
// forgeries built from its public bytes; the real key's mount refuses
// each with one line, in the foreground and as a daemon, and serves
// nothing; key reauth does not bless a forgery made to look pre-auth.
func TestForgedConfig(t *testing.T) {
	requireFUSE(t)
	srv := server(t, "versitygw")
	bucket := srv.newBucket(t)
	v := newVolume(t, srv.store(bucket))
	v.mount()
	content := []byte("written before the config was replaced\n")
	writeFile(t, v.path("kept"), content)
	v.unmount()

	c := srv.client()
	real := getS3(t, c, bucket, configKey)
	objects := objectKeys(t, c, bucket)
	mountArgs := v.args("mount", "--cache-dir", v.cacheDir)
	refused := func(t *testing.T, forged []byte, want ...string) {
		t.Helper()
		putS3(t, c, bucket, configKey, forged)
		t.Cleanup(func() {
			if mounted(t, v.mnt) { // the forgery was served: do not leave it mounted
				coffer(t, nil, "unmount", v.mnt)
			}
		})
		// The daemon first: should the forgery mount, a foreground mount
		// would serve it until the command times out.
		for _, d := range [][]string{{"--daemon"}, nil} {
			expectMountFailure(t, v.store.env, v.mnt, 1, want, append(mountArgs, d...)...)
			if t.Failed() {
				return
			}
		}
		if got := objectKeys(t, c, bucket); strings.Join(got, " ") != strings.Join(objects, " ") {
			t.Fatalf("the refused mounts changed the bucket: %v, was %v", got, objects)
		}
	}
	t.Run("real auth kept, forger's anchor", func(t *testing.T) {
		refused(t, forgeConfig(t, real, true, true), "failed authentication")
	})
	t.Run("fresh entries, forger's anchor", func(t *testing.T) {
		refused(t, forgeConfig(t, real, false, true), "failed authentication")
	})
	t.Run("made to look pre-auth", func(t *testing.T) {
		forged := forgeConfig(t, real, false, false)
		refused(t, forged, "predates entry authentication")
		// The upgrade the mount names does not bless the forger's keyring:
		// the volume's file does not open under it.
		r := coffer(t, v.store.env, reauthArgs(v, "--allow-empty")...)
		if r.code != 1 || !strings.Contains(r.stderr, "may be forged") {
			t.Fatalf("key reauth of a forgery: %v", r)
		}
		if !bytes.Equal(getS3(t, c, bucket, configKey), forged) {
			t.Fatal("the refused reauth wrote the config")
		}
	})
	t.Run("none mode", func(t *testing.T) {
		var outer struct{ Body string }
		var body struct {
			VolumeID string `json:"volume_id"`
		}
		json.Unmarshal(real, &outer)
		b, _ := base64.RawURLEncoding.DecodeString(outer.Body)
		json.Unmarshal(b, &body)
		refused(t, noneConfig(body.VolumeID), "do not mount it")
	})

	// The real config back: the file is there, and the mount serves it.
	putS3(t, c, bucket, configKey, real)
	v.mount()
	checkFile(t, v.path("kept"), content)
	v.unmount()
}

// TestPreAuthUpgrade: a volume whose config predates entry
// authentication (cipher/testdata/preauth.json, written by an older
// coffer) is refused by mount with a line naming coffer key reauth, which
// upgrades it with one conditional write; the volume then mounts, keeps
// what is written, and re-authenticates again.
func TestPreAuthUpgrade(t *testing.T) {
	requireFUSE(t)
	srv := server(t, "versitygw")
	bucket := srv.newBucket(t)
	raw, err := os.ReadFile("../cipher/testdata/preauth.json")
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		ConfigSym string `json:"config_sym"`
		SymKey    string `json:"sym_key"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	c := srv.client()
	putS3(t, c, bucket, configKey, []byte(vec.ConfigSym))
	dir := t.TempDir()
	key, _ := hex.DecodeString(vec.SymKey)
	v := &volume{t: t, store: srv.store(bucket), dir: dir, keyFile: filepath.Join(dir, "key"),
		cacheDir: filepath.Join(dir, "cache"), mnt: filepath.Join(dir, "mnt"), mountArgs: []string{"--writeback-delay", "200ms"}}
	if err := os.WriteFile(v.keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(v.mnt, 0o755)

	expectMountFailure(t, v.store.env, v.mnt, 1, []string{"coffer key reauth --store " + v.store.url}, v.args("mount", "--cache-dir", v.cacheDir)...)
	r := coffer(t, v.store.env, reauthArgs(v)...)
	if r.code != 1 || !strings.Contains(r.stderr, "--allow-empty") {
		t.Fatalf("key reauth of an empty pre-auth volume without --allow-empty: %v", r)
	}
	r = coffer(t, v.store.env, reauthArgs(v, "--allow-empty")...)
	if r.code != 0 || !strings.Contains(r.stdout, "upgraded volume") {
		t.Fatalf("key reauth --allow-empty: %v", r)
	}
	v.mount()
	content := []byte("written after the upgrade\n")
	writeFile(t, v.path("after"), content)
	v.unmount()
	upgraded := getS3(t, c, bucket, configKey)
	r = coffer(t, v.store.env, reauthArgs(v)...)
	if r.code != 0 || strings.Contains(r.stdout, "upgraded") || bytes.Equal(getS3(t, c, bucket, configKey), upgraded) {
		t.Fatalf("key reauth of the upgraded volume: %v", r)
	}
	v.mount()
	checkFile(t, v.path("after"), content)
	v.unmount()
}
