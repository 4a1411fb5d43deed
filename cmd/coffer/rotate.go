package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/blobstore"
	cofferfs "github.com/cofferfs/coffer/fs"
)

// rotateFlags are rotate's own flags.
type rotateFlags struct {
	concurrency   int
	newGeneration bool
	mountGrace    time.Duration
	sseCNewKey    string
}

func newRotateCommand(e *env) *cobra.Command {
	var (
		vf volumeFlags
		rf rotateFlags
	)
	cmd := &cobra.Command{
		Use:   "rotate [flags]",
		Short: "Rotate the volume's KEK (rewrap every object's key), or its SSE-C key",
		Long: `Rotate the key-encryption key (KEK) that wraps every object's data key:
add a KEK generation and make it current (one conditional write of the
config), wait --mount-grace so that running mounts (which re-read the
config at least every 10 s) seal new files under it, rewrap every
object's data key under it with metadata-only server-side copies (no
file data is read or written; --concurrency at once), then retire the
old generation from the keyring once no object uses it.

Interrupted, it resumes when run again: while an older generation is
still in the keyring, rotate continues onto the current one (objects
already on it are skipped) instead of adding another; --new-generation
adds one anyway (for instance after removing a key that may have seen
the keyring of the unfinished rotation).

With --sse-c-new-key-file, rotate re-encrypts every object server-side
from the current SSE-C key (--sse-c-key-file) to the first key of that
file instead (the KEK is left alone); a rerun skips objects already
under the new key. Afterwards the old key reads nothing: put the new key
first in the key file your mounts use (see README).`,
		Example: `  coffer rotate --store s3://bucket/vol --key-file ~/vol.key
  coffer rotate --store s3://bucket/vol --key-file ~/vol.key --mount-grace 0     # no mount is running
  coffer rotate --store s3://bucket --encryption none --sse sse-c --sse-c-key-file ~/ssec.key --sse-c-new-key-file ~/ssec-new.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRotate(cmd.Context(), e, cmd, &vf, &rf)
		},
	}
	f := cmd.Flags()
	vf.register(f)
	f.IntVar(&rf.concurrency, "concurrency", cofferfs.DefaultRotateConcurrency, "objects rewrapped (or re-encrypted) at once")
	f.BoolVar(&rf.newGeneration, "new-generation", false, "add a KEK generation even when an unfinished rotation would be resumed")
	f.DurationVar(&rf.mountGrace, "mount-grace", cofferfs.DefaultMountGrace, "wait this long after adding the generation before rewrapping, for running mounts to pick it up (0: no mount is running)")
	f.StringVar(&rf.sseCNewKey, "sse-c-new-key-file", "", "re-encrypt every object under the first key of this SSE-C key file (s3fs-fuse's format) instead of rotating the KEK")
	return cmd
}

func runRotate(ctx context.Context, e *env, cmd *cobra.Command, vf *volumeFlags, rf *rotateFlags) error {
	sseC := rf.sseCNewKey != ""
	p, err := vf.plan(e, func() error {
		if err := checkConcurrency(rf.concurrency); err != nil {
			return err
		}
		if rf.mountGrace < 0 {
			return usagef("--mount-grace %v: want 0 or more", rf.mountGrace)
		}
		if sseC {
			for _, name := range []string{"new-generation", "mount-grace"} {
				if cmd.Flags().Changed(name) {
					return usagef("--%s applies to the KEK rotation, not to --sse-c-new-key-file", name)
				}
			}
			if vf.keys.sse != string(blobstore.SSEC) {
				return usagef("--sse-c-new-key-file rotates the SSE-C key of a volume with --sse sse-c: give --sse sse-c and its current key (--sse-c-key-file)")
			}
		} else if vf.keys.encryption == "none" {
			return usagef("a volume with --encryption none has no KEK to rotate; for its SSE-C key give --sse-c-new-key-file")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if sseC {
		return runRotateSSEC(ctx, e, p, rf)
	}
	store, _, err := p.openStore(ctx, rf.concurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	grace := rf.mountGrace
	if grace == 0 {
		grace = -1 // fs: negative is no wait, 0 the default
	}
	pr := newCountProgress(e.stderr, "rewrapping")
	res, err := cofferfs.RotateVolume(ctx, store, cofferfs.RotateOptions{
		KeyOptions:    cofferfs.KeyOptions{Roots: p.roots, SSE: p.sse},
		Concurrency:   rf.concurrency,
		NewGeneration: rf.newGeneration,
		MountGrace:    grace,
		Progress: func(s cofferfs.RotateProgress) {
			switch s.Step {
			case cofferfs.StepGeneration:
				fmt.Fprintf(e.stderr, "coffer rotate: rotating onto KEK generation %d\n", s.Generation)
			case cofferfs.StepWait:
				fmt.Fprintf(e.stderr, "coffer rotate: waiting %v for running mounts to pick up generation %d (--mount-grace)\n", s.Wait.Round(time.Second), s.Generation)
			case cofferfs.StepRewrap:
				pr.update(s.Done, s.Total)
			case cofferfs.StepRetire:
				pr.finish()
			}
		},
	})
	pr.finish()
	for i, f := range res.Failed {
		if i == maxFailuresShown {
			fmt.Fprintf(e.stderr, "coffer rotate: and %d more objects that could not be rewrapped\n", len(res.Failed)-i)
			break
		}
		fmt.Fprintf(e.stderr, "coffer rotate: cannot rewrap %s (KEK generation %d): %v\n", f.Key, f.Generation, f.Err)
	}
	if res.Generation != 0 && (err == nil || errors.Is(err, cofferfs.ErrRotationIncomplete)) {
		how := "added"
		if !res.Added {
			how = "resumed"
		}
		fmt.Fprintf(e.stdout, "rotated volume %s at %s onto KEK generation %d (%s): %s, %d rewrapped, %d already on it",
			res.VolumeID, p.url, res.Generation, how, objects(res.Objects), res.Rewrapped, res.Already)
		if res.Other > 0 {
			fmt.Fprintf(e.stdout, ", %d not coffer's (left alone)", res.Other)
		}
		if len(res.Retired) > 0 {
			fmt.Fprintf(e.stdout, "; retired generation %v", generationList(res.Retired))
		}
		fmt.Fprintln(e.stdout)
	}
	if errors.Is(err, cofferfs.ErrRotationIncomplete) {
		return fmt.Errorf("%d of %d objects could not be rewrapped (listed above), so KEK generation %v stays in the keyring: repair or remove them (coffer fsck), then run coffer rotate again",
			len(res.Failed), res.Objects, generationList(res.Remaining))
	}
	if err != nil {
		if res.Generation != 0 {
			return fmt.Errorf("%w (run coffer rotate again to resume the rotation onto generation %d)", keyCommandError(p.url, err), res.Generation)
		}
		return keyCommandError(p.url, err)
	}
	return nil
}

const maxFailuresShown = 20

func generationList(gens []uint32) string {
	var b bytes.Buffer
	for i, g := range gens {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, g)
	}
	return b.String()
}

func runRotateSSEC(ctx context.Context, e *env, p *volumePlan, rf *rotateFlags) error {
	newKeys, err := blobstore.LoadSSECKeyFile(rf.sseCNewKey)
	if err != nil {
		return err
	}
	// The new key first, then the keys objects may be under now.
	keys := [][]byte{newKeys[0]}
	for _, k := range p.sse.CKeys {
		if !containsKey(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 1 {
		return errors.New("the first key of --sse-c-new-key-file is the only key of --sse-c-key-file: nothing to re-encrypt from (give the volume's current SSE-C key file as --sse-c-key-file)")
	}
	p.sse.CKeys = keys
	p.store.SSE = p.sse
	store, _, err := p.openStore(ctx, rf.concurrency)
	if err != nil {
		return err
	}
	defer store.Close()
	pr := newCountProgress(e.stderr, "re-encrypting")
	res, err := cofferfs.RotateSSEC(ctx, store, cofferfs.SSECRotateOptions{
		Roots: p.roots, Encryption: p.encryption, SSE: p.sse, Concurrency: rf.concurrency,
		Progress: func(done, total, _ int) { pr.update(done, total) },
	})
	pr.finish()
	if err != nil {
		return fmt.Errorf("%w (run the same coffer rotate again to resume)", keyCommandError(p.url, err))
	}
	fmt.Fprintf(e.stdout, "re-encrypted %d of the %s at %s under the new SSE-C key (the others were under it already); put that key first in the SSE-C key file your mounts use (--sse-c-key-file), for instance replace it with %s, and mount again\n",
		res.Rekeyed, objects(res.Objects), p.url, rf.sseCNewKey)
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, o := range keys {
		if bytes.Equal(o, k) {
			return true
		}
	}
	return false
}

// countProgress reports a count of objects on w: a bar when w is a terminal,
// else a plain line at every tenth of the total (and at the end).
type countProgress struct {
	w    io.Writer
	what string

	mu     sync.Mutex
	bar    *progressBar
	tenths int // tenths reported (plain lines)
	done   bool
}

func newCountProgress(w io.Writer, what string) *countProgress {
	return &countProgress{w: w, what: what, tenths: -1}
}

func (p *countProgress) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || total == 0 {
		return
	}
	if p.bar == nil {
		b := newProgressBar(p.w, total, p.what)
		p.bar = &b
	}
	if !p.bar.plain() {
		p.bar.setTotal(total)
		p.bar.set(done)
		return
	}
	if t := done * 10 / total; t > p.tenths {
		p.tenths = t
		fmt.Fprintf(p.w, "coffer: %s: %d of %s (%d%%)\n", p.what, done, objects(total), done*100/total)
	}
}

func (p *countProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.done {
		p.bar.finish()
	}
	p.done = true
}
