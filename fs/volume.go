package fs

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// ConfigKey is the object key of a volume's config, relative to the
// store's prefix. The ".coffer/" prefix is reserved in every mode.
const ConfigKey = ".coffer/config"

// reservedName is the root entry that is never listed nor created.
const reservedName = ".coffer"

// Encryption modes of a volume (DESIGN.md §4), the values of
// Options.Encryption: those of the config, which cipher defines.
const (
	EncryptionClient = cipher.EncryptionClient
	EncryptionNone   = cipher.EncryptionNone
)

// Defaults for the zero values of Options.
const (
	DefaultWritebackDelay    = 2 * time.Second
	DefaultUploadConcurrency = 8
	DefaultPartSize          = 8 << 20
	DefaultMetadataTTL       = 10 * time.Second
	DefaultCacheSize         = 1 << 30
	DefaultListConcurrency   = 64
)

// DefaultRetryBudget is Options.RetryBudget's default: the S3 backend's
// own retry budget with its defaults (6 attempts, 30 s stall timeout,
// backoff capped at 8 s: about 3.4 minutes).
var DefaultRetryBudget = blobstore.Options{}.RetryBudget()

// Options configure OpenVolume.
type Options struct {
	Store blobstore.Store
	// Roots are the root keys tried, in order, to open the config.
	Roots []*cipher.RootKey
	// Encryption is the mode the user asked for ("client" or "none");
	// it must match the volume's. Empty means "client".
	Encryption string
	// SSE is the server-side encryption the store was opened with; its
	// mode must match the volume's. In "none" mode its first SSE-C key
	// also seeds the local secret.
	SSE blobstore.SSEConfig
	// Config is the config already read with ReadConfig (optional: read
	// again when nil).
	Config *cipher.Config
	// CacheDir holds everything written locally (block cache, staging).
	// Empty: a temporary directory removed by Close.
	CacheDir string
	// CacheSize bounds the disk block cache in bytes (0: DefaultCacheSize).
	CacheSize int64
	// MemCacheSize bounds the in-memory plaintext chunk cache (0: 64 MiB).
	MemCacheSize int64
	// WritebackDelay is how long a closed file waits before its upload
	// (0: DefaultWritebackDelay; negative: upload at once).
	WritebackDelay time.Duration
	// UploadConcurrency bounds concurrent uploads and parts.
	UploadConcurrency int
	// PartSize is the multipart part size in bytes.
	PartSize int64
	// StreamThreshold is the sequentially written prefix at which a file
	// starts its multipart upload while it is written (stream.go); 0:
	// two parts, negative: never.
	StreamThreshold int64
	// MetadataTTL is how long attributes and listings are trusted
	// (0: DefaultMetadataTTL; negative: not cached).
	MetadataTTL time.Duration
	// ListConcurrency bounds the parallel requests that fetch the
	// attributes of listed entries (and of a directory rename's
	// objects); 0: DefaultListConcurrency. The store's connection pool
	// should be at least this large.
	ListConcurrency int
	// ConfigRefresh is how often a client-mode volume re-reads its config
	// to follow KEK rotations (configwatch.go); 0: the metadata TTL,
	// within [1 s, ConfigRefreshMax]; negative: never.
	ConfigRefresh time.Duration
	// RetryBudget is how long an upload that a caller waits for (fsync,
	// Flush, a rename that must upload first) keeps retrying a store that
	// fails with transient errors (unreachable, stalled, 5xx, throttled)
	// before it fails; a store back within it sees the upload succeed.
	// Uploads nobody waits for (closed files) retry until they succeed,
	// journalled meanwhile. 0: DefaultRetryBudget.
	RetryBudget time.Duration
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// KeepNoIndexes: use directory indexes (dirindex.go) but write them
	// only where a metadata-only copy made them stale. Offline commands
	// set it: one put is not worth a LIST of its directory, and a new
	// object never makes an index wrong.
	KeepNoIndexes bool
	// Writers says what to do with the files writer keys stored
	// ("": WritersRead).
	Writers WritersPolicy
	// Writer, instead of Roots, opens the volume write-only with a writer
	// credential (writeonly.go). Encryption must be client (or "") and
	// SSE the credential's.
	Writer *cipher.WriterCredential
	// UID and GID own implicit directories and are the default owner of
	// new files when the context names no caller (see WithCaller).
	UID, GID uint32
	// Logger receives the volume's records (nil: discarded).
	Logger *slog.Logger
	// Test hooks: the clock of delayed uploads and the time that names
	// conflict copies (nil: the real ones); blobstore.Upload's retries.
	clock         clock
	now           func() time.Time
	uploadRetries int

	// LogPlaintextNames lets Debug records name files by their
	// plaintext path (after the object key that every record carries).
	// Set it only when the log goes to a terminal, never to a file:
	// DESIGN.md §5 allows no plaintext name on local disk. False (the
	// default): no record carries a plaintext path or name, at any level.
	LogPlaintextNames bool
}

