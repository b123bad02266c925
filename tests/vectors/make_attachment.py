#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Generates tests/vectors/attachment.json: the attachment vectors of
docs/E2EE.md §4.3 (type 3, the pointer) and §4.5 (file encryption).

An independent implementation (Python: PyNaCl's secretstream bindings,
hashlib, cbor2), written from docs/E2EE.md, so chat-client's unit test
(tests/unit/test_attach.c) and the web client's node test
(examples/web/test/attach.test.ts) check themselves against bytes made
elsewhere:

- `files`: plaintexts encrypted under fixed keys (SHA-256("mosquitto-chat
  test vector: " + label)) — an empty file, a small text, and exactly two
  64 KiB chunks (the chunk that ends the file is the FINAL one; no empty
  chunk follows). Large plaintexts are given by a rule (`pattern`: byte i is
  (i * 7 + 3) mod 251) and their SHA-256, ciphertexts in base64.
  secretstream draws its 24-byte header at random (libsodium has no way to
  fix it), so each run writes other ciphertext: every one decrypts the same.
- `tampered`: a file vector's ciphertext cut and put together again
  (`ranges` [offset, length] in order, then `flip` one byte's lowest bit,
  then `append` hex): only the header, a byte flipped, bytes appended,
  chunks swapped, the final or the first chunk dropped — each must fail.
- `pointers`: fields and the exact plaintext bytes (0x03 || canonical CBOR,
  keys length-first as RFC 7049 §3.9).

    /usr/bin/python3 tests/vectors/make_attachment.py > tests/vectors/attachment.json
"""

import base64
import hashlib
import json
import sys

import cbor2
from nacl import bindings as nb

CHUNK = 65536
HEADER = nb.crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES = nb.crypto_secretstream_xchacha20poly1305_ABYTES
TAG_MESSAGE = nb.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = nb.crypto_secretstream_xchacha20poly1305_TAG_FINAL
PT_ATTACHMENT = 3


def fixed(label):
    return hashlib.sha256(b"mosquitto-chat test vector: " + label.encode()).digest()


def pattern(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


def chunks(pt):
    """The plaintext chunks: 64 KiB each, the last may be short; one empty for an empty file."""
    if not pt:
        return [b""]
    return [pt[i:i + CHUNK] for i in range(0, len(pt), CHUNK)]


def encrypt(key, pt):
    st = nb.crypto_secretstream_xchacha20poly1305_state()
    header = nb.crypto_secretstream_xchacha20poly1305_init_push(st, key)
    parts = chunks(pt)
    out = [header]
    for i, c in enumerate(parts):
        tag = TAG_FINAL if i == len(parts) - 1 else TAG_MESSAGE
        out.append(nb.crypto_secretstream_xchacha20poly1305_push(st, c, None, tag))
    return out


def cipher_size(n):
    return HEADER + max(1, -(-n // CHUNK)) * ABYTES + n


def file_vector(label, pt, inline):
    key = fixed(label)
    parts = encrypt(key, pt)
    ct = b"".join(parts)
    assert len(ct) == cipher_size(len(pt))
    v = {"label": label, "key": key.hex(), "plain_size": len(pt), "size": len(ct),
         "digest": hashlib.sha256(ct).hexdigest()}
    if inline:
        v["plaintext"] = pt.hex()
        v["ciphertext"] = ct.hex()
    else:
        v["pattern"] = True
        v["plain_sha256"] = hashlib.sha256(pt).hexdigest()
        v["ciphertext_b64"] = base64.b64encode(ct).decode()
    return v, parts


def pointer(fields):
    return bytes([PT_ATTACHMENT]) + cbor2.dumps(fields, canonical=True)


def hexfields(d):
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in d.items()}


def main():
    small_pt = b"mosquitto-chat attachment vector: a small text file.\n" * 4
    empty, _ = file_vector("attachment empty", b"", True)
    small, small_parts = file_vector("attachment small", small_pt, True)
    two, two_parts = file_vector("attachment two chunks", pattern(2 * CHUNK), False)
    # ranges of a file vector's ciphertext, put together in this order:
    # segment 0 is the header, segment i the i-th chunk
    def seg(parts, i):
        off = sum(len(p) for p in parts[:i])
        return [off, len(parts[i])]

    tampered = [
        {"what": "only the header", "file": 1, "ranges": [seg(small_parts, 0)]},
        {"what": "a byte flipped", "file": 1, "ranges": [[0, small["size"]]], "flip": 40},
        {"what": "bytes after the final chunk", "file": 1, "ranges": [[0, small["size"]]],
         "append": "0000000000"},
        {"what": "chunks reordered", "file": 2,
         "ranges": [seg(two_parts, 0), seg(two_parts, 2), seg(two_parts, 1)]},
        {"what": "the final chunk dropped", "file": 2, "ranges": [seg(two_parts, 0), seg(two_parts, 1)]},
        {"what": "the first chunk dropped", "file": 2, "ranges": [seg(two_parts, 0), seg(two_parts, 2)]},
    ]
    full = {
        "id": "b7Qx-3_kz0Jm9aVbN2rT1w",
        "key": fixed("attachment small"),
        "digest": bytes.fromhex(small["digest"]),
        "size": small["size"],
        "type": "audio/ogg",
        "name": "voice note.ogg",
        "duration_ms": 4250,
        "thumb": bytes(range(16)),
        "caption": "listen to this ✓",
    }
    minimal = {k: full[k] for k in ("id", "key", "digest", "size", "type")}
    doc = {
        "about": "mosquitto-chat attachment vectors (docs/E2EE.md §4.3, §4.5). Hex unless named _b64. "
                 "Generated by tests/vectors/make_attachment.py.",
        "chunk": CHUNK,
        "header": HEADER,
        "abytes": ABYTES,
        "files": [empty, small, two],
        "tampered": tampered,
        "pointers": [
            {"fields": hexfields(full), "plaintext": pointer(full).hex()},
            {"fields": hexfields(minimal), "plaintext": pointer(minimal).hex()},
        ],
        "bad_pointers": [
            {"what": "not type 3", "plaintext": (bytes([1]) + cbor2.dumps(minimal, canonical=True)).hex()},
            {"what": "key of 31 bytes", "plaintext": pointer(dict(minimal, key=b"k" * 31)).hex()},
            {"what": "no digest", "plaintext": pointer({k: v for k, v in minimal.items() if k != "digest"}).hex()},
            {"what": "id with a slash", "plaintext": pointer(dict(minimal, id="../etc")).hex()},
            {"what": "thumb over 8 KB", "plaintext": pointer(dict(minimal, thumb=b"\xff" * 8193)).hex()},
            {"what": "size as text", "plaintext": pointer(dict(minimal, size="300")).hex()},
            {"what": "not a map", "plaintext": (bytes([3]) + cbor2.dumps([1, 2])).hex()},
            {"what": "trailing bytes", "plaintext": (pointer(minimal) + b"\0").hex()},
        ],
    }
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
