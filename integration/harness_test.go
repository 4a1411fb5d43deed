package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// storeRef is one fresh, empty store a test mounts.
type storeRef struct {
	url     string
	args    []string // store flags for coffer (--endpoint ...)
	env     []string // credentials for coffer's AWS SDK chain
	dataDir string   // where the server keeps this store's objects on disk
	opts    blobstore.Options
}

// open returns a direct handle on the store, bypassing coffer's
// filesystem (for scans, tampering and checks).
func (s *storeRef) open(t *testing.T) blobstore.Store {
	t.Helper()
	st, err := blobstore.Open(context.Background(), s.url, s.opts)
	if err != nil {
		t.Fatalf("opening store %s directly: %v", s.url, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// backend makes fresh stores of one kind.
type backend struct {
	name     string
	newStore func(t *testing.T) *storeRef
}

var backends = []backend{
	{"local", newLocalStore},
	{"versitygw", func(t *testing.T) *storeRef { return newS3Store(t, "versitygw") }},
}

// forEachBackend runs f as a subtest against every backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	requireFUSE(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func newLocalStore(t *testing.T) *storeRef {
	dir := filepath.Join(t.TempDir(), "store")
	return &storeRef{url: dir, dataDir: dir}
}

// s3Server is a server scripts/with-servers.sh started.
type s3Server struct {
	name, endpoint, ak, sk, dataDir string
}

// server returns the named S3 test server, or skips (fails under
// COFFER_REQUIRE_SERVERS=1) when it is not running.
func server(t *testing.T, name string) s3Server {
	t.Helper()
	env := func(suffix string) string { return os.Getenv("COFFER_TEST_" + strings.ToUpper(name) + "_" + suffix) }
	srv := s3Server{name: name, endpoint: env("ENDPOINT"), ak: env("ACCESS_KEY"), sk: env("SECRET_KEY"), dataDir: env("DATA_DIR")}
	if srv.endpoint == "" || srv.ak == "" || srv.sk == "" {
		msg := "COFFER_TEST_" + strings.ToUpper(name) + "_ENDPOINT/_ACCESS_KEY/_SECRET_KEY not set: run under scripts/with-servers.sh " + name
		if os.Getenv("COFFER_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return srv
}

func (srv s3Server) client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(srv.endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: srv.ak, SecretAccessKey: srv.sk}, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// newBucket creates a fresh bucket for one test.
func (srv s3Server) newBucket(t *testing.T) string {
	t.Helper()
	bucket := "coffer-it-" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := srv.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("%s: create bucket: %v", srv.name, err)
	}
	return bucket
}

func (srv s3Server) store(bucket string) *storeRef {
	s := &storeRef{
		url:  "s3://" + bucket,
		args: []string{"--endpoint", srv.endpoint, "--path-style", "--region", "us-east-1"},
		env:  []string{"AWS_ACCESS_KEY_ID=" + srv.ak, "AWS_SECRET_ACCESS_KEY=" + srv.sk},
		opts: blobstore.Options{Endpoint: srv.endpoint, Region: "us-east-1", PathStyle: true, AccessKeyID: srv.ak, SecretAccessKey: srv.sk},
	}
	if srv.dataDir != "" {
		s.dataDir = filepath.Join(srv.dataDir, bucket)
	}
	return s
}

func newS3Store(t *testing.T, name string) *storeRef {
	srv := server(t, name)
	return srv.store(srv.newBucket(t))
}

// result is the outcome of one coffer command.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %v; stdout %q; stderr %q", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// cofferEnv is the environment of coffer processes: the test's, minus
// anything that would point coffer elsewhere, plus extra.
func cofferEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") && k != "AWS_CA_BUNDLE" || strings.HasPrefix(k, "COFFER_") || strings.HasPrefix(k, "XDG_") || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+testHome, "XDG_RUNTIME_DIR="+filepath.Join(testHome, "run"), "AWS_EC2_METADATA_DISABLED=true")
	return append(env, extra...)
}

// coffer runs the coffer binary and returns its result.
func coffer(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cofferBin, args...)
	cmd.Env = cofferEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running coffer %v: %v", args, err)
	}
	return r
}

// volume is one coffer volume of a test: its store, key, cache directory
// and mountpoint.
type volume struct {
	t         *testing.T
	store     *storeRef
	dir       string
	keyFile   string
	keyFlags  []string // root key flags instead of --key-file keyFile (a KMS key)
	cacheDir  string
	mnt       string
	modeArgs  []string // --encryption / --sse flags, given to init and mount
	mountArgs []string // extra mount flags
	mounted   bool
	cleanup   sync.Once
}

// volumeOption adjusts a volume before init.
type volumeOption func(*volume)

// withModes sets the --encryption / --sse flags of init and mount.
func withModes(args ...string) volumeOption { return func(v *volume) { v.modeArgs = args } }

// withMountArgs adds flags to every mount.
func withMountArgs(args ...string) volumeOption {
	return func(v *volume) { v.mountArgs = append(v.mountArgs, args...) }
}

