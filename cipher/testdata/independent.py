#!/usr/bin/python3
"""An independent decoder of coffer's formats, for cipher/independent_test.go.

Written from DESIGN.md §2 and §3 and the decisions cipher/doc.go records,
never from the Go code, with Debian's python3-cryptography (AES-GCM, AES,
X25519, HKDF) and python3-argon2 (Argon2id). HPKE base mode (RFC 9180,
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) and EME (Halevi and
Rogaway, as rfjakob/eme computes it) are written out here, because the
Go code's versions are what is under test.

Usage: independent.py INPUT.json  (keys travel in the file, never in argv)

INPUT names the known-answer vectors (cipher/testdata/vectors.json), the
passphrase of their config, objects the Go code sealed just now with fresh
keys, and tampered variants that must be refused. Everything the input
states is checked here (derived keys, file IDs, DEKs, names both ways, the
local block, the keyring); what only the Go side knows (attributes sealed,
plaintexts) is decoded and printed as JSON on stdout for the Go test to
compare. Any failure: a message on stderr and exit status 1.

The formats, as this decoder reads them:
  * HKDF-SHA256, 32-byte outputs, no salt unless one is named.
  * Config object: exactly {"format":1,"body":B,"mac":M} (json.Marshal's
    bytes), B and M base64url without padding, M = HMAC-SHA256(HKDF(config
    secret, "coffer config mac"), the body bytes). In "none" mode the MAC
    key is HKDF("coffer config without client-side encryption", "coffer
    config mac") and there are no keys.
  * Entries: a sym key's ID is hex of the first 8 bytes of HKDF(key,
    "coffer key id"); its key pair is DeriveKeyPair(HKDF(key, "coffer root
    sym")) of RFC 9180 §7.1.3; a passphrase entry's is DeriveKeyPair(
    HKDF(Argon2id(passphrase, salt, time, memory KiB, threads, 32 bytes),
    "coffer root passphrase")). (cipher/doc.go says the key pair "comes
    from" the HKDF output; that it is DeriveKeyPair's input, not the X25519
    scalar itself, was learnt from the vectors.) wrapped =
    HPKE enc (32) | ciphertext of the 32-byte KWK, info "coffer kwk v1" |
    volume ID | entry ID | 0x00 | kind, no AAD. An entry may carry added
    (Unix seconds it was added, covered by the config MAC only).
  * Keyring: nonce | AES-GCM(KWK) | tag, AAD "coffer keyring v1" | volume
    ID; plaintext JSON volume_id, name_secret, local_secret,
    config_secret, [anchor_secret], current, keks[{gen, key, [added]}].
  * Entry authentication (DESIGN §2), when the entries carry auth: auth =
    HMAC-SHA256(HKDF(entry root secret, "coffer entry auth"), "coffer
    entry v1" | volume ID | entry ID | 0x00 | kind | public | anchor),
    anchor = HKDF(anchor secret, salt = volume ID, "coffer keyring
    anchor"); the entry root secret is the sym key or the Argon2id output.
    All entries carry it or none does; none carrying it with an anchor
    secret in the keyring is tampering.
  * Metadata: coffer-v "1", coffer-fid (16 bytes), coffer-kek (canonical
    decimal), coffer-dek = nonce | AES-GCM(HKDF(KEK_g, salt = file ID,
    "coffer dek wrap"), DEK) | tag with AAD "coffer dek v1" | volume ID |
    generation u32 | file ID; chunk key HKDF(DEK, "chunk"), attribute key
    HKDF(DEK, "attr"). coffer-attr = nonce | AES-GCM(record) | tag:
      version 1 (as built): AAD volume ID | file ID | path; 0x01 | mode
        u32 | uid u32 | gid u32 | mtime i64, 21 bytes.
      version 2 (DESIGN §3): AAD "coffer attr v2" | volume ID | file ID |
        path; 0x02 | mode u32 | uid u32 | gid u32 | atime i64 | mtime i64 |
        ctime i64 | rdev u32 | change counter u64 | xattrs, with xattrs =
        count u16 | (name length u8 | name | value length u16 | value)*,
        names user.*, strictly sorted; nothing after. (DESIGN leaves the
        widths of mode..rdev open; these are the ones its attribute
        version 2 work documents.) A link is 0x12 | inode ID | link ID
        under the same AAD; an inode object carries coffer-ino and 0x22 |
        the fields | xattrs | link count u16 | link IDs (sorted, >= 1)
        under "coffer inode attr v2" | volume ID | inode ID | file ID.
  * Body: "CFR" | 0x01 | file ID, then 64 KiB chunks nonce | AES-GCM |
    tag, AAD header | u64 index | final (0/1); only the empty file has an
    empty chunk; the size alone says where the chunks end.
  * Names: PKCS#7 to 16 bytes, EME-AES-256 under HKDF(name secret, "coffer
    name eme"), tweak = first 16 bytes of HMAC-SHA256(HKDF(name secret,
    "coffer name tweak"), parent path), base64url; an encoding over 200
    bytes is stored as "~" + base64url(SHA-256(encoding)), the encoding in
    coffer-name.
  * Local blocks: AES-GCM under HKDF(local secret, salt, "coffer local"),
    AAD "coffer local v1" | u64 index. LocalSecretFromKey(k) = HKDF(k,
    "coffer local secret from key").
  * KMS entries (DESIGN §2 kms): kind "kms", a random 16-hex-digit ID, a
    field kms = {key_id, key_arn, ciphertext}; the 32-byte root secret R
    that KMS decrypts (under the encryption context coffer-volume = hex
    volume ID, coffer-entry = entry ID, coffer-purpose = "root v1") is the
    entry root secret; key pair DeriveKeyPair(HKDF(R, "coffer root kms")).
    The decoder is given R (it does not call KMS).
  * Writer keys (DESIGN §2 "Writer keys"): in the keyring as writers[{id
    (16 hex), [label], private (32-byte MLKEM768X25519 seed), auth (WA),
    scope, [revoked, revoked_at, epochs = (epoch ID 16 | SHA-256 of the
    epoch object 32)* sorted]}]. Epoch object .coffer/epochs/<writer>/<epoch>
    = HPKE ciphertext (1,168 bytes: enc 1,120 | AES-GCM(E) | tag) | HMAC-
    SHA256(HKDF(WA, "coffer epoch auth"), info | HPKE ciphertext), info =
    "coffer epoch v1" | volume ID | writer ID (8) | epoch ID (16). Debian's
    python3-cryptography has no ML-KEM, so the HPKE seal itself is NOT
    checked here: the decoder verifies the tag and takes E from the input.
    A writer object: coffer-origin = writer ID | epoch ID, no coffer-kek,
    coffer-dek under HKDF(E, salt = file ID, "coffer writer dek wrap"),
    AAD "coffer wdek v1" | volume ID | writer ID | epoch ID | file ID; its
    path inside the scope. Rotated: coffer-kek g and coffer-dek under the
    KEK's wrap key with AAD "coffer dek v2" | volume ID | g u32 | file ID |
    writer ID | epoch ID, coffer-origin kept. The credential: JSON with
    exactly type "coffer writer credential", version 1, volume_id,
    encryption, sse, sse_kms_key_id, writer_id, label, scope, name_secret,
    public_key (1,216 bytes), auth_secret.
"""

