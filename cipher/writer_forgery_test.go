package cipher

import (
	"bytes"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"maps"
	"testing"
	"time"
)

// Forgeries of writer objects, made as an attacker can: with the standard
// library and the published format, from public bytes (the volume's
// objects, the writer's public key) and, where the case says so, a stolen
// writer credential, never with a secret the full key holds. Each is
// refused by the full-key reader; each has a control showing the forgery
// is complete but for the one thing that stops it.

// forger builds writer objects from raw parts.
type forger struct {
	volume VolumeID
	origin Origin
	pub    []byte // the writer's public key
	wa     []byte // its auth secret: the credential's, or a guess
	name   []byte // the name secret (a credential holds it)
	e      []byte // the epoch key the forger chose
}

func forgerOf(t *testing.T, cred *WriterCredential, wa []byte) *forger {
	f := &forger{volume: cred.volumeID, pub: cred.public, wa: wa, name: cred.nameSecret, e: forgeRandom(t)}
	f.origin.Writer = cred.writer
	rand.Read(f.origin.Epoch[:])
	return f
}

func forgeKey(secret, salt []byte, info string) []byte {
	k, _ := hkdf.Key(sha256.New, secret, salt, info, 32)
	return k
}

func forgeGCM(key []byte) gocipher.AEAD {
	block, _ := aes.NewCipher(key)
	aead, _ := gocipher.NewGCMWithRandomNonce(block)
	return aead
}

func (f *forger) info() []byte {
	info := append([]byte("coffer epoch v1"), f.volume[:]...)
	info = append(info, f.origin.Writer[:]...)
	return append(info, f.origin.Epoch[:]...)
}

// epochObject seals the forger's epoch key to the writer's public key
// with the epoch info of infoVolume/infoOrigin and tags it under f.wa.
func (f *forger) epochObject(t *testing.T) []byte {
	t.Helper()
	pub, err := hpke.MLKEM768X25519().NewPublicKey(f.pub)
	if err != nil {
		t.Fatal(err)
	}
	info := f.info()
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, f.e)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, forgeKey(f.wa, nil, "coffer epoch auth"))
	m.Write(info)
	m.Write(sealed)
	return append(sealed, m.Sum(nil)...)
}

// object seals an object at path under the forger's epoch key.
func (f *forger) object(t *testing.T, path string, a Attr, plain []byte) writerObject {
	t.Helper()
	var fid FileID
	rand.Read(fid[:])
	dek := forgeRandom(t)
	aad := append([]byte("coffer wdek v1"), f.volume[:]...)
	aad = append(append(append(aad, f.origin.Writer[:]...), f.origin.Epoch[:]...), fid[:]...)
	wrapped := forgeGCM(forgeKey(f.e, fid[:], "coffer writer dek wrap")).Seal(nil, nil, dek, aad)
	// The attribute record, written out from the format: 0x02 | fields |
	// no xattrs, under "coffer attr v2" | volume | file ID | path.
	rec := []byte{0x02}
	rec = binary.BigEndian.AppendUint32(rec, a.Mode)
	rec = binary.BigEndian.AppendUint32(rec, a.UID)
	rec = binary.BigEndian.AppendUint32(rec, a.GID)
	for _, n := range []int64{a.AtimeNs, a.MtimeNs, a.CtimeNs} {
		rec = binary.BigEndian.AppendUint64(rec, uint64(n))
	}
	rec = binary.BigEndian.AppendUint32(rec, a.Rdev)
	rec = binary.BigEndian.AppendUint64(rec, a.Changes)
	rec = binary.BigEndian.AppendUint16(rec, 0)
	attrAAD := append(append(append([]byte("coffer attr v2"), f.volume[:]...), fid[:]...), path...)
	attrKey := forgeKey(dek, nil, "attr")
	b := base64.RawURLEncoding
	meta := map[string]string{
		"coffer-v": "1", "coffer-fid": b.EncodeToString(fid[:]),
		"coffer-origin": b.EncodeToString(append(append([]byte{}, f.origin.Writer[:]...), f.origin.Epoch[:]...)),
		"coffer-dek":    b.EncodeToString(wrapped),
		"coffer-attr":   b.EncodeToString(forgeGCM(attrKey).Seal(nil, nil, rec, attrAAD)),
	}
	// The body, through this package's envelope (its format has its own
	// tests): the DEK is the forger's, so it is the forger's body.
	body := encrypt(t, newObjectKey(fid, dek, 0), plain)
	return writerObject{path: path, meta: meta, body: body, plain: plain, attr: a}
}

