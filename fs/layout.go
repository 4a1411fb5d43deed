package fs

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
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
	// openMeta authenticates and decodes it. Errors wrap cipher.ErrAuth or
	// cipher.ErrBadMetadata.
	openMeta(path string, meta map[string]string, lastModified time.Time) (*cipher.ObjectKey, cipher.Attr, error)
	// longName returns the coffer-name value of an object's metadata.
	longName(meta map[string]string) string
	// Body geometry.
	plainSize(objSize int64) (int64, error)
	objectSize(plainSize int64) int64
	chunkRange(index, plainSize int64) (off, n int64)
	openChunk(ok *cipher.ObjectKey, dst, stored []byte, index, plainSize int64) ([]byte, error)
	encrypter(ok *cipher.ObjectKey, w io.Writer) io.WriteCloser
	// blockObject names an object version in the block cache without
	// revealing its key or name.
	blockObject(key, etag string, ok *cipher.ObjectKey) [32]byte
	// implicitDirMode is the permission of a directory without marker.
	implicitDirMode() uint32
}

const metaName = "coffer-name"

type clientLayout struct {
	kr    *cipher.Keyring
	names *cipher.Names
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
func (l *clientLayout) sealMeta(path string, ok *cipher.ObjectKey, a cipher.Attr, _ string) (map[string]string, error) {
	return l.kr.SealMetadata(ok, path, a)
}

func (l *clientLayout) openMeta(path string, meta map[string]string, _ time.Time) (*cipher.ObjectKey, cipher.Attr, error) {
	return l.kr.OpenMetadata(meta, path)
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

func (l *clientLayout) blockObject(_, _ string, ok *cipher.ObjectKey) [32]byte {
	var id [32]byte
	fid := ok.FileID()
	copy(id[:], fid[:])
	return id
}

func (l *clientLayout) implicitDirMode() uint32 { return 0o700 }

// plainLayout stores names and bodies as they are, with s3fs's metadata:
// mode (st_mode in decimal), uid, gid, mtime (seconds).
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

func (l *plainLayout) sealMeta(_ string, _ *cipher.ObjectKey, a cipher.Attr, _ string) (map[string]string, error) {
	return map[string]string{
		"mode":  strconv.FormatUint(uint64(a.Mode), 10),
		"uid":   strconv.FormatUint(uint64(a.UID), 10),
		"gid":   strconv.FormatUint(uint64(a.GID), 10),
		"mtime": strconv.FormatInt(a.MtimeNs/1e9, 10),
	}, nil
}

// openMeta accepts what s3fs, rclone and the AWS CLI leave behind:
// missing fields take defaults, mtime may carry a fraction.
func (l *plainLayout) openMeta(_ string, meta map[string]string, lastModified time.Time) (*cipher.ObjectKey, cipher.Attr, error) {
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
	if s, ok := meta["mtime"]; ok {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			a.MtimeNs = int64(f * 1e9)
		}
	}
	a.AtimeNs, a.CtimeNs = a.MtimeNs, a.MtimeNs
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