import base64
import hashlib
import hmac
import json
import re
import struct
import sys

import argon2.low_level
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

CHUNK = 64 << 10
NONCE, TAG = 12, 16
SEALED_CHUNK = NONCE + CHUNK + TAG
HEADER = 20
EMPTY_OBJECT = HEADER + NONCE + TAG


class Refused(Exception):
    """Stored data that does not decode or authenticate."""


def need(cond, what):
    if not cond:
        raise Refused(what)


# --- encodings -------------------------------------------------------------

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64d(s, what, size=None):
    """Strict base64url without padding."""
    need(isinstance(s, str) and _B64URL.match(s) and len(s) % 4 != 1, f"{what}: not base64url without padding")
    b = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    need(b64e(b) == s, f"{what}: not the canonical base64url of its bytes")
    need(size is None or len(b) == size, f"{what}: {len(b)} bytes, want {size}")
    return b


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


# --- primitives --------------------------------------------------------------


def hkdf(secret, info, salt=None, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt or None, info=info.encode()).derive(secret)


def hkdf_extract(salt, ikm):
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, n):
    return HKDFExpand(algorithm=hashes.SHA256(), length=n, info=info).derive(prk)


def hmac256(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def aead_open(key, sealed, aad, what):
    """nonce | ciphertext | tag, AES-256-GCM."""
    need(len(sealed) >= NONCE + TAG, f"{what}: {len(sealed)} bytes is too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE], sealed[NONCE:], aad)
    except InvalidTag:
        raise Refused(f"{what}: does not authenticate") from None


# --- HPKE, RFC 9180 base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
KEM_SUITE = b"KEM" + struct.pack(">H", KEM_ID)
HPKE_SUITE = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, AEAD_ID)


def labeled_extract(suite, salt, label, ikm):
    return hkdf_extract(salt, b"HPKE-v1" + suite + label + ikm)


def labeled_expand(suite, prk, label, info, n):
    return hkdf_expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite + label + info, n)


def derive_key_pair(ikm):
    """RFC 9180 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256): the private key."""
    dkp_prk = labeled_extract(KEM_SUITE, b"", b"dkp_prk", ikm)
    return labeled_expand(KEM_SUITE, dkp_prk, b"sk", b"", 32)


def x25519_public(sk):
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def hpke_open(sk, enc, ct, info, what):
    try:
        dh = X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(enc))
    except ValueError:
        raise Refused(f"{what}: bad HPKE encapsulation") from None
    kem_context = enc + x25519_public(sk)
    eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh)
    shared = labeled_expand(KEM_SUITE, eae_prk, b"shared_secret", kem_context, 32)
    psk_id_hash = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash  # mode_base
    secret = labeled_extract(HPKE_SUITE, shared, b"secret", b"")
    key = labeled_expand(HPKE_SUITE, secret, b"key", context, 32)
    base_nonce = labeled_expand(HPKE_SUITE, secret, b"base_nonce", context, NONCE)
    try:
        return AESGCM(key).decrypt(base_nonce, ct, b"")  # sequence 0
    except InvalidTag:
        raise Refused(f"{what}: HPKE ciphertext does not open") from None


# --- EME (ECB-Mix-ECB) over AES-256, as rfjakob/eme ------------------------


def _xor(*blocks):
    out = bytearray(16)
    for b in blocks:
        for i in range(16):
            out[i] ^= b[i]
    return bytes(out)


def _times2(b):
    """Doubling in GF(2^128), byte 0 least significant (EME-32's convention)."""
    out = bytearray(16)
    out[0] = (b[0] << 1) & 0xFF
    if b[15] & 0x80:
        out[0] ^= 0x87
    for j in range(1, 16):
        out[j] = ((b[j] << 1) & 0xFF) | (b[j - 1] >> 7)
    return bytes(out)


def eme(key, tweak, data, encrypt):
    m = len(data) // 16
    assert len(tweak) == 16 and len(data) % 16 == 0 and 1 <= m <= 128
    aes = Cipher(algorithms.AES(key), modes.ECB())
    enc = aes.encryptor()
    f = enc.update if encrypt else aes.decryptor().update
    L = [_times2(enc.update(bytes(16)))]
    for _ in range(1, m):
        L.append(_times2(L[-1]))
    P = [data[16 * j:16 * j + 16] for j in range(m)]
    C = [f(_xor(P[j], L[j])) for j in range(m)]
    MP = _xor(tweak, *C)
    MC = f(MP)
    M = _xor(MP, MC)
    for j in range(1, m):
        M = _times2(M)
        C[j] = _xor(C[j], M)
    C[0] = _xor(MC, tweak, *C[1:])
    return b"".join(_xor(f(C[j]), L[j]) for j in range(m))