var forgedAttr = Attr{Mode: 0o104755, UID: 0, GID: 0, MtimeNs: 1}

// TestForgedEpochWithoutAuth: anyone with the writer's public key (no
// auth secret) can seal an epoch key to it, and objects under that key;
// the reader refuses the epoch, so the objects. Control: the same
// forgery with the credential's auth secret opens (what a stolen
// credential gives: files in the scope, marked with their origin).
func TestForgedEpochWithoutAuth(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	for _, tc := range []struct {
		name string
		wa   []byte
	}{{"a guessed auth secret", forgeRandom(t)}, {"no auth secret", make([]byte, 32)}} {
		t.Run(tc.name, func(t *testing.T) {
			f := forgerOf(t, v.cred, tc.wa)
			epochs := &epochStore{kr: v.kr, objects: map[Origin][]byte{f.origin: f.epochObject(t)}}
			if _, err := v.kr.OpenEpoch(f.origin, epochs.objects[f.origin]); !errors.Is(err, ErrAuth) {
				t.Fatalf("OpenEpoch of the forged epoch: %v, want ErrAuth", err)
			}
			obj := f.object(t, "/backups/host1/planted", forgedAttr, []byte("planted"))
			if _, _, _, err := v.kr.OpenAnyMetadata(obj.meta, obj.path, epochs.source); !errors.Is(err, ErrAuth) {
				t.Fatalf("an object under the forged epoch: %v, want ErrAuth", err)
			}
		})
	}
	t.Run("control: the credential's auth secret", func(t *testing.T) {
		f := forgerOf(t, v.cred, v.cred.auth)
		epochs := &epochStore{kr: v.kr, objects: map[Origin][]byte{f.origin: f.epochObject(t)}}
		obj := f.object(t, "/backups/host1/planted", forgedAttr, []byte("planted"))
		if origin := readerOpens(t, v.kr, epochs.source, obj); origin != f.origin {
			t.Fatalf("origin %v", origin)
		}
	})
}

