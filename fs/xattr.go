package fs

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"github.com/cofferfs/coffer/cipher"
)

// Extended attributes (DESIGN.md §3): the user.* namespace only, sealed
// with the file's other attributes, so a setxattr is a metadata change
// like chmod (ctime moves; a stored object gets a metadata copy). What
// fits is the metadata budget's (E2BIG beyond it). Other namespaces
// (security.*, trusted.*, system.*) are not kept: setting one is
// ENOTSUP, reading or removing one ENODATA, which is what tools that
// probe them (ls, cp -a, rsync -X) take for "none set".
//
// One more name is read-only: coffer.origin, on a file a writer key
// stored (DESIGN.md §2 "Writer keys"), holds "writer <ID> epoch <ID>"
// (cipher.Origin.String); setting or removing it is EPERM.

// OriginXattr names the read-only extended attribute of a writer's file.
const OriginXattr = "coffer.origin"

// Getxattr returns the value of extended attribute name of path.
func (v *Volume) Getxattr(ctx context.Context, path, name string) ([]byte, error) {
	if err := checkGetName(name); err != nil {
		return nil, err // a probe, not a failure worth counting
	}
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return nil, v.finish("getxattr", path, err)
	}
	defer end()
	a, err := v.xattrsOf(ctx, path, name)
	if err != nil {
		return nil, v.finish("getxattr", path, err)
	}
	return XattrValue(a, name)
}

// Listxattr returns the names of path's extended attributes, sorted.
func (v *Volume) Listxattr(ctx context.Context, path string) ([]string, error) {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return nil, v.finish("listxattr", path, err)
	}
	defer end()
	a, err := v.xattrsOf(ctx, path, "")
	if err != nil {
		return nil, v.finish("listxattr", path, err)
	}
	return XattrNames(a), nil
}

// XattrNames lists the extended attributes of a, sorted.
func XattrNames(a Attr) []string {
	var names []string
	if a.Origin.IsWriter() {
		names = append(names, OriginXattr) // sorts before user.*
	}
	for name := range a.Xattrs.All() {
		names = append(names, name)
	}
	return names
}

// XattrValue is getxattr(2) of attributes a already at hand (an open
// file): ENODATA when name is not set, EINVAL for a bare "user.".
func XattrValue(a Attr, name string) ([]byte, error) {
	if err := checkGetName(name); err != nil {
		return nil, err
	}
	if name == OriginXattr {
		if !a.Origin.IsWriter() {
			return nil, syscall.ENODATA
		}
		return []byte(a.Origin.String()), nil
	}
	value, ok := a.Xattrs.Get(name)
	if !ok {
		return nil, syscall.ENODATA
	}
	return value, nil
}

func (v *Volume) xattrsOf(ctx context.Context, p, name string) (Attr, error) {
	if name != "" {
		if err := checkGetName(name); err != nil {
			return Attr{}, err
		}
	}
	n, err := v.lookup(ctx, p)
	if err != nil {
		return Attr{}, err
	}
	if n.bad != nil {
		return Attr{}, n.unreadable()
	}
	return n.attr, nil
}

// checkGetName: "user." alone is no name (EINVAL); a name of another
// namespace is never set (ENODATA).
func checkGetName(name string) error {
	switch {
	case name == cipher.XattrPrefix, name == "":
		return syscall.EINVAL
	case name == OriginXattr:
		return nil
	case !strings.HasPrefix(name, cipher.XattrPrefix):
		return syscall.ENODATA
	}
	return nil
}

// Setxattr sets extended attribute name of path (flags: XattrCreate,
// XattrReplace).
func (v *Volume) Setxattr(ctx context.Context, path, name string, value []byte, flags int) error {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return v.finish("setxattr", path, err)
	}
	defer end()
	_, err = v.changeAttr(ctx, path, func(a Attr) (Attr, error) { return setXattr(a, name, value, flags) })
	return v.finish("setxattr", path, err)
}

// Removexattr removes extended attribute name of path.
func (v *Volume) Removexattr(ctx context.Context, path, name string) error {
	path, end, err := v.begin1(ctx, path)
	if err != nil {
		return v.finish("removexattr", path, err)
	}
	defer end()
	_, err = v.changeAttr(ctx, path, func(a Attr) (Attr, error) { return removeXattr(a, name) })
	return v.finish("removexattr", path, err)
}

func setXattr(a Attr, name string, value []byte, flags int) (Attr, error) {
	if flags&^(XattrCreate|XattrReplace) != 0 || flags == XattrCreate|XattrReplace {
		return Attr{}, syscall.EINVAL
	}
	if name == cipher.XattrPrefix {
		return Attr{}, syscall.EINVAL
	}
	if name == OriginXattr {
		return Attr{}, withErrno(syscall.EPERM, errors.New("coffer.origin is read-only (coffer adopt clears it)"))
	}
	_, set := a.Xattrs.Get(name)
	switch {
	case !strings.HasPrefix(name, cipher.XattrPrefix):
		return Attr{}, withErrno(syscall.ENOTSUP, errors.New("only user.* extended attributes are kept"))
	case flags&XattrCreate != 0 && set:
		return Attr{}, syscall.EEXIST
	case flags&XattrReplace != 0 && !set:
		return Attr{}, syscall.ENODATA
	}
	x, err := a.Xattrs.With(name, value)
	if err != nil {
		return Attr{}, err
	}
	a.Xattrs = x
	return a, nil
}

func removeXattr(a Attr, name string) (Attr, error) {
	if err := checkGetName(name); err != nil {
		return Attr{}, err
	}
	if name == OriginXattr {
		return Attr{}, withErrno(syscall.EPERM, errors.New("coffer.origin is read-only (coffer adopt clears it)"))
	}
	if _, set := a.Xattrs.Get(name); !set {
		return Attr{}, syscall.ENODATA
	}
	a.Xattrs = a.Xattrs.Without(name)
	return a, nil
}
