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
//     ENOENT, E2BIG or EMLINK, ENOTSUP, EINVAL), not damage.
//   - A keyring is used only after an entry the caller's root key opens
//     authenticated it (entry authentication, below); nothing sealed to a
//     public key is taken as proof of who sealed it.
//
// # What it must never do
//
// Put key bytes, passphrases or plaintext names in an error or a log (the
// package does not log at all); touch the network; import another coffer
// package; keep package-level mutable state.
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
