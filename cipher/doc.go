// Package cipher is coffer's cryptographic core: root keys, the keyring and
// its config object, per-object data keys (DEKs) and their wrapping, the
// chunked object envelope, sealed attributes, name encryption, and sealing
// of local files. It implements DESIGN.md §2, §3 and §9; this comment
// records every choice DESIGN.md leaves open.
//
// Callers never handle a nonce, a tag or an AAD layout: they ask to seal or
// open a chunk of an object, the metadata of an object at a path, a name in
// a directory, a block of a local file, and get verified bytes or an error.
//
// # Invariants
//
//   - Every AEAD is AES-256-GCM with a fresh random 12-byte nonce stored in
//     front of the ciphertext (nonce | ciphertext | tag), and every key is
//     derived per object, per file or per purpose (HKDF-SHA256), so no key
//     nears the 2^32 random-nonce limit.
//   - Every seal binds its context in the AAD (volume, generation, file ID,
//     chunk index and finality, path), so ciphertext moved to another place
//     does not open.
//   - Bytes are returned only after they verified. Errors on stored data
//     wrap ErrAuth, ErrInvalidSize, ErrBadMetadata, ErrBadName,
//     ErrNotConfig, ErrConfigTampered (ErrConfigPreAuth) or ErrNoKeyOpens;
//     ErrIsLink, ErrStaleLink, ErrMetadataTooBig, ErrXattrNamespace and
//     ErrXattrName are states a filesystem answers (follow the link,
//     ENOENT, E2BIG or EMLINK, ENOTSUP, EINVAL), not damage; so are
//     ErrWriterOrigin (open the writer's object with its epoch) and, in a
//     write-only mount, ErrNotThisSession and ErrOutOfScope (EACCES).
//     ErrWriterRefused and ErrWriterRevoked are ErrAuth.
//   - A keyring is used only after an entry the caller's root key opens
//     authenticated it (entry authentication, below); nothing sealed to a
//     public key is taken as proof of who sealed it. A writer's epoch is
//     used only after its tag verified under the writer's auth secret,
//     which the keyring holds.
//
// # What it must never do
//
// Put key bytes, passphrases or plaintext names in an error or a log (the
// package does not log at all); touch the network (KMS calls go through the
// caller's KMSEncrypter / KMSDecrypter, epoch objects through its
// EpochSource); import another coffer package; keep package-level mutable
// state.
//
// # Decisions beyond DESIGN.md
//
// Key derivation. HKDF-SHA256 with 32-byte outputs. DEK -> chunk key (info
// "chunk") and attribute key (info "attr"), as DESIGN.md names them; name
// secret -> EME key ("coffer name eme") and tweak key ("coffer name
// tweak"); config secret -> config MAC key ("coffer config mac"); KEK_g ->
// DEK wrap key (salt = file ID, info "coffer dek wrap"); local secret ->
// local file key (salt = the file's 32-byte salt, info "coffer local").
// LocalSecretFromKey(k) = HKDF(k, info "coffer local secret from key"), for
// the local secret of --encryption none with SSE-C.
//
// Config object. The outer object is exactly
// {"format":1,"body":B,"mac":M} as json.Marshal writes it; ParseConfig
// accepts only that canonical form (Open reports any other as
// ErrConfigTampered), so a change of any byte is detected even though the
// MAC covers the body alone. The body JSON has the fields volume_id,
// encryption, sse, sse_kms_key_id, keys[] and keyring; unknown fields are
// refused (a newer format must not be half-read). All binary fields are
// base64url without padding, decoded strictly. ParseConfig fills no
// exported field: only Open, after the MAC verified, does
// (ClaimedEncryption exposes the unverified mode for error messages only).
//
// Keyring wrapping, a refinement of DESIGN.md's "one wrapped copy of the
// keyring per root key": the keyring is sealed once, under a random
// keyring-wrapping key (KWK), with AAD "coffer keyring v1" | volume ID, and
// each root key entry carries the KWK. So `coffer rotate` (a new KEK
// generation) rewrites one sealed keyring with only one root key at hand.
// An entry receives the KWK by HPKE (RFC 9180: DHKEM(X25519), HKDF-SHA256,
// AES-256-GCM) to a key pair derived from its root key, info "coffer kwk
// v1" | volume ID | key ID | 0x00 | kind; the entry stores the public key.
// Sealing to public keys is what lets `key remove` (and `passwd`) replace
// the KWK for every remaining entry without their root keys: after a
// removal, Marshal draws a new KWK and a new config secret, so the removed
// key opens no config written afterwards and cannot forge its MAC. (What a
// removed key kept, an old keyring with its name secret and old KEKs,
// stays usable to its holder, as DESIGN.md §9 says; `coffer rotate` then
// adds a KEK generation it never sees.) The keyring plaintext is JSON with
// the fields volume_id, name_secret, local_secret, config_secret,
// anchor_secret, current and keks[{gen, key, added}] (sorted by
// generation, so its encoding is deterministic and Marshal of an unchanged
// config is byte-identical; added is the Unix second the generation was
// added, absent in keyrings from before it was recorded, and tells
// `coffer rotate` how long running mounts have had to learn it).
//
// Added times (a completion of DESIGN.md §3, which lists no such field).
// Each root key entry carries added, the Unix second AddKey (or
// ChangePassphrase) made it; it is absent in entries from before it was
// recorded, which `coffer key list` shows as unknown. It is part of the
// body, so the config MAC covers it; the entry's auth tag does not.
//
// Passphrase changes. ChangePassphrase replaces a passphrase entry in
// place and keeps its ID (so `coffer key list`, and scripts that name the
// key, still do): fresh salt, new key pair and auth tag; the next Marshal
// replaces the KWK and the config secret, as after RemoveKey.
//
// Re-reading a config (mounts). Config.EntryKey keeps the keys the opening
// root key derived for its entry; EntryKey.Open authenticates a later
// version of the config through that entry alone, with the same checks as
// Open (entry auth, then the MAC), and no Argon2id run: a config whose
// entry changed salt, parameters or public key does not open (the key was
// removed or the passphrase changed: ErrNoKeyOpens), so a forged config
// cannot make a mount run Argon2id with parameters of its choosing.
// Keyring.AdoptGenerations then takes the generations of the newer keyring
// and nothing else; it refuses a keyring with other secrets and a
// rollback (an older current generation, a generation at or below the
// current one that the mount does not hold, another KEK under a known
// number): an older config replayed from the bucket, still authentic,
// must not bring a retired KEK back.
//
// Entry authentication (DESIGN.md §2). Sealing to a public key proves
// nothing about who sealed: anyone who can write the bucket could build,
// from a config's public bytes alone, entries that open a keyring of their
// own under the user's real root key (cipher/forgery_test.go performs
// exactly that). So each entry also carries auth = HMAC-SHA256(HKDF(entry
// root secret, "coffer entry auth"), "coffer entry v1" | volume ID | entry
// ID | 0x00 | kind | public key | anchor), where anchor = HKDF(anchor
// secret, salt = volume ID, "coffer keyring anchor") and the anchor secret
// lives in the keyring. The entry root secret is the secret the entry's key
// pair derives from: the 32-byte key for a sym entry, the Argon2id output
// for a passphrase entry (one Argon2id run gives both). Open checks auth
// right after the keyring opens and before it trusts anything the keyring
// says, the config MAC included; a mismatch is ErrConfigTampered. Only a
// holder of an entry's root key can compute its tag, and a forger does not
// know the anchor of the real keyring, so a planted keyring fails every
// entry, whatever the forger keeps of the real one. The tag does not cover
// the wrapped KWK or the rest of the keyring, which is what keeps the two
// operations that must work with one root key working: AddKey (the new
// entry's tag needs only the new key), and RemoveKey and `passwd` (the
// anchor stays, the KWK is resealed to the public keys). The price, as
// DESIGN.md §9 states: a removed key whose holder kept the keyring knows
// the anchor secret and can still plant a keyring the remaining entries
// accept, until Reauth draws a new anchor secret and recomputes every
// tag, which needs every entry's root key (it names the missing ones,
// ErrMissingRootKeys). Reauth also replaces the KWK and the config secret.
// Marshal writes auth on every entry; a config that carries it on some
// entries only is refused.
//
// Configs from before entry authentication (no auth on any entry, no
// anchor in the keyring) cannot be told from a forgery by the root key:
// Open refuses them with ErrConfigPreAuth (which is also
// ErrConfigTampered, so a caller that does not upgrade refuses them as
// tampered). They are upgraded, never accepted: OpenPreAuth opens one the
// old way, and then only Reauth (with every root key) and Marshal may
// follow, one conditional write. Because a forger can make a config look
// pre-auth, the keyring OpenPreAuth returns proves nothing by itself; the
// caller (fs.ReauthVolume) checks it against the volume's stored objects,
// whose DEKs only the real keyring unwraps, before it re-authenticates.
// A config without auth fields whose keyring has an anchor is tampering,
// not a pre-auth config. The config format number stays 1: the new fields
// are optional in the JSON, and absent only in pre-auth configs.
//
// Root keys. A sym key is 32 bytes; its entry key pair comes from
// HKDF(key, "coffer root sym") and its ID is the first 8 bytes of
// HKDF(key, "coffer key id") in hex, a fingerprint that names the key
// without revealing it. A passphrase entry has a random 8-byte hex ID, a
// random 16-byte salt and its own Argon2id parameters (default time 3,
// 64 MiB, 4 threads; RootKey.SetArgon2 changes them for new entries, and
// tests use time 1, 64 KiB to stay fast); its key pair comes from
// HKDF(Argon2id(passphrase, salt), "coffer root passphrase"). Open tells a
// wrong key (ErrNoKeyOpens) from a tampered config (ErrConfigTampered) by
// the entry's public key: a key whose derived public key matches an entry
// but that then fails to unwrap, open or verify means tampering. (A forger
// who changes a passphrase entry's salt or public key makes that look like
// a wrong passphrase: a misleading message, never an open.) Parameters
// outside time 1..16, memory 8*threads KiB..2 GiB, threads 1..16 are
// refused at parse time, before any Argon2 work (a forged config cannot
// exhaust memory); a config lists at most 64 keys and is at most 1 MiB.
// Entries of kinds this version does not know are kept verbatim and
// skipped; a key removal that would need to rewrap them is refused.
//
// KMS root keys (DESIGN.md §2, kind kms; kms.go). A kms entry has a random
// 8-byte hex ID and a field kms = {key_id, key_arn, ciphertext}: the
// ciphertext is KMS Encrypt of a fresh 32-byte root secret R under the
// encryption context {"coffer-volume": hex volume ID, "coffer-entry":
// entry ID, "coffer-purpose": "root v1"} (KMSEncryptionContext); key_id is
// the key as the user named it then, key_arn the ARN KMS answered. R is
// the entry root secret: key pair DeriveKeyPair(HKDF(R, "coffer root
// kms")), auth key HKDF(R, "coffer entry auth"), exactly as for a sym key,
// so entry authentication, key remove, Reauth and rotate work unchanged
// and call no KMS. The package never calls KMS: NewKMSRootKey takes a
// KMSEncrypter (one Encrypt), Config.KMSRootKey a KMSDecrypter, and the
// RootKey they return opens the config like any other. Which entry
// KMSRootKey tries: the kms entries whose key_id equals the key the user
// named, or whose key_arn equals it or ends in ":key/" + it, in config
// order, stopping at the first that decrypts; only if none matches, every
// kms entry in order. So a key named as at add time costs one Decrypt and
// the config's other kms entries none. Decrypt always passes KeyId = the
// user's key (flag or environment), never key_id or key_arn: those are
// unauthenticated before Open and only choose; a forger who points an
// entry at a key of its own gets a Decrypt under the user's key, which
// fails. A ciphertext KMS refuses (ErrKMSCiphertext from the decrypter:
// InvalidCiphertext, IncorrectKey) in an entry the named key matches is
// ErrConfigTampered (moved from another volume or entry, whose context
// differs, or altered); other Decrypt errors (denied, disabled,
// unreachable) end the search at once, since they are about the key, not
// the entry. What entry authentication cannot stop here, and the KMS key
// policy must (README): whoever may call Encrypt under a volume's
// encryption context can make a ciphertext of an R of their own, hence an
// entry and a keyring of their own that R opens; so Encrypt,
// GenerateDataKey* and ReEncrypt* under the coffer-purpose context are
// denied to all but administrators. A kms RootKey opened from a config
// cannot add an entry (AddKey refuses: it has no ciphertext), one made for
// another volume ID is refused, and a second entry under the same KMS key
// ARN is refused.
//
// Writer keys (DESIGN.md §2 "Writer keys"; writer.go,
// writer_credential.go). IDs: a writer ID is 8 random bytes, an epoch ID
// 16 (a session's ID must never repeat, and nothing counts sessions), both
// hex in object keys. A writer key lives in the keyring plaintext only, as
// writers[{id, label, private (the 32-byte MLKEM768X25519 seed, from
// which crypto/hpke derives the key pair), auth (WA, 32 bytes), scope,
// revoked, revoked_at, epochs}], sorted by ID and absent when there is no
// writer (a keyring without writers encodes as before); at most 256.
// Config.ExportWriter adds one and returns its credential.
//
// The credential (WriterCredential) is one line of JSON, mode 0600:
// type "coffer writer credential", version 1, volume_id, encryption
// (always "client": without a keyring there are no writer keys), sse,
// sse_kms_key_id, writer_id, label, scope, name_secret, public_key (1,216
// bytes), auth_secret. It holds WA, which DESIGN.md's list leaves out but
// the epoch tag needs. Never the private key, a KEK, or the local, config
// or anchor secrets: nothing in it unwraps a stored DEK. Its type field
// tells it from a sym key file, which never starts with '{'
// (IsWriterCredential; LoadKey reads either, LoadKeyFile names a
// credential as such). A writer authenticates nothing it reads from the
// config: CheckConfig compares the config's volume ID with the
// credential's (a wrong store is refused early), and the modes, names and
// keys come from the credential alone.
//
// Epoch object .coffer/epochs/<writer ID>/<epoch ID>, 1,200 bytes:
// HPKE.Seal(pk, HKDF-SHA256, AES-256-GCM, info, E) (1,168 bytes: the
// 1,120-byte X-Wing encapsulation, E sealed, its tag) | HMAC-SHA256(
// HKDF(WA, "coffer epoch auth"), info | HPKE ciphertext), info = "coffer
// epoch v1" | volume ID | writer ID | epoch ID, all fixed-size. One per
// WriterSession (NewSession: one HPKE seal), stored before the session's
// first object. OpenEpoch checks the size, the writer, the tag, then opens
// the seal; an epoch made from the public key without WA, or moved to
// another volume, writer or epoch ID, is ErrAuth.
//
// A writer object's metadata: coffer-v, coffer-fid, coffer-origin
// (base64url of writer ID | epoch ID), coffer-dek = nonce | AES-GCM(
// HKDF(E, salt = file ID, "coffer writer dek wrap"), DEK) | tag with AAD
// "coffer wdek v1" | volume ID | writer ID | epoch ID | file ID, no
// coffer-kek, coffer-attr as every object's (the record sealed under the
// DEK's attribute key with the path AAD: the writer has no attribute key
// of the keyring, and needs none), coffer-name for a hashed name. The
// budget counts coffer-kek as if present, so rotation never pushes a
// writer object over. Rotate (RewrapAnyMetadata) adds coffer-kek = g and
// rewraps the DEK under KEK_g's wrap key with AAD "coffer dek v2" |
// volume ID | g | file ID | writer ID | epoch ID, keeping coffer-origin;
// from then on the object opens without its epoch. A full-key change of a
// writer's object (SealMetadata with the key OpenAnyMetadata returned,
// whose Origin is the writer's) keeps the origin the same way, and is
// refused outside the writer's scope; only AdoptMetadata (coffer adopt)
// seals it as the full key's, same file ID and DEK. A writer's object is
// never a link or an inode: OpenLink, OpenInode and FollowLink refuse a
// writer origin, SealInodeMetadata refuses a writer's key (adopt first).
//
// Reading (OpenAnyMetadata): the writer must be in the keyring and, if
// revoked, the epoch one it kept (and, when the epoch object is read, that
// very object by SHA-256); the path must lie in the scope (the scope
// itself or below it; "/" is everything) and outside /.coffer; the DEK
// must open (under E, or under a KEK bound to the origin); then the
// attributes at the path. fs checks the object key with
// CheckWriterObjectKey (no writer-origin object under .coffer/) before.
// OpenMetadata, OpenObjectKey and RewrapMetadata open full-key objects
// only and answer a writer's with ErrWriterOrigin, so code that does not
// know writers shows EIO, never a writer's file as the full key's.
//
// Revocation (RevokeWriter). Epoch objects and their timestamps are
// written by the writer, so nothing stored can date an epoch: the keyring
// records, at revocation, the epochs the full key still reads, each with
// the SHA-256 of its epoch object (epochs: base64url of (epoch ID | hash)*,
// sorted, at most 8,192), and the time for display. The caller (revoke-
// writer) lists .coffer/epochs/<ID>/, opens each epoch with OpenEpoch and
// passes those to keep (all of them, or fewer). After revocation an epoch
// not kept is ErrWriterRevoked, and so is an epoch object that is not the
// one kept (a thief with the credential can seal a new E under a kept
// epoch ID and WA, but not to the same bytes); rotated objects of a kept
// epoch open without their epoch object (their v2 wrap was made by the
// full key). A thief who started an epoch before the revocation, and kept
// its E, can still add files under it: revoke with fewer epochs (after
// adopting the good files) to shut those out too.
//
// How fs uses it. Full-key mount: ObjectOrigin(meta) says whether an
// object is a writer's; fs keeps a cache of *Epoch per Origin, filled by
// fetching EpochObjectKey(o) and Keyring.OpenEpoch (an EpochSource), and
// opens every object with OpenAnyMetadata(meta, path, source), getting the
// origin for coffer.origin, ls -l and --writers=refuse; rotate uses
// RewrapAnyMetadata, fsck OpenAnyObjectKey, adopt AdoptMetadata. A mount
// that re-reads its config takes the new keyring's writers with
// AdoptWriters beside AdoptGenerations (it refuses an older config that
// would undo a revocation) and then drops its cached epochs (a cached
// epoch of a writer since revoked is refused anyway: OpenAnyMetadata
// checks the revocation on every open). Write-only mount:
// LoadKey gives the credential, CheckConfig checks the store's config
// (the one thing a write-only fs.Volume reads of it: it runs no config
// watch, and a config rewritten while it is mounted changes nothing it
// does; a forged config can at most make it refuse to mount),
// NewSession draws the epoch, EpochObject is stored with If-None-Match
// before anything else, names go through Session.Names, new objects
// through Session.NewObjectKey and Session.SealMetadata (ErrOutOfScope:
// EACCES), reads of its own objects through Session.OpenMetadata
// (ErrNotThisSession for anything else: EACCES). Not decided here and
// left to fs: a writer may seal any mode, owner or file type, so a
// full-key mount should present writer files without set-ID bits and
// device nodes as unusable (nodev) until adopted.
//
// Config without client-side encryption ("none"). There is no keyring, so
// the MAC key is HKDF("coffer config without client-side encryption",
// "coffer config mac"), a fixed public key: it guards against accidental
// corruption only, not against anyone who can write the bucket. Such a
// config lists no keys. Because anyone can forge one, a caller must compare
// the opened Encryption with the mode the user chose explicitly (DESIGN.md
// §3); otherwise a bucket writer could downgrade a client-mode volume.
//
// Key files. LoadKeyFile takes 32 raw bytes or the base64 (standard or URL
// alphabet, padded or not, trailing newline allowed) of 32 bytes; it checks
// the mode on the open file and refuses group/other access with
// ErrKeyFileMode and "run chmod 600 FILE". WriteKeyFile writes base64 plus
// a newline (O_EXCL, 0600), printable so it can be backed up. A passphrase
// file's first line is the passphrase (trailing CR/LF stripped, empty
// refused, at most 4 KiB).
//
// DEKs and metadata. coffer-v is "1"; coffer-fid the 16-byte file ID;
// coffer-kek the generation in canonical decimal (1..2^32-1); coffer-dek is
// nonce | wrapped DEK | tag (60 bytes) under HKDF(KEK_g, salt = file ID,
// "coffer dek wrap") with AAD "coffer dek v1" | volume ID | generation
// (uint32 big-endian) | file ID. SealMetadata always wraps under the
// current generation. Metadata names are looked up exactly, then
// case-insensitively. The seal functions add coffer-name themselves when
// the path's last segment is stored hashed (whether it is follows from the
// name's length), so the metadata budget counts it and no caller can
// forget it. The budget (MetadataBudget, 1,800) is the sum of the names
// and values of all coffer-* metadata, as S3 measures its 2 KiB limit,
// with coffer-kek counted at its widest (10 digits) so that rotation never
// pushes a sealed object over; more is ErrMetadataTooBig, which fs answers
// with E2BIG (setxattr) or EMLINK (link). One xattr value of up to 1,134
// bytes fits at a short name (869 under a 255-byte name); an inode without
// xattrs holds up to 70 links.
//
// Attribute records. coffer-attr is nonce | AES-GCM(attribute key, record)
// | tag; the record's first byte names its kind and version, so a record
// never decodes as another kind even where two kinds share an AAD:
//
//	attributes (files, directories, symlinks, special files):
//	  0x02 | mode u32 | uid u32 | gid u32 | atime i64 | mtime i64 |
//	  ctime i64 (ns) | rdev u32 | change counter u64 | xattrs
//	link:  0x12 | inode ID (16) | link ID (16)
//	inode: 0x22 | the attribute fields as above | xattrs |
//	       link count u16 | link ID (16)*
//	xattrs = count u16 | (name length u8 | name | value length u16 | value)*
//
// all big-endian; rdev is 32 bits because FUSE carries it so. Attributes
// and links are sealed with AAD "coffer attr v2" | volume ID | file ID |
// canonical path, inodes with "coffer inode attr v2" | volume ID | inode
// ID | file ID. Decoding accepts only what coffer writes: a known kind,
// xattr names in user.* (not the bare prefix, no NUL, at most 255 bytes)
// strictly sorted, link IDs strictly sorted and at least one, nothing
// after the last field; so every accepted record encodes back to its own
// bytes. Version 1 records (21 bytes, no AAD label) are refused: there was
// no release. Xattrs and LinkSet are immutable values holding their
// canonical encoding, so Attr and Inode compare with == and a copy shares
// nothing mutable.
//
// Hard links. OpenMetadata of a link object is ErrIsLink (not ErrAuth or
// ErrBadMetadata, so an fs that does not follow links shows EIO rather
// than a wrong file, and one that does follows with OpenLink). FollowLink
// takes the inode object's metadata and the opened Link: it checks that
// coffer-ino (base64url, like every binary field) equals the link's inode
// ID, opens the record under the inode AAD built from that ID, and refuses
// a link ID outside the live set with ErrStaleLink. The caller names the
// inode object InodeID.String() (32 lower-case hex digits; ParseInodeID
// reads it back for fsck), so the object name, coffer-ino and the AAD all
// agree or nothing opens. A link object is sealed like any object (own
// file ID and DEK), so RewrapMetadata rotates links and inodes unchanged.
//
// Envelope. As DESIGN.md §3. The streaming encrypter holds one chunk of
// plaintext because a chunk is known to be final only at Close, plus one
// sealed chunk it reuses (AES-GCM cannot seal in place with the nonce in
// front); nothing is allocated per chunk. Parts of a
// multipart upload are encrypted independently (NewPartEncrypter) given
// their first chunk index. The whole-body decrypter checks the header's file
// ID against the metadata's and that the body ends exactly after the final
// chunk; an early end is ErrAuth (truncation). The random-access reader
// makes one fetch per ReadAt covering exactly the chunks the range needs,
// and does not fetch the header: it is in every chunk's AAD.
//
// Names. PKCS#7 always adds 1..16 bytes, so an encrypted name is 16..256
// bytes before base64url. Decoding accepts only encodings coffer produces:
// a segment over 200 bytes must be hashed, a hashed one must carry a long
// encoding over 200 bytes whose SHA-256 matches; lengths are checked before
// EME (which panics on bad lengths), then padding, then the name rules.
// Encrypting "", ".", "..", or a name with '/' or NUL is ErrBadName; over
// 255 bytes ErrNameTooLong.
//
// Local files. One AES-GCM key per file, HKDF(local secret, salt, "coffer
// local"); each block sealed with a random nonce and AAD "coffer local v1" |
// uint64 big-endian block index, so blocks cannot move within the file.
package cipher
