package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The exerciser's operations: plain data, so a run can be replayed and
// shrunk. An op names paths relative to the world's root and file
// descriptors by slot; applying it to a world returns what the system
// calls returned.

type opKind uint8

const (
	opOpen opKind = iota
	opClose
	opPread
	opPwrite
	opWrite // at the descriptor's offset (O_APPEND honoured)
	opFtruncate
	opFsync
	opFstat
	opTruncate
	opRename
	opUnlink
	opMkdir
	opRmdir
	opSymlink
	opReadlink
	opChmod
	opChown
	opUtimens
	opReaddir
	opLink
	opMknod
	opSetxattr
	opGetxattr
	opListxattr
	opRemovexattr
	opCheck   // compare the whole trees
	opRemount // close everything, unmount and mount coffer, compare
)

var opNames = [...]string{
	opOpen: "open", opClose: "close", opPread: "pread", opPwrite: "pwrite", opWrite: "write",
	opFtruncate: "ftruncate", opFsync: "fsync", opFstat: "fstat", opTruncate: "truncate",
	opRename: "rename", opUnlink: "unlink", opMkdir: "mkdir", opRmdir: "rmdir",
	opSymlink: "symlink", opReadlink: "readlink", opChmod: "chmod", opChown: "chown",
	opUtimens: "utimensat", opReaddir: "readdir", opLink: "link", opMknod: "mknod",
	opSetxattr: "setxattr", opGetxattr: "getxattr", opListxattr: "listxattr",
	opRemovexattr: "removexattr", opCheck: "check", opRemount: "remount",
}

func (k opKind) String() string { return opNames[k] }

const fdSlots = 4

// op is one operation. Which fields matter depends on kind.
type op struct {
	kind         opKind
	fd           int    // descriptor slot
	path, path2  string // path2: rename and link destination, symlink target
	flags        int    // open flags, rename flags, setxattr flags, AT_SYMLINK_NOFOLLOW
	mode         uint32
	dev          uint64
	off, n       int64
	seed         uint64 // data of writes and xattr values
	uid, gid     int
	atime, mtime unix.Timespec
	name         string // xattr name
	fresh        bool   // remount with an empty cache dir
}

func (o op) String() string {
	var b strings.Builder
	b.WriteString(o.kind.String())
	switch o.kind {
	case opOpen:
		fmt.Fprintf(&b, " fd%d %q %s 0%o", o.fd, o.path, openFlagString(o.flags), o.mode)
	case opClose, opFsync, opFstat:
		fmt.Fprintf(&b, " fd%d", o.fd)
	case opPread:
		fmt.Fprintf(&b, " fd%d off=%d n=%d", o.fd, o.off, o.n)
	case opPwrite:
		fmt.Fprintf(&b, " fd%d off=%d n=%d seed=%d", o.fd, o.off, o.n, o.seed)
	case opWrite:
		fmt.Fprintf(&b, " fd%d n=%d seed=%d", o.fd, o.n, o.seed)
	case opFtruncate:
		fmt.Fprintf(&b, " fd%d size=%d", o.fd, o.off)
	case opTruncate:
		fmt.Fprintf(&b, " %q size=%d", o.path, o.off)
	case opRename:
		fmt.Fprintf(&b, " %q %q", o.path, o.path2)
		if o.flags&unix.RENAME_NOREPLACE != 0 {
			b.WriteString(" RENAME_NOREPLACE")
		}
	case opLink:
		fmt.Fprintf(&b, " %q %q", o.path, o.path2)
	case opSymlink:
		fmt.Fprintf(&b, " target=%q %q", o.path2, o.path)
	case opMkdir, opChmod:
		fmt.Fprintf(&b, " %q 0%o", o.path, o.mode)
	case opMknod:
		fmt.Fprintf(&b, " %q 0%o dev=%d:%d", o.path, o.mode, unix.Major(o.dev), unix.Minor(o.dev))
	case opChown:
		fmt.Fprintf(&b, " %q %d:%d%s", o.path, o.uid, o.gid, nofollow(o.flags))
	case opUtimens:
		fmt.Fprintf(&b, " %q atime=%s mtime=%s%s", o.path, tsString(o.atime), tsString(o.mtime), nofollow(o.flags))
	case opSetxattr:
		fmt.Fprintf(&b, " %q %q n=%d seed=%d flags=%d%s", o.path, o.name, o.n, o.seed, o.flags&^unix.AT_SYMLINK_NOFOLLOW, nofollow(o.flags))
	case opGetxattr, opRemovexattr:
		fmt.Fprintf(&b, " %q %q%s", o.path, o.name, nofollow(o.flags))
	case opListxattr:
		fmt.Fprintf(&b, " %q%s", o.path, nofollow(o.flags))
	case opRemount:
		if o.fresh {
			b.WriteString(" (fresh cache)")
		}
	case opCheck:
	default:
		fmt.Fprintf(&b, " %q", o.path)
	}
	return b.String()
}