# --- names -------------------------------------------------------------------


class Names:
    def __init__(self, name_secret):
        self.eme_key = hkdf(name_secret, "coffer name eme")
        self.tweak_key = hkdf(name_secret, "coffer name tweak")

    def tweak(self, parent):
        return hmac256(self.tweak_key, parent.encode("utf-8", "surrogateescape"))[:16]

    def encrypt(self, parent, name):
        raw = name.encode("utf-8", "surrogateescape")
        pad = 16 - len(raw) % 16
        enc = b64e(eme(self.eme_key, self.tweak(parent), raw + bytes([pad]) * pad, True))
        if len(enc) > 200:
            return "~" + b64e(hashlib.sha256(enc.encode()).digest()), enc
        return enc, ""

    def decrypt(self, parent, seg, long):
        if seg.startswith("~"):
            need(len(long) > 200, f"hashed segment {seg!r}: its long encoding is {len(long)} bytes, want over 200")
            need(b64d(seg[1:], "hashed segment", 32) == hashlib.sha256(long.encode()).digest(),
                 f"hashed segment {seg!r}: coffer-name does not match its hash")
            enc = long
        else:
            need(long == "" and len(seg) <= 200, f"segment {seg!r}: a segment over 200 bytes must be hashed")
            enc = seg
        raw = b64d(enc, "name")
        need(len(raw) % 16 == 0 and 16 <= len(raw) <= 256, f"name of {len(raw)} bytes")
        plain = eme(self.eme_key, self.tweak(parent), raw, False)
        pad = plain[-1]
        need(1 <= pad <= 16 and plain[-pad:] == bytes([pad]) * pad, "name padding")
        name = plain[:-pad]
        need(name not in (b"", b".", b"..") and b"/" not in name and b"\0" not in name and len(name) <= 255,
             f"decoded name {name!r} breaks the name rules")
        return name.decode("utf-8", "surrogateescape")


# --- the config ---------------------------------------------------------------

NONE_MAC_KEY = hkdf(b"coffer config without client-side encryption", "coffer config mac")
CONFIG_FIELDS = {"volume_id", "encryption", "sse", "sse_kms_key_id", "keys", "keyring"}
ENTRY_FIELDS = {"id", "kind", "argon2", "public", "wrapped", "auth", "added", "kms"}
KEYRING_FIELDS = {"volume_id", "name_secret", "local_secret", "config_secret", "anchor_secret", "current", "keks",
                  "writers"}
WRITER_FIELDS = {"id", "label", "private", "auth", "scope", "revoked", "revoked_at", "epochs"}
SSE_MODES = {"", "sse-s3", "sse-kms", "sse-c"}


def parse_outer(raw):
    outer = json.loads(raw)
    need(isinstance(outer, dict) and set(outer) == {"format", "body", "mac"} and outer["format"] == 1,
         "config: not {format:1, body, mac}")
    canonical = json.dumps({"format": 1, "body": outer["body"], "mac": outer["mac"]}, separators=(",", ":"))
    need(raw == canonical.encode(), "config: the outer object is not in its canonical form")
    body_bytes = b64d(outer["body"], "config body")
    return body_bytes, b64d(outer["mac"], "config mac", 32)


class Root:
    """A root key as the user holds it: a sym key, a passphrase, or the
    root secret KMS decrypted for one kms entry (entry: its ID)."""

    def __init__(self, kind, secret, entry=None):
        self.kind, self.secret, self.entry = kind, secret, entry


def entry_secret(root, entry):
    """The entry root secret and X25519 private key, or None when root is not this entry's."""
    if root.kind == "sym":
        if entry["kind"] != "sym" or entry["id"] != hkdf(root.secret, "coffer key id")[:8].hex():
            return None
        return root.secret, derive_key_pair(hkdf(root.secret, "coffer root sym"))
    if root.kind == "passphrase" and entry["kind"] == "passphrase":
        a = entry["argon2"]
        need(set(a) == {"time", "memory_kib", "threads", "salt"}, "argon2 parameters")
        need(1 <= a["time"] <= 16 and 1 <= a["threads"] <= 16 and 8 * a["threads"] <= a["memory_kib"] <= 2 << 20,
             "argon2 parameters out of range")
        out = argon2.low_level.hash_secret_raw(root.secret, b64d(a["salt"], "argon2 salt"), time_cost=a["time"],
                                               memory_cost=a["memory_kib"], parallelism=a["threads"], hash_len=32,
                                               type=argon2.low_level.Type.ID, version=19)
        return out, derive_key_pair(hkdf(out, "coffer root passphrase"))
    if root.kind == "kms" and entry["kind"] == "kms" and entry["id"] == root.entry:
        k = entry.get("kms")
        need(isinstance(k, dict) and set(k) == {"key_id", "key_arn", "ciphertext"}, "kms entry field")
        need(k["key_id"] and k["key_arn"] and b64d(k["ciphertext"], "KMS ciphertext"), "kms entry values")
        return root.secret, derive_key_pair(hkdf(root.secret, "coffer root kms"))
    return None


