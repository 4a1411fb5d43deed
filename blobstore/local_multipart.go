package blobstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Multipart starts a multipart upload: each part is a file in this
// instance's temp dir (its binary MD5, then its bytes); Complete copies
// them into one object file in the kernel (copy_file_range) and
// publishes it like Put. An instance's uploads end with the instance.
func (l *Local) Multipart(ctx context.Context, key string, opts PutOptions) (MultipartUpload, error) {
	const op = "multipart"
	if err := l.check(ctx, op, key); err != nil {
		return nil, err
	}
	meta, err := normalizeMetadata(opts.Metadata)
	if err != nil {
		return nil, &Error{Op: op, Key: key, Err: err}
	}
	dir, err := os.MkdirTemp(l.tmp, uploadDirPrefix)
	if err != nil {
		return nil, &Error{Op: op, Key: key, Err: err}
	}
	// The key, so that Uploads can list the upload.
	if err := os.WriteFile(filepath.Join(dir, uploadKeyFile), []byte(key), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, &Error{Op: op, Key: key, Err: err}
	}
	return &localUpload{l: l, key: key, meta: meta, cond: condition{ifNoneMatch: opts.IfNoneMatch, ifMatch: opts.IfMatch}, dir: dir}, nil
}

type localUpload struct {
	l    *Local
	key  string
	meta map[string]string
	cond condition
	dir  string

	mu   sync.Mutex
	done bool // completed or aborted
}

var errUploadDone = errors.New("multipart upload already completed or aborted")

func (u *localUpload) partPath(n int) string {
	return filepath.Join(u.dir, fmt.Sprintf("part-%05d", n))
}

func (u *localUpload) isDone() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.done
}

// UploadPart stores part n; re-uploading a number replaces it.
func (u *localUpload) UploadPart(ctx context.Context, n int, body []byte) (Part, error) {
	const op = "upload part"
	if n < 1 || n > maxPartNumber {
		return Part{}, &Error{Op: op, Key: u.key, Err: fmt.Errorf("part number %d outside 1..%d", n, maxPartNumber)}
	}
	if err := ctx.Err(); err != nil {
		return Part{}, &Error{Op: op, Key: u.key, Err: err}
	}
	if u.isDone() {
		return Part{}, &Error{Op: op, Key: u.key, Err: errUploadDone}
	}
	sum := md5.Sum(body)
	f, err := os.CreateTemp(u.dir, "partial-")
	if err != nil {
		return Part{}, &Error{Op: op, Key: u.key, Err: err}
	}
	_, err = f.Write(sum[:])
	if err == nil {
		_, err = f.Write(body)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), u.partPath(n))
	}
	if err != nil {
		os.Remove(f.Name())
		return Part{}, &Error{Op: op, Key: u.key, Err: err}
	}
	return Part{Number: n, ETag: hex.EncodeToString(sum[:]), Size: int64(len(body))}, nil
}

// Complete checks parts (ascending numbers, matching ETags), writes the
// object and publishes it under the upload's conditions. Its ETag is
// S3's: the MD5 of the parts' binary MD5s, "-", the part count.
func (u *localUpload) Complete(ctx context.Context, parts []Part) (ObjectInfo, error) {
	const op = "complete multipart"
	if len(parts) == 0 {
		return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: errors.New("no parts")}
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].Number <= parts[i-1].Number {
			return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: errors.New("parts not in ascending order")}
		}
	}
	if u.isDone() {
		return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: errUploadDone}
	}
	t, err := u.l.newTemp(localHeader{mtime: time.Now(), meta: u.meta})
	if err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: err}
	}
	defer t.discard()
	var total int64
	sums := make([]byte, 0, len(parts)*md5.Size)
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: err}
		}
		n, sum, err := u.appendPart(t.f, p)
		if err != nil {
			return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: err}
		}
		total += n
		sums = append(sums, sum...)
	}
	whole := md5.Sum(sums)
	etag := fmt.Sprintf("%s-%d", hex.EncodeToString(whole[:]), len(parts))
	if err := t.finish(total, etag); err != nil {
		return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: err}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return ObjectInfo{}, &Error{Op: op, Key: u.key, Err: errUploadDone}
	}
	if err := u.l.commit(op, u.key, t.path, u.cond); err != nil {
		return ObjectInfo{}, err
	}
	u.done = true
	os.RemoveAll(u.dir)
	return t.hdr.info(u.key), nil
}

// appendPart copies part p's bytes to w after checking its ETag; it
// returns their count and the part's binary MD5.
func (u *localUpload) appendPart(w *os.File, p Part) (int64, []byte, error) {
	f, err := os.Open(u.partPath(p.Number))
	if err != nil {
		return 0, nil, fmt.Errorf("part %d: %w", p.Number, err)
	}
	defer f.Close()
	sum := make([]byte, md5.Size)
	if _, err := io.ReadFull(f, sum); err != nil {
		return 0, nil, fmt.Errorf("part %d: %w", p.Number, err)
	}
	if !etagEqual(p.ETag, hex.EncodeToString(sum)) {
		return 0, nil, fmt.Errorf("part %d: ETag %s does not match the uploaded part", p.Number, p.ETag)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := fi.Size() - md5.Size
	n, err := io.Copy(w, &io.LimitedReader{R: f, N: size})
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, nil, fmt.Errorf("part %d: %w", p.Number, err)
	}
	return n, sum, nil
}

// Abort discards the upload's parts; aborting twice is not an error.
func (u *localUpload) Abort(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	u.done = true
	if err := os.RemoveAll(u.dir); err != nil {
		return &Error{Op: "abort multipart", Key: u.key, Err: err}
	}
	return nil
}
