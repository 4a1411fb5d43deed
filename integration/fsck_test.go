package integration

import (
	"context"
	"encoding/base64"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// objectETags is every object key of the store with its ETag.
func objectETags(t *testing.T, st blobstore.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for e, err := range st.List(context.Background(), "", "") {
		if err != nil {
			t.Fatal(err)
		}
		out[e.Key] = e.ETag
	}
	return out
}

// putOne stores one file with coffer put and returns its object key (the
// one key the store did not hold before).
func putOne(t *testing.T, v *volume, st blobstore.Store, local, dst string) string {
	t.Helper()
	before := objectETags(t, st)
	v.mustRun("put", local, dst)
	var key string
	for k := range objectETags(t, st) {
		if _, ok := before[k]; !ok {
			if key != "" {
				t.Fatalf("put %s made more than one object", dst)
			}
			key = k
		}
	}
	if key == "" {
		t.Fatalf("put %s made no object", dst)
	}
	return key
}

// getMeta is getObject with a copy of the metadata to change.
func getMeta(t *testing.T, st blobstore.Store, key string) ([]byte, map[string]string) {
	t.Helper()
	body, info := getObject(t, st, key)
	return body, maps.Clone(info.Metadata)
}

// TestFsck: coffer fsck reports nothing on a clean volume (exit 0), then
// finds each fault planted through the store API by path (by key for the
// undecodable name): a flipped chunk byte (with --deep only), a damaged
// wrapped DEK, attributes copied from another path, an undecodable name,
// a truncated object and an unknown KEK generation (exit 1). An orphaned
// multipart upload is reported, kept without --repair and aborted with
// it; no object changes either way.
func TestFsck(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ref := b.newStore(t)
			v := newVolume(t, ref)
			st := ref.open(t)
			dir := t.TempDir()
			files := map[string]int{"chunk": 3 << 16, "dek": 100, "source": 10, "victim": 20, "trunc": 70000, "kek": 5}
			keys := map[string]string{}
			for _, name := range []string{"chunk", "dek", "source", "victim", "trunc", "kek"} {
				local := filepath.Join(dir, name)
				writeFile(t, local, pseudoRandom(uint64(len(name)), files[name]))
				keys[name] = putOne(t, v, st, local, "/"+name)
			}
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "sub", "f"), []byte("in a directory")) // a directory marker too
			v.mustRun("put", filepath.Join(dir, "sub"), "/")
			if r := v.run("fsck", "--deep"); r.code != 0 || !strings.Contains(r.stdout, "no problems found") || !strings.Contains(r.stdout, "7 files") {
				t.Fatalf("fsck of a clean volume: %v", r)
			}

			body, meta := getMeta(t, st, keys["chunk"])
			body[cipher.HeaderSize+cipher.ChunkSize+100] ^= 0x40
			putObject(t, st, keys["chunk"], body, meta)

			body, meta = getMeta(t, st, keys["dek"])
			// Flip a bit of the wrapped key itself, not of its base64 text
			// (a changed character may stop being base64: "malformed").
			dek, err := base64.RawURLEncoding.DecodeString(meta[cipher.MetaDEK])
			if err != nil {
				t.Fatal(err)
			}
			dek[20] ^= 0x01
			meta[cipher.MetaDEK] = base64.RawURLEncoding.EncodeToString(dek)
			putObject(t, st, keys["dek"], body, meta)

			body, meta = getMeta(t, st, keys["source"])
			putObject(t, st, keys["victim"], body, meta)
			putObject(t, st, "undecodable-name", body, meta)

			body, meta = getMeta(t, st, keys["trunc"])
			putObject(t, st, keys["trunc"], body[:cipher.HeaderSize+cipher.ChunkSize+cipher.ChunkOverhead+7], meta)

			body, meta = getMeta(t, st, keys["kek"])
			meta[cipher.MetaKEK] = "9"
			putObject(t, st, keys["kek"], body, meta)

			want := []string{"dek: /dek:", "attr: /victim:", "name: key undecodable-name:", "size: /trunc:", "kek: /kek:"}
			check := func(r result, want []string, n int) {
				t.Helper()
				if r.code != 1 {
					t.Errorf("exit %d, want 1", r.code)
				}
				for _, w := range want {
					if !strings.Contains(r.stdout, "\n"+w) && !strings.HasPrefix(r.stdout, w) {
						t.Errorf("no %q in the report", w)
					}
				}
				if got := strings.Count(r.stdout, "\n") - 2; got != n {
					t.Errorf("%d findings, want %d", got, n)
				}
				if t.Failed() {
					t.Fatalf("fsck: %v", r)
				}
			}
			check(v.run("fsck"), want, len(want))
			check(v.run("fsck", "--deep"), append(want, "chunk: /chunk:"), len(want)+1)

			// An orphaned upload: reported, kept, then aborted by --repair.
			ctx := context.Background()
			up, err := st.Multipart(ctx, "orphan", blobstore.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.UploadPart(ctx, 1, make([]byte, 5<<20)); err != nil {
				t.Fatal(err)
			}
			objects := objectETags(t, st)
			check(v.run("fsck", "--upload-age", "0"), append(want, "upload: key orphan:"), len(want)+1)
			if n := countUploads(t, st); n != 1 {
				t.Fatalf("fsck without --repair left %d uploads, want 1", n)
			}
			r := v.run("fsck", "--upload-age", "0", "--repair")
			check(r, append(want, "upload: key orphan:"), len(want)+1)
			if !strings.Contains(r.stdout, "(repaired)") || !strings.Contains(r.stdout, "1 repaired") {
				t.Errorf("fsck --repair: %v", r)
			}
			if n := countUploads(t, st); n != 0 {
				t.Errorf("%d uploads left after fsck --repair", n)
			}
			if after := objectETags(t, st); !maps.Equal(objects, after) {
				t.Errorf("fsck --repair changed objects:\nbefore %v\nafter  %v", objects, after)
			}
		})
	}
}

func countUploads(t *testing.T, st blobstore.Store) int {
	t.Helper()
	n := 0
	for _, err := range st.Uploads(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
