package cipher

import (
	"errors"
	"strings"
	"testing"
)

func TestNamesRoundTrip(t *testing.T) {
	n := testKeyring(t).Names()
	names := []string{"a", "hello.txt", "with space", "ünïcödé ✓", strings.Repeat("x", 15), strings.Repeat("x", 16),
		strings.Repeat("y", 143), strings.Repeat("y", 144), strings.Repeat("z", 255), "...", ".hidden", "\xff\xfe"}
	for _, name := range names {
		for _, parent := range []string{"/", "/a", "/a/b"} {
			seg, long, err := n.EncryptSegment(parent, name)
			if err != nil {
				t.Fatalf("%q in %s: %v", name, parent, err)
			}
			if len(seg) > longNameLimit || strings.ContainsAny(seg, "/=+") {
				t.Fatalf("%q: segment %q not a short base64url segment", name, seg)
			}
			if (long != "") != IsLongSegment(seg) || (long != "" && len(long) <= longNameLimit) {
				t.Fatalf("%q: seg %q long %d bytes", name, seg, len(long))
			}
			got, err := n.DecryptSegment(parent, seg, long)
			if err != nil || got != name {
				t.Fatalf("%q in %s: decrypted %q, %v", name, parent, got, err)
			}
			if parent != "/a" {
				if _, err := n.DecryptSegment("/a", seg, long); err == nil {
					if got, _ := n.DecryptSegment("/a", seg, long); got == name {
						t.Fatalf("%q: segment from %s decrypts to the same name under /a", name, parent)
					}
				}
			}
		}
	}
}

func TestNamesDependOnDirectoryAndAreDeterministic(t *testing.T) {
	n := testKeyring(t).Names()
	a1, _, _ := n.EncryptSegment("/a", "same")
	a2, _, _ := n.EncryptSegment("/a", "same")
	b, _, _ := n.EncryptSegment("/b", "same")
	if a1 != a2 {
		t.Fatal("name encryption is not deterministic")
	}
	if a1 == b {
		t.Fatal("same name in two directories encrypts alike")
	}
	other, _, _ := testKeyring(t).Names().EncryptSegment("/a", "same")
	if other == a1 {
		t.Fatal("two volumes encrypt a name alike")
	}
}

func TestNamesRejectBadInput(t *testing.T) {
	n := testKeyring(t).Names()
	for _, tc := range []struct {
		name string
		want error
	}{
		{"", ErrBadName}, {".", ErrBadName}, {"..", ErrBadName}, {"a/b", ErrBadName}, {"a\x00b", ErrBadName},
		{strings.Repeat("n", 256), ErrNameTooLong},
	} {
		if _, _, err := n.EncryptSegment("/", tc.name); !errors.Is(err, tc.want) {
			t.Errorf("EncryptSegment(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	long := strings.Repeat("q", 200)
	seg, enc, _ := n.EncryptSegment("/", long)
	short, _, _ := n.EncryptSegment("/", "short")
	// A block that decrypts to zeros: padding byte 0 is never PKCS#7.
	// (Arbitrary ciphertext cannot be a case here: EME is not
	// authenticated, so 1 in ~256 random blocks decrypt to a valid name.)
	badPadding := b64.EncodeToString(n.eme.Encrypt(n.tweak("/"), make([]byte, nameBlock)))
	for _, tc := range []struct{ seg, long string }{
		{"", ""}, {"!!!!", ""}, {"AAAA", ""}, {badPadding, ""}, {short + "A", ""}, {short[:len(short)-1], ""},
		{seg, ""}, {seg, enc + "A"}, {seg, enc[1:]}, {"~" + seg[2:], enc}, {enc, ""}, {"~", "x"},
		{strings.Repeat("A", 10000), ""},
	} {
		if got, err := n.DecryptSegment("/", tc.seg, tc.long); !errors.Is(err, ErrBadName) {
			t.Errorf("DecryptSegment(%.20q, %.20q) = %q, %v", tc.seg, tc.long, got, err)
		}
	}
	// Encodings of forbidden names, made with the volume's own EME key,
	// are still refused.
	for _, bad := range []string{"", ".", "..", "a/b", "nul\x00", strings.Repeat("m", 256)} {
		if name, err := n.DecryptSegment("/", encryptRaw(n, "/", []byte(bad)), ""); !errors.Is(err, ErrBadName) {
			t.Errorf("encoding of %.20q decrypts to %q, %v", bad, name, err)
		}
	}
}

// encryptRaw encrypts any bytes as a name would be, skipping the name rules.
func encryptRaw(n *Names, parent string, b []byte) string {
	pad := nameBlock - len(b)%nameBlock
	padded := append([]byte(nil), b...)
	for range pad {
		padded = append(padded, byte(pad))
	}
	if len(padded) > 2048 {
		padded = padded[:2048]
	}
	return b64.EncodeToString(n.eme.Encrypt(n.tweak(parent), padded))
}

func TestEncryptPath(t *testing.T) {
	n := testKeyring(t).Names()
	key, longs, err := n.EncryptPath("/dir/" + strings.Repeat("l", 180) + "/f")
	if err != nil {
		t.Fatal(err)
	}
	segs := strings.Split(key, "/")
	if len(segs) != 3 || len(longs) != 1 {
		t.Fatalf("key %q longs %v", key, longs)
	}
	want0, _, _ := n.EncryptSegment("/", "dir")
	want2, _, _ := n.EncryptSegment("/dir/"+strings.Repeat("l", 180), "f")
	if segs[0] != want0 || segs[2] != want2 {
		t.Fatal("EncryptPath disagrees with EncryptSegment")
	}
	if long, ok := longs[segs[0]+"/"+segs[1]]; !ok || !IsLongSegment(segs[1]) {
		t.Fatalf("long segment not reported under its key: %v", longs)
	} else if name, err := n.DecryptSegment("/dir", segs[1], long); err != nil || name != strings.Repeat("l", 180) {
		t.Fatalf("long segment: %q %v", name, err)
	}
	if k, _, err := n.EncryptPath("/"); k != "" || err != nil {
		t.Fatalf("root: %q %v", k, err)
	}
	for _, bad := range []string{"", "a/b", "/a/", "/a//b", "/a/./b"} {
		if _, _, err := n.EncryptPath(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("EncryptPath(%q) = %v", bad, err)
		}
	}
	deep := strings.Repeat("/"+strings.Repeat("d", 100), 8)
	if _, _, err := n.EncryptPath(deep); !errors.Is(err, ErrNameTooLong) {
		t.Fatalf("key over 1024 bytes: %v", err)
	}
	if err := CheckKeyLen(strings.Repeat("k", KeyMax)); err != nil {
		t.Fatal(err)
	}
}
