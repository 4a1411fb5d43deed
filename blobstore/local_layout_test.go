package blobstore

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestObjectRelPath(t *testing.T) {
	cases := map[string]string{
		"a":       "a.o",
		"a/b":     "a.d/b.o",
		"a//b":    "a.d/.d/b.o",
		"/x":      ".d/x.o",
		"x/":      "x.d/.o",
		".":       "..o",
		"..":      "...o",
		"a b%":    "a%20b%25.o",
		"ä":       "%C3%A4.o",
		"A.o/B.d": "A.o.d/B.d.o",
	}
	for key, want := range cases {
		if got := objectRelPath(key); got != want {
			t.Errorf("objectRelPath(%q) = %q, want %q", key, got, want)
		}
	}
	if got := dirRelPath("a/b/"); got != "a.d/b.d" {
		t.Errorf("dirRelPath(a/b/) = %q", got)
	}
}

// decodeRelPath reverses objectRelPath through parseName, as List does.
func decodeRelPath(t *testing.T, rel string) string {
	t.Helper()
	var key strings.Builder
	elems := strings.Split(rel, "/")
	for i, e := range elems {
		if len(e) > 255 || e == "." || e == ".." || e == "" {
			t.Fatalf("path %q has bad element %q", rel, e)
		}
		chunk, suffix, ok := parseName(e)
		if !ok {
			t.Fatalf("element %q does not parse", e)
		}
		key.WriteString(chunk)
		switch {
		case suffix == suffixDir:
			key.WriteByte('/')
		case suffix == suffixObject && i != len(elems)-1:
			t.Fatalf("object element %q not last in %q", e, rel)
		}
	}
	return key.String()
}

func TestLongKeysFitNameLimit(t *testing.T) {
	for _, key := range []string{
		strings.Repeat("k", MaxKeyLen),
		strings.Repeat("é", MaxKeyLen/2),          // every byte escaped
		strings.Repeat("a/", MaxKeyLen/2-1) + "z", // many short segments
		strings.Repeat("%", 300) + "/" + strings.Repeat("x", 500),
	} {
		rel := objectRelPath(key)
		if got := decodeRelPath(t, rel); got != key {
			t.Errorf("round trip of %.30q... failed", key)
		}
		if len(filepath.Join("/some/store/objects", rel)) > 4095 {
			t.Errorf("path of %.30q... is %d bytes", key, len(rel))
		}
	}
}

func FuzzKeyLayout(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a//b", "/", ".", "..", "%41", strings.Repeat("x", 600), "ä/ö"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !validKey(key) {
			return
		}
		if got := decodeRelPath(t, objectRelPath(key)); got != key {
			t.Fatalf("key %q decodes as %q", key, got)
		}
		for _, seg := range strings.Split(key, "/") {
			var joined strings.Builder
			for _, c := range escapeSegment(seg) {
				if len(c) > maxNameChunk {
					t.Fatalf("chunk of %d bytes", len(c))
				}
				joined.WriteString(c)
			}
			if u, ok := unescapeName(joined.String()); !ok || u != seg {
				t.Fatalf("segment %q round trip: %q %v", seg, u, ok)
			}
		}
	})
}

func TestUnescapeRejectsForeignNames(t *testing.T) {
	for _, n := range []string{"%", "%4", "%zz", "%4g"} {
		if _, ok := unescapeName(n); ok {
			t.Errorf("unescapeName(%q) accepted", n)
		}
	}
	for _, n := range []string{"x", "x.tmp", "o", ""} {
		if _, _, ok := parseName(n); ok {
			t.Errorf("parseName(%q) accepted", n)
		}
	}
	if !utf8.ValidString(objectRelPath("\x00")) {
		t.Error("escaped NUL is not plain text")
	}
}

func TestNormalizeMetadata(t *testing.T) {
	ok := []map[string]string{
		nil,
		{"coffer-name": "abc_-=+/", "x": "a b  c"},
		{"UPPER": "v"},
		{"k": strings.Repeat("v", maxMetadataBytes-1)},
	}
	for _, m := range ok {
		if _, err := normalizeMetadata(m); err != nil {
			t.Errorf("%.60v: %v", m, err)
		}
	}
	if got, _ := normalizeMetadata(map[string]string{"Coffer-V": "1"}); got["coffer-v"] != "1" {
		t.Errorf("keys not lower-cased: %v", got)
	}
	bad := []map[string]string{
		{"": "v"},
		{"a b": "v"},
		{"a:b": "v"},
		{"k": "ä"},
		{"k": "line\nbreak"},
		{"k": " leading"},
		{"k": "trailing "},
		{"k": strings.Repeat("v", maxMetadataBytes)},
	}
	for _, m := range bad {
		if _, err := normalizeMetadata(m); err == nil {
			t.Errorf("%.60q accepted", m)
		}
	}
}
