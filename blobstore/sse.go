package blobstore

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
)

// SSEMode selects server-side encryption.
type SSEMode string

// The server-side encryption modes of DESIGN.md §4.
const (
	SSENone SSEMode = ""
	SSES3   SSEMode = "sse-s3"  // x-amz-server-side-encryption: AES256
	SSEKMS  SSEMode = "sse-kms" // aws:kms, with KMSKeyID when set
	SSEC    SSEMode = "sse-c"   // customer-provided keys on every request
)

// Name is the --sse value that selects m: "none" for SSENone.
func (m SSEMode) Name() string {
	if m == SSENone {
		return "none"
	}
	return string(m)
}

// SSECKeySize is the size of an SSE-C key (AES-256).
const SSECKeySize = 32

// ParseSSEMode parses a --sse flag value ("", "none", "sse-s3",
// "sse-kms", "sse-c").
func ParseSSEMode(s string) (SSEMode, error) {
	switch m := SSEMode(s); m {
	case SSENone, SSES3, SSEKMS, SSEC:
		return m, nil
	case "none":
		return SSENone, nil
	}
	return "", fmt.Errorf("unknown SSE mode %q (want sse-s3, sse-kms or sse-c)", s)
}

// SSEConfig is the server-side encryption applied by the S3 backend.
// Its String and GoString never show key bytes.
type SSEConfig struct {
	Mode     SSEMode
	KMSKeyID string   // sse-kms: key ID or ARN; empty: the bucket's default key
	CKeys    [][]byte // sse-c: 32-byte keys, newest first; the first encrypts, all are tried on read
}

// Validate reports a configuration that cannot work.
func (c SSEConfig) Validate() error {
	if _, err := ParseSSEMode(string(c.Mode)); err != nil {
		return err
	}
	if c.KMSKeyID != "" && c.Mode != SSEKMS {
		return fmt.Errorf("an SSE-KMS key ID needs --sse sse-kms (mode is %q)", c.Mode)
	}
	if c.Mode == SSEC {
		if len(c.CKeys) == 0 {
			return fmt.Errorf("--sse sse-c needs a key: give --sse-c-key-file")
		}
		for i, k := range c.CKeys {
			if len(k) != SSECKeySize {
				return fmt.Errorf("SSE-C key %d is %d bytes, want %d", i+1, len(k), SSECKeySize)
			}
		}
	} else if len(c.CKeys) != 0 {
		return fmt.Errorf("SSE-C keys given but the SSE mode is %q, not sse-c", c.Mode)
	}
	return nil
}

func (c SSEConfig) String() string {
	s := "sse=" + c.Mode.Name()
	if c.KMSKeyID != "" {
		s += " kms-key-id=" + c.KMSKeyID
	}
	if len(c.CKeys) > 0 {
		s += fmt.Sprintf(" sse-c-keys=%d", len(c.CKeys))
	}
	return s
}

// GoString keeps %#v from printing key bytes.
func (c SSEConfig) GoString() string { return "blobstore.SSEConfig{" + c.String() + "}" }

// LoadSSECKeyFile reads an SSE-C key file in s3fs-fuse's format (see
// ParseSSECKeys). Files readable or writable by group or others are
// refused. Errors name the file and line, never key bytes.
func LoadSSECKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("SSE-C key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("SSE-C key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("SSE-C key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("SSE-C key file %s is accessible by group or others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data := make([]byte, 0, fi.Size())
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("SSE-C key file %s: %w", path, err)
	}
	keys, err := ParseSSECKeys(buf.Bytes())
	clear(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("SSE-C key file %s: %w", path, err)
	}
	return keys, nil
}

// ParseSSECKeys parses s3fs-fuse's SSE-C key format: one key per line,
// newest first; blank lines and lines starting with '#' are skipped;
// surrounding whitespace is trimmed; a line longer than 32 characters is
// the base64 of the key, a shorter or equal one the raw key. Every key
// must be 32 bytes. At least one key is required.
func ParseSSECKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var key []byte
		if len(line) > SSECKeySize {
			var err error
			key, err = base64.StdEncoding.AppendDecode(nil, line)
			if err != nil {
				key, err = base64.RawStdEncoding.AppendDecode(nil, line)
			}
			if err != nil {
				return nil, fmt.Errorf("line %d: longer than %d characters but not valid base64", i+1, SSECKeySize)
			}
		} else {
			key = bytes.Clone(line)
		}
		if len(key) != SSECKeySize {
			return nil, fmt.Errorf("line %d: key is %d bytes, want %d (raw, or base64 of 32 bytes)", i+1, len(key), SSECKeySize)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key found (one key per line, newest first; 32 raw bytes or their base64)")
	}
	return keys, nil
}