def open_config(raw, roots):
    """Opens a config with each root in turn; all must give the same keyring.

    Returns (body, keyring dict, keyring plaintext bytes, opened-by kinds)."""
    body_bytes, mac = parse_outer(raw)
    body = json.loads(body_bytes)
    need(isinstance(body, dict) and set(body) <= CONFIG_FIELDS, f"config body fields {sorted(body)}")
    vol = b64d(body["volume_id"], "volume_id", 16)
    need(body["sse"] in SSE_MODES and (body["sse_kms_key_id"] == "" or body["sse"] == "sse-kms"), "config sse")
    if body["encryption"] == "none":
        need(body["keys"] == [] and "keyring" not in body, "a none config with keys")
        need(hmac.compare_digest(hmac256(NONE_MAC_KEY, body_bytes), mac), "none config: MAC")
        return body, None, None, []
    need(body["encryption"] == "client", f"encryption {body['encryption']!r}")
    entries = body["keys"]
    need(1 <= len(entries) <= 64, "config key count")
    for e in entries:
        need(set(e) <= ENTRY_FIELDS and {"id", "kind", "public", "wrapped"} <= set(e), f"entry fields {sorted(e)}")
        need(re.fullmatch(r"[0-9a-f]{16}", e["id"]) is not None, f"entry ID {e['id']!r}")
    authed = [("auth" in e) for e in entries]
    need(all(authed) or not any(authed), "entry auth on some entries only")
    sealed_keyring = b64d(body["keyring"], "keyring")
    result, opened = None, []
    for root in roots:
        for e in entries:
            s = entry_secret(root, e)
            if s is None:
                continue
            root_secret, sk = s
            public = b64d(e["public"], "entry public key", 32)
            if x25519_public(sk) != public:
                continue  # a wrong passphrase
            wrapped = b64d(e["wrapped"], "wrapped KWK", 32 + 32 + TAG)
            info = b"coffer kwk v1" + vol + e["id"].encode() + b"\x00" + e["kind"].encode()
            kwk = hpke_open(sk, wrapped[:32], wrapped[32:], info, f"entry {e['id']}")
            need(len(kwk) == 32, "KWK size")
            plain = aead_open(kwk, sealed_keyring, b"coffer keyring v1" + vol, "keyring")
            kr = parse_keyring(plain, vol)
            if authed[0]:
                need("anchor" in kr, "entries carry auth but the keyring has no anchor secret")
                msg = b"coffer entry v1" + vol + e["id"].encode() + b"\x00" + e["kind"].encode() + public + kr["anchor"]
                tag = hmac256(hkdf(root_secret, "coffer entry auth"), msg)
                need(hmac.compare_digest(tag, b64d(e["auth"], "entry auth", 32)), f"entry {e['id']}: auth")
            else:
                need("anchor" not in kr, "the keyring has an anchor secret but no entry carries auth")
            need(hmac.compare_digest(hmac256(hkdf(kr["config_secret"], "coffer config mac"), body_bytes), mac),
                 "client config: MAC")
            need(result is None or result[1] == plain, "two root keys open different keyrings")
            result = (kr, plain)
            opened.append(root.kind)
            break
        else:
            raise Refused(f"no entry opens with the {root.kind} root key")
    return body, result[0], result[1], opened


def parse_keyring(plain, vol):
    j = json.loads(plain)
    need(isinstance(j, dict) and set(j) <= KEYRING_FIELDS and KEYRING_FIELDS - {"anchor_secret", "writers"} <= set(j),
         f"keyring fields {sorted(j)}")
    need(b64d(j["volume_id"], "keyring volume_id", 16) == vol, "the keyring names another volume")
    kr = {"volume_id": vol, "name_secret": b64d(j["name_secret"], "name_secret", 32),
          "local_secret": b64d(j["local_secret"], "local_secret", 32),
          "config_secret": b64d(j["config_secret"], "config_secret", 32), "current": j["current"], "keks": {}}
    if "anchor_secret" in j:
        kr["anchor_secret"] = b64d(j["anchor_secret"], "anchor_secret", 32)
        kr["anchor"] = hkdf(kr["anchor_secret"], "coffer keyring anchor", salt=vol)
    gens = [k["gen"] for k in j["keks"]]
    need(gens == sorted(set(gens)) and all(1 <= g < 1 << 32 for g in gens), "KEK generations")
    for k in j["keks"]:
        need(set(k) <= {"gen", "key", "added"} and {"gen", "key"} <= set(k), f"KEK fields {sorted(k)}")
        kr["keks"][k["gen"]] = b64d(k["key"], "KEK", 32)
    need(kr["current"] in kr["keks"], "the current generation has no KEK")
    kr["writers"] = {}
    ids = [w["id"] for w in j.get("writers", [])]
    need(ids == sorted(set(ids)), "writers not sorted by ID, or listed twice")
    for w in j.get("writers", []):
        need(set(w) <= WRITER_FIELDS and {"id", "private", "auth", "scope"} <= set(w), f"writer fields {sorted(w)}")
        need(re.fullmatch(r"[0-9a-f]{16}", w["id"]) is not None, "writer ID")
        need(w["scope"] == "/" or (w["scope"].startswith("/") and not w["scope"].endswith("/")), "writer scope")
        rec = {"wid": bytes.fromhex(w["id"]), "seed": b64d(w["private"], "writer seed", 32),
               "auth": b64d(w["auth"], "writer auth", 32), "scope": w["scope"], "revoked": w.get("revoked", False),
               "epochs": {}}
        if rec["revoked"]:
            raw = b64d(w["epochs"], "writer epochs")
            need(len(raw) % 48 == 0, "writer epochs length")
            ids = [raw[i:i + 16] for i in range(0, len(raw), 48)]
            need(ids == sorted(set(ids)), "writer epochs not strictly sorted")
            rec["epochs"] = {raw[i:i + 16]: raw[i + 16:i + 48] for i in range(0, len(raw), 48)}
        else:
            need("epochs" not in w and "revoked_at" not in w, "epochs on a writer not revoked")
        kr["writers"][rec["wid"]] = rec
    return kr


# --- objects ------------------------------------------------------------------

META_FIELDS = {"coffer-v", "coffer-fid", "coffer-kek", "coffer-dek", "coffer-attr", "coffer-name", "coffer-ino",
               "coffer-origin"}


