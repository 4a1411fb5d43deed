package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// storeFlags name the store and how to reach it.
type storeFlags struct {
	url       string
	endpoint  string
	region    string
	pathStyle bool
	allowHTTP bool
}

func (s *storeFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.url, "store", "", "store URL: s3://bucket[/prefix], file:///dir or a directory (env "+envStore+"; default $XDG_DATA_HOME/coffer/store)")
	f.StringVar(&s.endpoint, "endpoint", "", "S3 endpoint URL for S3-compatible servers (default: the AWS SDK's, e.g. $AWS_ENDPOINT_URL_S3)")
	f.StringVar(&s.region, "region", "", "S3 region (default: the AWS SDK's, e.g. $AWS_REGION)")
	f.BoolVar(&s.pathStyle, "path-style", false, "address buckets as ENDPOINT/bucket (most S3-compatible servers need it)")
	f.BoolVar(&s.allowHTTP, "allow-http", false, "allow a plain http:// endpoint that is not loopback (credentials and data cross the network unprotected by TLS)")
}

// resolve returns the store URL to open: the flag, else $COFFER_STORE,
// else the default local store. Local paths are made absolute, so a
// daemon child that leaves the working directory still finds them.
func (s *storeFlags) resolve(e *env) (string, blobstore.Location, error) {
	raw := s.url
	if raw == "" {
		raw = e.getenv(envStore)
	}
	if raw == "" {
		d, err := e.defaultStore()
		if err != nil {
			return "", blobstore.Location{}, err
		}
		raw = d
	}
	loc, err := blobstore.ParseURL(raw)
	if err != nil {
		return "", blobstore.Location{}, &usageError{err: err, hint: "coffer --help"}
	}
	if loc.Scheme == "file" {
		abs, err := filepath.Abs(loc.Path)
		if err != nil {
			return "", blobstore.Location{}, fmt.Errorf("store path %s: %w", loc.Path, err)
		}
		loc.Path = abs
		return abs, loc, nil
	}
	// blobstore applies the same rule when it opens the store; checked
	// here, the refusal is a usage error naming the flag to reach for.
	if endpoint := s.effectiveEndpoint(e); endpoint != "" {
		if err := blobstore.CheckEndpoint(endpoint, s.allowHTTP); err != nil {
			return "", blobstore.Location{}, &usageError{err: err}
		}
	}
	return raw, loc, nil
}

// options returns the blobstore options these flags describe.
func (s *storeFlags) options(sse blobstore.SSEConfig, concurrency int) blobstore.Options {
	return blobstore.Options{
		Endpoint:    s.endpoint,
		Region:      s.region,
		PathStyle:   s.pathStyle,
		AllowHTTP:   s.allowHTTP,
		SSE:         sse,
		Concurrency: concurrency,
	}
}

// keyFlags select the keys and the encryption modes.
type keyFlags struct {
	keyFile        string
	passphraseFile string
	sseCKeyFile    string
	encryption     string
	sse            string
	sseKMSKeyID    string
	kms            kmsFlags
	flags          *pflag.FlagSet
	// keyFiles and passphraseFiles are the repeatable root key flags of
	// registerEvery; when set they replace keyFile and passphraseFile.
	keyFiles        []string
	passphraseFiles []string
}

func (k *keyFlags) register(f *pflag.FlagSet) {
	k.flags = f
	f.StringVar(&k.keyFile, "key-file", "", "file holding the 32-byte root key (env "+envKeyFile+"; default $XDG_CONFIG_HOME/coffer/key)")
	f.StringVar(&k.passphraseFile, "passphrase-file", "", "file whose first line is the passphrase (env "+envPassphraseFile+")")
	k.kms.register(f)
	f.StringVar(&k.encryption, "encryption", cipher.EncryptionClient, "client (encrypt contents, names and attributes here) or none (plain objects; give an --sse mode)")
	k.registerSSE(f)
}

