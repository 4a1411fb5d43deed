package fs

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestFanOut: fanOut runs limit calls at once (never more), stops
// starting calls after the first error and returns it, cancelling the
// calls it already started, and returns the error of a ctx that ended.
func TestFanOut(t *testing.T) {
	ctx := context.Background()
	t.Run("bounded", func(t *testing.T) {
		const n, limit = 40, 4
		var mu sync.Mutex
		inflight, peak, calls := 0, 0, 0
		full := make(chan struct{}) // closed once limit calls run at once
		err := fanOut(ctx, limit, n, func(ctx context.Context, i int) error {
			mu.Lock()
			inflight++
			calls++
			peak = max(peak, inflight)
			if inflight == limit && calls == limit {
				close(full)
			}
			mu.Unlock()
			<-full // the first limit calls wait for each other: limit run at once
			mu.Lock()
			inflight--
			mu.Unlock()
			return nil
		})
		if err != nil || calls != n || peak != limit {
			t.Fatalf("err %v, %d calls (want %d), at most %d at once (want %d)", err, calls, n, peak, limit)
		}
	})
	t.Run("first error", func(t *testing.T) {
		boom := errors.New("boom")
		var mu sync.Mutex
		var calls []int
		cancelled := 0
		err := fanOut(ctx, 1, 10, func(ctx context.Context, i int) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, i)
			if ctx.Err() != nil {
				cancelled++
			}
			if i == 0 {
				return boom
			}
			return nil
		})
		// With one slot, at most the call already waiting for it starts
		// after the failure, and it sees its ctx cancelled.
		if !errors.Is(err, boom) || len(calls) > 2 || len(calls)-1 != cancelled {
			t.Fatalf("err %v, calls %v, %d of them cancelled", err, calls, cancelled)
		}
	})
	t.Run("ended ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		calls := 0
		err := fanOut(ctx, 4, 10, func(context.Context, int) error { calls++; return nil })
		if !errors.Is(err, context.Canceled) || calls != 0 {
			t.Fatalf("err %v, %d calls", err, calls)
		}
	})
}