def object_key(kr, meta):
    """Unwraps the DEK: returns (file ID, generation, DEK)."""
    meta = {k.lower(): v for k, v in meta.items()}
    need("coffer-origin" not in meta, "a writer's object where a full-key one was expected")
    need(set(meta) <= META_FIELDS and {"coffer-v", "coffer-fid", "coffer-kek", "coffer-dek", "coffer-attr"} <= set(meta),
         f"metadata names {sorted(meta)}")
    need(meta["coffer-v"] == "1", f"coffer-v {meta['coffer-v']!r}")
    fid = b64d(meta["coffer-fid"], "coffer-fid", 16)
    need(re.fullmatch(r"[1-9][0-9]{0,9}", meta["coffer-kek"]) is not None, "coffer-kek is not canonical decimal")
    gen = int(meta["coffer-kek"])
    need(gen in kr["keks"], f"no KEK of generation {gen}")
    wrap = hkdf(kr["keks"][gen], "coffer dek wrap", salt=fid)
    dek = aead_open(wrap, b64d(meta["coffer-dek"], "coffer-dek", NONCE + 32 + TAG),
                    b"coffer dek v1" + kr["volume_id"] + u32(gen) + fid, "coffer-dek")
    return fid, gen, dek, meta


class Reader:
    def __init__(self, b):
        self.b, self.off = b, 0

    def take(self, n):
        need(self.off + n <= len(self.b), "record too short")
        p = self.b[self.off:self.off + n]
        self.off += n
        return p

    def u(self, fmt):
        return struct.unpack(">" + fmt, self.take(struct.calcsize(fmt)))[0]

    def end(self):
        need(self.off == len(self.b), f"{len(self.b) - self.off} bytes follow the record")


def parse_fields(r):
    a = {"Mode": r.u("I"), "UID": r.u("I"), "GID": r.u("I"), "AtimeNs": r.u("q"), "MtimeNs": r.u("q"),
         "CtimeNs": r.u("q"), "Rdev": r.u("I"), "Changes": r.u("Q")}
    xattrs, prev = [], None
    for _ in range(r.u("H")):
        name = r.take(r.u("B"))
        value = r.take(r.u("H"))
        need(name.startswith(b"user.") and len(name) > 5 and b"\0" not in name, f"xattr name {name!r}")
        need(prev is None or prev < name, "xattr names not strictly sorted")
        prev = name
        xattrs.append([name.decode("utf-8", "surrogateescape"), value.hex()])
    a["Xattrs"] = xattrs
    return a


def link_ids(r):
    ids = [r.take(16) for _ in range(r.u("H"))]
    need(ids and ids == sorted(set(ids)), "link IDs not strictly sorted, or none")
    return [i.hex() for i in ids]


def open_record(kr, meta, path=None, inode=None):
    """Opens coffer-attr of an object at path (or of the inode object with
    that inode ID). Returns the unwrapped key, the record's plaintext and
    what it says."""
    fid, gen, dek, meta = object_key(kr, meta)
    attr_key = hkdf(dek, "attr")
    sealed = b64d(meta["coffer-attr"], "coffer-attr")
    vol = kr["volume_id"]
    if inode is not None:
        need(b64d(meta.get("coffer-ino", ""), "coffer-ino", 16) == inode, "coffer-ino is not the inode ID")
        plain = aead_open(attr_key, sealed, b"coffer inode attr v2" + vol + inode + fid, "inode record")
        need(plain[:1] == b"\x22", "not an inode record")
        r = Reader(plain)
        r.take(1)
        rec = {"kind": "inode", "attr": parse_fields(r), "links": link_ids(r)}
        r.end()
        return fid, gen, dek, meta, plain, rec
    need("coffer-ino" not in meta, "coffer-ino on an object at a path")
    p = path.encode("utf-8", "surrogateescape")
    try:
        plain = aead_open(attr_key, sealed, b"coffer attr v2" + vol + fid + p, "coffer-attr")
        need(plain[:1] in (b"\x02", b"\x12"), f"record kind {plain[:1].hex()} under the version 2 AAD")
    except Refused as e:
        if not str(e).endswith("does not authenticate"):
            raise
        plain = aead_open(attr_key, sealed, vol + fid + p, f"coffer-attr at {path!r} (under neither version's AAD)")
        need(plain[:1] == b"\x01" and len(plain) == 21, "a version 1 record is 0x01 and 21 bytes")
    r = Reader(plain)
    kind = r.take(1)
    if kind == b"\x01":
        rec = {"kind": "attr", "version": 1,
               "attr": {"Mode": r.u("I"), "UID": r.u("I"), "GID": r.u("I"), "MtimeNs": r.u("q")}}
    elif kind == b"\x02":
        rec = {"kind": "attr", "version": 2, "attr": parse_fields(r)}
    else:
        rec = {"kind": "link", "inode": r.take(16).hex(), "link": r.take(16).hex()}
    r.end()
    return fid, gen, dek, meta, plain, rec


def valid_object_size(s):
    return s == EMPTY_OBJECT or (s > EMPTY_OBJECT and not 1 <= (s - HEADER) % (SEALED_CHUNK) <= NONCE + TAG)


def open_body(fid, dek, body):
    need(valid_object_size(len(body)), f"no plaintext has an object of {len(body)} bytes")
    header = body[:HEADER]
    need(header == b"CFR\x01" + fid, "body header is not CFR 0x01 | the metadata's file ID")
    key = hkdf(dek, "chunk")
    out, off, i = [], HEADER, 0
    while True:
        n = min(SEALED_CHUNK, len(body) - off)
        final = off + n == len(body)
        out.append(aead_open(key, body[off:off + n], header + u64(i) + bytes([final]), f"chunk {i}"))
        off, i = off + n, i + 1
        if final:
            return b"".join(out)


def open_local(secret, salt, index, sealed):
    return aead_open(hkdf(secret, "coffer local", salt=salt), sealed, b"coffer local v1" + u64(index), "local block")


# --- writer keys ----------------------------------------------------------------

EPOCH_SEALED, EPOCH_OBJECT = 1120 + 32 + 16, 1120 + 32 + 16 + 32
CREDENTIAL_FIELDS = ["type", "version", "volume_id", "encryption", "sse", "sse_kms_key_id", "writer_id", "label",
                     "scope", "name_secret", "public_key", "auth_secret"]


def epoch_info(vol, origin):
    return b"coffer epoch v1" + vol + origin


