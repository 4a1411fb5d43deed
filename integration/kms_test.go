package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cofferfs/coffer/blobstore"
	cofferfs "github.com/cofferfs/coffer/fs"
	"github.com/cofferfs/coffer/integration/faultproxy"
)

// KMS root keys (DESIGN.md §2, kind kms) against local-kms, the KMS API
// on loopback that scripts/with-servers.sh kms starts, with the volumes on
// versitygw. coffer reaches KMS through a counting proxy (faultproxy), so
// the tests see every KMS call by operation.

// kmsServer is the local-kms that with-servers.sh started.
type kmsServer struct {
	endpoint, region string
}

func kmsTestServer(t *testing.T) kmsServer {
	t.Helper()
	k := kmsServer{endpoint: os.Getenv("COFFER_TEST_KMS_ENDPOINT"), region: os.Getenv("COFFER_TEST_KMS_REGION")}
	if k.endpoint == "" || k.region == "" {
		msg := "COFFER_TEST_KMS_ENDPOINT/_REGION not set: run under scripts/with-servers.sh kms"
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return k
}

func (k kmsServer) client() *kms.Client {
	return kms.New(kms.Options{
		BaseEndpoint: aws.String(k.endpoint),
		Region:       k.region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "coffer-test", SecretAccessKey: "coffer-test"}, nil
		}),
	})
}

// kmsKey is a KMS key a test created for itself (tests disable keys, so
// none shares the seeded ones).
type kmsKey struct {
	id, arn, alias string
}

func (k kmsServer) newKey(t *testing.T) kmsKey {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := k.client().CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("coffer " + t.Name())})
	if err != nil {
		t.Fatalf("local-kms CreateKey: %v", err)
	}
	key := kmsKey{id: *out.KeyMetadata.KeyId, arn: *out.KeyMetadata.Arn, alias: "alias/coffer-" + randomHex(6)}
	if _, err := k.client().CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &key.alias, TargetKeyId: &key.id}); err != nil {
		t.Fatalf("local-kms CreateAlias: %v", err)
	}
	return key
}

func (k kmsServer) disable(t *testing.T, key kmsKey) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := k.client().DisableKey(ctx, &kms.DisableKeyInput{KeyId: &key.id}); err != nil {
		t.Fatalf("local-kms DisableKey: %v", err)
	}
}

