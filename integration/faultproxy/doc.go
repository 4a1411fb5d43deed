// Package faultproxy is a loopback HTTP proxy for tests that sits between
// an S3 client and an S3 server (versitygw, SeaweedFS) and injects the
// faults of a bad network or a struggling server: latency, connection
// resets, dropped requests, dropped responses, 500 / 503 / SlowDown
// answers with S3 XML error bodies, AWS JSON-protocol errors (for KMS,
// whose operations it names from X-Amz-Target), and stalls (the request
// is accepted and never answered). Faults are switched at runtime with Set, apply to
// a deterministic share of the requests they match (by S3 operation, or
// any predicate on the request), and every request is counted by
// operation: requests, bytes up and down, faults injected, the most in
// flight at once.
//
// Requests are forwarded with the Host header the client sent (the proxy's
// own address), which is what the client's SigV4 signature covers, so
// signatures verify at the server. Only path-style requests
// (http://proxy/bucket/key) are classified by operation; virtual-hosted
// ones count as "Other".
//
// Invariants: a request no fault matches reaches the server and its
// response reaches the client byte for byte; a stalled request is held
// until the client gives up or Close; Close releases everything.
//
// It must never: listen on anything but loopback, change a request it
// forwards (beyond hop-by-hop headers), or log request contents.
package faultproxy