// registerEvery registers the flags of a command that takes every root
// key of a client-mode volume (key reauth): --key-file and
// --passphrase-file repeatable, the SSE flags, no --encryption.
func (k *keyFlags) registerEvery(f *pflag.FlagSet) { k.registerEveryWith(f, kmsKeyFlag) }

// registerEveryWith is registerEvery with the opening KMS key under flag
// kmsFlag (key add, whose --kms-key-id names the key to add).
func (k *keyFlags) registerEveryWith(f *pflag.FlagSet, kmsFlag string) {
	k.flags = f
	k.encryption = cipher.EncryptionClient
	f.StringArrayVar(&k.keyFiles, "key-file", nil, "a root key file of the volume (repeat for each; env "+envKeyFile+" when no key flag is given)")
	f.StringArrayVar(&k.passphraseFiles, "passphrase-file", nil, "a file whose first line is a passphrase of the volume (repeat for each; env "+envPassphraseFile+")")
	k.kms.registerAs(f, kmsFlag)
	k.registerSSE(f)
}

func (k *keyFlags) registerSSE(f *pflag.FlagSet) {
	f.StringVar(&k.sseCKeyFile, "sse-c-key-file", "", "SSE-C key file in s3fs-fuse's format, for --sse sse-c (env "+envSSECKeyFile+")")
	f.StringVar(&k.sse, "sse", "", "server-side encryption on every request: sse-s3, sse-kms or sse-c")
	f.StringVar(&k.sseKMSKeyID, "sse-kms-key-id", "", "KMS key ID or ARN for --sse sse-kms (default: the bucket's key)")
}

// mode validates --encryption.
func (k *keyFlags) mode() (string, error) {
	switch k.encryption {
	case cipher.EncryptionClient, cipher.EncryptionNone:
		return k.encryption, nil
	}
	return "", usagef("unknown --encryption %q: want client or none", k.encryption)
}

// sseConfig validates --sse and loads the SSE-C keys it needs.
func (k *keyFlags) sseConfig(e *env) (blobstore.SSEConfig, error) {
	mode, err := blobstore.ParseSSEMode(k.sse)
	if err != nil {
		return blobstore.SSEConfig{}, &usageError{err: fmt.Errorf("--sse: %w", err)}
	}
	if k.sseKMSKeyID != "" && mode != blobstore.SSEKMS {
		return blobstore.SSEConfig{}, usagef("--sse-kms-key-id needs --sse sse-kms")
	}
	cfg := blobstore.SSEConfig{Mode: mode, KMSKeyID: k.sseKMSKeyID}
	if mode != blobstore.SSEC {
		if k.sseCKeyFile != "" {
			return blobstore.SSEConfig{}, usagef("--sse-c-key-file needs --sse sse-c")
		}
		return cfg, nil
	}
	path := k.sseCKeyFile
	if path == "" {
		path = e.getenv(envSSECKeyFile)
	}
	if path == "" {
		return blobstore.SSEConfig{}, usagef("--sse sse-c needs the customer key: give --sse-c-key-file FILE (or set %s)", envSSECKeyFile)
	}
	keys, err := blobstore.LoadSSECKeyFile(path)
	if err != nil {
		return blobstore.SSEConfig{}, err
	}
	cfg.CKeys = keys
	return cfg, nil
}

// keySources are the root key files to use, flags first, then the
// environment. defaulted is set when keyFile is the default key file.
type keySources struct {
	keyFile        string
	passphraseFile string
	defaulted      bool
}

