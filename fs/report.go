package fs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"syscall"
)

// Logging rules: records name an object by its key (ciphertext in
// client mode; in none mode, where the key is the plaintext name, by a
// keyed hash of it) and never carry a plaintext path or name, because
// logs may land on disk (coffer.log, --log-file). Only with
// Options.LogPlaintextNames (a foreground mount logging to its terminal
// at debug level) does a Debug record follow that maps the key to its
// path. Every operation that ends in EIO logs its cause once, at Error
// level.

// reportedError marks an error whose cause was already logged.
type reportedError struct{ error }

func (e *reportedError) Unwrap() error { return e.error }

func isReported(err error) bool {
	var r *reportedError
	return errors.As(err, &r)
}

// logKey is how records at Info and above name the object at key.
func (v *Volume) logKey(key string) string {
	if v.client || key == "" {
		return key
	}
	m := hmac.New(sha256.New, v.lay.(*plainLayout).secret)
	m.Write([]byte("coffer log key\x00" + key))
	return "name-hash:" + hex.EncodeToString(m.Sum(nil)[:8])
}

// keyOf is the object key of p for log records ("" when it has none).
func (v *Volume) keyOf(p string) string {
	k, _, err := v.objectKey(p)
	if err != nil {
		return ""
	}
	return k
}

// logEvent logs msg at level about path p stored at key (derived from p
// when empty); "err" among args is scrubbed of p and, in none mode, of
// the plaintext key.
func (v *Volume) logEvent(level slog.Level, msg, p, key string, args ...any) {
	ctx := context.Background()
	if !v.log.Enabled(ctx, level) {
		return
	}
	if key == "" && p != "" {
		key = v.keyOf(p)
	}
	ref := v.logKey(key)
	for i := 0; i+1 < len(args); i += 2 {
		if err, ok := args[i+1].(error); ok {
			args[i+1] = v.scrub(err, p, key, ref)
		}
	}
	v.log.Log(ctx, level, msg, append([]any{"key", ref}, args...)...)
	if p != "" && level > slog.LevelDebug && v.opts.LogPlaintextNames {
		v.log.Debug(msg+" (path of the key above)", "key", ref, "path", p)
	}
}

// scrub is err's message without the plaintext path p (and in none mode
// without the plaintext key).
func (v *Volume) scrub(err error, p, key, ref string) string {
	msg := err.Error()
	if p != "" && p != "/" {
		msg = strings.ReplaceAll(msg, p, "(path)")
	}
	if !v.client && key != "" {
		msg = strings.ReplaceAll(msg, key, ref)
	}
	return msg
}

// errText is err's message for a record about several objects: in none
// mode, where keys are plaintext names, each of keys is replaced by its
// keyed hash (unless plaintext names may be logged).
func (v *Volume) errText(err error, keys []string) string {
	msg := err.Error()
	if v.client || v.opts.LogPlaintextNames {
		return msg
	}
	for _, k := range keys {
		if k != "" {
			msg = strings.ReplaceAll(msg, k, v.logKey(k))
		}
	}
	return msg
}

// failEIO logs err as the cause of an EIO about p (stored at key, or
// derived from p when empty) and returns it as EIO, marked as logged.
func (v *Volume) failEIO(op, p, key string, err error) error {
	if isReported(err) {
		return err
	}
	v.logEvent(slog.LevelError, op+": reporting EIO", p, key, "err", err)
	if Errno(err) != syscall.EIO {
		err = withErrno(syscall.EIO, err)
	}
	return &reportedError{err}
}

// finish is what a public operation on p returns: err as a *PathError,
// with its cause logged first if it ends in EIO and nobody logged it.
func (v *Volume) finish(op, p string, err error) error {
	if err == nil {
		return nil
	}
	v.errnos.add(err)
	if Errno(err) == syscall.EIO && !isReported(err) {
		err = v.failEIO(op, p, "", err)
	}
	return pathErr(op, p, err)
}