func nofollow(flags int) string {
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		return " nofollow"
	}
	return ""
}

func tsString(ts unix.Timespec) string {
	switch ts.Nsec {
	case unix.UTIME_NOW:
		return "UTIME_NOW"
	case unix.UTIME_OMIT:
		return "UTIME_OMIT"
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

func openFlagString(f int) string {
	parts := []string{[]string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}[f&unix.O_ACCMODE]}
	for _, fl := range []struct {
		bit  int
		name string
	}{{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}} {
		if f&fl.bit != 0 {
			parts = append(parts, fl.name)
		}
	}
	return strings.Join(parts, "|")
}

// opResult is what one op returned in one world.
type opResult struct {
	ret   int64
	errno syscall.Errno
	data  []byte // bytes read, link target, xattr value, sorted names
}

func (r opResult) String() string {
	if r.errno != 0 {
		return fmt.Sprintf("%v (%s)", r.errno, errnoName(r.errno))
	}
	if r.data != nil {
		return fmt.Sprintf("%d, %d bytes of data", r.ret, len(r.data))
	}
	return fmt.Sprint(r.ret)
}

func errnoName(e syscall.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprint(int(e))
}

func errnoOfErr(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}

// world is one side of the comparison: a directory and the descriptors
// open in it.
type world struct {
	name string
	root string
	fds  [fdSlots]int
}

func newWorld(name, root string) *world {
	w := &world{name: name, root: root}
	for i := range w.fds {
		w.fds[i] = -1
	}
	return w
}

func (w *world) abs(p string) string { return filepath.Join(w.root, p) }

// closeAll closes every descriptor; the results are compared like any op's.
func (w *world) closeAll() []opResult {
	var out []opResult
	for i := range w.fds {
		out = append(out, w.apply(op{kind: opClose, fd: i}))
	}
	return out
}

// apply runs o (not opCheck or opRemount, which the exerciser runs).
func (w *world) apply(o op) opResult {
	var r opResult
	ret := func(n int, err error) opResult {
		r.ret, r.errno = int64(n), errnoOfErr(err)
		return r
	}
	fd := -1
	if o.fd >= 0 && o.fd < fdSlots {
		fd = w.fds[o.fd]
	}
	switch o.kind {
	case opOpen:
		if fd >= 0 {
			unix.Close(fd)
			w.fds[o.fd] = -1
		}
		// O_NONBLOCK: opening a fifo must not wait for its other end.
		nfd, err := unix.Open(w.abs(o.path), o.flags|unix.O_NONBLOCK|unix.O_CLOEXEC, o.mode)
		if err == nil {
			w.fds[o.fd] = nfd
			return ret(0, nil)
		}
		return ret(0, err)
	case opClose:
		if fd < 0 {
			return ret(0, nil) // nothing open in the slot: a no-op
		}
		w.fds[o.fd] = -1
		return ret(0, unix.Close(fd))
	case opPread:
		buf := make([]byte, o.n)
		n, err := unix.Pread(fd, buf, o.off)
		if err == nil {
			r.data = buf[:n]
		}
		return ret(n, err)
	case opPwrite:
		return ret(unix.Pwrite(fd, pseudoRandom(o.seed, int(o.n)), o.off))
	case opWrite:
		return ret(unix.Write(fd, pseudoRandom(o.seed, int(o.n))))
	case opFtruncate:
		return ret(0, unix.Ftruncate(fd, o.off))
	case opFsync:
		return ret(0, unix.Fsync(fd))
	case opFstat:
		var st unix.Stat_t
		return ret(0, unix.Fstat(fd, &st))
	case opTruncate:
		return ret(0, unix.Truncate(w.abs(o.path), o.off))
	case opRename:
		return ret(0, unix.Renameat2(unix.AT_FDCWD, w.abs(o.path), unix.AT_FDCWD, w.abs(o.path2), uint(o.flags)))
	case opUnlink:
		return ret(0, unix.Unlink(w.abs(o.path)))
	case opMkdir:
		return ret(0, unix.Mkdir(w.abs(o.path), o.mode))
	case opRmdir:
		return ret(0, unix.Rmdir(w.abs(o.path)))
	case opSymlink:
		return ret(0, unix.Symlink(o.path2, w.abs(o.path)))
	case opReadlink:
		buf := make([]byte, 4096)
		n, err := unix.Readlink(w.abs(o.path), buf)
		if err == nil {
			r.data = buf[:n]
		}
		return ret(n, err)
	case opChmod:
		return ret(0, unix.Chmod(w.abs(o.path), o.mode))
	case opChown:
		if o.flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
			return ret(0, unix.Lchown(w.abs(o.path), o.uid, o.gid))
		}
		return ret(0, unix.Chown(w.abs(o.path), o.uid, o.gid))
	case opUtimens:
		return ret(0, unix.UtimesNanoAt(unix.AT_FDCWD, w.abs(o.path), []unix.Timespec{o.atime, o.mtime}, o.flags))
	case opReaddir:
		names, err := readNames(w.abs(o.path))
		if err == nil {
			r.data = []byte(strings.Join(names, "/"))
		}
		return ret(len(names), err)
	case opLink:
		return ret(0, unix.Link(w.abs(o.path), w.abs(o.path2)))
	case opMknod:
		return ret(0, unix.Mknod(w.abs(o.path), o.mode, int(o.dev)))
	case opSetxattr:
		value := pseudoRandom(o.seed, int(o.n))
		if o.flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
			return ret(0, unix.Lsetxattr(w.abs(o.path), o.name, value, o.flags&^unix.AT_SYMLINK_NOFOLLOW))
		}
		return ret(0, unix.Setxattr(w.abs(o.path), o.name, value, o.flags))
	case opGetxattr:
		buf := make([]byte, 4096)
		get := unix.Getxattr
		if o.flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
			get = unix.Lgetxattr
		}
		n, err := get(w.abs(o.path), o.name, buf)
		if err == nil {
			r.data = buf[:n]
		}
		return ret(n, err)
	case opListxattr:
		names, err := listXattrs(w.abs(o.path), o.flags&unix.AT_SYMLINK_NOFOLLOW != 0)
		if err == nil {
			r.data = []byte(strings.Join(names, "\x00"))
		}
		return ret(len(names), err)
	case opRemovexattr:
		if o.flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
			return ret(0, unix.Lremovexattr(w.abs(o.path), o.name))
		}
		return ret(0, unix.Removexattr(w.abs(o.path), o.name))
	}
	panic("exerciser: apply of " + o.kind.String())
}

