package cipher

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for the writer formats' parsers: the credential, epoch
// objects and writer objects' metadata, as read from a file or the store.

// FuzzWriterCredential: whatever parses is canonical (it marshals back to
// its own bytes), every failure is ErrNotCredential.
func FuzzWriterCredential(f *testing.F) {
	w := katWriterVector(f)
	f.Add([]byte(w.Credential))
	f.Add([]byte(`{"type":"coffer writer credential","version":1}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseWriterCredential(data)
		if err != nil {
			if !errors.Is(err, ErrNotCredential) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(bytes.TrimRight(c.Marshal(), "\n"), bytes.TrimRight(data, "\r\n")) {
			t.Fatalf("a credential with two encodings: %q", data)
		}
	})
}

// FuzzWriterObject: epoch objects and writer metadata from the store open
// only as sealed, or fail typed.
func FuzzWriterObject(f *testing.F) {
	kr := katKeyring(f)
	wk := katWriterKey(f)
	kr.writers = map[WriterID]*writerKey{wk.id: wk}
	cred := &WriterCredential{Encryption: EncryptionClient, volumeID: kr.volumeID, writer: wk.id, scope: wk.scope,
		nameSecret: kr.nameSecret, public: wk.priv.PublicKey().Bytes(), auth: wk.auth}
	s, err := cred.NewSession()
	if err != nil {
		f.Fatal(err)
	}
	_, epochData := s.EpochObject()
	o, _ := s.NewObjectKey()
	meta, err := s.SealMetadata(o, katWriterPath, testAttr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(epochData, meta[MetaOrigin], meta[MetaDEK], "", meta[MetaAttr], katWriterPath)
	f.Add(epochData[:100], meta[MetaOrigin], meta[MetaDEK], "2", meta[MetaAttr], "/etc/x")
	f.Add([]byte{}, "", "", "", "", "/")
	f.Fuzz(func(t *testing.T, epoch []byte, origin, dek, kek, attr, path string) {
		typed := func(err error) {
			t.Helper()
			if err != nil && !isTyped(err) && !errors.Is(err, ErrWriterOrigin) {
				t.Fatalf("untyped error %v", err)
			}
		}
		_, err := kr.OpenEpoch(s.Origin(), epoch)
		typed(err)
		if err == nil && !bytes.Equal(epoch, epochData) {
			t.Fatal("another epoch object opened")
		}
		m := map[string]string{MetaVersion: "1", MetaFileID: meta[MetaFileID], MetaOrigin: origin, MetaDEK: dek, MetaKEK: kek, MetaAttr: attr}
		epochs := func(Origin) (*Epoch, error) { return kr.OpenEpoch(s.Origin(), epoch) }
		_, a, got, err := kr.OpenAnyMetadata(m, path, epochs)
		typed(err)
		if err == nil && (a != testAttr || path != katWriterPath || (got.IsWriter() && got != s.Origin())) {
			t.Fatalf("opened %+v at %q from %v", a, path, got)
		}
		_, a, err = s.OpenMetadata(m, path)
		if err != nil && !isTyped(err) && !errors.Is(err, ErrNotThisSession) {
			t.Fatalf("session: untyped error %v", err)
		}
		if err == nil && (a != testAttr || path != katWriterPath) {
			t.Fatalf("the session opened %+v at %q", a, path)
		}
	})
}
