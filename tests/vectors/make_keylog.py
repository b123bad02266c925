#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Generates tests/vectors/keylog.json: the key directory log's vectors.

A second implementation of the Merkle tree of RFC 9162 §2.1 (MTH, PATH,
PROOF/SUBPROOF written from the RFC's recursive definitions with hashlib)
and of the leaf and head formats of docs/KEYSERVER.md ("Key directory
log"), independent of common/keylog.c. tests/unit/test_keylog.c checks the
C code against it. Two parts:

- "ct": the eight leaves of RFC 6962's reference tests (the Certificate
  Transparency test data), whose roots for sizes 1..8 are published there
  ("known_roots" below); this script asserts it agrees before writing;
- "log": leaves in our CBOR format, roots of every size, inclusion proofs
  for every (index, size) and consistency proofs for every (m, n) of a
  13-leaf log, and a signed head under a fixed Ed25519 seed.

    /usr/bin/python3 tests/vectors/make_keylog.py > tests/vectors/keylog.json
"""

import hashlib
import json
import struct
import sys

import cbor2
from nacl import bindings as nb


def h(b):
    return hashlib.sha256(b).digest()


def leaf_hash(leaf):
    return h(b"\x00" + leaf)


def node(l, r):
    return h(b"\x01" + l + r)


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return h(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = split(n)
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    n = len(leaves)
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = split(n)
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def proof(m, leaves):
    return subproof(m, leaves, True) if 0 < m < len(leaves) else []


def leaf_cbor(ik, ts, user, device):
    # deterministic encoding: keys in length-then-bytes order, shortest heads
    return cbor2.dumps({"ik": ik, "ts": ts, "user": user, "device": device}, canonical=True)


CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]
KNOWN_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def main():
    ct = [bytes.fromhex(x) for x in CT_LEAVES]
    for n in range(1, 9):
        assert mth(ct[:n]).hex() == KNOWN_ROOTS[n - 1], "RFC 6962 root of size %d" % n
    out = {"ct": {"leaves": CT_LEAVES, "known_roots": KNOWN_ROOTS}}

    entries, leaves = [], []
    for i in range(13):
        ik = h(b"ik %d" % i)
        ts = 1700000000000 + 1000 * i if i != 5 else 23  # one short ts
        user, device = "user%d" % (i % 4), "d%d" % (i // 4) if i != 7 else "x" * 32
        entries.append({"ik": ik.hex(), "ts": ts, "user": user, "device": device})
        leaves.append(leaf_cbor(ik, ts, user, device))
    n = len(leaves)
    log = {"entries": entries, "leaf_cbor": [l.hex() for l in leaves],
           "roots": [mth(leaves[:s]).hex() for s in range(0, n + 1)],
           "inclusion": [], "consistency": []}
    for size in range(1, n + 1):
        for idx in range(size):
            log["inclusion"].append({"index": idx, "size": size,
                                     "proof": [p.hex() for p in path(idx, leaves[:size])]})
    for m in range(0, n + 1):
        for s in range(m, n + 1):
            log["consistency"].append({"from": m, "to": s,
                                       "proof": [p.hex() for p in proof(m, leaves[:s])]})
    pk, sk = nb.crypto_sign_seed_keypair(h(b"keylog vector seed"))
    ts = 1700000012345
    msg = b"mosquitto-chat keylog v1\0" + struct.pack(">QQ", n, ts) + mth(leaves)
    log["head"] = {"seed": h(b"keylog vector seed").hex(), "pub": pk.hex(), "size": n,
                   "ts": ts, "root": mth(leaves).hex(),
                   "sig": nb.crypto_sign(msg, sk)[:64].hex()}
    out["log"] = log
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