func readNames(dir string) ([]string, error) {
	// O_DIRECTORY: a fifo is ENOTDIR, not an open that waits for a writer.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errnoOfErr(err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, errnoOfErr(unwrapPathError(err))
	}
	slices.Sort(names)
	return names, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	if se, ok := err.(*os.SyscallError); ok {
		return se.Err
	}
	return err
}

// listXattrs returns the sorted names (order is the filesystem's own).
func listXattrs(path string, noFollow bool) ([]string, error) {
	list := unix.Listxattr
	if noFollow {
		list = unix.Llistxattr
	}
	buf := make([]byte, 64<<10)
	n, err := list(path, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	slices.Sort(names)
	return names, nil
}

// targets are the paths and descriptor slots whose state an op may
// change or depend on: they are stat'ed before and after it.
// The parent directories come last: their times move with their entries.
func (o op) targets() (paths []string, fds []int) {
	switch o.kind {
	case opOpen:
		return []string{o.path, parentDir(o.path)}, []int{o.fd}
	case opClose, opPread, opPwrite, opWrite, opFtruncate, opFsync, opFstat:
		return nil, []int{o.fd}
	case opRename, opLink:
		paths = []string{o.path, o.path2, parentDir(o.path)}
		if p := parentDir(o.path2); p != parentDir(o.path) {
			paths = append(paths, p)
		}
		return paths, nil
	case opCheck, opRemount:
		return nil, nil
	case opUnlink, opMkdir, opRmdir, opSymlink, opMknod:
		return []string{o.path, parentDir(o.path)}, nil
	}
	return []string{o.path}, nil
}

func parentDir(p string) string { return filepath.Dir(p) }

// The generator: seeded, and aware of the reference world's tree so most
// ops hit something that exists.

// exPaths is the namespace the ops play in: names that collide across
// directories, so renames over existing files, renames of directories
// into each other and ENOTDIR/ENOTEMPTY all come up.
var exPaths = []string{"a", "b", "c", "d", "e", "d/a", "d/b", "d/e", "e/a", "e/d", "d/e/a", "d/e/b"}

type generator struct {
	r        *rand.Rand
	features map[feature]bool
	ops      int // generated so far
	total    int
	prev     op
	// staged holds the reference inodes of regular files that may still
	// be staged in coffer (created, opened for writing or truncated since
	// the last remount), for steering clear of bugStagedRenameOver.
	staged map[uint64]bool
}

func newGenerator(seed uint64, total int, features map[feature]bool) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), features: features, total: total, staged: map[uint64]bool{}}
}

