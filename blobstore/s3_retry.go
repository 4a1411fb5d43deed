package blobstore

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/aws/smithy-go/middleware"
)

// The SDK retries every failed dial with exponential backoff, as it
// should for a server that restarts; but a wrong or unreachable endpoint
// should fail in seconds, not after a minute of backoff. dialBudget
// counts failed dials per operation (across its attempts) and marks the
// error as not retryable once s3DialAttempts is reached.

type dialCounterKey struct{}

// addDialBudget installs the two halves around the SDK's retry loop.
func addDialBudget(stack *middleware.Stack) error {
	if err := stack.Finalize.Insert(dialCounterInit{}, "Retry", middleware.Before); err != nil {
		return err
	}
	return stack.Finalize.Insert(dialBudget{}, "Retry", middleware.After)
}

type dialCounterInit struct{}

func (dialCounterInit) ID() string { return "CofferDialCounter" }

func (dialCounterInit) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	return next.HandleFinalize(context.WithValue(ctx, dialCounterKey{}, new(atomic.Int32)), in)
}

type dialBudget struct{}

func (dialBudget) ID() string { return "CofferDialBudget" }

func (dialBudget) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleFinalize(ctx, in)
	if err != nil && isDialError(err) {
		if n, ok := ctx.Value(dialCounterKey{}).(*atomic.Int32); ok && n.Add(1) >= s3DialAttempts {
			err = &noRetryError{err}
		}
	}
	return out, md, err
}

// isDialError reports a failure to open a connection (refused, no route,
// DNS, dial timeout), as opposed to one that broke in use.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// noRetryError stops the SDK's retryer (it honours RetryableError()).
type noRetryError struct{ err error }

func (e *noRetryError) Error() string        { return e.err.Error() }
func (e *noRetryError) Unwrap() error        { return e.err }
func (e *noRetryError) RetryableError() bool { return false }
