package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// Writer keys (DESIGN.md §2 "Writer keys"): the full-key commands that
// manage them (key export-writer, key list, key revoke-writer) and the
// reading of epoch objects every full-key user of writer objects shares.
// Like the root key commands they change the keyring only, with one
// conditional write of the config.

// epochObjectMax bounds what is read of an epoch object (1,200 bytes as
// built; cipher checks the exact size): anything in the bucket is the
// attacker's, and a huge object must not be read into memory.
const epochObjectMax = 4 << 10

// ExportWriter adds a writer key with path scope and label to the volume
// and hands its credential to save before the config is written: save
// must store it durably (or fail, and nothing is written). If the config
// write then fails the credential opens nothing (its writer is in no
// keyring) and the caller removes it.
func ExportWriter(ctx context.Context, store blobstore.Store, opts KeyOptions, scope, label string, save func(*cipher.WriterCredential) error) (*cipher.WriterCredential, error) {
	o, err := openConfig(ctx, store, opts)
	if err != nil {
		return nil, err
	}
	cred, err := o.cfg.ExportWriter(o.kr, scope, label)
	if err != nil {
		return nil, err
	}
	if err := save(cred); err != nil {
		return nil, err
	}
	if err := o.write(ctx, store, "the new writer key"); err != nil {
		return nil, err
	}
	return cred, nil
}

// WriterListing is a writer key as ListKeys reports it.
type WriterListing struct {
	cipher.WriterInfo
	// Epochs counts the epoch objects stored under
	// .coffer/epochs/<writer ID>/: the mount sessions it started (as far
	// as anyone who can write the bucket lets it show).
	Epochs int
}

// listWriters lists the keyring's writers with their stored epochs.
func listWriters(ctx context.Context, store blobstore.Store, kr *cipher.Keyring) ([]WriterListing, error) {
	var out []WriterListing
	for _, w := range kr.Writers() {
		epochs, err := listEpochs(ctx, store, w.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, WriterListing{WriterInfo: w, Epochs: len(epochs)})
	}
	return out, nil
}

// listEpochs lists the origins of the epoch objects stored for writer w;
// keys under its prefix that do not name an epoch are skipped (fsck
// reports them).
func listEpochs(ctx context.Context, store blobstore.Store, w cipher.WriterID) ([]cipher.Origin, error) {
	var out []cipher.Origin
	for e, err := range store.List(ctx, cipher.WriterEpochsPrefix(w), "") {
		if err != nil {
			return nil, fmt.Errorf("listing the epochs of writer %s: %w", w, err)
		}
		o, err := cipher.ParseEpochObjectKey(e.Key)
		if err != nil || o.Writer != w {
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// openEpoch fetches the epoch object of origin o and opens it with kr
// (cipher.Keyring.OpenEpoch checks the writer, the tag and the seal). A
// missing epoch object is cipher.ErrWriterRefused: a writer stores it
// before any of its session's objects, so its absence means the objects
// were not made by that session.
func openEpoch(ctx context.Context, store blobstore.Store, kr *cipher.Keyring, o cipher.Origin) (*cipher.Epoch, error) {
	rc, _, err := store.Get(ctx, cipher.EpochObjectKey(o), blobstore.GetOptions{Length: -1})
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: the epoch object of %s is missing", cipher.ErrWriterRefused, o)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the epoch object of %s: %w", o, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, epochObjectMax))
	if err != nil {
		return nil, fmt.Errorf("reading the epoch object of %s: %w", o, err)
	}
	return kr.OpenEpoch(o, data)
}

// RevokeOptions are the inputs of RevokeWriter.
type RevokeOptions struct {
	KeyOptions
	// DropEpochs refuses every file the writer stored (not adopted or
	// rotated yet); otherwise the epochs stored so far that open stay
	// readable and only those the writer starts afterwards are refused.
	DropEpochs bool
	// Now is the revocation time recorded (display only).
	Now time.Time
}

// RevokeResult is what RevokeWriter did.
type RevokeResult struct {
	// Kept are the epochs whose files stay readable.
	Kept []cipher.EpochID
	// Refused are stored epochs that did not open (forged, or of another
	// volume) and so were not kept, with why.
	Refused map[cipher.EpochID]error
}

// RevokeWriter revokes writer id: full-key mounts refuse the files of the
// epochs it starts from now on (and, with DropEpochs, of every epoch).
// The epochs to keep are those stored now that open under the keyring:
// the keyring records each with the hash of its epoch object, since
// nothing the writer stores can date an epoch.
func RevokeWriter(ctx context.Context, store blobstore.Store, opts RevokeOptions, id cipher.WriterID) (RevokeResult, error) {
	o, err := openConfig(ctx, store, opts.KeyOptions)
	if err != nil {
		return RevokeResult{}, err
	}
	res := RevokeResult{Refused: map[cipher.EpochID]error{}}
	var keep []*cipher.Epoch
	if !opts.DropEpochs {
		origins, err := listEpochs(ctx, store, id)
		if err != nil {
			return RevokeResult{}, err
		}
		for _, origin := range origins {
			ep, err := openEpoch(ctx, store, o.kr, origin)
			if errors.Is(err, cipher.ErrAuth) {
				res.Refused[origin.Epoch] = err
				continue
			}
			if err != nil {
				return RevokeResult{}, err
			}
			keep = append(keep, ep)
			res.Kept = append(res.Kept, origin.Epoch)
		}
	}
	if err := o.kr.RevokeWriter(id, keep, opts.Now); err != nil {
		return RevokeResult{}, err
	}
	if err := o.write(ctx, store, "the revocation"); err != nil {
		return RevokeResult{}, err
	}
	return res, nil
}