type weighted struct {
	kind   opKind
	weight int
	need   feature // "" for operations coffer supports today
}

var opWeights = []weighted{
	{opOpen, 12, ""}, {opClose, 6, ""}, {opPread, 9, ""}, {opPwrite, 14, ""}, {opWrite, 4, ""},
	{opFtruncate, 3, ""}, {opFsync, 3, ""}, {opFstat, 2, ""}, {opTruncate, 3, ""},
	{opRename, 7, ""}, {opUnlink, 4, ""}, {opMkdir, 5, ""}, {opRmdir, 3, ""},
	{opSymlink, 3, ""}, {opReadlink, 2, ""}, {opChmod, 3, ""}, {opChown, 2, ""},
	{opUtimens, 4, ""}, {opReaddir, 2, ""},
	{opLink, 5, featLink},
	{opMknod, 2, featSpecialFiles}, {opMknod, 2, featDevices},
	{opSetxattr, 4, featXattr}, {opGetxattr, 2, featXattr}, {opListxattr, 2, featXattr}, {opRemovexattr, 2, featXattr},
}

// next returns op number g.ops; ref is the reference world as it stands.
func (g *generator) next(ref *world) (op, bool) {
	if g.ops >= g.total {
		return op{}, false
	}
	g.noteStaged(ref)
	o := g.pick(ref)
	g.prev = o
	return o, true
}

