package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// s3Failure is an SDK error classified as one of the typed errors (kind,
// nil when none applies), with a hint saying what to do. errors.Is
// finds both kind and the SDK's error.
type s3Failure struct {
	kind  error
	hint  string
	cause error
}

func (f *s3Failure) Error() string {
	var b strings.Builder
	if f.kind != nil {
		b.WriteString(f.kind.Error())
		b.WriteString(": ")
	}
	if f.hint != "" {
		b.WriteString(f.hint)
		b.WriteString(": ")
	}
	b.WriteString(f.cause.Error())
	return b.String()
}

func (f *s3Failure) Unwrap() []error {
	if f.kind == nil {
		return []error{f.cause}
	}
	return []error{f.kind, f.cause}
}

// reqKind says what a failed request was, which decides how an ambiguous
// status (400, 403) reads.
type reqKind int

const (
	reqRead     reqKind = iota // GET, HEAD, List
	reqWrite                   // PUT, multipart create/part/complete, delete
	reqCopy                    // CopyObject, UploadPartCopy (reads a source, writes a destination)
	reqNoObject                // bucket-level or metadata-free request
)

// classify maps an SDK error to the typed errors. ssec says whether the
// request carried SSE-C headers.
func (s *S3) classify(err error, kind reqKind, ssec bool) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var apiErr smithy.APIError
	code, msg := "", ""
	if errors.As(err, &apiErr) {
		code, msg = apiErr.ErrorCode(), apiErr.ErrorMessage()
	}
	status := 0
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	lmsg := strings.ToLower(msg)
	fail := func(kind error, hint string) error { return &s3Failure{kind: kind, hint: hint, cause: err} }

	switch {
	case code == "NoSuchBucket":
		return fail(nil, "bucket "+s.bucket+" does not exist at "+s.endpoint)
	case code == "NoSuchKey" || code == "NotFound" || code == "NoSuchUpload" || status == 404:
		return fail(ErrNotFound, "")
	case code == "ExistingObjectIsDirectory" || code == "ObjectParentIsFile" || code == "DirectoryObjectContainsData":
		return fail(nil, "the server stores keys as files and directories: a key and a longer key under it (x and x/y) cannot both exist")
	case code == "KeyTooLongError":
		return fail(ErrInvalidKey, "the server refuses a key this long (some limit each /-separated segment to 255 bytes)")
	case code == "PreconditionFailed" || status == 412:
		return fail(ErrPreconditionFailed, "")
	case code == "ConditionalRequestConflict":
		// AWS: a concurrent conditional write won; re-read and retry.
		return fail(ErrPreconditionFailed, "concurrent conditional write")
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "ExpiredToken" ||
		code == "InvalidToken" || status == 401:
		return fail(ErrAccessDenied, "the server rejected the credentials (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile)")
	case mentionsCustomerKey(lmsg) && (status == 400 || status == 403):
		if kind != reqRead && (strings.Contains(lmsg, "block") || strings.Contains(lmsg, "not allowed")) {
			return fail(ErrSSECRefused, hintSSECRefused)
		}
		return fail(ErrSSEKey, "")
	case status == 403 && ssec && kind == reqRead:
		// S3 answers 403 for a wrong SSE-C key (and for a missing
		// permission: HEAD has no body to tell them apart).
		return fail(ErrSSEKey, "the SSE-C key does not open this object (or access is denied)")
	case status == 403 && ssec && kind == reqCopy:
		return fail(ErrSSEKey, "the SSE-C key does not open the copy source (or access is denied, or the bucket blocks SSE-C writes)")
	case status == 403 && ssec && kind == reqWrite:
		if strings.Contains(lmsg, "encryption") || strings.Contains(lmsg, "sse-c") {
			return fail(ErrSSECRefused, hintSSECRefused)
		}
		return fail(ErrAccessDenied, "if the bucket blocks SSE-C (its default-encryption BlockedEncryptionTypes setting), SSE-C writes are refused this way")
	case status == 400 && !ssec && kind == reqRead && (msg == "" || code == "BadRequest" || strings.Contains(lmsg, "encrypt")):
		// S3 refuses to read an SSE-C object without the key with a
		// bare 400 (HEAD has no body).
		return fail(ErrSSEKey, "the object may be SSE-C encrypted: give the key with --sse-c-key-file")
	case code == "AccessDenied" || code == "AllAccessDisabled" || status == 403:
		return fail(ErrAccessDenied, "")
	case code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" ||
		code == "RequestLimitExceeded" || code == "TooManyRequests" || status == 429 || status == 503:
		return fail(ErrThrottled, "the server asked to slow down and retries did not get through")
	case code == "NotImplemented" || status == 501:
		return fail(nil, "the server does not implement this request")
	case status >= 500 || code == "RequestTimeout" || code == "InternalError":
		return fail(ErrTransient, "server error after retries")
	}
	if status == 0 {
		var stall *awshttp.ResponseTimeoutError
		if errors.As(err, &stall) {
			return fail(ErrTransient, fmt.Sprintf("%s sent nothing for %v (the stall timeout) on every attempt", s.endpoint, stall.TimeoutDur))
		}
		if strings.Contains(err.Error(), "get identity: get credentials:") {
			// The SDK's credential chain found nothing usable; its own
			// message lists every source it tried.
			return fail(nil, "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role is available")
		}
		if isDialError(err) {
			return fail(ErrTransient, "cannot connect to "+s.endpoint+" (is the endpoint right and the server running?)")
		}
		var netErr net.Error
		if errors.As(err, &netErr) || isConnectionError(err) {
			return fail(ErrTransient, "connection to "+s.endpoint+" failed after retries")
		}
	}
	return err
}

const hintSSECRefused = "the bucket refuses SSE-C writes: on AWS, buckets created since April 2026 block SSE-C unless their default-encryption configuration allows it; " +
	"remove SSE-C from BlockedEncryptionTypes (aws s3api put-bucket-encryption ... \"BlockedEncryptionTypes\":{\"EncryptionType\":[\"NONE\"]}) or use --sse sse-s3 / sse-kms"

func isConnectionError(err error) bool {
	var c interface{ ConnectionError() bool }
	return errors.As(err, &c) && c.ConnectionError()
}

func mentionsCustomerKey(lmsg string) bool {
	return strings.Contains(lmsg, "customer") && (strings.Contains(lmsg, "key") || strings.Contains(lmsg, "encrypt"))
}

// fail wraps a classified error with the operation and store key.
func (s *S3) fail(op, key string, err error, kind reqKind, ssec bool) error {
	if err == nil {
		return nil
	}
	return &Error{Op: "s3 " + op, Key: key, Err: s.classify(err, kind, ssec)}
}
