package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testEnv is an environment with only the given variables and captured
// output streams.
func testEnv(t *testing.T, vars map[string]string) (*env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if vars == nil {
		vars = map[string]string{}
	}
	if _, ok := vars["HOME"]; !ok {
		vars["HOME"] = t.TempDir()
	}
	return &env{getenv: func(k string) string { return vars[k] }, stdout: &stdout, stderr: &stderr}, &stdout, &stderr
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // substring of stderr
	}{
		{"no command", nil, exitUsage, "Usage:"},
		{"unknown command", []string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{"unknown flag", []string{"mount", "--bogus", "x"}, exitUsage, "unknown flag: --bogus"},
		{"missing mountpoint", []string{"mount"}, exitUsage, "missing MOUNTPOINT"},
		{"two mountpoints", []string{"mount", "a", "b"}, exitUsage, "expected one MOUNTPOINT"},
		{"extra argument", []string{"version", "x"}, exitUsage, `unexpected argument "x"`},
		{"bad size", []string{"mount", "--cache-size", "lots", "x"}, exitUsage, "invalid size"},
		{"bad duration", []string{"mount", "--writeback-delay", "soon", "x"}, exitUsage, "writeback-delay"},
		{"keygen without out", []string{"keygen"}, exitUsage, "--out PATH is required"},
		{"missing mountpoint dir", []string{"mount", "/nonexistent/coffer-test"}, exitFailure, "does not exist: create it with mkdir -p"},
		{"unmount not mounted", []string{"unmount", os.TempDir()}, exitFailure, "is not mounted"},
		{"version", []string{"version"}, exitOK, ""},
		{"help command", []string{"help", "mount"}, exitOK, ""},
		{"help flag", []string{"mount", "--help"}, exitOK, ""},
		{"bad log level", []string{"--log-level", "loud", "mount", "/tmp"}, exitUsage, "unknown --log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, stderr := testEnv(t, nil)
			code := run(context.Background(), tt.args, e)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q does not contain %q", stderr, tt.want)
			}
			if tt.code != exitOK && tt.args != nil && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Fatalf("error is not one line: %q", stderr)
			}
		})
	}
}

func TestVersionOutput(t *testing.T) {
	e, stdout, _ := testEnv(t, nil)
	if code := run(context.Background(), []string{"version"}, e); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	if !strings.HasPrefix(stdout.String(), "coffer ") || !strings.Contains(stdout.String(), "go1.") {
		t.Fatalf("version output %q", stdout)
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines", "two ; lines"},
		{"  padded \r\n", "padded"},
		{"a\n\nb", "a ; ; b"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name      string
		vars      map[string]string
		key       string
		store     string
		cacheRoot string
	}{
		{"home only", map[string]string{"HOME": "/h"}, "/h/.config/coffer/key", "/h/.local/share/coffer/store", "/h/.cache/coffer"},
		{"xdg", map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "/c", "XDG_DATA_HOME": "/d", "XDG_CACHE_HOME": "/k"}, "/c/coffer/key", "/d/coffer/store", "/k/coffer"},
		{"relative xdg ignored", map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "rel"}, "/h/.config/coffer/key", "/h/.local/share/coffer/store", "/h/.cache/coffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{getenv: func(k string) string { return tt.vars[k] }}
			key, err := e.defaultKeyFile()
			if err != nil || key != tt.key {
				t.Errorf("defaultKeyFile = %q, %v; want %q", key, err, tt.key)
			}
			store, err := e.defaultStore()
			if err != nil || store != tt.store {
				t.Errorf("defaultStore = %q, %v; want %q", store, err, tt.store)
			}
			cache, err := e.defaultCacheRoot()
			if err != nil || cache != tt.cacheRoot {
				t.Errorf("defaultCacheRoot = %q, %v; want %q", cache, err, tt.cacheRoot)
			}
		})
	}
	e := &env{getenv: func(string) string { return "" }}
	if _, err := e.defaultKeyFile(); err == nil {
		t.Error("defaultKeyFile without HOME succeeded")
	}
}

