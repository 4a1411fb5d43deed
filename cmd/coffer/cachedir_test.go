package main

import (
	"testing"

	"github.com/cofferfs/coffer/cipher"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// TestNoneModeCacheName: a none-mode config names no cache directory of
// its own choosing; a client-mode one names it by its (authenticated)
// volume ID.
func TestNoneModeCacheName(t *testing.T) {
	none, err := cipher.NewConfig(cipher.EncryptionNone, "", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := none.Marshal(nil)
	copied, _ := cipher.ParseConfig(data) // the same volume ID, forged into another store
	a := defaultCacheName(cipher.EncryptionNone, "s3://a", "", none)
	for _, other := range []string{
		defaultCacheName(cipher.EncryptionNone, "s3://b", "", copied),
		defaultCacheName(cipher.EncryptionNone, "s3://a", "https://elsewhere", copied),
		defaultCacheName(cipher.EncryptionClient, "s3://a", "", copied),
	} {
		if other == a {
			t.Fatalf("two stores share the cache dir %s", a)
		}
	}
	if defaultCacheName(cipher.EncryptionNone, "s3://a", "", copied) != a {
		t.Fatal("the same none-mode volume at the same store changed cache dir")
	}
	if got := defaultCacheName(cipher.EncryptionClient, "s3://a", "", copied); got != cofferfs.VolumeID(copied) {
		t.Fatalf("client mode cache dir %q, want the volume ID", got)
	}
}