// sources resolves the key flags without reading any key. A KMS key named
// (--kms-key-id, COFFER_KMS_KEY_ID) stands for the default key file: with
// it alone, no key file is read.
func (k *keyFlags) sources(e *env) (keySources, error) {
	s := keySources{keyFile: k.keyFile, passphraseFile: k.passphraseFile}
	if s.keyFile == "" {
		s.keyFile = e.getenv(envKeyFile)
	}
	if s.passphraseFile == "" {
		s.passphraseFile = e.getenv(envPassphraseFile)
	}
	if s.keyFile == "" && s.passphraseFile == "" && k.kms.key(e) == "" {
		d, err := e.defaultKeyFile()
		if err != nil {
			return keySources{}, err
		}
		s.keyFile, s.defaulted = d, true
	}
	return s, nil
}

// explicitKeyFlag names a root key flag given on the command line, if any.
func (k *keyFlags) explicitKeyFlag() string {
	for _, name := range []string{"key-file", "passphrase-file", k.kms.flagName()} {
		if k.flags != nil && k.flags.Changed(name) {
			return "--" + name
		}
	}
	return ""
}

// loadRoots reads the root keys for a client-mode volume: every key the
// flags name (a volume opens with any one of them).
func (k *keyFlags) loadRoots(e *env) ([]*cipher.RootKey, error) {
	if len(k.keyFiles)+len(k.passphraseFiles) > 0 {
		return loadEvery(k.keyFiles, k.passphraseFiles)
	}
	src, err := k.sources(e)
	if err != nil {
		return nil, err
	}
	var roots []*cipher.RootKey
	if src.keyFile != "" {
		r, err := cipher.LoadKeyFile(src.keyFile)
		if errors.Is(err, fs.ErrNotExist) && src.defaulted {
			return nil, fmt.Errorf("no key given and the default key file %s does not exist: give --key-file, --passphrase-file or --kms-key-id", src.keyFile)
		}
		if err != nil {
			return nil, keyFileError(src.keyFile, err)
		}
		roots = append(roots, r)
	}
	if src.passphraseFile != "" {
		r, err := cipher.LoadPassphraseFile(src.passphraseFile)
		if err != nil {
			return nil, keyFileError(src.passphraseFile, err)
		}
		roots = append(roots, r)
	}
	return roots, nil
}

// writerCredential is the key file the flags name if it is a writer
// credential (nil if it is not, or if other keys are named too: a
// credential is refused with them by loadRoots).
func (k *keyFlags) writerCredential(e *env) (*cipher.WriterCredential, error) {
	if len(k.keyFiles)+len(k.passphraseFiles) > 0 {
		return nil, nil
	}
	src, err := k.sources(e)
	if err != nil || src.keyFile == "" || src.passphraseFile != "" || k.kms.key(e) != "" {
		return nil, err
	}
	_, cred, err := cipher.LoadKey(src.keyFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && src.defaulted {
			return nil, nil // loadRoots words it
		}
		return nil, keyFileError(src.keyFile, err)
	}
	return cred, nil
}

// loadEvery reads every key file and passphrase file named.
func loadEvery(keyFiles, passphraseFiles []string) ([]*cipher.RootKey, error) {
	var roots []*cipher.RootKey
	for _, p := range keyFiles {
		r, err := cipher.LoadKeyFile(p)
		if err != nil {
			return nil, keyFileError(p, err)
		}
		roots = append(roots, r)
	}
	for _, p := range passphraseFiles {
		r, err := cipher.LoadPassphraseFile(p)
		if err != nil {
			return nil, keyFileError(p, err)
		}
		roots = append(roots, r)
	}
	return roots, nil
}

// keyFileError words a failure to read a key file; the cipher package's
// errors never carry key bytes, and neither does this one.
func keyFileError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("key file %s does not exist: check the path, or create a key with coffer keygen --out %s", path, path)
	case errors.Is(err, cipher.ErrKeyFileMode):
		if strings.Contains(err.Error(), "chmod") {
			return err
		}
		return fmt.Errorf("key file %s is readable by group or others: run chmod 600 %s", path, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("key file %s cannot be read: permission denied", path)
	}
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("key file %s: %w", path, err)
}

// ensureDir creates dir (and parents) with mode perm when missing.
func ensureDir(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return nil
}
