package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

func TestStoreError(t *testing.T) {
	const url = "s3://bucket/vol"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"not found", &blobstore.Error{Op: "get", Key: ".coffer/config", Err: blobstore.ErrNotFound}, "no coffer volume at s3://bucket/vol: run coffer init"},
		{"denied", &blobstore.Error{Op: "get", Err: blobstore.ErrAccessDenied}, "access denied"},
		{"sse-c key", fmt.Errorf("x: %w", blobstore.ErrSSEKey), "--sse-c-key-file"},
		{"sse-c refused", fmt.Errorf("x: %w", blobstore.ErrSSECRefused), "BlockedEncryptionTypes"},
		{"wrong key", fmt.Errorf("open: %w", cipher.ErrNoKeyOpens), "wrong key"},
		{"tampered", fmt.Errorf("open: %w", cipher.ErrConfigTampered), "failed authentication"},
		{"not a config", fmt.Errorf("parse: %w", cipher.ErrNotConfig), "not a coffer config"},
		{"timeout", fmt.Errorf("get: %w", context.DeadlineExceeded), "did not answer"},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "connection refused"},
		{"no credentials", errors.New("operation error S3: GetObject, get identity: get credentials: failed to refresh cached credentials"), "no AWS credentials"},
		{"other", errors.New("boom"), "store s3://bucket/vol: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := storeError(url, tt.err).Error()
			if !strings.Contains(got, tt.want) {
				t.Fatalf("storeError = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
