package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A local multipart upload is a directory root/tmp/<instance>/mpu-*
// holding the file "key" (its key) and its parts; its ID is
// "<instance>/mpu-*". The directory goes with its instance (Close), or
// with the next NewLocal after a crash, or with AbortUpload.
const (
	uploadDirPrefix = "mpu-"
	uploadKeyFile   = "key"
)

// Uploads lists the multipart uploads of every open instance of the
// store, this one's included, keyed as they were started.
func (l *Local) Uploads(ctx context.Context, prefix string) iter.Seq2[PendingUpload, error] {
	return func(yield func(PendingUpload, error) bool) {
		dirs, err := filepath.Glob(filepath.Join(l.root, "tmp", "*", uploadDirPrefix+"*"))
		if err != nil {
			yield(PendingUpload{}, &Error{Op: "list uploads", Key: prefix, Err: err})
			return
		}
		var ups []PendingUpload
		for _, d := range dirs {
			if err := ctx.Err(); err != nil {
				yield(PendingUpload{}, &Error{Op: "list uploads", Key: prefix, Err: err})
				return
			}
			kp := filepath.Join(d, uploadKeyFile)
			key, err := os.ReadFile(kp)
			if errors.Is(err, fs.ErrNotExist) {
				continue // completed or aborted meanwhile, or being created
			}
			fi, serr := os.Stat(kp)
			if err == nil {
				err = serr
			}
			if err != nil {
				yield(PendingUpload{}, &Error{Op: "list uploads", Key: prefix, Err: err})
				return
			}
			if !strings.HasPrefix(string(key), prefix) {
				continue
			}
			id := filepath.Base(filepath.Dir(d)) + "/" + filepath.Base(d)
			ups = append(ups, PendingUpload{Key: string(key), ID: id, Initiated: fi.ModTime()})
		}
		slices.SortFunc(ups, func(a, b PendingUpload) int {
			if c := strings.Compare(a.Key, b.Key); c != 0 {
				return c
			}
			return a.Initiated.Compare(b.Initiated)
		})
		for _, u := range ups {
			if !yield(u, nil) {
				return
			}
		}
	}
}

// AbortUpload removes a listed upload's directory, after checking that
// the ID names one and that it is the upload of u.Key.
func (l *Local) AbortUpload(ctx context.Context, u PendingUpload) error {
	const op = "abort multipart"
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Key: u.Key, Err: err}
	}
	inst, name, ok := strings.Cut(u.ID, "/")
	if !ok || !localIDPart(inst) || !strings.HasPrefix(name, uploadDirPrefix) || !localIDPart(name) {
		return &Error{Op: op, Key: u.Key, Err: fmt.Errorf("not an upload ID of this store: %q", u.ID)}
	}
	dir := filepath.Join(l.root, "tmp", inst, name)
	key, err := os.ReadFile(filepath.Join(dir, uploadKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone already
	}
	if err != nil {
		return &Error{Op: op, Key: u.Key, Err: err}
	}
	if string(key) != u.Key {
		return &Error{Op: op, Key: u.Key, Err: fmt.Errorf("upload %s is of another key", u.ID)}
	}
	if err := os.RemoveAll(dir); err != nil {
		return &Error{Op: op, Key: u.Key, Err: err}
	}
	return nil
}

// localIDPart accepts a file name without separators or dots of its own.
func localIDPart(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}