def check_epoch_tag(vol, origin, wa, obj, what):
    """The epoch object's tag (its HPKE seal needs ML-KEM: not checked)."""
    need(len(obj) == EPOCH_OBJECT, f"{what}: epoch object of {len(obj)} bytes")
    tag = hmac256(hkdf(wa, "coffer epoch auth"), epoch_info(vol, origin) + obj[:EPOCH_SEALED])
    need(hmac.compare_digest(tag, obj[EPOCH_SEALED:]), f"{what}: epoch tag does not verify")


def in_scope(path, scope):
    return scope == "/" or path == scope or path.startswith(scope + "/")


def writer_object(vol, keks, origin, e, scope, meta, path):
    """Opens a writer object: returns (file ID, DEK, record, rec)."""
    meta = {k.lower(): v for k, v in meta.items()}
    need(set(meta) <= META_FIELDS and {"coffer-v", "coffer-fid", "coffer-origin", "coffer-dek", "coffer-attr"} <= set(meta),
         f"writer metadata names {sorted(meta)}")
    need(meta["coffer-v"] == "1" and "coffer-ino" not in meta, "writer object version / inode")
    need(b64d(meta["coffer-origin"], "coffer-origin", 24) == origin, "coffer-origin is not the epoch's")
    need(in_scope(path, scope) and not (path == "/.coffer" or path.startswith("/.coffer/")),
         f"{path!r} lies outside the writer's scope {scope!r}")
    fid = b64d(meta["coffer-fid"], "coffer-fid", 16)
    wrapped = b64d(meta["coffer-dek"], "coffer-dek", NONCE + 32 + TAG)
    if "coffer-kek" in meta:
        gen = int(meta["coffer-kek"])
        need(str(gen) == meta["coffer-kek"] and gen in keks, "rotated writer object's generation")
        dek = aead_open(hkdf(keks[gen], "coffer dek wrap", salt=fid), wrapped,
                        b"coffer dek v2" + vol + u32(gen) + fid + origin, "coffer-dek (v2)")
    else:
        need(e is not None, "a writer object with no coffer-kek needs its epoch key")
        dek = aead_open(hkdf(e, "coffer writer dek wrap", salt=fid), wrapped,
                        b"coffer wdek v1" + vol + origin + fid, "coffer-dek (writer)")
    plain = aead_open(hkdf(dek, "attr"), b64d(meta["coffer-attr"], "coffer-attr"),
                      b"coffer attr v2" + vol + fid + path.encode("utf-8", "surrogateescape"), "writer coffer-attr")
    need(plain[:1] == b"\x02", "a writer object's record is attributes")
    r = Reader(plain)
    r.take(1)
    rec = {"kind": "attr", "version": 2, "attr": parse_fields(r)}
    r.end()
    return fid, dek, plain, rec


def parse_credential(raw, vol=None):
    c = json.loads(raw)
    need(isinstance(c, dict) and list(c) == CREDENTIAL_FIELDS, f"credential fields {list(c)}")
    need(raw.rstrip(b"\n") == json.dumps(c, separators=(",", ":"), ensure_ascii=False).encode(), "credential is not canonical")
    need(c["type"] == "coffer writer credential" and c["version"] == 1 and c["encryption"] == "client", "credential type")
    out = {"volume_id": b64d(c["volume_id"], "credential volume_id", 16), "wid": bytes.fromhex(c["writer_id"]),
           "scope": c["scope"], "name_secret": b64d(c["name_secret"], "credential name secret", 32),
           "public": b64d(c["public_key"], "credential public key", 1216),
           "auth": b64d(c["auth_secret"], "credential auth secret", 32)}
    need(vol is None or out["volume_id"] == vol, "the credential names another volume")
    return out


def check_writer_kat(w, kr):
    """The vectors' writer: keyring entry, credential, epoch tag, object
    and its rotated form."""
    vol = kr["volume_id"]
    wkr = parse_keyring(base64.urlsafe_b64decode(w["keyring_with_writer"] + "=" * (-len(w["keyring_with_writer"]) % 4)), vol)
    wid = bytes.fromhex(w["id"])
    need(wid in wkr["writers"], "the writer is not in keyring_with_writer")
    wk = wkr["writers"][wid]
    need(wk["seed"].hex() == w["seed"] and wk["auth"].hex() == w["auth_secret"] and wk["scope"] == w["scope"],
         "keyring_with_writer holds other writer secrets")
    cred = parse_credential(w["credential"].encode(), vol)
    need(cred["wid"] == wid and cred["scope"] == w["scope"] and cred["auth"] == wk["auth"], "credential writer")
    need(cred["name_secret"] == kr["name_secret"], "the credential's name secret is not the keyring's")
    need(hashlib.sha256(cred["public"]).hexdigest() == w["public_key_sha256"], "credential public key")
    for secret in (kr["local_secret"], kr["config_secret"], kr.get("anchor_secret", b"-"), wk["seed"], *kr["keks"].values()):
        need(b64e(secret) not in w["credential"], "the credential holds a secret it must not")
    origin = bytes.fromhex(w["epoch"]["origin"])
    need(origin[:8] == wid and len(origin) == 24, "epoch origin")
    obj, e = bytes.fromhex(w["epoch"]["object_hex"]), bytes.fromhex(w["epoch"]["key"])
    check_epoch_tag(vol, origin, wk["auth"], obj, "vectors' epoch")
    need(wk["revoked"] and wk["epochs"].get(origin[8:]) == hashlib.sha256(obj).digest(),
         "the revoked writer does not keep its epoch with the epoch object's SHA-256")
    m = w["object"]
    fid, dek, _, rec = writer_object(vol, kr["keks"], origin, e, wk["scope"], m["metadata"], m["path"])
    need(fid.hex() == m["file_id"] and dek.hex() == m["dek"], "writer object key")
    need("coffer-kek" not in m["metadata"], "an unrotated writer object carries coffer-kek")
    body = open_body(fid, dek, bytes.fromhex(w["body_hex"]))
    need(body.hex() == w["plain"], "writer object body")
    rot = w["rotated_metadata"]
    need(rot["coffer-origin"] == m["metadata"]["coffer-origin"] and rot["coffer-kek"] == str(kr["current"]),
         "rotated writer object: origin or generation")
    f2, d2, _, rec2 = writer_object(vol, kr["keks"], origin, None, wk["scope"], rot, m["path"])
    need(f2 == fid and d2 == dek and rec2 == rec, "the rotated writer object opens to another key or record")
    derived = {"epoch_auth_key": hkdf(wk["auth"], "coffer epoch auth").hex(),
               "wdek_wrap_key": hkdf(e, "coffer writer dek wrap", salt=fid).hex()}
    for name, want in w["derived"].items():
        need(derived.get(name) == want, f"writer derived key {name}")
    return rec