// TestForgedEpochSwapped: an epoch object opens only for the volume,
// writer and epoch ID its info names. Each case moves a real epoch object
// (or seals one) where only that binding differs: the same writer key in
// another volume, the same key material under another writer ID, another
// epoch ID of the same writer. And objects of one session relabelled to
// another session's origin do not open under that session's epoch.
func TestForgedEpochSwapped(t *testing.T) {
	v := newWriterVolume(t, "/")
	s := v.session(t)
	_, real := s.EpochObject()
	wk := v.kr.writers[v.cred.Writer()]
	// Control: the epoch object opens where it belongs.
	if _, err := v.kr.OpenEpoch(s.Origin(), real); err != nil {
		t.Fatal(err)
	}

	t.Run("another volume", func(t *testing.T) {
		other := newWriterVolume(t, "/")
		other.kr.writers = map[WriterID]*writerKey{wk.id: wk} // the very same writer key
		if _, err := other.kr.OpenEpoch(s.Origin(), real); !errors.Is(err, ErrAuth) {
			t.Fatalf("%v, want ErrAuth", err)
		}
	})
	t.Run("another writer", func(t *testing.T) {
		twin := *wk
		rand.Read(twin.id[:])
		v.kr.writers[twin.id] = &twin // same keys, another ID
		defer delete(v.kr.writers, twin.id)
		o := Origin{Writer: twin.id, Epoch: s.Origin().Epoch}
		if _, err := v.kr.OpenEpoch(o, real); !errors.Is(err, ErrAuth) {
			t.Fatalf("%v, want ErrAuth", err)
		}
	})
	t.Run("another epoch ID", func(t *testing.T) {
		o := Origin{Writer: s.Origin().Writer}
		rand.Read(o.Epoch[:])
		if _, err := v.kr.OpenEpoch(o, real); !errors.Is(err, ErrAuth) {
			t.Fatalf("%v, want ErrAuth", err)
		}
	})
	t.Run("an object relabelled to another session", func(t *testing.T) {
		s2 := v.session(t)
		epochs := newEpochStore(v.kr, s, s2)
		obj := storeWriterObject(t, s, "/f", []byte("one"))
		relabelled := maps.Clone(obj.meta)
		relabelled[MetaOrigin] = b64.EncodeToString(s2.Origin().bytes())
		if _, _, _, err := v.kr.OpenAnyMetadata(relabelled, obj.path, epochs.source); !errors.Is(err, ErrAuth) {
			t.Fatalf("%v, want ErrAuth", err)
		}
		readerOpens(t, v.kr, epochs.source, obj)
	})
	t.Run("an object of another volume", func(t *testing.T) {
		other := newWriterVolume(t, "/")
		other.kr.writers = map[WriterID]*writerKey{wk.id: wk}
		obj := storeWriterObject(t, s, "/f", []byte("one"))
		epochs := newEpochStore(other.kr, s)
		if _, _, _, err := other.kr.OpenAnyMetadata(obj.meta, obj.path, epochs.source); !errors.Is(err, ErrAuth) {
			t.Fatalf("%v, want ErrAuth", err)
		}
	})
	t.Run("truncated or extended", func(t *testing.T) {
		for _, data := range [][]byte{real[:len(real)-1], append(bytes.Clone(real), 0)} {
			if _, err := v.kr.OpenEpoch(s.Origin(), data); !errors.Is(err, ErrAuth) {
				t.Fatalf("%d bytes: %v, want ErrAuth", len(data), err)
			}
		}
	})
}

// TestForgedWriterObjectOutOfScope: with a stolen credential (public key,
// auth secret, name secret) a forger makes valid epochs, and objects
// anywhere; the reader opens only those inside the writer's scope and
// outside /.coffer, and no writer-origin link or inode.
func TestForgedWriterObjectOutOfScope(t *testing.T) {
	v := newWriterVolume(t, "/backups/host1")
	f := forgerOf(t, v.cred, v.cred.auth)
	epochs := &epochStore{kr: v.kr, objects: map[Origin][]byte{f.origin: f.epochObject(t)}}
	for _, path := range []string{"/etc/cron.d/evil", "/backups/host10/x", "/backups", "/"} {
		obj := f.object(t, path, forgedAttr, []byte("x"))
		if _, _, _, err := v.kr.OpenAnyMetadata(obj.meta, path, epochs.source); !errors.Is(err, ErrOutOfScope) {
			t.Errorf("a forged object at %s: %v, want ErrOutOfScope", path, err)
		}
	}
	// In scope it opens (control), moved out of it it does not.
	in := f.object(t, "/backups/host1/ok", forgedAttr, []byte("x"))
	readerOpens(t, v.kr, epochs.source, in)
	if _, _, _, err := v.kr.OpenAnyMetadata(in.meta, "/etc/ok", epochs.source); !errors.Is(err, ErrWriterRefused) {
		t.Errorf("moved out of scope: %v", err)
	}

	// Under /.coffer: a writer of scope "/" is still kept out.
	all := newWriterVolume(t, "/")
	f = forgerOf(t, all.cred, all.cred.auth)
	epochs = &epochStore{kr: all.kr, objects: map[Origin][]byte{f.origin: f.epochObject(t)}}
	for _, path := range []string{"/.coffer", "/.coffer/config"} {
		obj := f.object(t, path, forgedAttr, nil)
		if _, _, _, err := all.kr.OpenAnyMetadata(obj.meta, path, epochs.source); !errors.Is(err, ErrWriterRefused) {
			t.Errorf("a forged object at %s: %v, want ErrWriterRefused", path, err)
		}
	}
	for _, key := range []string{".coffer/inodes/0123", ".coffer/config", ".coffer/epochs/x/y", ".coffer"} {
		if err := CheckWriterObjectKey(key); !errors.Is(err, ErrWriterRefused) {
			t.Errorf("CheckWriterObjectKey(%s): %v", key, err)
		}
	}
	for _, key := range []string{"A/B", ".cofferx/y", "x/.coffer/y"} {
		if err := CheckWriterObjectKey(key); err != nil {
			t.Errorf("CheckWriterObjectKey(%s): %v", key, err)
		}
	}
	// A writer-origin inode or link is refused (they are the full key's
	// alone), whatever it holds.
	obj := f.object(t, "/x", forgedAttr, nil)
	ino := maps.Clone(obj.meta)
	id := NewInodeID()
	ino[MetaInode] = b64.EncodeToString(id[:])
	if _, _, err := all.kr.OpenInode(ino, id); !errors.Is(err, ErrWriterRefused) {
		t.Errorf("a writer-origin inode: %v, want ErrWriterRefused", err)
	}
	if _, _, err := all.kr.OpenLink(obj.meta, "/x"); !errors.Is(err, ErrWriterRefused) {
		t.Errorf("a writer-origin link: %v, want ErrWriterRefused", err)
	}
	if _, _, err := all.kr.FollowLink(ino, Link{Inode: id}); !errors.Is(err, ErrWriterRefused) {
		t.Errorf("following to a writer-origin inode: %v, want ErrWriterRefused", err)
	}
}

