package cipher

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

var testAttr = Attr{
	Mode: 0o100640, UID: 1000, GID: 100,
	AtimeNs: 1_600_000_000_000_000_001, MtimeNs: 1_700_000_000_123_456_789, CtimeNs: 1_700_000_001_987_654_321,
	Rdev: 0x0801, Changes: 7,
	Xattrs: mustXattrs("user.mime_type", "text/plain", "user.a", "", "user.bin", "\x00\xff"),
}

// mustXattrs builds a set from name, value pairs.
func mustXattrs(kv ...string) Xattrs {
	var x Xattrs
	for i := 0; i < len(kv); i += 2 {
		var err error
		if x, err = x.With(kv[i], []byte(kv[i+1])); err != nil {
			panic(err)
		}
	}
	return x
}

func TestMetadataRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	meta, err := kr.SealMetadata(o, "/a/b", testAttr)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{MetaVersion: true, MetaFileID: true, MetaKEK: true, MetaDEK: true, MetaAttr: true}
	size := 0
	for k, v := range meta {
		if !want[k] {
			t.Fatalf("unexpected metadata %q", k)
		}
		size += len(k) + len(v)
	}
	if len(meta) != len(want) || meta[MetaVersion] != "1" || meta[MetaKEK] != "1" || size > 400 {
		t.Fatalf("metadata %v (%d bytes)", meta, size)
	}
	o2, a, err := kr.OpenMetadata(meta, "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	if a != testAttr || o2.FileID() != o.FileID() || o2.dek != o.dek || o2.Generation() != 1 {
		t.Fatalf("opened %+v", a)
	}
	if err := o2.CheckHeader(o.Header()); err != nil {
		t.Fatal(err)
	}
	// Header names as an SDK may deliver them.
	upper := map[string]string{}
	for k, v := range meta {
		upper["Coffer-"+k[len("coffer-"):]] = v
	}
	if _, _, err := kr.OpenMetadata(upper, "/a/b"); err != nil {
		t.Fatalf("capitalised names: %v", err)
	}
}

func TestRewrapAfterRotation(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	meta, _ := kr.SealMetadata(o, "/f", testAttr)
	kr.AddGeneration()
	re, err := kr.RewrapMetadata(meta)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := MetadataGeneration(re); g != 2 || re[MetaAttr] != meta[MetaAttr] || re[MetaFileID] != meta[MetaFileID] {
		t.Fatalf("rewrapped %v", re)
	}
	if err := kr.RetireGeneration(1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kr.OpenMetadata(meta, "/f"); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("metadata of a retired generation: %v", err)
	}
	o2, a, err := kr.OpenMetadata(re, "/f")
	if err != nil || a != testAttr || o2.dek != o.dek {
		t.Fatalf("rewrapped metadata: %v", err)
	}
}

func TestMalformedMetadata(t *testing.T) {
	kr := testKeyring(t)
	o, _ := kr.NewObjectKey()
	meta, _ := kr.SealMetadata(o, "/f", testAttr)
	for _, tc := range []struct{ key, value string }{
		{MetaVersion, "2"}, {MetaVersion, ""}, {MetaFileID, "AAAA"}, {MetaFileID, meta[MetaFileID] + "A"},
		{MetaKEK, "01"}, {MetaKEK, "0"}, {MetaKEK, "-1"}, {MetaKEK, "4294967296"}, {MetaKEK, "x"},
		{MetaDEK, "AAAA"}, {MetaDEK, "!" + meta[MetaDEK][1:]}, {MetaAttr, ""}, {MetaAttr, meta[MetaAttr][:20]}, {MetaAttr, "!" + meta[MetaAttr][1:]},
		{MetaAttr, strings.Repeat("A", MetadataBudget+4)},
		{MetaKEK, "7"},
	} {
		bad := maps.Clone(meta)
		bad[tc.key] = tc.value
		if _, _, err := kr.OpenMetadata(bad, "/f"); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("%s = %q: %v", tc.key, tc.value, err)
		}
	}
	for k := range meta {
		bad := maps.Clone(meta)
		delete(bad, k)
		if _, _, err := kr.OpenMetadata(bad, "/f"); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("without %s: %v", k, err)
		}
	}
}