// noteStaged records what the previous op may have left staged.
func (g *generator) noteStaged(ref *world) {
	var st unix.Stat_t
	switch p := g.prev; {
	case p.kind == opRemount:
		clear(g.staged)
	case p.kind == opOpen && (p.flags&(unix.O_ACCMODE|unix.O_CREAT|unix.O_TRUNC) != 0), p.kind == opTruncate:
		if unix.Stat(ref.abs(p.path), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			g.staged[st.Ino] = true
		}
	}
}

func (g *generator) pick(ref *world) op {
	g.ops++
	switch {
	case g.ops == g.total:
		return op{kind: opCheck}
	case g.ops%250 == 0:
		return op{kind: opCheck}
	case g.ops%remountEvery == remountEvery/2:
		return op{kind: opRemount, fresh: g.r.IntN(2) == 0}
	}
	total := 0
	var usable []weighted
	for _, w := range opWeights {
		if w.need == "" || g.features[w.need] {
			usable = append(usable, w)
			total += w.weight
		}
	}
	pick := g.r.IntN(total)
	for _, w := range usable {
		if pick < w.weight {
			return g.make(w, ref)
		}
		pick -= w.weight
	}
	panic("unreachable")
}

// remountEvery spaces the remounts: about one second each, so a few per
// run.
const remountEvery = 700

