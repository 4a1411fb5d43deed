package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// storeCheckTimeout bounds opening the store and reading the volume config
// at mount and init, so an unreachable endpoint fails within seconds
// instead of after the SDK's full retry schedule.
const storeCheckTimeout = 10 * time.Second

// storeError turns a failure talking to the store at url into one line
// saying what went wrong and what to do. The typed errors of blobstore and
// cipher carry the cause; the wording adds the advice.
func storeError(url string, err error) error {
	var (
		opErr  *net.OpError
		dnsErr *net.DNSError
	)
	switch {
	case errors.Is(err, blobstore.ErrAccessDenied):
		return fmt.Errorf("access denied by the store at %s: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket policy: %w", url, err)
	case errors.Is(err, blobstore.ErrSSECRefused):
		return fmt.Errorf("the bucket at %s refuses SSE-C: allow it in the bucket's default-encryption settings (BlockedEncryptionTypes), or use --sse sse-s3/sse-kms: %w", url, err)
	case errors.Is(err, blobstore.ErrSSEKey):
		return fmt.Errorf("the store at %s refused the SSE-C key: give the --sse-c-key-file (and --sse sse-c) the volume was created with: %w", url, err)
	case errors.Is(err, cipher.ErrNoKeyOpens):
		return fmt.Errorf("wrong key: the given key does not open the volume at %s; use the --key-file, --passphrase-file or --kms-key-id it was initialised or added with", url)
	case errors.Is(err, cipher.ErrConfigPreAuth):
		return fmt.Errorf("the volume config at %s predates entry authentication, so nothing shows its keyring is the volume's: refusing to mount; upgrade it with coffer key reauth --store %s and every root key of the volume (a --key-file or --passphrase-file for each), then mount again", url, url)
	case errors.Is(err, cipher.ErrConfigTampered):
		return fmt.Errorf("the volume config at %s failed authentication (modified, or not written with this key): refusing to mount", url)
	case errors.Is(err, cipher.ErrNotConfig):
		return fmt.Errorf("%s holds a .coffer/config that is not a coffer config: check the --store URL", url)
	case errors.Is(err, blobstore.ErrNotFound):
		return fmt.Errorf("no coffer volume at %s: run coffer init --store %s first (or check the URL)", url, url)
	case noCredentials(err):
		return fmt.Errorf("no AWS credentials found for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role provides them", url)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the store at %s did not answer within %s: check --endpoint, the network, and that the server is running", url, storeCheckTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to the store at %s (connection refused): check --endpoint and that the server is running", url)
	case errors.As(err, &opErr), errors.As(err, &dnsErr), strings.Contains(err.Error(), "dial tcp"):
		return fmt.Errorf("cannot reach the store at %s: check --endpoint and the network: %w", url, err)
	}
	return fmt.Errorf("store %s: %w", url, err)
}

// noCredentials recognises the AWS SDK's failure to find any credentials
// in its chain (it has no typed error for that).
func noCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "get credentials") || strings.Contains(msg, "failed to refresh cached credentials") ||
		strings.Contains(msg, "failed to retrieve credentials")
}
