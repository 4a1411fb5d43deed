package cipher

import (
	"errors"
	"fmt"
)

// Typed errors. Callers branch on them with errors.Is; the messages that
// wrap them add context (which object, which file) but never key bytes.
var (
	ErrAuth           = errors.New("authentication failed")        // any AEAD or MAC failure on stored data
	ErrInvalidSize    = errors.New("invalid object size")          // size not produced by any plaintext
	ErrNotConfig      = errors.New("not a coffer config")          // unparseable config object
	ErrConfigTampered = errors.New("config failed authentication") // MAC mismatch
	ErrNoKeyOpens     = errors.New("no listed root key opens this volume")
	ErrKeyFileMode    = errors.New("key file is readable by group or others")
	ErrNameTooLong    = errors.New("name too long")
	ErrBadName        = errors.New("invalid encrypted name")
	ErrBadMetadata    = errors.New("missing or malformed coffer metadata")
	// ErrConfigPreAuth: the config predates entry authentication, so
	// nothing shows its keyring is the volume's (see Config.OpenPreAuth).
	// It is also ErrConfigTampered: callers that do not upgrade refuse it.
	ErrConfigPreAuth   = fmt.Errorf("%w: the config predates entry authentication", ErrConfigTampered)
	ErrMissingRootKeys = errors.New("not every root key of the volume was given")

	// Hard links and extended attributes (DESIGN.md §3). None of these
	// wraps ErrAuth or ErrBadMetadata: each is a state the filesystem
	// answers, not a damaged object.
	ErrIsLink         = errors.New("the object is a hard link")                     // OpenMetadata of a link: follow it (OpenLink, FollowLink)
	ErrStaleLink      = errors.New("the link is not in its inode's live set")       // FollowLink: a name whose unlink did not finish
	ErrMetadataTooBig = errors.New("coffer metadata over its 1,800-byte budget")    // E2BIG for setxattr, EMLINK for link
	ErrXattrNamespace = errors.New("extended attribute outside the user namespace") // ENOTSUP
	ErrXattrName      = errors.New("invalid extended attribute name")               // EINVAL (ERANGE when too long)
)