func (g *generator) make(w weighted, ref *world) op {
	r := g.r
	o := op{kind: w.kind, fd: g.slot(ref, w.kind)}
	if (o.kind == opFtruncate || o.kind == opFstat) && !g.features[bugOrphanNode] && unlinked(ref, o.fd) {
		o.kind = opPread // reads go through the handle, not the name
	}
	tree := scanTree(ref.root)
	switch o.kind {
	case opOpen:
		o.path = g.path(tree, isRegular)
		o.flags = []int{unix.O_RDONLY, unix.O_WRONLY, unix.O_RDWR, unix.O_RDWR}[r.IntN(4)]
		creat := 50
		if _, ok := tree[o.path]; !ok {
			creat = 85
		}
		for _, f := range []struct{ bit, pct int }{{unix.O_CREAT, creat}, {unix.O_EXCL, 10}, {unix.O_TRUNC, 10}, {unix.O_APPEND, 12}} {
			if r.IntN(100) < f.pct {
				o.flags |= f.bit
			}
		}
		o.mode = []uint32{0o644, 0o600, 0o755, 0o444, 0o000}[r.IntN(5)]
	case opPread:
		o.off, o.n = g.offset(ref, o.fd), g.size()
	case opPwrite:
		o.off, o.n, o.seed = g.offset(ref, o.fd), g.size(), r.Uint64()
	case opWrite:
		o.n, o.seed = g.size(), r.Uint64()
	case opFtruncate, opTruncate:
		o.off = []int64{0, 1, 100, 65535, 65536, 65537, 3 * 65536, int64(r.IntN(300000))}[r.IntN(8)]
		if o.kind == opTruncate {
			o.path = g.path(tree, isRegular)
		}
	case opRename:
		o.path, o.path2 = g.path(tree, anything), g.path(tree, anything)
		if r.IntN(5) == 0 {
			o.flags = unix.RENAME_NOREPLACE
		}
		if !g.features[bugStagedRenameOver] && g.mayBeStaged(ref, o.path) {
			if t, ok := tree[o.path2]; ok && t.mode&unix.S_IFMT != unix.S_IFDIR {
				o.path2 = g.path(tree, nothing)
				if _, taken := tree[o.path2]; taken {
					o.flags = unix.RENAME_NOREPLACE // fails with EEXIST, replaces nothing
				}
			}
		}
	case opLink:
		o.path, o.path2 = g.path(tree, notDir), g.path(tree, nothing)
	case opUnlink:
		o.path = g.path(tree, notDir)
	case opMkdir:
		o.path = g.path(tree, nothing)
		o.mode = []uint32{0o755, 0o700, 0o777, 0o555}[r.IntN(4)]
	case opRmdir, opReaddir:
		o.path = g.path(tree, isDir)
	case opSymlink:
		o.path = g.path(tree, nothing)
		o.path2 = g.symlinkTarget(o.path)
	case opReadlink:
		o.path = g.path(tree, isSymlink)
	case opChmod:
		o.path = g.path(tree, anything)
		modes := []uint32{0o644, 0o600, 0o755, 0o700, 0o444, 0o000, 0o4755, 0o2755, 0o6711, 0o1755}
		if g.features[featSetgidDirs] {
			modes = append(modes, 0o2775, 0o3777)
		}
		o.mode = modes[r.IntN(len(modes))]
		if st, err := os.Stat(ref.abs(o.path)); err == nil && st.IsDir() && !g.features[featSetgidDirs] {
			o.mode &^= 0o2000 // a setgid directory changes what is created in it
		}
	case opChown:
		o.path = g.path(tree, anything)
		ids := []int{0, 1000, 4242, -1}
		o.uid, o.gid = ids[r.IntN(4)], ids[r.IntN(4)]
		if r.IntN(3) == 0 {
			o.flags = unix.AT_SYMLINK_NOFOLLOW
		}
	case opUtimens:
		o.path = g.path(tree, anything)
		o.atime, o.mtime = g.timespec(), g.timespec()
		if r.IntN(3) == 0 {
			o.flags = unix.AT_SYMLINK_NOFOLLOW
		}
	case opMknod:
		o.path = g.path(tree, nothing)
		if w.need == featSpecialFiles {
			o.mode = []uint32{unix.S_IFIFO, unix.S_IFSOCK}[r.IntN(2)] | 0o644
		} else {
			// A driver that does not exist: opening it fails alike in both
			// worlds (and both are nodev anyway).
			o.mode = []uint32{unix.S_IFCHR, unix.S_IFBLK}[r.IntN(2)] | 0o640
			o.dev = unix.Mkdev(uint32(240+r.IntN(14)), uint32(r.IntN(1<<20)))
		}
	case opSetxattr, opGetxattr, opRemovexattr, opListxattr:
		o.path = g.path(tree, anything)
		o.name = []string{"user.a", "user.b", "user.mime_type", "user.c", "security.x", "trusted.x", "user."}[r.IntN(7)]
		if r.IntN(4) == 0 {
			o.flags = unix.AT_SYMLINK_NOFOLLOW
		}
		if o.kind == opGetxattr || o.kind == opRemovexattr {
			// Mostly a name that is set, so reads and removals succeed too.
			if names, err := listXattrs(ref.abs(o.path), o.flags&unix.AT_SYMLINK_NOFOLLOW != 0); err == nil && len(names) > 0 && r.IntN(3) > 0 {
				o.name = names[r.IntN(len(names))]
			}
		}
		if o.kind == opSetxattr {
			// Values small enough that four of them stay inside coffer's
			// metadata budget even under a long name.
			o.n, o.seed = int64(r.IntN(64)), r.Uint64()
			o.flags |= []int{0, 0, unix.XATTR_CREATE, unix.XATTR_REPLACE}[r.IntN(4)]
		}
	}
	return o
}