func TestStoreResolve(t *testing.T) {
	cwd, _ := os.Getwd()
	tests := []struct {
		name    string
		flag    string
		vars    map[string]string
		want    string
		wantErr string
	}{
		{"flag wins", "s3://b/p", map[string]string{envStore: "s3://other"}, "s3://b/p", ""},
		{"env", "", map[string]string{envStore: "s3://env-bucket"}, "s3://env-bucket", ""},
		{"default", "", map[string]string{"HOME": "/h"}, "/h/.local/share/coffer/store", ""},
		{"relative path made absolute", "rel/store", nil, filepath.Join(cwd, "rel/store"), ""},
		{"file url", "file:///x/y", nil, "/x/y", ""},
		{"bad scheme", "ftp://x", nil, "", "unsupported scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := tt.vars
			if vars == nil {
				vars = map[string]string{"HOME": "/h"}
			}
			e := &env{getenv: func(k string) string { return vars[k] }}
			sf := storeFlags{url: tt.flag}
			got, _, err := sf.resolve(e)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolve = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The endpoint rule itself is blobstore's (TestCheckEndpoint there); the
// command line applies it to --endpoint, else AWS_ENDPOINT_URL_S3, as a
// usage error.
func TestResolveChecksEndpoint(t *testing.T) {
	tests := []struct {
		endpoint, envEndpoint string
		allowHTTP             bool
		ok                    bool
	}{
		{"", "", false, true},
		{"https://s3.example.com", "", false, true},
		{"http://LOCALHOST:9000", "", false, true},
		{"http://s3.example.com", "", false, false},
		{"http://s3.example.com", "", true, true},
		{"s3.example.com", "", false, false},
		{"", "http://s3.example.com", false, false},
		{"", "http://s3.example.com", true, true},
		{"https://s3.example.com", "http://s3.example.com", false, true}, // the flag wins
	}
	for _, tt := range tests {
		e, _, _ := testEnv(t, map[string]string{"AWS_ENDPOINT_URL_S3": tt.envEndpoint})
		sf := storeFlags{url: "s3://b", endpoint: tt.endpoint, allowHTTP: tt.allowHTTP}
		_, _, err := sf.resolve(e)
		if (err == nil) != tt.ok {
			t.Errorf("endpoint %q, AWS_ENDPOINT_URL_S3 %q, allow-http %v: resolve = %v, want ok=%v", tt.endpoint, tt.envEndpoint, tt.allowHTTP, err, tt.ok)
		}
		var ue *usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("endpoint %q, AWS_ENDPOINT_URL_S3 %q: %v is not a usage error", tt.endpoint, tt.envEndpoint, err)
		}
	}
}

func TestHTTPEndpointRefusedAtMount(t *testing.T) {
	e, _, stderr := testEnv(t, nil)
	mp := t.TempDir()
	code := run(context.Background(), []string{"mount", "--store", "s3://b", "--endpoint", "http://s3.example.com", "--encryption", "none", mp}, e)
	if code != exitUsage || !strings.Contains(stderr.String(), "--allow-http") {
		t.Fatalf("exit %d, stderr %q; want a usage error naming --allow-http", code, stderr)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/mnt/plain", "/mnt/plain"},
		{`/mnt/with\040space`, "/mnt/with space"},
		{`/mnt/tab\011x`, "/mnt/tab\tx"},
		{`/mnt/back\134slash`, `/mnt/back\slash`},
		{`/mnt/trailing\04`, `/mnt/trailing\04`},
	}
	for _, tt := range tests {
		if got := unescapeMountPath(tt.in); got != tt.want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsMountedRoot(t *testing.T) {
	mounted, err := isMounted("/")
	if err != nil || !mounted {
		t.Fatalf("isMounted(/) = %v, %v", mounted, err)
	}
	mounted, err = isMounted(t.TempDir())
	if err != nil || mounted {
		t.Fatalf("isMounted(tempdir) = %v, %v", mounted, err)
	}
}

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Fatal("own process not alive")
	}
	if processAlive(1 << 30) {
		t.Fatal("impossible pid alive")
	}
}

func TestSSEFlags(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ssec")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		kf      keyFlags
		vars    map[string]string
		keys    int
		wantErr string
	}{
		{"none", keyFlags{}, nil, 0, ""},
		{"sse-s3", keyFlags{sse: "sse-s3"}, nil, 0, ""},
		{"kms with id", keyFlags{sse: "sse-kms", sseKMSKeyID: "k"}, nil, 0, ""},
		{"kms id without kms", keyFlags{sse: "sse-s3", sseKMSKeyID: "k"}, nil, 0, "needs --sse sse-kms"},
		{"sse-c from flag", keyFlags{sse: "sse-c", sseCKeyFile: keyFile}, nil, 1, ""},
		{"sse-c from env", keyFlags{sse: "sse-c"}, map[string]string{envSSECKeyFile: keyFile}, 1, ""},
		{"sse-c without key", keyFlags{sse: "sse-c"}, nil, 0, "needs the customer key"},
		{"key without sse-c", keyFlags{sseCKeyFile: keyFile}, nil, 0, "needs --sse sse-c"},
		{"unknown", keyFlags{sse: "rot13"}, nil, 0, "unknown SSE mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{getenv: func(k string) string { return tt.vars[k] }}
			cfg, err := tt.kf.sseConfig(e)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("sseConfig = %v; want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(cfg.CKeys) != tt.keys {
				t.Fatalf("sseConfig = %v keys, %v; want %d keys", len(cfg.CKeys), err, tt.keys)
			}
			if strings.Contains(cfg.String(), "0123456789abcdef") {
				t.Fatal("SSE config prints key bytes")
			}
		})
	}
}