# --- the known-answer vectors -------------------------------------------------

KNOWN_SECTIONS = {"note", "keyring", "file_id", "dek", "sym_key", "derived", "bodies", "metadata", "attr_path",
                  "records", "long_name", "link", "inode", "names", "local", "configs", "kms", "writer"}


def check_kat(v, passphrase):
    unknown = set(v) - KNOWN_SECTIONS
    need(not unknown, f"vectors.json has sections this decoder does not check: {sorted(unknown)}; teach it")
    sym = bytes.fromhex(v["sym_key"])
    body, kr, plain, opened = open_config(v["configs"]["client"].encode(),
                                          [Root("sym", sym), Root("passphrase", passphrase.encode())])
    need(plain == base64.urlsafe_b64decode(v["keyring"] + "=" * (-len(v["keyring"]) % 4)),
         "the config's keyring is not the vectors' keyring")
    need(body["sse"] == "sse-kms" and body["sse_kms_key_id"].startswith("arn:aws:kms:"), "config SSE")
    none, _, _, _ = open_config(v["configs"]["none"].encode(), [])
    need(none["encryption"] == "none" and none["sse"] == "sse-c", "none config modes")

    dek, fid = bytes.fromhex(v["dek"]), bytes.fromhex(v["file_id"])
    anchor_secret = kr.get("anchor_secret")
    derived = {
        "chunk_key": lambda: hkdf(dek, "chunk").hex(),
        "attr_key": lambda: hkdf(dek, "attr").hex(),
        "dek_wrap_key_2": lambda: hkdf(kr["keks"][2], "coffer dek wrap", salt=fid).hex(),
        "eme_key": lambda: hkdf(kr["name_secret"], "coffer name eme").hex(),
        "tweak_key": lambda: hkdf(kr["name_secret"], "coffer name tweak").hex(),
        "config_mac_key": lambda: hkdf(kr["config_secret"], "coffer config mac").hex(),
        "none_mac_key": lambda: NONE_MAC_KEY.hex(),
        "local_from_key": lambda: hkdf(sym, "coffer local secret from key").hex(),
        "sym_key_id": lambda: hkdf(sym, "coffer key id")[:8].hex(),
        "anchor": lambda: kr["anchor"].hex() if anchor_secret else None,
        "entry_auth_sym": lambda: hkdf(sym, "coffer entry auth").hex(),
    }
    for name, want in v["derived"].items():
        need(name in derived, f"derived key {name!r}: this decoder does not know it; teach it")
        need(derived[name]() == want, f"derived key {name}: {derived[name]()} here, {want} in the vectors")

    got_fid, _, got_dek, _, record, rec = open_record(kr, v["metadata"], path=v["attr_path"])
    need(got_fid == fid and got_dek == dek, "the metadata unwraps to another file ID or DEK")
    need(rec["kind"] == "attr", "the metadata's record is not attributes")
    records = v.get("records", {})
    if "attr" in records:
        need(record.hex() == records["attr"], "the decrypted attribute record differs from records.attr")
    bodies = []
    for b in v["bodies"]:
        if not b.get("body_hex"):
            continue  # stored as a hash only; the fresh objects cover multi-chunk bodies
        raw = bytes.fromhex(b["body_hex"])
        need(hashlib.sha256(raw).hexdigest() == b["body_sha256"], "body_hex does not match body_sha256")
        p = open_body(fid, dek, raw)
        need(len(p) == b["plain_size"], f"body of {b['plain_size']} bytes opens to {len(p)}")
        bodies.append({"plain_size": len(p), "plain_seed": b["plain_seed"], "plain_sha256": hashlib.sha256(p).hexdigest()})
    need(bodies, "no body in the vectors has its bytes")

    names = Names(kr["name_secret"])
    for n in v["names"]:
        need(names.encrypt(n["parent"], n["name"]) == (n["seg"], n.get("long", "")),
             f"name {n['name']!r} in {n['parent']!r} encrypts to another segment")
        need(names.decrypt(n["parent"], n["seg"], n.get("long", "")) == n["name"], f"segment {n['seg']!r}")

    loc = v["local"]
    need(open_local(bytes.fromhex(loc["secret"]), bytes.fromhex(loc["salt"]), loc["index"],
                    bytes.fromhex(loc["sealed"])).hex() == loc["plain"], "local block")
    need(bytes.fromhex(loc["secret"]) == kr["local_secret"], "the local block's secret is not the keyring's")

    if "long_name" in v:
        m = v["long_name"]
        parent, _, last = m["path"].rpartition("/")
        parent = parent or "/"
        seg, long = names.encrypt(parent, last)
        need(long and m["metadata"].get("coffer-name") == long, "long_name: coffer-name is not the long encoding")
        need(names.decrypt(parent, seg, long) == last, "long_name: the name does not decode")
        f2, _, d2, _, _, r2 = open_record(kr, m["metadata"], path=m["path"])
        need(f2.hex() == m["file_id"] and d2.hex() == m["dek"] and r2["kind"] == "attr", "long_name object")
    link = None
    if "link" in v:
        m = v["link"]
        f2, _, d2, _, plain2, link = open_record(kr, m["metadata"], path=m["path"])
        need(f2.hex() == m["file_id"] and d2.hex() == m["dek"], "link object key")
        need(link["kind"] == "link" and link["inode"] == m["inode_id"] and link["link"] == m["link_id"], "link record")
        if "link" in records:
            need(plain2.hex() == records["link"], "the decrypted link record differs from records.link")
    if "inode" in v:
        m = v["inode"]
        f2, _, d2, _, plain2, ino = open_record(kr, m["metadata"], inode=bytes.fromhex(m["inode_id"]))
        need(f2.hex() == m["file_id"] and d2.hex() == m["dek"], "inode object key")
        need(ino["links"] == m["links"], "inode link set")
        need(link is None or (link["inode"] == m["inode_id"] and link["link"] in ino["links"]),
             "the link does not lead to the inode")
        if "inode" in records:
            need(plain2.hex() == records["inode"], "the decrypted inode record differs from records.inode")
    k = v["kms"]
    kbody, kkr, kplain, kopened = open_config(k["config"].encode(), [Root("kms", bytes.fromhex(k["secret"]), k["entry_id"])])
    need(kopened == ["kms"] and kplain == plain, "the kms config opens another keyring")
    entry = kbody["keys"][0]
    need(b64d(entry["kms"]["ciphertext"], "KMS ciphertext").hex() == k["ciphertext"], "the kms entry's ciphertext")
    writer = check_writer_kat(v["writer"], kr)
    return {"opened_by": opened + kopened, "attr": rec, "bodies": bodies, "writer_attr": writer}


