// Package blobstore is coffer's object-store interface and its backends.
//
// Everything coffer stores goes through Store: a small S3-shaped API of
// put (streaming, user metadata, conditional create and replace), ranged
// get, head, list (an iterator that hides pagination), server-side copy
// with metadata replace, delete, multipart upload, and the listing and
// abort of multipart uploads in progress (Uploads, AbortUpload: what
// coffer fsck --repair cleans up). Two backends
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
// # Conditional writes on the servers
//
// Measured by the conformance suite (storetest: ConditionalPut,
// ConcurrentCreate, ConcurrentReplace, MultipartConditional,
// ConcurrentConditionalComplete, Copy, CopyIfUnmodifiedSince,
// MetadataCopyStamps) against versitygw v1.8.0 (posix backend) and
// SeaweedFS 7506e5f91cd6 (weed mini, also in sse-c mode), and by
// TestRetriesRecoverFromEachFault through the fault proxy:
//
//	                                       versitygw v1.8.0      SeaweedFS             Local
//	PutObject If-None-Match: *             honoured, 412         honoured, 412         same
//	PutObject If-Match (stale / missing)   412 / 404             412 / 404             same
//	racing conditional PUTs                one wins              one wins              one wins
//	CompleteMultipartUpload If-None-Match  honoured, 412         honoured, 412         same
//	CompleteMultipartUpload If-Match       412 / 404 (missing)   412 / 404 (missing)   same
//	racing conditional completions         one wins              one wins              one wins
//	CopyObject copy-source-if-match        honoured              honoured              same
//	copy-source-if-unmodified-since        against the mtime in  whole seconds (AWS)   whole seconds
//	                                       nanoseconds: a time
//	                                       from the object's own
//	                                       LastModified always
//	                                       fails (*)
//	both copy-source conditions            if-match decides      if-match decides      same
//	                                       (AWS's rule)
//	metadata-only copy onto itself: ETag   kept                  kept                  kept
//	  ... LastModified                     kept (xattrs only)    copy's time           copy's time
//	lost answer of a conditional PUT,      412 on the retry (**) 412 on the retry (**) (no retries)
//	  retried by the SDK
//	lost answer of a conditional Complete  the retry succeeds    412 on the retry (**) (no retries)
//	                                       (a repeated Complete
//	                                       answers as the first)
//	lost answer of CreateMultipartUpload   the server's upload   same                  (no retries)
//	                                       stays (orphan)
//
// (*) S3.Copy corrects it: on a 412 it checks the condition in whole
// seconds against a HEAD and copies on the ETag that HEAD saw. (**) S3.Put
// and Complete recognise their own write by its size and metadata and
// succeed. An orphaned upload from a lost CreateMultipartUpload answer
// costs storage until a lifecycle rule (AbortIncompleteMultipartUpload)
// or an abort removes it; nothing reads it.
//
// What this means for a mount guarding its writes (DESIGN.md §5): content
// uploads can rely on If-None-Match / If-Match on PUT and completion on
// all three backends, so no HEAD-check fallback is needed. A metadata-only
// rewrite cannot be guarded by the ETag (it is kept), nor server-side by
// LastModified: the rewrite must carry IfMatch (the new attributes belong
// to the body they were made for; onto a replaced body they would make it
// unreadable), and beside a holding IfMatch IfUnmodifiedSince is ignored;
// alone it would guard only at whole seconds, and not at all on versitygw.
// The guard that works on every server is the change counter in the
// sealed attributes, compared by a HEAD just before the IfMatch copy; the
// window between that HEAD and the copy (a round trip) is the race left.
//
// It must never: import another package of this module, log or return
// key bytes (SSE-C keys, credentials) in errors or logs, or interpret
// object bodies (they are opaque ciphertext to this package).
package blobstore
