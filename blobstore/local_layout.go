package blobstore

import (
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// The local backend maps a key to a path below its objects directory:
// the key is split at '/' into segments, each segment is escaped
// (bytes outside [A-Za-z0-9._~-] become %XX), and every segment but the
// last names a directory ("<seg>.d"), the last an object file
// ("<seg>.o"). So keys "a" and "a/b" coexist as "a.o" and "a.d/b.o", an
// empty segment is simply ".o" or ".d", and no name is ever "." or "..".
// An escaped segment longer than maxNameChunk is cut into chunks (never
// inside an escape); all but the last chunk are continuation
// directories ("<chunk>.c"), which keeps every file name under 255 bytes
// for keys of up to MaxKeyLen bytes.
const (
	MaxKeyLen    = 1024 // S3's key length limit, enforced by every backend
	maxNameChunk = 200  // bytes of escaped segment per file name
	suffixObject = ".o"
	suffixDir    = ".d"
	suffixCont   = ".c"
)

// validKey reports whether key is acceptable to every backend: 1 to
// MaxKeyLen bytes of UTF-8.
func validKey(key string) bool {
	return key != "" && len(key) <= MaxKeyLen && utf8.ValidString(key)
}

func isSafeNameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.' || b == '~'
}

const hexDigits = "0123456789ABCDEF"

// escapeSegment escapes one key segment into file-name-safe chunks of at
// most maxNameChunk bytes each (one empty chunk for an empty segment).
func escapeSegment(seg string) []string {
	var chunks []string
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		n := 1
		if !isSafeNameByte(c) {
			n = 3
		}
		if b.Len()+n > maxNameChunk {
			chunks = append(chunks, b.String())
			b.Reset()
		}
		if n == 1 {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return append(chunks, b.String())
}

// unescapeName reverses escapeSegment for one chunk; ok is false for a
// name coffer did not write.
func unescapeName(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), true
}

// segmentPath appends the path elements of one segment: continuation
// chunks, then the last chunk with suffix (suffixObject or suffixDir).
func segmentPath(elems []string, seg, suffix string) []string {
	chunks := escapeSegment(seg)
	for _, c := range chunks[:len(chunks)-1] {
		elems = append(elems, c+suffixCont)
	}
	return append(elems, chunks[len(chunks)-1]+suffix)
}

// objectRelPath is the object file of key, relative to the objects dir.
func objectRelPath(key string) string {
	segs := strings.Split(key, "/")
	var elems []string
	for _, s := range segs[:len(segs)-1] {
		elems = segmentPath(elems, s, suffixDir)
	}
	elems = segmentPath(elems, segs[len(segs)-1], suffixObject)
	return filepath.Join(elems...)
}

// dirRelPath is the directory holding the keys that start with dirKey,
// which is empty or ends in '/'; relative to the objects dir.
func dirRelPath(dirKey string) string {
	if dirKey == "" {
		return "."
	}
	var elems []string
	for _, s := range strings.Split(strings.TrimSuffix(dirKey, "/"), "/") {
		elems = segmentPath(elems, s, suffixDir)
	}
	return filepath.Join(elems...)
}

// parseName splits a directory entry name into its unescaped chunk and
// suffix; ok is false for names coffer did not write.
func parseName(name string) (chunk, suffix string, ok bool) {
	if len(name) < 2 {
		return "", "", false
	}
	suffix = name[len(name)-2:]
	switch suffix {
	case suffixObject, suffixDir, suffixCont:
	default:
		return "", "", false
	}
	chunk, ok = unescapeName(name[:len(name)-2])
	return chunk, suffix, ok
}
