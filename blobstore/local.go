package blobstore

import (
	"context"
	"errors"
	"io"
	"iter"
)

// Local is the local-directory backend. Placeholder: the real one lands
// in the next commit; until then NewLocal fails.
type Local struct{ dir string }

var errLocalPending = errors.New("local backend not built yet")

// NewLocal opens (creating it if needed) a local store in dir.
func NewLocal(dir string) (*Local, error) { return nil, errLocalPending }

func (l *Local) Put(context.Context, string, io.Reader, int64, PutOptions) (ObjectInfo, error) {
	return ObjectInfo{}, errLocalPending
}
func (l *Local) Get(context.Context, string, GetOptions) (io.ReadCloser, ObjectInfo, error) {
	return nil, ObjectInfo{}, errLocalPending
}
func (l *Local) Head(context.Context, string) (ObjectInfo, error) {
	return ObjectInfo{}, errLocalPending
}
func (l *Local) List(context.Context, string, string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) { yield(Entry{}, errLocalPending) }
}
func (l *Local) Copy(context.Context, string, string, CopyOptions) (ObjectInfo, error) {
	return ObjectInfo{}, errLocalPending
}
func (l *Local) Delete(context.Context, string) error       { return errLocalPending }
func (l *Local) DeleteMany(context.Context, []string) error { return errLocalPending }
func (l *Local) Close() error                               { return nil }
func (l *Local) Multipart(context.Context, string, PutOptions) (MultipartUpload, error) {
	return nil, errLocalPending
}
