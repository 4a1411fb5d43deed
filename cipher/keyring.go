package cipher

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// VolumeID identifies a volume; it is bound into every DEK wrap and every
// sealed attribute, so objects do not open in another volume.
type VolumeID [16]byte

// String is the lower-case hex form (used, for example, in cache paths).
func (v VolumeID) String() string { return hex.EncodeToString(v[:]) }

// String is the lower-case hex form of a file ID.
func (f FileID) String() string { return hex.EncodeToString(f[:]) }

// Keyring holds a volume's secrets and KEK generations (DESIGN.md §2). It is
// safe for concurrent use; AddGeneration and RetireGeneration may run while
// other goroutines seal and open.
type Keyring struct {
	volumeID     VolumeID
	nameSecret   []byte
	localSecret  []byte
	names        *Names
	mu           sync.RWMutex
	configSecret []byte
	anchorSecret []byte // nil in a keyring written before entry authentication
	keks         map[uint32][]byte
	added        map[uint32]int64 // Unix seconds a generation was added; absent when not recorded
	current      uint32
	now          func() time.Time
	writers      map[WriterID]*writerKey // writer.go
}

// NewKeyring makes a keyring with a fresh volume ID, fresh secrets and KEK
// generation 1.
func NewKeyring() (*Keyring, error) {
	k := &Keyring{
		nameSecret:   randomKey(),
		localSecret:  randomKey(),
		configSecret: randomKey(),
		anchorSecret: randomKey(),
		keks:         map[uint32][]byte{1: randomKey()},
		current:      1,
		now:          time.Now,
	}
	k.added = map[uint32]int64{1: k.now().Unix()}
	rand.Read(k.volumeID[:])
	k.names = newNames(k.nameSecret)
	return k, nil
}

func randomKey() []byte {
	b := make([]byte, keySize)
	rand.Read(b)
	return b
}

// VolumeID identifies the volume this keyring belongs to.
func (k *Keyring) VolumeID() VolumeID { return k.volumeID }

// CurrentGeneration is the KEK generation new DEKs are wrapped under.
func (k *Keyring) CurrentGeneration() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Generations lists the KEK generations in the keyring, oldest first.
func (k *Keyring) Generations() []uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	gens := make([]uint32, 0, len(k.keks))
	for g := range k.keks {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens
}

// AddGeneration adds a KEK generation and makes it current.
func (k *Keyring) AddGeneration() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	next := k.current + 1
	for g := range k.keks {
		next = max(next, g+1)
	}
	if next == 0 {
		return errors.New("KEK generations exhausted")
	}
	k.keks[next] = randomKey()
	k.added[next] = k.now().Unix()
	k.current = next
	return nil
}

// GenerationAdded is when generation g was added (by AddGeneration, or
// NewKeyring for the first); ok is false when the keyring does not record
// it (generations from before the time was recorded) or lacks g.
func (k *Keyring) GenerationAdded(g uint32) (t time.Time, ok bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	s, ok := k.added[g]
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(s, 0).UTC(), true
}

// AdoptGenerations makes k's KEK generations, and its current generation,
// those of newer: the keyring of the same volume as opened from a later
// version of its config (a mount re-reading its config after `coffer
// rotate`). Generations newer added become usable, the current one seals
// from now on, and generations newer lacks (retired) stop opening objects.
// Nothing else of k changes. It refuses a keyring with other secrets, and
// a rollback: one whose current generation is older than k's, or that
// holds a generation k retired or never had below k's current one, or
// another key under a generation number k knows (an older config replayed
// from the bucket must not bring retired KEKs back). changed reports
// whether anything changed.
func (k *Keyring) AdoptGenerations(newer *Keyring) (changed bool, err error) {
	if newer == k {
		return false, nil
	}
	if newer.volumeID != k.volumeID || !hmac.Equal(newer.nameSecret, k.nameSecret) || !hmac.Equal(newer.localSecret, k.localSecret) {
		return false, errors.New("the newer keyring is not this volume's (other secrets)")
	}
	newer.mu.RLock()
	keks, added, current := maps.Clone(newer.keks), maps.Clone(newer.added), newer.current
	newer.mu.RUnlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if current < k.current {
		return false, fmt.Errorf("the config's current KEK generation %d is older than %d: an older config was put back", current, k.current)
	}
	for g, key := range keks {
		old, known := k.keks[g]
		switch {
		case known && !hmac.Equal(old, key):
			return false, fmt.Errorf("KEK generation %d changed", g)
		case !known && g <= k.current:
			return false, fmt.Errorf("KEK generation %d is back or unknown below the current generation %d: an older config was put back", g, k.current)
		}
	}
	same := current == k.current && len(keks) == len(k.keks)
	for g := range keks {
		if _, ok := k.keks[g]; !ok {
			same = false
		}
	}
	if same {
		return false, nil
	}
	k.keks, k.added, k.current = keks, added, current
	return true, nil
}

// RetireGeneration drops a generation no object uses any more. The current
// generation cannot be retired.
func (k *Keyring) RetireGeneration(g uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if g == k.current {
		return fmt.Errorf("KEK generation %d is current and cannot be retired", g)
	}
	if _, ok := k.keks[g]; !ok {
		return fmt.Errorf("KEK generation %d is not in the keyring", g)
	}
	delete(k.keks, g)
	delete(k.added, g)
	return nil
}

// String and GoString keep the secrets out of anything that prints a
// keyring (%v, %#v, log attributes).
func (k *Keyring) String() string   { return "keyring of volume " + k.volumeID.String() }
func (k *Keyring) GoString() string { return k.String() }

