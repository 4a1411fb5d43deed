// Package coffer is the root of the coffer module: an encrypting FUSE
// filesystem over S3. See README.md and the packages cipher, blobstore,
// cache, fs and cmd/coffer.
package coffer
