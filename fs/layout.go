package fs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cofferfs/coffer/cipher"
)

// layout is how one encryption mode maps paths, attributes and bodies
// onto objects. clientLayout encrypts everything; plainLayout is the
// s3fs-compatible layout of --encryption none.
type layout interface {
	// segment is the stored form of name, a child of canonical parent.
	// long is non-empty when seg is hashed and the full encoding must
	// be kept in the coffer-name metadata.
	segment(parent, name string) (seg, long string, err error)
	// name decodes a listed segment (long: its coffer-name, when hashed).
	name(parent, seg, long string) (string, error)
	// hashed reports a segment that needs its coffer-name to decode.
	hashed(seg string) bool
	// newObjectKey returns the key material of a new object version
	// (nil in plain mode).
	newObjectKey() (*cipher.ObjectKey, error)
	// sealMeta is the user metadata of an object at path.
	sealMeta(path string, ok *cipher.ObjectKey, a cipher.Attr, long string) (map[string]string, error)
	// openMeta authenticates and decodes the metadata of the object at
	// key, stored at path. Errors wrap cipher.ErrAuth or
	// cipher.ErrBadMetadata, or are errWriterHidden.
	openMeta(path, key string, meta map[string]string, lastModified time.Time) (*cipher.ObjectKey, cipher.Attr, error)
	// longName returns the coffer-name value of an object's metadata.
	longName(meta map[string]string) string
	// Body geometry.
	plainSize(objSize int64) (int64, error)
	objectSize(plainSize int64) int64
	chunkRange(index, plainSize int64) (off, n int64)
	openChunk(ok *cipher.ObjectKey, dst, stored []byte, index, plainSize int64) ([]byte, error)
	encrypter(ok *cipher.ObjectKey, w io.Writer) io.WriteCloser
	// sealSmall is the stored body of a plaintext of at most
	// cipher.ChunkSize bytes, built in memory: what encrypter writes
	// for it (putBody's path for small files).
	sealSmall(ok *cipher.ObjectKey, plain []byte) []byte
	// blockObject names an object version in the block cache without
	// revealing its key or name.
	blockObject(key, etag string, ok *cipher.ObjectKey) [32]byte
	// implicitDirMode is the permission of a directory without marker.
	implicitDirMode() uint32
}

const metaName = "coffer-name"

type clientLayout struct {
	kr      *cipher.Keyring
	names   *cipher.Names
	epochs  *epochCache   // writers' epochs (writers.go)
	writers WritersPolicy // what to do with writers' objects
}

func (l *clientLayout) segment(parent, name string) (string, string, error) {
	return l.names.EncryptSegment(parent, name)
}

func (l *clientLayout) name(parent, seg, long string) (string, error) {
	return l.names.DecryptSegment(parent, seg, long)
}

func (l *clientLayout) hashed(seg string) bool { return strings.HasPrefix(seg, "~") }

func (l *clientLayout) newObjectKey() (*cipher.ObjectKey, error) { return l.kr.NewObjectKey() }

// sealMeta: cipher adds coffer-name itself (and counts it in the budget).
// A writer's object keeps its origin, so it cannot move out of the
// writer's scope: EXDEV, which mv answers with a copy (the copy is the
// full key's) and rename(2) callers know.
func (l *clientLayout) sealMeta(path string, ok *cipher.ObjectKey, a cipher.Attr, _ string) (map[string]string, error) {
	meta, err := l.kr.SealMetadata(ok, path, a)
	if errors.Is(err, cipher.ErrOutOfScope) && ok.Origin().IsWriter() {
		return nil, withErrno(syscall.EXDEV, err)
	}
	return meta, err
}

func (l *clientLayout) openMeta(path, key string, meta map[string]string, _ time.Time) (*cipher.ObjectKey, cipher.Attr, error) {
	return l.openAny(path, key, meta)
}

func (l *clientLayout) longName(meta map[string]string) string { return meta[metaName] }

func (l *clientLayout) plainSize(objSize int64) (int64, error) { return cipher.PlainSize(objSize) }
func (l *clientLayout) objectSize(plain int64) int64           { return cipher.CipherSize(plain) }
func (l *clientLayout) chunkRange(index, plainSize int64) (int64, int64) {
	return cipher.ChunkCipherRange(index, plainSize)
}