// newVolume makes a key and initialises a volume in store.
func newVolume(t *testing.T, store *storeRef, opts ...volumeOption) *volume {
	t.Helper()
	dir := t.TempDir()
	v := &volume{
		t: t, store: store, dir: dir,
		keyFile:   filepath.Join(dir, "key"),
		cacheDir:  filepath.Join(dir, "cache"),
		mnt:       filepath.Join(dir, "mnt"),
		mountArgs: []string{"--writeback-delay", "200ms", "--part-size", "5MiB"},
	}
	// COFFER_TEST_MOUNT_ARGS adds flags to every mount, to run the whole
	// suite under other settings (e.g. --writeback-cache).
	v.mountArgs = append(v.mountArgs, strings.Fields(os.Getenv("COFFER_TEST_MOUNT_ARGS"))...)
	for _, o := range opts {
		o(v)
	}
	if err := os.Mkdir(v.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := coffer(t, nil, "keygen", "--out", v.keyFile); r.code != 0 {
		t.Fatalf("keygen: %v", r)
	}
	if r := coffer(t, store.env, v.args("init")...); r.code != 0 {
		t.Fatalf("init: %v", r)
	}
	t.Cleanup(func() {
		if t.Failed() {
			v.dumpLog()
		}
	})
	return v
}

// keyArgs are the key flags of this volume (none in --encryption none).
func (v *volume) keyArgs() []string {
	if v.keyFlags != nil {
		return v.keyFlags
	}
	for _, a := range v.modeArgs {
		if a == "none" {
			return nil
		}
	}
	return []string{"--key-file", v.keyFile}
}

// args is a coffer command line for this volume's store, keys and modes.
func (v *volume) args(cmd string, extra ...string) []string {
	args := append([]string{cmd, "--store", v.store.url}, v.store.args...)
	args = append(args, v.keyArgs()...)
	args = append(args, v.modeArgs...)
	return append(args, extra...)
}

// mount mounts the volume in the background and fails the test if that
// does not work.
func (v *volume) mount(extra ...string) {
	v.t.Helper()
	args := v.args("mount", append(append([]string{"--daemon", "--cache-dir", v.cacheDir}, v.mountArgs...), extra...)...)
	r := coffer(v.t, v.store.env, append(args, v.mnt)...)
	if r.code != 0 {
		v.t.Fatalf("mount: %v", r)
	}
	v.mounted = true
	v.cleanup.Do(func() {
		v.t.Cleanup(func() {
			if v.mounted {
				v.forceUnmount()
			}
		})
	})
}

// unmount unmounts and waits until every pending upload is done.
func (v *volume) unmount() {
	v.t.Helper()
	r := coffer(v.t, nil, "unmount", v.mnt)
	if r.code != 0 {
		v.t.Fatalf("unmount: %v", r)
	}
	v.mounted = false
}

// remount unmounts and mounts again; with freshCache the new mount starts
// with an empty cache directory, so every read comes from the store.
func (v *volume) remount(freshCache bool) {
	v.t.Helper()
	v.unmount()
	if freshCache {
		v.cacheDir = filepath.Join(v.dir, "cache-"+randomHex(4))
	}
	v.mount()
}

// forceUnmount is the cleanup of a test that left its mount behind.
func (v *volume) forceUnmount() {
	r := coffer(v.t, nil, "unmount", v.mnt)
	if r.code != 0 {
		v.t.Logf("cleanup: coffer unmount: %v; detaching", r)
		syscall.Unmount(v.mnt, syscall.MNT_DETACH)
	}
	v.mounted = false
}

// offline opens the volume in the test process, beside any mount, through
// package fs: read-only, with its own temporary cache and no metadata
// cache, so what it reads is what the store holds, never what a mount has
// staged. It covers the modes without --sse.
func (v *volume) offline() *cofferfs.Volume {
	v.t.Helper()
	opts := cofferfs.Options{Store: v.store.open(v.t), ReadOnly: true, MetadataTTL: -1}
	for i, a := range v.modeArgs {
		switch {
		case a == "--sse":
			v.t.Fatalf("offline: --sse volumes are not supported (modes %q)", v.modeArgs)
		case a == "--encryption" && i+1 < len(v.modeArgs):
			opts.Encryption = v.modeArgs[i+1]
		}
	}
	if opts.Encryption != cipher.EncryptionNone {
		root, err := cipher.LoadKeyFile(v.keyFile)
		if err != nil {
			v.t.Fatalf("offline: %v", err)
		}
		opts.Roots = []*cipher.RootKey{root}
	}
	ctx := context.Background()
	ov, err := cofferfs.OpenVolume(ctx, opts)
	if err != nil {
		v.t.Fatalf("offline: open volume: %v", err)
	}
	v.t.Cleanup(func() { ov.Close(ctx) })
	return ov
}

// waitStored waits until the store holds p (a background upload after
// the writeback delay) and returns its attributes as stored. The wait is
// not a measurement: it only bounds a hang.
func waitStored(t *testing.T, ov *cofferfs.Volume, p string) cofferfs.Attr {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		a, err := ov.Stat(context.Background(), p)
		if err == nil {
			return a
		}
		if !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("stat %s in the store: %v", p, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not in the store a minute after it was closed", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readStored reads the whole of p from the store.
func readStored(t *testing.T, ov *cofferfs.Volume, p string) []byte {
	t.Helper()
	ctx := context.Background()
	a, err := ov.Stat(ctx, p)
	if err != nil {
		t.Fatalf("stat %s in the store: %v", p, err)
	}
	h, err := ov.Open(ctx, p, os.O_RDONLY)
	if err != nil {
		t.Fatalf("open %s in the store: %v", p, err)
	}
	defer h.Close(ctx)
	buf := make([]byte, a.Size+1)
	n, err := h.ReadAt(ctx, buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read %s from the store: %v", p, err)
	}
	return buf[:n]
}

// path is the path of name inside the mount.
func (v *volume) path(name ...string) string {
	return filepath.Join(append([]string{v.mnt}, name...)...)
}

// dumpLog shows the end of the daemon's log after a failure.
func (v *volume) dumpLog() {
	logs, _ := filepath.Glob(filepath.Join(v.dir, "cache*", "coffer.log"))
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		v.t.Logf("%s:\n%s", l, data)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