# --- objects sealed just now by the Go code ------------------------------------


def check_fresh(f):
    roots = [Root("sym", bytes.fromhex(f["sym_key"])), Root("passphrase", f["passphrase"].encode())]
    _, kr, plain, opened = open_config(f["config"].encode(), roots)
    names = Names(kr["name_secret"])
    objects = []
    for o in f["objects"]:
        fid, gen, dek, _, _, rec = open_record(kr, o["metadata"], path=o["path"])
        need(gen == kr["current"], "an object wrapped under another generation than the current one")
        need(rec["kind"] == "attr", f"{o['path']}: not an attribute record")
        p = open_body(fid, dek, bytes.fromhex(o["body"]))
        objects.append({"path": o["path"], "attr": rec, "size": len(p), "plain_sha256": hashlib.sha256(p).hexdigest()})
    decoded = []
    for n in f["names"]:
        name = names.decrypt(n["parent"], n["seg"], n["long"])
        need(names.encrypt(n["parent"], name) == (n["seg"], n["long"]), f"name {name!r} encrypts to another segment")
        decoded.append(name)
    loc = f["local"]
    local = open_local(kr["local_secret"], bytes.fromhex(loc["salt"]), loc["index"], bytes.fromhex(loc["sealed"]))
    none, _, _, _ = open_config(f["none_config"].encode(), [])
    writer = [{"path": o["path"], "attr": rec, "size": len(p), "plain_sha256": hashlib.sha256(p).hexdigest()}
              for o, rec, p in open_fresh_writer(kr, f["writer"], None)]
    return {"opened_by": opened, "keyring": b64e(plain), "objects": objects, "names": decoded, "local": local.hex(),
            "none": {"encryption": none["encryption"], "sse": none["sse"]}, "writer": writer}


def open_fresh_writer(kr, w, epoch_object, objects=None, epoch_key=None):
    """Opens the fresh writer session's objects (or the given ones) as a
    full-key reader would: the writer in the keyring, the epoch tag, the
    DEK under E, the scope. Yields (object, record, plaintext)."""
    cred = parse_credential(w["credential"].encode(), kr["volume_id"])
    need(cred["wid"] in kr["writers"], "the fresh writer is not in the keyring")
    wk = kr["writers"][cred["wid"]]
    need(cred["auth"] == wk["auth"] and cred["scope"] == wk["scope"] and not wk["revoked"], "fresh writer key")
    obj = bytes.fromhex(epoch_object or w["epoch_object"])
    for o in objects or w["objects"]:
        origin = b64d({k.lower(): v for k, v in o["metadata"].items()}.get("coffer-origin", ""), "coffer-origin", 24)
        need(origin[:8] == cred["wid"], "a writer object of another writer")
        check_epoch_tag(kr["volume_id"], origin, wk["auth"], obj, "fresh epoch")
        fid, dek, _, rec = writer_object(kr["volume_id"], kr["keks"], origin, bytes.fromhex(epoch_key or w["epoch_key"]), wk["scope"],
                                         o["metadata"], o["path"])
        yield o, rec, open_body(fid, dek, bytes.fromhex(o["body"]))


def check_tampered(f, cases):
    """Every case must be refused; returns why each was."""
    roots = [Root("sym", bytes.fromhex(f["sym_key"]))]
    out = []
    for c in cases:
        try:
            if c["kind"] == "config":
                open_config(c["config"].encode(), roots if c.get("client", True) else [])
            else:
                _, kr, _, _ = open_config(f["config"].encode(), roots)
                if c["kind"] == "object":
                    fid, _, dek, _, _, _ = open_record(kr, c["metadata"], path=c["path"])
                    open_body(fid, dek, bytes.fromhex(c["body"]))
                elif c["kind"] == "name":
                    Names(kr["name_secret"]).decrypt(c["parent"], c["seg"], c["long"])
                elif c["kind"] == "writer":
                    list(open_fresh_writer(kr, f["writer"], c.get("epoch_object"), [c], c.get("epoch_key")))
                else:
                    raise SystemExit(f"unknown tamper kind {c['kind']!r}")
        except Refused as e:
            out.append({"what": c["what"], "refused": str(e)})
            continue
        out.append({"what": c["what"], "refused": ""})
    return out


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1], "rb") as fh:
        inp = json.load(fh)
    with open(inp["kat"], "rb") as fh:
        vectors = json.load(fh)
    try:
        report = {"kat": check_kat(vectors, inp["kat_passphrase"]), "fresh": check_fresh(inp["fresh"]),
                  "tampered": check_tampered(inp["fresh"], inp["tampered"])}
    except Refused as e:
        print(f"independent decoder: {e}", file=sys.stderr)
        sys.exit(1)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