func (l *clientLayout) openChunk(ok *cipher.ObjectKey, dst, stored []byte, index, plainSize int64) ([]byte, error) {
	return ok.OpenChunk(dst, stored, index, plainSize)
}

func (l *clientLayout) encrypter(ok *cipher.ObjectKey, w io.Writer) io.WriteCloser {
	return ok.NewEncrypter(w)
}

func (l *clientLayout) sealSmall(ok *cipher.ObjectKey, plain []byte) []byte {
	body := make([]byte, 0, l.objectSize(int64(len(plain))))
	body = append(body, ok.Header()...)
	return ok.SealChunk(body, plain, 0, true)
}

func (l *clientLayout) blockObject(_, _ string, ok *cipher.ObjectKey) [32]byte {
	var id [32]byte
	fid := ok.FileID()
	copy(id[:], fid[:])
	return id
}

func (l *clientLayout) implicitDirMode() uint32 { return 0o700 }

// plainLayout stores names and bodies as they are, with s3fs-fuse's
// metadata: mode (st_mode in decimal, type bits included, so a fifo is
// a zero-byte object whose mode says S_IFIFO, as s3fs's mknod makes it),
// uid, gid, atime, mtime, ctime ("seconds[.nanoseconds]", nine digits,
// as s3fs writes them), rdev of a device (decimal; s3fs itself keeps
// none), and xattr: s3fs's url-encoded {"name":"base64 of value",...}.
// coffer-changes holds the change counter, which s3fs leaves alone.
type plainLayout struct {
	secret []byte // local secret: names cache entries without revealing keys
}

func (l *plainLayout) segment(_, name string) (string, string, error) {
	if len(name) > cipher.NameMax {
		return "", "", cipher.ErrNameTooLong
	}
	return name, "", nil
}

func (l *plainLayout) name(_, seg, _ string) (string, error) {
	if !validName(seg) {
		return "", fmt.Errorf("%w: %q", cipher.ErrBadName, seg)
	}
	return seg, nil
}

func (l *plainLayout) hashed(string) bool                       { return false }
func (l *plainLayout) newObjectKey() (*cipher.ObjectKey, error) { return nil, nil }

const plainChanges = "coffer-changes"

func (l *plainLayout) sealMeta(_ string, _ *cipher.ObjectKey, a cipher.Attr, _ string) (map[string]string, error) {
	m := map[string]string{
		"mode":  strconv.FormatUint(uint64(a.Mode), 10),
		"uid":   strconv.FormatUint(uint64(a.UID), 10),
		"gid":   strconv.FormatUint(uint64(a.GID), 10),
		"atime": plainTime(a.AtimeNs),
		"mtime": plainTime(a.MtimeNs),
		"ctime": plainTime(a.CtimeNs),
	}
	if t := a.Mode & syscall.S_IFMT; t == syscall.S_IFCHR || t == syscall.S_IFBLK {
		m["rdev"] = strconv.FormatUint(uint64(a.Rdev), 10)
	}
	if a.Changes != 0 {
		m[plainChanges] = strconv.FormatUint(a.Changes, 10)
	}
	if a.Xattrs.Len() > 0 {
		m["xattr"] = encodePlainXattrs(a.Xattrs)
	}
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
	}
	if size > cipher.MetadataBudget {
		return nil, fmt.Errorf("%w: %d bytes of metadata, at most %d", cipher.ErrMetadataTooBig, size, cipher.MetadataBudget)
	}
	return m, nil
}

// plainTime is s3fs's time format: seconds, and nine digits of
// nanoseconds when there are any.
func plainTime(ns int64) string {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	if nsec == 0 {
		return strconv.FormatInt(sec, 10)
	}
	return fmt.Sprintf("%d.%09d", sec, nsec)
}

// parsePlainTime reads "seconds[.fraction]" (s3fs, rclone) exactly.
func parsePlainTime(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return 0, false
		}
		nsec = int64(n)
		for i := len(frac); i < 9; i++ {
			nsec *= 10
		}
	}
	return sec*1e9 + nsec, true
}

// encodePlainXattrs is s3fs's x-amz-meta-xattr: {"name":"base64",...},
// url-encoded.
func encodePlainXattrs(x cipher.Xattrs) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for name, value := range x.All() {
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%q", name, base64.StdEncoding.EncodeToString(value))
	}
	b.WriteByte('}')
	return urlEncode(b.String())
}

