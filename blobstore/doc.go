// Package blobstore is coffer's object-store interface and its backends.
//
// Everything coffer stores goes through Store: a small S3-shaped API of
// put (streaming, user metadata, conditional create and replace), ranged
// get, head, list (an iterator that hides pagination), server-side copy
// with metadata replace, delete and multipart upload. Two backends
// implement it: Local, one file per object in a directory (coffer's
// embedded default), and S3 on aws-sdk-go-v2 with every server-side
// encryption mode. Open picks one from a store URL (file:///dir, a plain
// path, or s3://bucket[/prefix]). Upload drives a multipart upload in
// parallel over any Store with bounded memory and per-part retries.
// Package storetest holds the conformance suite every backend passes.
//
// Invariants:
//   - Failures are *Error values wrapping one of the typed errors
//     (ErrNotFound, ErrPreconditionFailed, ...) where one applies, so
//     callers branch with errors.Is.
//   - Conditional operations (IfNoneMatch, IfMatch) are honoured
//     atomically or fail; a backend that cannot honour one fails the
//     conformance suite rather than ignoring it.
//   - No reader ever sees a half-written object: objects appear whole,
//     by rename (Local) or by the server's atomic PUT/Complete (S3).
//   - An upload that fails for good is aborted: no orphaned parts.
//
// It must never: import another package of this module, log or return
// key bytes (SSE-C keys, credentials) in errors or logs, or interpret
// object bodies (they are opaque ciphertext to this package).
package blobstore
