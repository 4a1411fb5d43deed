package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
	"github.com/cofferfs/coffer/integration/faultproxy"
)

// openKeyring opens the volume config in st with the key in keyFile.
func openKeyring(t *testing.T, st blobstore.Store, keyFile string) (*cipher.Keyring, error) {
	t.Helper()
	root, err := cipher.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cofferfs.ReadConfig(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Open(root)
}

// seedVolume stores files objects of a client-mode volume directly (the
// layout fs writes: directory markers, encrypted names, sealed metadata,
// envelope bodies), spread over dirs directories /<prefix>dNNN, so a test gets
// thousands of objects in seconds. It returns every file's content by
// path and the number of objects written.
func seedVolume(t *testing.T, st blobstore.Store, kr *cipher.Keyring, prefix string, dirs, files int) (map[string][]byte, int) {
	t.Helper()
	ctx := context.Background()
	names := kr.Names()
	type object struct {
		key  string
		meta map[string]string
		body []byte
	}
	now := time.Now().UnixNano()
	var objs []object
	want := map[string][]byte{}
	dirKeys := make([]string, dirs)
	for d := range dirs {
		name := fmt.Sprintf("%sd%03d", prefix, d)
		seg, _, err := names.EncryptSegment("/", name)
		if err != nil {
			t.Fatal(err)
		}
		dirKeys[d] = seg
		ok, _ := kr.NewObjectKey()
		meta, err := kr.SealMetadata(ok, "/"+name, cipher.Attr{Mode: syscall.S_IFDIR | 0o755, UID: 0, GID: 0, MtimeNs: now})
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{key: seg + "/", meta: meta})
	}
	for i := range files {
		d := i % dirs
		dir := fmt.Sprintf("/%sd%03d", prefix, d)
		name := fmt.Sprintf("f%05d", i)
		seg, _, err := names.EncryptSegment(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		p := dir + "/" + name
		data := pseudoRandom(uint64(i), 200+i%300)
		want[p] = data
		ok, _ := kr.NewObjectKey()
		meta, err := kr.SealMetadata(ok, p, cipher.Attr{Mode: syscall.S_IFREG | 0o644, MtimeNs: now})
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		enc := ok.NewEncrypter(&body)
		enc.Write(data)
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{key: dirKeys[d] + "/" + seg, meta: meta, body: body.Bytes()})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, o := range objs {
		g.Go(func() error {
			_, err := st.Put(gctx, o.key, bytes.NewReader(o.body), int64(len(o.body)), blobstore.PutOptions{Metadata: o.meta})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("seeding the volume: %v", err)
	}
	return want, len(objs)
}

// newMemLocalStore is a local store in /dev/shm (a temporary directory
// where there is none).
func newMemLocalStore(t *testing.T) *storeRef {
	t.Helper()
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "coffer-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &storeRef{url: filepath.Join(dir, "store"), dataDir: filepath.Join(dir, "store")}
}

// serverGenerations counts the objects of a versitygw store by KEK
// generation from the server's own storage (its POSIX backend keeps an
// object's user metadata as JSON in the user.metadata extended attribute
// of its file, or of its directory for a "dir/" marker): an account that
// goes through no coffer code and costs no request.
func serverGenerations(t *testing.T, st *storeRef) map[uint32]int {
	t.Helper()
	if st.dataDir == "" {
		t.Fatal("no data dir for the server's store")
	}
	out := map[uint32]int{}
	buf := make([]byte, 4096)
	err := filepath.WalkDir(st.dataDir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || p == st.dataDir || strings.HasSuffix(filepath.ToSlash(p), "/"+configKey) {
			return err
		}
		n, err := unix.Getxattr(p, "user.metadata", buf)
		if err != nil {
			if !d.IsDir() {
				return fmt.Errorf("%s: no user.metadata: %w", p, err)
			}
			return nil // a prefix without a marker
		}
		var meta map[string]string
		if err := json.Unmarshal(buf[:n], &meta); err != nil {
			return fmt.Errorf("%s: user.metadata: %w", p, err)
		}
		g, err := cipher.MetadataGeneration(meta)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out[g]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// byGeneration counts the store's objects by KEK generation.
func byGeneration(t *testing.T, st blobstore.Store) map[uint32]int {
	t.Helper()
	c, err := cofferfs.CountGenerations(context.Background(), st, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Malformed != 0 || c.Other != 0 {
		t.Fatalf("%d objects with malformed metadata, %d not coffer's", c.Malformed, c.Other)
	}
	return c.ByGeneration
}

// startCoffer runs coffer in the background; lines of its stderr go to
// the returned channel (closed at EOF).
func startCoffer(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer, <-chan string) {
	t.Helper()
	cmd := exec.Command(cofferBin, args...)
	cmd.Env = cofferEnv(env)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, &stdout, lines
}

// rotateSummary parses rotate's last line on stdout.
var rotateSummary = regexp.MustCompile(`onto KEK generation (\d+) \((added|resumed)\): (\d+) objects, (\d+) rewrapped, (\d+) already on it(; retired generation ([\d, ]+))?`)

// TestRotateManyObjects: coffer rotate over 10,000 objects, killed with
// SIGKILL half-way and run again: the rerun resumes the same generation,
// skips what was done, rewraps the rest and retires the old generation;
// no object is left on it, every file reads back, and no body byte
// crossed the wire (versitygw, counted by integration/faultproxy in
// front of it; the local backend's Store-level count is fs's TestRotate).
func TestRotateManyObjects(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			st := b.newStore(t)
			if b.name == "local" {
				st = newMemLocalStore(t) // 10,000 fsyncs on a disk take longer than the rest of the test
			}
			v := newVolume(t, st)
			direct := st.open(t)
			kr, err := openKeyring(t, direct, v.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			want, objects := seedVolume(t, direct, kr, "", 100, 10000)
			t.Logf("seeded %d objects in %v", objects, time.Since(start).Round(time.Millisecond))

			args := v.args("rotate", "--mount-grace", "0", "--concurrency", "16")
			var proxy *faultproxy.Proxy
			if b.name != "local" {
				if proxy, err = faultproxy.New(server(t, b.name).endpoint); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { proxy.Close() })
				args = append(v.args("rotate", "--mount-grace", "0", "--concurrency", "16"), "--endpoint", proxy.URL())
			}
			start = time.Now()
			cmd, _, lines := startCoffer(t, st.env, args...)
			killed := false
			var seen []string
			for line := range lines {
				seen = append(seen, line)
				if !killed && strings.HasSuffix(line, "(50%)") {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			}
			cmd.Wait()
			if !killed {
				t.Fatalf("rotate never reported 50%%: %q", seen)
			}
			t.Logf("killed after %v", time.Since(start).Round(time.Millisecond))
			if kr, _ := openKeyring(t, direct, v.keyFile); len(kr.Generations()) != 2 {
				t.Fatalf("after the kill the keyring holds generations %v, want [1 2]", kr.Generations())
			}

			start = time.Now()
			r := coffer(t, st.env, args...)
			t.Logf("resumed rotation: %v", time.Since(start).Round(time.Millisecond))
			m := rotateSummary.FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil {
				t.Fatalf("resumed rotate: %v", r)
			}
			// The rerun's HEADs tell what the killed run did: about half
			// of the objects are on generation 2 already.
			rewrapped, _ := strconv.Atoi(m[4])
			already, _ := strconv.Atoi(m[5])
			if m[1] != "2" || m[2] != "resumed" || m[3] != strconv.Itoa(objects) || rewrapped+already != objects ||
				already < objects/3 || rewrapped < objects/3 || m[7] != "1" {
				t.Fatalf("resumed rotate %q: want generation 2 resumed over %d objects, about half already on it, generation 1 retired", m[0], objects)
			}
			count := byGeneration
			if b.name != "local" {
				count = func(t *testing.T, _ blobstore.Store) map[uint32]int { return serverGenerations(t, st) }
			}
			if after := count(t, direct); len(after) != 1 || after[2] != objects {
				t.Fatalf("after the rotation: objects by generation %v, want all %d on 2", after, objects)
			}
			kr, err = openKeyring(t, direct, v.keyFile)
			if err != nil || fmt.Sprint(kr.Generations()) != "[2]" {
				t.Fatalf("keyring after the rotation: %v %v", kr, err)
			}
			if proxy != nil {
				// Bodies would cross as GetObject, PutObject or parts. The
				// two runs' only ones are the config's reads and writes
				// (about 1.5 KiB each) and the empty markers' rewrites;
				// the seeded bodies are 3.5 MB.
				s := proxy.Stats()
				t.Logf("requests %v; bytes up %v; bytes down %v", s.Requests, s.BytesUp, s.BytesDown)
				for _, op := range []string{"UploadPart", "UploadPartCopy", "CreateMultipartUpload"} {
					if s.Requests[op] != 0 {
						t.Errorf("%d %s requests", s.Requests[op], op)
					}
				}
				if s.Requests["GetObject"] > 10 || s.BytesDown["GetObject"] > 20<<10 || s.BytesUp["PutObject"] > 20<<10 || s.BytesUp["CopyObject"] != 0 {
					t.Errorf("rotate moved object bodies: %d GetObject requests, %d bytes down; %d bytes up in PutObject, %d in CopyObject",
						s.Requests["GetObject"], s.BytesDown["GetObject"], s.BytesUp["PutObject"], s.BytesUp["CopyObject"])
				}
				if s.Requests["CopyObject"] < objects-100 {
					t.Errorf("%d CopyObject requests for %d objects", s.Requests["CopyObject"], objects)
				}
			}
			ov := v.offline()
			n := 0
			for p, data := range want {
				if n++; n%50 != 0 {
					continue
				}
				if got := readStored(t, ov, p); !bytes.Equal(got, data) {
					t.Fatalf("%s after the rotation: %d bytes, want %d", p, len(got), len(data))
				}
			}
			if ents, err := ov.ReadDir(context.Background(), "/d007"); err != nil || len(ents) != 100 {
				t.Fatalf("readdir /d007 after the rotation: %d entries, %v", len(ents), err)
			}
		})
	}
}

// TestRotateUnderMount: a mount reads and writes throughout a rotation
// (coffer rotate with the default steps, a short --mount-grace): every
// file keeps its content, the files written during and after it land on
// the new generation, nothing is left on the old one, and the mount
// logs that it picked the generation up.
func TestRotateUnderMount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		v := newVolume(t, b.newStore(t), withMountArgs("--metadata-ttl", "1s"))
		v.mount()
		if err := os.MkdirAll(v.path("before", "deep"), 0o755); err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{}
		for i := range 40 {
			p := filepath.Join("before", "deep", fmt.Sprintf("f%02d", i))
			want[p] = pseudoRandom(uint64(1000+i), 1000+i*300)
			writeFile(t, v.path(p), want[p])
		}
		if err := os.Symlink("deep/f01", v.path("before", "link")); err != nil {
			t.Fatal(err)
		}
		v.remount(false) // everything stored, under generation 1

		var (
			mu      sync.Mutex
			written []string
			stop    = make(chan struct{})
			failure = make(chan error, 1)
		)
		go func() {
			defer close(failure)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("during-%03d", i)
				data := pseudoRandom(uint64(5000+i), 2000+i*7)
				if err := os.WriteFile(v.path(p), data, 0o644); err != nil {
					failure <- err
					return
				}
				mu.Lock()
				want[p], written = data, append(written, p)
				old := filepath.Join("before", "deep", fmt.Sprintf("f%02d", i%40))
				oldData := want[old]
				mu.Unlock()
				if got, err := os.ReadFile(v.path(old)); err != nil || !bytes.Equal(got, oldData) {
					failure <- fmt.Errorf("read %s during the rotation: %d bytes, %v", old, len(got), err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		r := coffer(t, v.store.env, v.args("rotate", "--mount-grace", "3s", "--concurrency", "4")...)
		if r.code != 0 || !strings.Contains(r.stdout, "onto KEK generation 2 (added)") || !strings.Contains(r.stdout, "retired generation 1") {
			t.Fatalf("rotate under a mount: %v", r)
		}
		time.Sleep(1500 * time.Millisecond) // the mount writes on after the retirement
		close(stop)
		if err := <-failure; err != nil {
			t.Fatal(err)
		}
		v.unmount()
		if len(written) < 10 {
			t.Fatalf("only %d files written during the rotation", len(written))
		}
		direct := v.store.open(t)
		if gens := byGeneration(t, direct); len(gens) != 1 || gens[2] == 0 {
			t.Fatalf("objects by generation after the rotation: %v, want all on 2", gens)
		}
		logs, _ := filepath.Glob(filepath.Join(v.dir, "cache*", "coffer.log"))
		var log []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			log = append(log, b...)
		}
		if !bytes.Contains(log, []byte("KEK generations updated from the volume config")) {
			t.Fatalf("the mount's log does not say it picked up the new generation:\n%s", tail(string(log), 20))
		}
		ov := v.offline()
		for p, data := range want {
			if got := readStored(t, ov, "/"+filepath.ToSlash(p)); !bytes.Equal(got, data) {
				t.Fatalf("%s after the rotation: %d bytes, want %d", p, len(got), len(data))
			}
		}
		if target, err := ov.Readlink(context.Background(), "/before/link"); err != nil || target != "deep/f01" {
			t.Fatalf("symlink after the rotation: %q %v", target, err)
		}
	})
}

// TestKeyAddRemove: after key add of a new key and key remove of the
// old, the old key opens nothing written afterwards, the new one opens
// everything; and once rotate ran, not even the keyring the old key
// opened before its removal (which its holder may have kept) unwraps
// the objects written afterwards.
func TestKeyAddRemove(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.newStore(t)
			v := newVolume(t, st)
			direct := st.open(t)
			oldKR, err := openKeyring(t, direct, v.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := seedVolume(t, direct, oldKR, "before-", 2, 20)
			oldKey := v.keyFile
			newKey := filepath.Join(v.dir, "new.key")
			if r := coffer(t, nil, "keygen", "--out", newKey); r.code != 0 {
				t.Fatal(r)
			}
			r := coffer(t, st.env, keyCmd(v, "add", "--new-key-file", newKey)...)
			newID := strings.TrimSpace(r.stdout)
			if r.code != 0 || len(newID) != 16 {
				t.Fatalf("key add: %v", r)
			}
			oldID := ""
			r = coffer(t, st.env, keyCmd(v, "list", "--count=false")...)
			for _, line := range strings.Split(r.stdout, "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[1] == "sym" && f[0] != newID {
					oldID = f[0]
				}
			}
			if r.code != 0 || oldID == "" {
				t.Fatalf("key list: %v", r)
			}
			if r := coffer(t, st.env, keyCmd(v, "remove", oldID)...); r.code != 1 || !strings.Contains(r.stderr, "given on the command line") {
				t.Fatalf("key remove of the key in use: %v", r)
			}
			v.keyFile = newKey
			if r := coffer(t, st.env, keyCmd(v, "remove", oldID)...); r.code != 0 {
				t.Fatalf("key remove: %v", r)
			}
			if r := coffer(t, st.env, v.args("rotate", "--mount-grace", "0")...); r.code != 0 {
				t.Fatalf("rotate: %v", r)
			}
			newKR, err := openKeyring(t, direct, newKey)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := seedVolume(t, direct, newKR, "after-", 2, 20)

			if _, err := openKeyring(t, direct, oldKey); err == nil {
				t.Fatal("the removed key opens the config written after its removal")
			}
			v.keyFile = oldKey
			if r := coffer(t, st.env, keyCmd(v, "list", "--count=false")...); r.code != 1 || !strings.Contains(r.stderr, "wrong key") {
				t.Fatalf("key list with the removed key: %v", r)
			}
			v.keyFile = newKey
			ov := v.offline()
			for _, files := range []map[string][]byte{before, after} {
				for p, data := range files {
					if got := readStored(t, ov, p); !bytes.Equal(got, data) {
						t.Fatalf("%s with the new key: %d bytes, want %d", p, len(got), len(data))
					}
				}
			}
			// The keyring the old key opened before its removal unwraps
			// none of the objects: rotate moved them all to a KEK it never saw.
			opened := 0
			for e, err := range direct.List(context.Background(), "", "") {
				if err != nil {
					t.Fatal(err)
				}
				if e.Key == configKey {
					continue
				}
				info, err := direct.Head(context.Background(), e.Key)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := oldKR.OpenObjectKey(info.Metadata); err == nil {
					opened++
				}
			}
			if opened != 0 {
				t.Fatalf("the old keyring unwraps %d objects after the rotation", opened)
			}
		})
	}
}