// TestForgedWriterUnknownOrRevoked: objects of a writer the keyring does
// not know are refused; after revocation, a new epoch (a thief's, with
// the stolen credential) and a replaced epoch object under a kept epoch
// ID are refused, while the kept epochs' files still open.
func TestForgedWriterUnknownOrRevoked(t *testing.T) {
	v := newWriterVolume(t, "/b")
	stranger := newWriterVolume(t, "/b")
	f := forgerOf(t, stranger.cred, stranger.cred.auth)
	f.volume = v.kr.VolumeID() // sealed for this volume, by a writer it never had
	epochs := &epochStore{kr: v.kr, objects: map[Origin][]byte{f.origin: f.epochObject(t)}}
	if _, _, _, err := v.kr.OpenAnyMetadata(f.object(t, "/b/x", forgedAttr, nil).meta, "/b/x", epochs.source); !errors.Is(err, ErrWriterRefused) {
		t.Fatalf("an unknown writer's object: %v, want ErrWriterRefused", err)
	}

	kept := v.session(t)
	keptObj := storeWriterObject(t, kept, "/b/kept", []byte("before"))
	epochs = newEpochStore(v.kr, kept)
	e, err := v.kr.OpenEpoch(kept.Origin(), epochs.objects[kept.Origin()])
	if err != nil {
		t.Fatal(err)
	}
	if err := v.kr.RevokeWriter(v.cred.Writer(), []*Epoch{e}, time.Now()); err != nil {
		t.Fatal(err)
	}
	readerOpens(t, v.kr, epochs.source, keptObj)

	// The thief's new epoch.
	thief := forgerOf(t, v.cred, v.cred.auth)
	epochs.objects[thief.origin] = thief.epochObject(t)
	newObj := thief.object(t, "/b/new", forgedAttr, []byte("after"))
	if _, _, _, err := v.kr.OpenAnyMetadata(newObj.meta, newObj.path, epochs.source); !errors.Is(err, ErrWriterRevoked) {
		t.Fatalf("a new epoch after revocation: %v, want ErrWriterRevoked", err)
	}
	// The thief's epoch object put in place of the kept one, and objects
	// under it.
	thief.origin = kept.Origin()
	epochs.objects[kept.Origin()] = thief.epochObject(t)
	replaced := thief.object(t, "/b/replaced", forgedAttr, []byte("after"))
	if _, _, _, err := v.kr.OpenAnyMetadata(replaced.meta, replaced.path, epochs.source); !errors.Is(err, ErrWriterRevoked) {
		t.Fatalf("an object under a replaced epoch object: %v, want ErrWriterRevoked", err)
	}
	// An epoch a mount opened and cached before the revocation, from an
	// object the thief had put in place of the real one, is refused after
	// it, though its epoch ID is kept: the keyring kept the real object.
	w2 := newWriterVolume(t, "/b")
	s2 := w2.session(t)
	_, realData := s2.EpochObject()
	swapped := forgerOf(t, w2.cred, w2.cred.auth)
	swapped.origin = s2.Origin()
	cached, err := w2.kr.OpenEpoch(s2.Origin(), swapped.epochObject(t))
	if err != nil {
		t.Fatal(err)
	}
	realEpoch, err := w2.kr.OpenEpoch(s2.Origin(), realData)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.kr.RevokeWriter(w2.cred.Writer(), []*Epoch{realEpoch}, time.Now()); err != nil {
		t.Fatal(err)
	}
	obj := swapped.object(t, "/b/x", forgedAttr, []byte("x"))
	if _, _, _, err := w2.kr.OpenAnyMetadata(obj.meta, obj.path, func(Origin) (*Epoch, error) { return cached, nil }); !errors.Is(err, ErrWriterRevoked) {
		t.Fatalf("a cached epoch of a replaced object, after revocation: %v, want ErrWriterRevoked", err)
	}
	readerOpens(t, w2.kr, func(Origin) (*Epoch, error) { return realEpoch, nil }, storeWriterObject(t, s2, "/b/y", []byte("y")))
	// The revocation goes through the config.
	data2, err := v.cfg.Marshal(v.kr)
	if err != nil {
		t.Fatal(err)
	}
	_, kr := openConfig(t, data2, v.root)
	epochs.kr = kr
	epochs.objects[kept.Origin()] = must(func() ([]byte, error) { _, d := kept.EpochObject(); return d, nil }())
	readerOpens(t, kr, epochs.source, keptObj)
	if _, _, _, err := kr.OpenAnyMetadata(newObj.meta, newObj.path, epochs.source); !errors.Is(err, ErrWriterRevoked) {
		t.Fatalf("after a config round trip, the new epoch: %v, want ErrWriterRevoked", err)
	}
}