// proxy starts a counting proxy in front of local-kms.
func (k kmsServer) proxy(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(k.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// kmsEnv points coffer's KMS client at endpoint (the SDK's own variable,
// as a user would set it) with local-kms's region.
func (k kmsServer) env(endpoint string) []string {
	return []string{"AWS_ENDPOINT_URL_KMS=" + endpoint, "AWS_REGION=" + k.region}
}

// newKMSVolume initialises a volume on a fresh versitygw bucket whose root
// key is KMS key keyName, reaching KMS through endpoint. No key file
// exists: XDG_CONFIG_HOME is an empty directory, so not even the default
// key file could open the volume.
func newKMSVolume(t *testing.T, k kmsServer, endpoint, keyName string) *volume {
	t.Helper()
	store := newS3Store(t, "versitygw")
	dir := t.TempDir()
	store.env = append(append(store.env, k.env(endpoint)...), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	v := &volume{
		t: t, store: store, dir: dir,
		keyFlags:  []string{"--kms-key-id", keyName},
		cacheDir:  filepath.Join(dir, "cache"),
		mnt:       filepath.Join(dir, "mnt"),
		mountArgs: []string{"--writeback-delay", "200ms"},
	}
	if err := os.Mkdir(v.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	r := coffer(t, store.env, v.args("init")...)
	if r.code != 0 || strings.Contains(r.stdout, "created key file") {
		t.Fatalf("init with --kms-key-id: %v", r)
	}
	t.Cleanup(func() {
		if t.Failed() {
			v.dumpLog()
		}
	})
	return v
}

// withKey returns the command line of v's command cmd with the KMS key
// named key instead of the one v was made with.
func (v *volume) withKey(cmd, key string, extra ...string) []string {
	args := v.args(cmd, extra...)
	for i := range args {
		if args[i] == "--kms-key-id" {
			args[i+1] = key
			break
		}
	}
	return args
}

// configEntries reads the volume config's body (not authenticated: the
// test inspects and edits what the store holds).
func configEntries(t *testing.T, st blobstore.Store) (outer map[string]any, body map[string]any) {
	t.Helper()
	data, _ := getObject(t, st, cofferfs.ConfigKey)
	if err := json.Unmarshal(data, &outer); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(outer["body"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	return outer, body
}

// putConfigBody writes body back as the config, keeping the old MAC
// (which then fails: the tests check that KMS refuses first).
func putConfigBody(t *testing.T, st blobstore.Store, outer map[string]any, body map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(struct {
		Format int    `json:"format"`
		Body   string `json:"body"`
		MAC    any    `json:"mac"`
	}{1, base64.RawURLEncoding.EncodeToString(raw), outer["mac"]})
	if _, err := st.Put(context.Background(), cofferfs.ConfigKey, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func kmsEntries(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range body["keys"].([]any) {
		if e := e.(map[string]any); e["kind"] == "kms" {
			out = append(out, e)
		}
	}
	return out
}

// TestKMSRootKey: a volume initialised with --kms-key-id mounts with no
// key file and round-trips a tree; init makes one Encrypt call, each mount
// and command one Decrypt call, whether the key is named by its alias (as
// at init) or its ARN. The config lists one kms entry whose KMS ciphertext
// is the only copy of the root secret.
func TestKMSRootKey(t *testing.T) {
	requireFUSE(t)
	k := kmsTestServer(t)
	p := k.proxy(t)
	key := k.newKey(t)
	v := newKMSVolume(t, k, p.URL(), key.alias)
	if s := p.Stats(); s.Calls["Encrypt"] != 1 || s.Calls["Decrypt"] != 0 || len(s.Calls) != 1 {
		t.Fatalf("init made KMS calls %v, want one Encrypt", s.Calls)
	}
	_, body := configEntries(t, v.store.open(t))
	entries := kmsEntries(t, body)
	if len(entries) != 1 || len(body["keys"].([]any)) != 1 {
		t.Fatalf("config keys %v, want one kms entry", body["keys"])
	}
	if f := entries[0]["kms"].(map[string]any); f["key_id"] != key.alias || f["key_arn"] != key.arn {
		t.Fatalf("kms entry names %v, want %s and %s", f, key.alias, key.arn)
	}

	p.ResetStats()
	v.mount()
	if !mounted(t, v.mnt) {
		t.Fatal("not mounted")
	}
	want := map[string][]byte{
		"a.txt":           []byte("hello from a KMS-keyed volume\n"),
		"dir/sub/big.bin": pseudoRandom(9, 3<<20+17),
		"dir/empty":       {},
	}
	for name, data := range want {
		if err := os.MkdirAll(filepath.Dir(v.path(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(v.path(name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v.unmount()
	if n := p.Stats().Calls["Decrypt"]; n != 1 {
		t.Fatalf("the mount made %d Decrypt calls, want 1", n)
	}
	if left, _ := os.ReadDir(v.mnt); len(left) != 0 {
		t.Fatalf("files in the mountpoint directory itself: %v", left)
	}
	p.ResetStats()
	v.cacheDir = filepath.Join(v.dir, "cache-2")
	v.mount()
	for name, data := range want {
		got, err := os.ReadFile(v.path(name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s after remount: %d bytes, %v; want the %d written", name, len(got), err, len(data))
		}
	}
	v.unmount()
	if n := p.Stats().Calls["Decrypt"]; n != 1 {
		t.Fatalf("the second mount made %d Decrypt calls, want 1", n)
	}
	// An offline command, the key named by its ARN (the entry's key_arn).
	p.ResetStats()
	r := coffer(t, v.store.env, v.withKey("cat", key.arn, "/a.txt")...)
	if r.code != 0 || r.stdout != string(want["a.txt"]) {
		t.Fatalf("cat with the key's ARN: %v", r)
	}
	if s := p.Stats(); s.Calls["Decrypt"] != 1 || len(s.Calls) != 1 {
		t.Fatalf("cat made KMS calls %v, want one Decrypt", s.Calls)
	}
}

// TestKMSCiphertextMoved: the KMS ciphertext of a volume's root secret,
// copied into another volume's config or into an entry with another ID,
// does not open it: KMS binds the encryption context (volume, entry), so
// Decrypt refuses, and coffer says the config failed authentication.
func TestKMSCiphertextMoved(t *testing.T) {
	k := kmsTestServer(t)
	key := k.newKey(t)
	v1 := newKMSVolume(t, k, k.endpoint, key.arn)
	v2 := newKMSVolume(t, k, k.endpoint, key.arn)
	st1, st2 := v1.store.open(t), v2.store.open(t)
	_, body1 := configEntries(t, st1)
	moved := kmsEntries(t, body1)[0]

	cases := []struct {
		name string
		vol  *volume
		st   blobstore.Store
		edit func(e map[string]any)
	}{
		{"into another volume's entry", v2, st2, func(e map[string]any) { e["kms"] = moved["kms"] }},
		{"with its entry into another volume", v2, st2, func(e map[string]any) { e["id"], e["kms"] = moved["id"], moved["kms"] }},
		{"into an entry with another ID", v1, st1, func(e map[string]any) { e["id"] = randomHex(8) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := getObject(t, c.st, cofferfs.ConfigKey)
			defer c.st.Put(context.Background(), cofferfs.ConfigKey, bytes.NewReader(before), int64(len(before)), blobstore.PutOptions{})
			outer, body := configEntries(t, c.st)
			c.edit(kmsEntries(t, body)[0])
			putConfigBody(t, c.st, outer, body)
			r := coffer(t, c.vol.store.env, c.vol.args("ls", "/")...)
			if r.code != 1 || !strings.Contains(r.stderr, "failed authentication") || !strings.Contains(r.stderr, "encryption context") {
				t.Fatalf("ls of the volume with a moved KMS ciphertext: %v", r)
			}
			if strings.Count(strings.TrimRight(r.stderr, "\n"), "\n") != 0 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
		})
	}
	// The untouched volumes still open.
	for _, v := range []*volume{v1, v2} {
		if r := coffer(t, v.store.env, v.args("ls", "/")...); r.code != 0 {
			t.Fatalf("ls after the cases were undone: %v", r)
		}
	}
}

// TestKMSErrors: KMS denied, a disabled key and an unreachable endpoint
// each end a mount or command within seconds with one line that says so,
// exit 1.
func TestKMSErrors(t *testing.T) {
	requireFUSE(t)
	k := kmsTestServer(t)
	p := k.proxy(t)
	key := k.newKey(t)
	v := newKMSVolume(t, k, p.URL(), key.alias)
	mountArgs := func(vol *volume) []string {
		return vol.args("mount", "--cache-dir", vol.cacheDir)
	}

	t.Run("denied", func(t *testing.T) {
		p.Set(faultproxy.Fault{Kind: faultproxy.JSONError, Ops: []string{"Decrypt"}, Code: "AccessDeniedException"})
		defer p.Set()
		expectMountFailure(t, v.store.env, v.mnt, 1, []string{"kms denied decrypt with key " + strings.ToLower(key.alias)}, mountArgs(v)...)
		expectMountFailure(t, v.store.env, v.mnt, 1, []string{"kms denied decrypt"}, append(mountArgs(v), "--daemon")...)
	})
	t.Run("unreachable", func(t *testing.T) {
		endpoint := "http://127.0.0.1:" + strconv.Itoa(closedPort(t))
		env := append(append([]string{}, v.store.env...), k.env(endpoint)...)
		expectMountFailure(t, env, v.mnt, 1, []string{"cannot connect to kms at " + endpoint}, mountArgs(v)...)
		r := coffer(t, v.store.env, v.args("ls", "--kms-endpoint", endpoint, "/")...)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot connect to KMS at "+endpoint) || r.took > failFast {
			t.Fatalf("ls with --kms-endpoint at a closed port: %v", r)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		k.disable(t, key)
		expectMountFailure(t, v.store.env, v.mnt, 1, []string{"kms key " + strings.ToLower(key.alias) + " is disabled"}, mountArgs(v)...)
	})
	t.Run("not the volume's key", func(t *testing.T) {
		other := k.newKey(t)
		r := coffer(t, v.store.env, v.withKey("ls", other.arn, "/")...)
		if r.code != 1 || !strings.Contains(r.stderr, "wrong KMS key: "+other.arn) {
			t.Fatalf("ls with another KMS key: %v", r)
		}
	})
	t.Run("no kms entry", func(t *testing.T) {
		sym := newVolume(t, newS3Store(t, "versitygw"))
		r := coffer(t, append(sym.store.env, k.env(p.URL())...), sym.args("ls", "--kms-key-id", key.arn, "/")...)
		if r.code != 1 || !strings.Contains(r.stderr, "has no KMS root key") {
			t.Fatalf("ls of a sym-key volume with --kms-key-id: %v", r)
		}
	})
}

// kmsKeyAdd adds KMS key add to v's volume, opening it with open: coffer
// key add --open-kms-key-id OPEN --kms-key-id ADD.
func kmsKeyAdd(t *testing.T, v *volume, open, add string) string {
	t.Helper()
	args := append([]string{"key", "add", "--store", v.store.url}, v.store.args...)
	args = append(args, "--open-kms-key-id", open, "--kms-key-id", add)
	r := coffer(t, v.store.env, args...)
	if r.code != 0 {
		t.Fatalf("key add --kms-key-id %s: %v", add, r)
	}
	return strings.TrimSpace(r.stdout)
}

// TestKMSSecondKey: a second KMS key added with key add (one Decrypt to
// open, one Encrypt for the new entry), then the first disabled in KMS:
// the volume still mounts and reads with the second, and the first says
// it is disabled.
func TestKMSSecondKey(t *testing.T) {
	requireFUSE(t)
	k := kmsTestServer(t)
	p := k.proxy(t)
	first, second := k.newKey(t), k.newKey(t)
	v := newKMSVolume(t, k, p.URL(), first.alias)
	src := filepath.Join(v.dir, "src.bin")
	want := pseudoRandom(11, 200_000)
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := coffer(t, v.store.env, v.args("put", src, "/f.bin")...); r.code != 0 {
		t.Fatalf("put: %v", r)
	}
	p.ResetStats()
	id := kmsKeyAdd(t, v, first.alias, second.alias)
	if s := p.Stats(); s.Calls["Decrypt"] != 1 || s.Calls["Encrypt"] != 1 || len(s.Calls) != 2 {
		t.Fatalf("key add made KMS calls %v, want one Decrypt and one Encrypt", s.Calls)
	}
	list := append(append([]string{"key", "list", "--store", v.store.url}, v.store.args...), "--kms-key-id", second.arn, "--count=false")
	r := coffer(t, v.store.env, list...)
	if r.code != 0 || !strings.Contains(r.stdout, id+"  kms "+second.arn) || !strings.Contains(r.stdout, "kms "+first.arn) {
		t.Fatalf("key list: %v", r)
	}

	k.disable(t, first)
	r = coffer(t, v.store.env, v.args("cat", "/f.bin")...)
	if r.code != 1 || !strings.Contains(r.stderr, "KMS key "+first.alias+" is disabled") {
		t.Fatalf("cat with the disabled key: %v", r)
	}
	p.ResetStats()
	v.keyFlags = []string{"--kms-key-id", second.id} // the bare key ID of the ARN stored
	v.mount()
	got, err := os.ReadFile(v.path("f.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read with the second key: %d bytes, %v", len(got), err)
	}
	if err := os.WriteFile(v.path("g.txt"), []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	v.unmount()
	if n := p.Stats().Calls["Decrypt"]; n != 1 {
		t.Fatalf("the mount with the second key made %d Decrypt calls, want 1", n)
	}
}

// TestKMSExtraEntries: a config listing three KMS entries makes one
// Decrypt call, for the entry of the key named, and none for the others,
// whichever of the three opens it and however it is named (the alias
// given at add time, the ARN, the bare key ID).
func TestKMSExtraEntries(t *testing.T) {
	k := kmsTestServer(t)
	p := k.proxy(t)
	keys := []kmsKey{k.newKey(t), k.newKey(t), k.newKey(t)}
	v := newKMSVolume(t, k, p.URL(), keys[0].alias)
	kmsKeyAdd(t, v, keys[0].alias, keys[1].alias)
	kmsKeyAdd(t, v, keys[1].arn, keys[2].arn)
	_, body := configEntries(t, v.store.open(t))
	if n := len(kmsEntries(t, body)); n != 3 {
		t.Fatalf("%d kms entries, want 3", n)
	}
	for _, name := range []string{keys[2].arn, keys[2].id, keys[1].alias, keys[0].arn, keys[0].id} {
		p.ResetStats()
		r := coffer(t, v.store.env, v.withKey("ls", name, "/")...)
		if r.code != 0 {
			t.Fatalf("ls with %s: %v", name, r)
		}
		if s := p.Stats(); s.Calls["Decrypt"] != 1 || len(s.Calls) != 1 {
			t.Fatalf("ls with %s made KMS calls %v, want one Decrypt", name, s.Calls)
		}
	}
	// Disabled, a key's entry fails after its one call; no other entry is
	// tried with it.
	k.disable(t, keys[1])
	p.ResetStats()
	r := coffer(t, v.store.env, v.withKey("ls", keys[1].alias, "/")...)
	if r.code != 1 || !strings.Contains(r.stderr, "is disabled") || p.Stats().Calls["Decrypt"] != 1 {
		t.Fatalf("ls with the disabled key: %v; KMS calls %v", r, p.Stats().Calls)
	}
}