// checkSSEC reads every object of bucket with key (and expects success)
// and with the other key (and expects a refusal), through the AWS SDK.
func readsWith(t *testing.T, srv s3Server, bucket string, key []byte) (ok, refused int, failures []string) {
	t.Helper()
	c := srv.client()
	ctx := context.Background()
	for _, k := range listBucket(t, srv, bucket) {
		_, err := c.GetObject(ctx, getWithKey(bucket, k, key))
		if err == nil {
			ok++
		} else {
			refused++
			failures = append(failures, k)
		}
	}
	return ok, refused, failures
}

// TestRotateSSEC: coffer rotate --sse-c-new-key-file on SeaweedFS
// re-encrypts every object server-side (the config included); objects
// re-encrypted already are skipped; afterwards the AWS SDK reads every
// object with the new key and none with the old; the volume mounts with
// the new key file and reads back.
func TestRotateSSEC(t *testing.T) {
	srv := server(t, "seaweedfs")
	bucket := srv.newBucket(t)
	st := srv.store(bucket)
	dir := t.TempDir()
	oldKey, newKey := pseudoRandom(91, 32), pseudoRandom(92, 32)
	oldFile, newFile := filepath.Join(dir, "old.ssec"), filepath.Join(dir, "new.ssec")
	writeSSECKeyFile(t, oldFile, oldKey)
	writeSSECKeyFile(t, newFile, newKey)
	modes := []string{"--encryption", "none", "--sse", "sse-c", "--sse-c-key-file", oldFile}
	v := newVolume(t, st, withModes(modes...))

	ctx := context.Background()
	opts := st.opts
	opts.SSE = blobstore.SSEConfig{Mode: blobstore.SSEC, CKeys: [][]byte{oldKey}}
	old, err := blobstore.Open(ctx, st.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	vol, err := cofferfs.OpenVolume(ctx, cofferfs.Options{Store: old, Encryption: "none", SSE: opts.SSE, CacheDir: t.TempDir(), WritebackDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, d := range []string{"/docs", "/docs/inner"} {
		if _, err := vol.Mkdir(ctx, d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		p := fmt.Sprintf("/docs/inner/f%02d", i)
		if i%2 == 0 {
			p = fmt.Sprintf("/docs/f%02d", i)
		}
		want[p] = pseudoRandom(uint64(300+i), 100+i*1000)
	}
	want["/big"] = pseudoRandom(399, 6<<20+17) // multipart
	for p, data := range want {
		h, _, err := vol.Create(ctx, p, 0o644, os.O_WRONLY)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(ctx, data, 0); err != nil {
			t.Fatal(err)
		}
		h.Close(ctx)
	}
	if _, err := vol.Symlink(ctx, "docs/f00", "/link"); err != nil {
		t.Fatal(err)
	}
	if err := vol.Close(ctx); err != nil {
		t.Fatal(err)
	}
	keys := listBucket(t, srv, bucket)
	if okOld, _, fails := readsWith(t, srv, bucket, oldKey); okOld != len(keys) {
		t.Fatalf("before the rotation the old key reads %d of %d objects (not %v)", okOld, len(keys), fails)
	}

	// Three objects re-encrypted already, as an interrupted run leaves them.
	opts.SSE.CKeys = [][]byte{newKey, oldKey}
	both, err := blobstore.Open(ctx, st.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer both.Close()
	for _, k := range keys[:3] {
		if done, err := both.(interface {
			RekeySSEC(context.Context, string) (bool, error)
		}).RekeySSEC(ctx, k); err != nil || !done {
			t.Fatalf("re-encrypting %s ahead: %v %v", k, done, err)
		}
	}

	r := coffer(t, st.env, v.args("rotate", "--sse-c-new-key-file", newFile)...)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("re-encrypted %d of the %d objects", len(keys)-3, len(keys))) {
		t.Fatalf("rotate --sse-c-new-key-file: %v", r)
	}
	if okNew, _, fails := readsWith(t, srv, bucket, newKey); okNew != len(keys) {
		t.Fatalf("after the rotation the new key reads %d of %d objects (not %v)", okNew, len(keys), fails)
	}
	if okOld, _, _ := readsWith(t, srv, bucket, oldKey); okOld != 0 {
		t.Fatalf("after the rotation the old key still reads %d of %d objects", okOld, len(keys))
	}
	if r := coffer(t, st.env, v.args("rotate", "--sse-c-new-key-file", newFile)...); r.code != 0 || !strings.Contains(r.stdout, "re-encrypted 0 of") {
		t.Fatalf("a second rotate --sse-c-new-key-file: %v", r)
	}

	// The user replaces the key file with the new one; the volume opens.
	opts.SSE.CKeys = [][]byte{newKey}
	fresh, err := blobstore.Open(ctx, st.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	nv, err := cofferfs.OpenVolume(ctx, cofferfs.Options{Store: fresh, Encryption: "none", SSE: opts.SSE, CacheDir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nv.Close(ctx)
	for p, data := range want {
		h, err := nv.Open(ctx, p, os.O_RDONLY)
		if err != nil {
			t.Fatalf("open %s with the new key: %v", p, err)
		}
		got := make([]byte, len(data)+1)
		n, err := h.ReadAt(ctx, got, 0)
		h.Close(ctx)
		if err != nil && err != io.EOF || !bytes.Equal(got[:n], data) {
			t.Fatalf("%s with the new key: %d bytes, %v", p, n, err)
		}
	}
}

func writeSSECKeyFile(t *testing.T, path string, key []byte) {
	t.Helper()
	if err := os.WriteFile(path, []byte("# SSE-C key, newest first\n"+b64std(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// listBucket lists every key of bucket through the AWS SDK.
func listBucket(t *testing.T, srv s3Server, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(srv.client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// getWithKey is a GetObject of key carrying the SSE-C key sseKey.
func getWithKey(bucket, key string, sseKey []byte) *s3.GetObjectInput {
	sum := md5.Sum(sseKey)
	return &s3.GetObjectInput{
		Bucket:               aws.String(bucket),
		Key:                  aws.String(key),
		SSECustomerAlgorithm: aws.String("AES256"),
		SSECustomerKey:       aws.String(b64std(sseKey)),
		SSECustomerKeyMD5:    aws.String(b64std(sum[:])),
	}
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// keyCmd is the command line of coffer key SUB for v.
func keyCmd(v *volume, sub string, extra ...string) []string {
	return append([]string{"key"}, v.args(sub, extra...)...)
}