// ReadConfig fetches and parses the config object of the volume in
// store without authenticating it (Open authenticates). Callers use it
// to learn the volume ID, e.g. to choose the cache directory.
func ReadConfig(ctx context.Context, store blobstore.Store) (*cipher.Config, error) {
	_, cfg, err := readConfig(ctx, store)
	return cfg, err
}

func readConfig(ctx context.Context, store blobstore.Store) (blobstore.ObjectInfo, *cipher.Config, error) {
	rc, info, err := store.Get(ctx, ConfigKey, blobstore.GetOptions{Length: -1})
	if errors.Is(err, blobstore.ErrNotFound) {
		return info, nil, fmt.Errorf("no coffer volume in this store (%s is missing): run coffer init first: %w", ConfigKey, err)
	}
	if err != nil {
		return info, nil, fmt.Errorf("reading volume config: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return info, nil, fmt.Errorf("reading volume config: %w", err)
	}
	cfg, err := cipher.ParseConfig(data)
	if err != nil {
		return info, nil, fmt.Errorf("volume config: %w", err)
	}
	return info, cfg, nil
}

// VolumeID returns the hex volume ID of cfg, the name of its default
// cache directory.
func VolumeID(cfg *cipher.Config) string {
	id := cfg.VolumeID()
	return hex.EncodeToString(id[:])
}

// InitVolume writes the config of a new volume to store, refusing to
// replace an existing one (conditional create).
func InitVolume(ctx context.Context, store blobstore.Store, cfg *cipher.Config, kr *cipher.Keyring) error {
	data, err := cfg.Marshal(kr)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	_, err = store.Put(ctx, ConfigKey, bytes.NewReader(data), int64(len(data)), blobstore.PutOptions{IfNoneMatch: true})
	if errors.Is(err, blobstore.ErrPreconditionFailed) {
		return fmt.Errorf("init: a coffer volume already exists in this store (%s); mount it, or choose another bucket or prefix: %w", ConfigKey, err)
	}
	if err != nil {
		return fmt.Errorf("init: writing %s: %w", ConfigKey, err)
	}
	return nil
}

// ErrModeMismatch is wrapped by the errors of OpenVolume when the modes
// asked for (Options.Encryption, Options.SSE) are not the volume's.
var ErrModeMismatch = errors.New("mode mismatch")

// checkModes compares what the user asked for with what the
// authenticated config says the volume is.
func checkModes(cfg *cipher.Config, encryption string, sse blobstore.SSEConfig) error {
	if err := checkEncryption(cfg.Encryption, encryption); err != nil {
		return err
	}
	want := string(sse.Mode)
	if cfg.SSE != want {
		return &modeError{fmt.Sprintf("volume uses --sse %s but --sse %s was given", blobstore.SSEMode(cfg.SSE).Name(), sse.Mode.Name())}
	}
	if cfg.SSE == string(blobstore.SSEKMS) && cfg.SSEKMSKeyID != "" && sse.KMSKeyID != "" && cfg.SSEKMSKeyID != sse.KMSKeyID {
		return &modeError{fmt.Sprintf("volume uses --sse-kms-key-id %s but %s was given", cfg.SSEKMSKeyID, sse.KMSKeyID)}
	}
	return nil
}

// checkEncryption compares the encryption mode asked for ("" is client)
// with the volume's.
func checkEncryption(volume, asked string) error {
	if asked == "" {
		asked = EncryptionClient
	}
	if volume == asked {
		return nil
	}
	advice := "mount it with --encryption " + volume
	if volume == EncryptionClient {
		advice += " and the key it was initialised with"
	} else {
		// Anyone who can write the bucket can write a none-mode config
		// (its MAC key is public): the advice must not talk a client
		// volume's user into writing plaintext.
		advice += " if it was created so; if it was created with client-side encryption, its config was replaced by someone who can write the bucket (a config without client-side encryption is not authenticated): do not mount it"
	}
	return &modeError{fmt.Sprintf("volume uses --encryption %s but --encryption %s was given: %s", volume, asked, advice)}
}

// modeError is a mode mismatch; its message says which and what to do.
type modeError struct{ msg string }

func (e *modeError) Error() string { return e.msg }
func (e *modeError) Unwrap() error { return ErrModeMismatch }