func (g *generator) mayBeStaged(ref *world, p string) bool {
	var st unix.Stat_t
	return unix.Lstat(ref.abs(p), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && g.staged[st.Ino]
}

// slot picks a descriptor slot: for ops on descriptors mostly one open in
// the reference world (writable for writes), else any.
func (g *generator) slot(ref *world, k opKind) int {
	var good []int
	for i, fd := range ref.fds {
		if fd < 0 {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		writable := err == nil && fl&unix.O_ACCMODE != unix.O_RDONLY
		switch k {
		case opPwrite, opWrite, opFtruncate:
			if writable {
				good = append(good, i)
			}
		case opOpen:
		default:
			good = append(good, i)
		}
	}
	if k == opOpen || len(good) == 0 || g.r.IntN(100) < 15 {
		return g.r.IntN(fdSlots)
	}
	return good[g.r.IntN(len(good))]
}

// unlinked reports a descriptor whose file has no name left.
func unlinked(ref *world, slot int) bool {
	var st unix.Stat_t
	return ref.fds[slot] >= 0 && unix.Fstat(ref.fds[slot], &st) == nil && st.Nlink == 0
}

// size is a read or write length: mostly small, sometimes across the
// 64 KiB chunk edge, now and then several chunks.
func (g *generator) size() int64 {
	switch p := g.r.IntN(100); {
	case p < 5:
		return 0
	case p < 55:
		return int64(1 + g.r.IntN(4096))
	case p < 85:
		return int64(1 + g.r.IntN(70000))
	default:
		return int64(1 + g.r.IntN(200000))
	}
}

// offset is mostly inside the file open in the slot (as the reference
// world sees it), sometimes beyond its end.
func (g *generator) offset(ref *world, slot int) int64 {
	var st unix.Stat_t
	size := int64(0)
	if fd := ref.fds[slot]; fd >= 0 && unix.Fstat(fd, &st) == nil {
		size = st.Size
	}
	edges := []int64{65535, 65536, 65537, 131072}
	switch p := g.r.IntN(100); {
	case p < 60 && size > 0:
		return g.r.Int64N(size + 1)
	case p < 75:
		return edges[g.r.IntN(len(edges))]
	default:
		return g.r.Int64N(300000)
	}
}

func (g *generator) timespec() unix.Timespec {
	switch g.r.IntN(6) {
	case 0:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case 1:
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	// 1970..2035 with nanoseconds, and now and then before 1970.
	sec := g.r.Int64N(2_060_000_000)
	if g.r.IntN(10) == 0 {
		sec = -g.r.Int64N(1_000_000_000)
	}
	return unix.Timespec{Sec: sec, Nsec: g.r.Int64N(1_000_000_000)}
}

// symlinkTarget points inside the world (never out of it: ops follow
// links), at something that may or may not exist.
func (g *generator) symlinkTarget(link string) string {
	if g.r.IntN(6) == 0 {
		return "missing"
	}
	to := exPaths[g.r.IntN(len(exPaths))]
	rel, err := filepath.Rel(filepath.Dir(link), to)
	if err != nil {
		return "missing"
	}
	return rel
}

type pathFilter func(t treeEntry, ok bool) bool

func isRegular(t treeEntry, ok bool) bool { return ok && t.mode&unix.S_IFMT == unix.S_IFREG }
func isDir(t treeEntry, ok bool) bool     { return ok && t.mode&unix.S_IFMT == unix.S_IFDIR }
func isSymlink(t treeEntry, ok bool) bool { return ok && t.mode&unix.S_IFMT == unix.S_IFLNK }
func notDir(t treeEntry, ok bool) bool    { return ok && t.mode&unix.S_IFMT != unix.S_IFDIR }
func nothing(_ treeEntry, ok bool) bool   { return !ok }
func anything(_ treeEntry, ok bool) bool  { return ok }

// path picks a path of exPaths: usually one the filter likes, else any.
func (g *generator) path(tree map[string]treeEntry, want pathFilter) string {
	if g.r.IntN(100) < 75 {
		var good []string
		for _, p := range exPaths {
			t, ok := tree[p]
			if want(t, ok) {
				good = append(good, p)
			}
		}
		if len(good) > 0 {
			return good[g.r.IntN(len(good))]
		}
	}
	return exPaths[g.r.IntN(len(exPaths))]
}

type treeEntry struct{ mode uint32 }

// scanTree is the type of every exPaths entry in root (by lstat).
func scanTree(root string) map[string]treeEntry {
	out := map[string]treeEntry{}
	for _, p := range exPaths {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(root, p), &st) == nil {
			out[p] = treeEntry{mode: st.Mode}
		}
	}
	return out
}
