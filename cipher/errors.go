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

	// Writer keys (DESIGN.md §2, writer.go).
	// ErrWriterOrigin: the object is a writer's; OpenAnyMetadata (with its
	// epoch) opens it. A state, like ErrIsLink.
	ErrWriterOrigin = errors.New("the object was stored by a writer key")
	// ErrWriterRefused: a writer's object or epoch that must not open
	// (unknown writer, a path outside its scope or under .coffer/, a
	// writer-origin link or inode). It is also ErrAuth: a filesystem that
	// does not tell it apart shows EIO.
	ErrWriterRefused = fmt.Errorf("%w: refused writer object", ErrAuth)
	// ErrWriterRevoked: an epoch the writer began after its revocation (or
	// an epoch object replaced since). Also ErrWriterRefused.
	ErrWriterRevoked = fmt.Errorf("%w: the writer is revoked", ErrWriterRefused)
	// ErrOutOfScope: a path outside a writer's scope. A writer session
	// answers EACCES; a reader refuses (it is also ErrWriterRefused).
	ErrOutOfScope = fmt.Errorf("%w: outside the writer's scope", ErrWriterRefused)
	// ErrNotThisSession: a writer session opens only what it stored itself
	// (EACCES).
	ErrNotThisSession = errors.New("not stored by this writer session")
	// ErrIsWriterCredential: LoadKeyFile was given a writer credential
	// (LoadKey reads either).
	ErrIsWriterCredential = errors.New("the key file is a writer credential")
)
