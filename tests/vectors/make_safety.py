#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Generates tests/vectors/safety.json: the safety-number vectors of
docs/E2EE.md §8.

An independent implementation of the construction (Python, hashlib and
PyNaCl for the Ed25519 public keys), written from docs/E2EE.md §8, so that
chat-client's unit test (tests/unit/test_safety.c) and the web client's node
test (examples/web/test/safety.test.ts) check the same bytes. Identity keys
come from fixed seeds, SHA-256("mosquitto-chat test vector: " + label).

    /usr/bin/python3 tests/vectors/make_safety.py > tests/vectors/safety.json
"""

import hashlib
import json
import struct
import sys

from nacl import bindings as nb

VERSION = 1
ITERATIONS = 5200


def ik(label):
    seed = hashlib.sha256(b"mosquitto-chat test vector: " + label.encode()).digest()
    pk, _sk = nb.crypto_sign_seed_keypair(seed)
    return pk


def keyset(devices):
    """devices: {device id: 32-byte Ed25519 public key}."""
    out = b""
    for d in sorted(devices, key=lambda s: s.encode()):
        out += bytes([len(d.encode())]) + d.encode() + devices[d]
    return out


def user_hash(user, devices):
    ks = keyset(devices)
    h = struct.pack(">H", VERSION) + ks + bytes([len(user.encode())]) + user.encode()
    for _ in range(ITERATIONS):
        h = hashlib.sha512(h + ks).digest()
    return h


def digits(h):
    return "".join("%05d" % (int.from_bytes(h[i:i + 5], "big") % 100000) for i in range(0, 30, 5))


def safety(a, da, b, db):
    ha, hb = user_hash(a, da), user_hash(b, db)
    sides = sorted([(digits(ha), ha[:32]), (digits(hb), hb[:32])])
    number = sides[0][0] + sides[1][0]
    qr = bytes([VERSION]) + sides[0][1] + sides[1][1]
    return ha, hb, number, qr


def case(name, a, da, b, db):
    ha, hb, number, qr = safety(a, da, b, db)
    users = []
    for u, d, h in ((a, da, ha), (b, db, hb)):
        users.append({
            "user": u,
            "devices": [{"device": k, "ik": v.hex()} for k, v in d.items()],
            "keyset": keyset(d).hex(),
            "digits": digits(h),
            "fingerprint": h[:32].hex(),
        })
    return {"name": name, "users": users, "number": number, "qr": qr.hex()}


def main():
    phone, tab = ik("safety alice/phone"), ik("safety alice/tab")
    laptop, laptop2, btab = ik("safety bob/laptop"), ik("safety bob/laptop new"), ik("safety bob/tab")
    cases = [
        case("one device each", "alice", {"phone": phone}, "bob", {"laptop": laptop}),
        # listed unsorted on purpose: the key set is sorted by device id
        case("alice has two devices", "alice", {"tab": tab, "phone": phone}, "bob", {"laptop": laptop}),
        case("bob's laptop has a new key", "alice", {"phone": phone, "tab": tab},
             "bob", {"laptop": laptop2}),
        case("bob added a device", "alice", {"phone": phone, "tab": tab},
             "bob", {"laptop": laptop, "tab": btab}),
        # same keys under other names: the user and device ids count
        case("other user names", "carol", {"phone": phone}, "dave", {"laptop": laptop}),
    ]
    out = {
        "version": VERSION,
        "iterations": ITERATIONS,
        "cases": cases,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