// TestForgedOriginOnFullKeyObject: coffer-origin added to, or removed
// from, an object does not change who can open it: a full-key object
// labelled a writer's, or a writer's object stripped of its label, does
// not open.
func TestForgedOriginOnFullKeyObject(t *testing.T) {
	v := newWriterVolume(t, "/")
	s := v.session(t)
	epochs := newEpochStore(v.kr, s)
	o, _ := v.kr.NewObjectKey()
	full, err := v.kr.SealMetadata(o, "/f", testAttr)
	if err != nil {
		t.Fatal(err)
	}
	labelled := maps.Clone(full)
	labelled[MetaOrigin] = b64.EncodeToString(s.Origin().bytes())
	if _, _, _, err := v.kr.OpenAnyMetadata(labelled, "/f", epochs.source); !errors.Is(err, ErrAuth) {
		t.Fatalf("a full-key object labelled a writer's: %v, want ErrAuth", err)
	}
	delete(labelled, MetaKEK)
	if _, _, _, err := v.kr.OpenAnyMetadata(labelled, "/f", epochs.source); !errors.Is(err, ErrAuth) {
		t.Fatalf("the same without coffer-kek: %v, want ErrAuth", err)
	}
	obj := storeWriterObject(t, s, "/w", []byte("w"))
	stripped := maps.Clone(obj.meta)
	delete(stripped, MetaOrigin)
	stripped[MetaKEK] = "1"
	if _, _, _, err := v.kr.OpenAnyMetadata(stripped, "/w", epochs.source); !errors.Is(err, ErrAuth) {
		t.Fatalf("a writer's object stripped of its origin: %v, want ErrAuth", err)
	}
	bad := maps.Clone(obj.meta)
	bad[MetaOrigin] = "AAAA"
	if _, _, _, err := v.kr.OpenAnyMetadata(bad, "/w", epochs.source); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("a malformed coffer-origin: %v, want ErrBadMetadata", err)
	}
}
