package cipher

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	current      uint32
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
	}
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
	k.current = next
	return nil
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
	VolumeID     string    `json:"volume_id"`
	NameSecret   string    `json:"name_secret"`
	LocalSecret  string    `json:"local_secret"`
	ConfigSecret string    `json:"config_secret"`
	AnchorSecret string    `json:"anchor_secret,omitempty"` // absent before entry authentication
	Current      uint32    `json:"current"`
	KEKs         []kekJSON `json:"keks"`
}

type kekJSON struct {
	Gen uint32 `json:"gen"`
	Key string `json:"key"`
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
		j.KEKs = append(j.KEKs, kekJSON{Gen: g, Key: b64.EncodeToString(key)})
	}
	slices.SortFunc(j.KEKs, func(a, b kekJSON) int { return int(int64(a.Gen) - int64(b.Gen)) })
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
	k := &Keyring{keks: make(map[uint32][]byte), current: j.Current}
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
		if err != nil || kek.Gen == 0 {
			return nil, fmt.Errorf("keyring KEK generation %d is malformed", kek.Gen)
		}
		k.keks[kek.Gen] = key
	}
	if _, ok := k.keks[k.current]; !ok {
		return nil, fmt.Errorf("keyring: current KEK generation %d missing", k.current)
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