func TestKeySources(t *testing.T) {
	tests := []struct {
		name      string
		kf        keyFlags
		vars      map[string]string
		key, pass string
		defaulted bool
	}{
		{"default", keyFlags{}, map[string]string{"HOME": "/h"}, "/h/.config/coffer/key", "", true},
		{"flag", keyFlags{keyFile: "/k"}, map[string]string{envKeyFile: "/env"}, "/k", "", false},
		{"env", keyFlags{}, map[string]string{envKeyFile: "/env"}, "/env", "", false},
		{"passphrase only", keyFlags{}, map[string]string{envPassphraseFile: "/p"}, "", "/p", false},
		{"both", keyFlags{keyFile: "/k", passphraseFile: "/p"}, nil, "/k", "/p", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{getenv: func(k string) string { return tt.vars[k] }}
			s, err := tt.kf.sources(e)
			if err != nil || s.keyFile != tt.key || s.passphraseFile != tt.pass || s.defaulted != tt.defaulted {
				t.Fatalf("sources = %+v, %v", s, err)
			}
		})
	}
}

func FuzzUnescapeMountPath(f *testing.F) {
	for _, s := range []string{"/a", `/a\040b`, `\`, `\0`, `\04`, `\777`, `x\134`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := unescapeMountPath(s)
		if !strings.Contains(s, `\`) && got != s {
			t.Fatalf("unescapeMountPath(%q) = %q: changed a path without escapes", s, got)
		}
		if len(got) > len(s) {
			t.Fatalf("unescapeMountPath(%q) = %q: longer than its input", s, got)
		}
	})
}

func TestPidFile(t *testing.T) {
	run := t.TempDir()
	e := &env{getenv: func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return run
		}
		return ""
	}}
	const mp = "/some/mount point"
	if pid := e.mountPid(mp); pid != 0 {
		t.Fatalf("mountPid before any mount = %d", pid)
	}
	remove, err := e.writePidFile(mp)
	if err != nil {
		t.Fatal(err)
	}
	if pid := e.mountPid(mp); pid != os.Getpid() {
		t.Fatalf("mountPid = %d, want %d", pid, os.Getpid())
	}
	if pid := e.mountPid("/other"); pid != 0 {
		t.Fatalf("mountPid of another mountpoint = %d", pid)
	}
	remove()
	if pid := e.mountPid(mp); pid != 0 {
		t.Fatalf("mountPid after remove = %d", pid)
	}
	if err := os.Chmod(filepath.Join(run, "coffer"), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := e.writePidFile(mp); err == nil || !strings.Contains(err.Error(), "not a private directory") {
		t.Fatalf("writePidFile in a world-writable dir: %v", err)
	}
}
