package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// failFast is how long a failing mount may take: "within seconds".
const failFast = 15 * time.Second

// expectMountFailure runs coffer mount and checks that it fails quickly
// with one line naming the cause (want: lower-case substrings, any of
// which may match), leaving nothing mounted.
func expectMountFailure(t *testing.T, env []string, mnt string, code int, want []string, args ...string) {
	t.Helper()
	r := coffer(t, env, append(args, mnt)...)
	if r.code == 0 {
		t.Fatalf("mount succeeded: %v", r)
		return
	}
	if r.code != code {
		t.Errorf("exit code %d, want %d: %v", r.code, code, r)
	}
	if r.took > failFast {
		t.Errorf("failure took %v, want under %v", r.took, failFast)
	}
	if r.stdout != "" {
		t.Errorf("a failed mount printed to stdout: %q", r.stdout)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("stderr is not one line: %q", r.stderr)
	}
	if !strings.HasPrefix(msg, "coffer mount: ") || strings.Contains(msg, "goroutine ") {
		t.Errorf("stderr %q is not a coffer error line", msg)
	}
	ok := false
	for _, w := range want {
		ok = ok || strings.Contains(strings.ToLower(msg), w)
	}
	if !ok {
		t.Errorf("stderr %q names none of %q", msg, want)
	}
	if mounted(t, mnt) {
		t.Errorf("%s is mounted after a failed mount", mnt)
	}
}

func mounted(t *testing.T, dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(data), " "+dir+" ")
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestMountFailures: a wrong key, a missing store, a mode mismatch, an
// unreachable endpoint and denied credentials each make coffer mount exit
// non-zero within seconds with one line, in the foreground and with
// --daemon.
func TestMountFailures(t *testing.T) {
	requireFUSE(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			v := newVolume(t, b.newStore(t))
			otherKey := filepath.Join(v.dir, "other-key")
			if r := coffer(t, nil, "keygen", "--out", otherKey); r.code != 0 {
				t.Fatal(r)
			}
			storeArgs := append([]string{"mount", "--store", v.store.url}, v.store.args...)
			for _, daemon := range []bool{false, true} {
				var d []string
				if daemon {
					d = []string{"--daemon"}
				}
				name := map[bool]string{false: "foreground", true: "daemon"}[daemon]
				t.Run("wrong key/"+name, func(t *testing.T) {
					expectMountFailure(t, v.store.env, v.mnt, 1, []string{"wrong key"},
						append(append(storeArgs, d...), "--key-file", otherKey)...)
				})
				t.Run("mode mismatch/"+name, func(t *testing.T) {
					expectMountFailure(t, v.store.env, v.mnt, 1, []string{"--encryption client"},
						append(append(storeArgs, d...), "--encryption", "none")...)
				})
			}
			// The right key still mounts: the failures above were about the key.
			v.mount()
			writeFile(t, v.path("still-works"), []byte("yes"))
			v.unmount()

			empty := b.newStore(t)
			t.Run("missing store", func(t *testing.T) {
				args := append([]string{"mount", "--store", empty.url, "--key-file", v.keyFile}, empty.args...)
				expectMountFailure(t, empty.env, v.mnt, 1, []string{"no coffer volume"}, args...)
			})
		})
	}
	t.Run("local/client mode on a plain volume", func(t *testing.T) {
		v := newVolume(t, newLocalStore(t), withModes("--encryption", "none"))
		key := filepath.Join(v.dir, "some-key")
		coffer(t, nil, "keygen", "--out", key)
		expectMountFailure(t, nil, v.mnt, 1, []string{"--encryption none"}, "mount", "--store", v.store.url, "--key-file", key)
	})
	t.Run("local/key files readable by others", func(t *testing.T) {
		v := newVolume(t, newLocalStore(t))
		pass := filepath.Join(v.dir, "pass")
		if err := os.WriteFile(pass, []byte("a passphrase\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		sseKey := filepath.Join(v.dir, "sse-c.key")
		if err := os.WriteFile(sseKey, []byte("0123456789abcdef0123456789abcdef\n"), 0o604); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(v.keyFile, 0o644); err != nil {
			t.Fatal(err)
		}
		store := []string{"mount", "--store", v.store.url}
		expectMountFailure(t, nil, v.mnt, 1, []string{"chmod 600 " + strings.ToLower(v.keyFile)}, append(store, "--key-file", v.keyFile)...)
		expectMountFailure(t, nil, v.mnt, 1, []string{"chmod 600 " + strings.ToLower(pass)}, append(store, "--passphrase-file", pass)...)
		if err := os.Chmod(v.keyFile, 0o600); err != nil {
			t.Fatal(err)
		}
		expectMountFailure(t, nil, v.mnt, 1, []string{"chmod 600 " + strings.ToLower(sseKey)}, append(store, "--key-file", v.keyFile, "--sse", "sse-c", "--sse-c-key-file", sseKey)...)
	})
	t.Run("local/no such directory", func(t *testing.T) {
		dir := t.TempDir()
		mnt := filepath.Join(dir, "mnt")
		os.Mkdir(mnt, 0o755)
		key := filepath.Join(dir, "key")
		coffer(t, nil, "keygen", "--out", key)
		expectMountFailure(t, nil, mnt, 1, []string{"no coffer volume"}, "mount", "--store", filepath.Join(dir, "nothing"), "--key-file", key)
	})
	t.Run("s3/unreachable endpoint", func(t *testing.T) {
		dir := t.TempDir()
		mnt := filepath.Join(dir, "mnt")
		os.Mkdir(mnt, 0o755)
		key := filepath.Join(dir, "key")
		coffer(t, nil, "keygen", "--out", key)
		endpoint := "http://127.0.0.1:" + strconv.Itoa(closedPort(t))
		for _, d := range [][]string{nil, {"--daemon"}} {
			expectMountFailure(t, []string{"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"}, mnt, 1, []string{"connect", "reach", "did not answer"},
				append([]string{"mount", "--store", "s3://bucket", "--endpoint", endpoint, "--path-style", "--region", "us-east-1", "--key-file", key}, d...)...)
		}
	})
	t.Run("versitygw/no such bucket", func(t *testing.T) {
		srv := server(t, "versitygw")
		st := srv.store("coffer-missing-" + randomHex(6))
		dir := t.TempDir()
		mnt := filepath.Join(dir, "mnt")
		os.Mkdir(mnt, 0o755)
		key := filepath.Join(dir, "key")
		coffer(t, nil, "keygen", "--out", key)
		args := append([]string{"mount", "--store", st.url, "--key-file", key}, st.args...)
		for _, d := range [][]string{nil, {"--daemon"}} {
			expectMountFailure(t, st.env, mnt, 1, []string{"bucket", "no coffer volume"}, append(args, d...)...)
		}
	})
	t.Run("versitygw/denied credentials", func(t *testing.T) {
		srv := server(t, "versitygw")
		st := srv.store(srv.newBucket(t))
		v := newVolume(t, st)
		bad := []string{"AWS_ACCESS_KEY_ID=" + srv.ak, "AWS_SECRET_ACCESS_KEY=wrong-" + srv.sk}
		args := append([]string{"mount", "--store", st.url, "--key-file", v.keyFile}, st.args...)
		expectMountFailure(t, bad, v.mnt, 1, []string{"denied", "credentials"}, args...)
		unknown := []string{"AWS_ACCESS_KEY_ID=nobody", "AWS_SECRET_ACCESS_KEY=nothing"}
		expectMountFailure(t, unknown, v.mnt, 1, []string{"denied", "credentials"}, append(args, "--daemon")...)
	})
}