// urlEncode is s3fs's urlEncode: every byte but letters, digits and
// ".-_*~" as %XX (so a header value stays plain ASCII).
func urlEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_*~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// decodePlainXattrs reads s3fs's x-amz-meta-xattr, keeping the user.*
// names (s3fs stores every namespace); a malformed pair is skipped, as
// s3fs does.
func decodePlainXattrs(s string) cipher.Xattrs {
	var x cipher.Xattrs
	raw, err := url.QueryUnescape(s)
	if err != nil {
		return x
	}
	raw = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(raw), "{"), "}")
	for pair := range strings.SplitSeq(raw, ",") {
		k, v, ok := strings.Cut(pair, ":")
		if !ok {
			continue
		}
		name, err1 := strconv.Unquote(strings.TrimSpace(k))
		enc, err2 := strconv.Unquote(strings.TrimSpace(v))
		if err1 != nil || err2 != nil {
			continue
		}
		value, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		if y, err := x.With(name, value); err == nil {
			x = y
		}
	}
	return x
}

// openMeta accepts what s3fs, rclone and the AWS CLI leave behind:
// missing fields take defaults, times may carry a fraction.
func (l *plainLayout) openMeta(_, _ string, meta map[string]string, lastModified time.Time) (*cipher.ObjectKey, cipher.Attr, error) {
	a := cipher.Attr{Mode: syscall.S_IFREG | 0o644, UID: noOwner, GID: noOwner, MtimeNs: lastModified.UnixNano()}
	if s, ok := meta["mode"]; ok {
		if m, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.Mode = uint32(m)
			if a.Mode&syscall.S_IFMT == 0 {
				a.Mode |= syscall.S_IFREG
			}
		}
	}
	if s, ok := meta["uid"]; ok {
		if u, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.UID = uint32(u)
		}
	}
	if s, ok := meta["gid"]; ok {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.GID = uint32(g)
		}
	}
	if ns, ok := parsePlainTime(meta["mtime"]); ok {
		a.MtimeNs = ns
	}
	a.AtimeNs, a.CtimeNs = a.MtimeNs, a.MtimeNs
	if ns, ok := parsePlainTime(meta["atime"]); ok {
		a.AtimeNs = ns
	}
	if ns, ok := parsePlainTime(meta["ctime"]); ok {
		a.CtimeNs = ns
	}
	if s, ok := meta["rdev"]; ok {
		if r, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.Rdev = uint32(r)
		}
	}
	if s, ok := meta[plainChanges]; ok {
		if c, err := strconv.ParseUint(s, 10, 64); err == nil {
			a.Changes = c
		}
	}
	if s, ok := meta["xattr"]; ok {
		a.Xattrs = decodePlainXattrs(s)
	}
	return nil, a, nil
}

// noOwner marks an owner missing from plain metadata: the mounting user.
const noOwner = ^uint32(0)

func (l *plainLayout) longName(map[string]string) string { return "" }

func (l *plainLayout) plainSize(objSize int64) (int64, error) { return objSize, nil }
func (l *plainLayout) objectSize(plain int64) int64           { return plain }
func (l *plainLayout) chunkRange(index, plainSize int64) (int64, int64) {
	off := index * cipher.ChunkSize
	return off, min(cipher.ChunkSize, plainSize-off)
}

func (l *plainLayout) openChunk(_ *cipher.ObjectKey, dst, stored []byte, _, _ int64) ([]byte, error) {
	return append(dst, stored...), nil
}

func (l *plainLayout) encrypter(_ *cipher.ObjectKey, w io.Writer) io.WriteCloser {
	return nopCloser{w}
}

func (l *plainLayout) sealSmall(_ *cipher.ObjectKey, plain []byte) []byte { return plain }

func (l *plainLayout) blockObject(key, etag string, _ *cipher.ObjectKey) [32]byte {
	m := hmac.New(sha256.New, l.secret)
	io.WriteString(m, "coffer block object\x00"+key+"\x00"+etag)
	var id [32]byte
	copy(id[:], m.Sum(nil))
	return id
}

func (l *plainLayout) implicitDirMode() uint32 { return 0o755 }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// validName reports a usable directory entry name.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= cipher.NameMax &&
		!strings.ContainsAny(s, "/\x00")
}
