package fs

import (
	"hash/fnv"
	"slices"
)

// pathStripes is the number of path locks of a Volume.
const pathStripes = 64

// lockPaths locks the path stripes of ps (in stripe order, each once)
// and returns the unlock. It makes an open's lookup and registration in
// v.files atomic with respect to an unlink or rename of the same path,
// which checks v.files and then deletes or replaces the object: without
// it an open could register a version whose object had just gone, with
// no private copy (keepContent), and its reads fail. It also orders the
// metadata rewrites of one path, so the cache ends with the last.
// Holders: acquire (p), unlink (p), rmdir (p), renameFile and a directory's rename
// (old and new), changeAttr (p) and flushDir (p). None of them calls another holder, nor takes a
// stripe while holding v.mu, f.upMu or f.mu.
func (v *Volume) lockPaths(ps ...string) func() {
	idx := make([]int, 0, len(ps))
	for _, p := range ps {
		h := fnv.New32a()
		h.Write([]byte(p))
		i := int(h.Sum32() % pathStripes)
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		if !v.paths[i].TryLock() {
			if v.pathWait != nil {
				v.pathWait()
			}
			v.paths[i].Lock()
		}
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			v.paths[i].Unlock()
		}
	}
}