// LocalSecret is the secret local files (staging, cache) are sealed from.
func (k *Keyring) LocalSecret() []byte { return bytes.Clone(k.localSecret) }

// Names encrypts and decrypts the path segments of this volume.
func (k *Keyring) Names() *Names { return k.names }

// NewObjectKey makes a fresh file ID and DEK under the current generation.
func (k *Keyring) NewObjectKey() (*ObjectKey, error) {
	return newRandomObjectKey(k.CurrentGeneration()), nil
}

func (k *Keyring) kek(g uint32) ([]byte, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	kek, ok := k.keks[g]
	return kek, ok
}

func (k *Keyring) configMACKey() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return deriveKey(k.configSecret, nil, infoConfigMAC)
}

// rotateConfigSecret replaces the config secret, so a removed root key that
// kept an old keyring can no longer forge the config MAC.
func (k *Keyring) rotateConfigSecret() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.configSecret = randomKey()
}

// anchor is what every entry's auth tag binds (doc.go, "Entry
// authentication"); nil when the keyring predates it.
func (k *Keyring) anchor() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.anchorSecret == nil {
		return nil
	}
	return deriveKey(k.anchorSecret, k.volumeID[:], infoAnchor)
}

// rotateAnchorSecret draws a new anchor secret: every entry's auth tag must
// then be recomputed (Config.Reauth), which needs every entry's root key.
func (k *Keyring) rotateAnchorSecret() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.anchorSecret = randomKey()
}

// keyringJSON is the plaintext the config seals (under the keyring-wrapping
// key). Field order is fixed, generations sorted: the encoding of a keyring
// is deterministic.
type keyringJSON struct {
	VolumeID     string       `json:"volume_id"`
	NameSecret   string       `json:"name_secret"`
	LocalSecret  string       `json:"local_secret"`
	ConfigSecret string       `json:"config_secret"`
	AnchorSecret string       `json:"anchor_secret,omitempty"` // absent before entry authentication
	Current      uint32       `json:"current"`
	KEKs         []kekJSON    `json:"keks"`
	Writers      []writerJSON `json:"writers,omitempty"` // writer.go
}

type kekJSON struct {
	Gen   uint32 `json:"gen"`
	Key   string `json:"key"`
	Added int64  `json:"added,omitempty"` // Unix seconds; absent when not recorded
}

var b64 = base64.RawURLEncoding.Strict()

func (k *Keyring) marshal() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	j := keyringJSON{
		VolumeID:     b64.EncodeToString(k.volumeID[:]),
		NameSecret:   b64.EncodeToString(k.nameSecret),
		LocalSecret:  b64.EncodeToString(k.localSecret),
		ConfigSecret: b64.EncodeToString(k.configSecret),
		Current:      k.current,
	}
	if k.anchorSecret != nil {
		j.AnchorSecret = b64.EncodeToString(k.anchorSecret)
	}
	for g, key := range k.keks {
		j.KEKs = append(j.KEKs, kekJSON{Gen: g, Key: b64.EncodeToString(key), Added: k.added[g]})
	}
	slices.SortFunc(j.KEKs, func(a, b kekJSON) int { return int(int64(a.Gen) - int64(b.Gen)) })
	j.Writers = k.marshalWriters()
	out, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("cipher: marshal keyring: %v", err))
	}
	return out
}

// unmarshalKeyring decodes an authenticated keyring plaintext. It is still
// checked field by field: a format bug must not yield a half-keyed volume.
func unmarshalKeyring(data []byte) (*Keyring, error) {
	var j keyringJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k := &Keyring{keks: make(map[uint32][]byte), added: make(map[uint32]int64), current: j.Current, now: time.Now}
	vid, err := decodeFixed(j.VolumeID, len(k.volumeID))
	if err != nil {
		return nil, fmt.Errorf("keyring volume ID: %w", err)
	}
	copy(k.volumeID[:], vid)
	for _, f := range []struct {
		dst *[]byte
		src string
	}{{&k.nameSecret, j.NameSecret}, {&k.localSecret, j.LocalSecret}, {&k.configSecret, j.ConfigSecret}} {
		if *f.dst, err = decodeFixed(f.src, keySize); err != nil {
			return nil, fmt.Errorf("keyring secret: %w", err)
		}
	}
	if j.AnchorSecret != "" {
		if k.anchorSecret, err = decodeFixed(j.AnchorSecret, keySize); err != nil {
			return nil, fmt.Errorf("keyring anchor secret: %w", err)
		}
	}
	for _, kek := range j.KEKs {
		key, err := decodeFixed(kek.Key, keySize)
		if err != nil || kek.Gen == 0 || kek.Added < 0 {
			return nil, fmt.Errorf("keyring KEK generation %d is malformed", kek.Gen)
		}
		if _, dup := k.keks[kek.Gen]; dup {
			return nil, fmt.Errorf("keyring KEK generation %d is listed twice", kek.Gen)
		}
		k.keks[kek.Gen] = key
		if kek.Added > 0 {
			k.added[kek.Gen] = kek.Added
		}
	}
	if _, ok := k.keks[k.current]; !ok {
		return nil, fmt.Errorf("keyring: current KEK generation %d missing", k.current)
	}
	if k.writers, err = unmarshalWriters(j.Writers); err != nil {
		return nil, err
	}
	k.names = newNames(k.nameSecret)
	return k, nil
}

// decodeFixed decodes base64url without padding of exactly n bytes.
func decodeFixed(s string, n int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url without padding")
	}
	if len(b) != n {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), n)
	}
	return b, nil
}
