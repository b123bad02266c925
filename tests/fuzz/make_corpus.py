#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<what>/.

Each seed is a real payload of the wire contract (docs/PROTOCOL.md,
docs/KEYSERVER.md) or a near miss of one, named after what it is. Also
writes tests/fuzz/chat.dict, the CBOR-encoded keys and values of the
contract as a libFuzzer dictionary. Deterministic: running it again gives
the same files (keys are derived from fixed seeds), so the generated files
are committed and this script is only rerun when the contract changes.

Run with Debian's python (cbor2, nacl): /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import hashlib
import json
import os
import shutil
import struct
import sys

import cbor2
from nacl.signing import SigningKey

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
D = cbor2.dumps


def indef_map(pairs):
    """An indefinite-length map, as some client libraries emit."""
    return b"\xbf" + b"".join(D(k) + D(v) for k, v in pairs) + b"\xff"


# ---- plugin payloads ----

SENDS = {
    "body_bytes_cid": {"cid": b"\x01\x02\x03\x04", "body": b"hello"},
    "body_uint_cid": {"cid": 7, "body": b"hi"},
    "body_type_ttl": {"cid": b"m-1", "body": b"x" * 40, "type": 3, "ttl": 3600},
    "bodies_exact": {"cid": 8, "bodies": {"bob/phone": b"for phone", "bob/tablet": b"for tablet",
                                          "alice/laptop": b"for laptop"}},
    "bodies_missing": {"cid": 9, "bodies": {"bob/phone": b"only one"}},
    "bodies_extra": {"cid": 10, "bodies": {"bob/phone": b"a", "bob/tablet": b"b",
                                           "alice/laptop": b"c", "mallory/x": b"d"}},
    "both_body_bodies": {"cid": 11, "body": b"a", "bodies": {"bob/phone": b"b"}},
    "no_cid": {"body": b"hello"},
    "cid_too_long": {"cid": b"x" * 17, "body": b"a"},
    "unknown_keys": {"cid": 12, "body": b"a", "reply_to": 3, "meta": {"a": [1, 2, None]}},
    "cid_seeded_dup": {"cid": 1, "body": b"seed 1"},
}

RECEIPTS = {
    "delivered": {"s": "delivered", "conv": "dm:alice:bob", "seqs": [1, 2, 3]},
    "read": {"s": "read", "conv": "dm:alice:bob", "seqs": [1, 3, 5]},
    "read_repeat": {"s": "read", "conv": "dm:alice:bob", "seqs": [5, 5, 6, 1]},
    "unknown_seq": {"s": "delivered", "conv": "dm:alice:bob", "seqs": [99, 2**64 - 1]},
    "not_member": {"s": "read", "conv": "dm:bob:carol", "seqs": [1]},
    "group_conv": {"s": "read", "conv": "g:team", "seqs": [1]},
    "bad_state": {"s": "seen", "conv": "dm:alice:bob", "seqs": [1]},
    "zero_seq": {"s": "delivered", "conv": "dm:alice:bob", "seqs": [0]},
    "empty_seqs": {"s": "delivered", "conv": "dm:alice:bob", "seqs": []},
}

CTLS = {
    "privacy_off": {"op": "privacy", "rid": 1, "read_receipts": False},
    "privacy_presence": {"op": "privacy", "rid": 2, "presence": "contacts"},
    "privacy_both": {"op": "privacy", "rid": 3, "read_receipts": True, "presence": "nobody"},
    "privacy_bad": {"op": "privacy", "rid": 4, "presence": "all"},
    "devices": {"op": "devices", "rid": 5, "user": "bob"},
    "devices_unknown": {"op": "devices", "rid": 6, "user": "zed"},
    "devices_bad_user": {"op": "devices", "rid": 7, "user": "b/o"},
    "group": {"op": "group.create", "rid": 8, "name": "team"},
    "unknown_op": {"op": "reboot", "rid": 9},
    "no_rid": {"op": "devices", "user": "bob"},
    "caps": {"op": "caps", "rid": 10, "caps": ["sents", "rcpts", "batch", "later"]},
    "caps_none": {"op": "caps", "rid": 11, "caps": []},
    "caps_bad": {"op": "caps", "rid": 12, "caps": ["sents", 7]},
}

ADMINS = {
    "device_add": {"cmd": "device.add", "rid": 1, "user": "dave", "device": "phone"},
    "device_add_exists": {"cmd": "device.add", "rid": 2, "user": "alice", "device": "phone"},
    "device_remove": {"cmd": "device.remove", "rid": 3, "user": "bob", "device": "tablet"},
    "user_remove": {"cmd": "user.remove", "rid": 4, "user": "carol"},
    "service_add": {"cmd": "service.add", "rid": 5, "name": "keys"},
    "stats": {"cmd": "stats", "rid": 6},
    "group_create": {"cmd": "group.create", "rid": 7, "name": "team"},
    "unknown": {"cmd": "format.disk"},
    "bad_user": {"cmd": "device.add", "user": "a" * 65, "device": "x"},
    "no_cmd": {"rid": 8, "user": "alice"},
    # the operator's admin surface (docs/PROTOCOL.md §8): listings with
    # their cursor and limit, rotations, service roles, group operator commands
    "device_list": {"cmd": "device.list", "rid": 9},
    "device_list_user": {"cmd": "device.list", "rid": 10, "user": "alice", "limit": 1,
                         "after": "alice/laptop"},
    "device_list_after": {"cmd": "device.list", "rid": 11, "after": "alice/phone", "limit": 2},
    "device_list_bad": {"cmd": "device.list", "rid": 12, "after": "alice", "limit": 1001},
    "device_rotate": {"cmd": "device.rotate", "rid": 13, "user": "alice", "device": "phone"},
    "device_rotate_missing": {"cmd": "device.rotate", "rid": 14, "user": "zed", "device": "x"},
    "user_list": {"cmd": "user.list", "rid": 15, "after": "alice", "limit": 1},
    "user_list_zero": {"cmd": "user.list", "rid": 16, "limit": 0},
    "service_add_provisioner": {"cmd": "service.add", "rid": 17, "name": "app",
                                "role": "provisioner"},
    "service_add_bad_role": {"cmd": "service.add", "rid": 18, "name": "app2", "role": "root"},
    "service_list": {"cmd": "service.list", "rid": 19, "after": "a", "limit": 5},
    "service_remove": {"cmd": "service.remove", "rid": 20, "name": "keys"},
    "service_rotate": {"cmd": "service.rotate", "rid": 21, "name": "keys"},
    "group_create_team": {"cmd": "group.create", "rid": 22, "gid": "team", "owner": "alice",
                          "members": ["bob"]},
    "group_list": {"cmd": "group.list", "rid": 23, "after": "t", "limit": 3},
    "group_show": {"cmd": "group.show", "rid": 24, "gid": "team"},
    "group_add": {"cmd": "group.add", "rid": 25, "gid": "team", "members": ["carol", "bob"]},
    "group_remove": {"cmd": "group.remove", "rid": 26, "gid": "team", "members": ["alice"]},
    "group_promote": {"cmd": "group.promote", "rid": 27, "gid": "team", "user": "bob"},
    "group_delete": {"cmd": "group.delete", "rid": 28, "gid": "team"},
}

TYPINGS = {
    "on": {"on": True}, "off": {"on": False}, "not_bool": {"on": 1}, "empty": {},
    "extra": {"on": True, "conv": "dm:alice:bob"},
}

TOPICS = [
    "chat/dm/bob", "chat/dm/", "chat/dm/a/b", "chat/group/team", "chat/receipt", "chat/sync",
    "chat/ctl", "chat/typing/dm:alice:bob", "chat/inbox/alice/phone", "chat/inbox/bob/phone",
    "chat/inbox/+/+", "chat/inbox/#", "chat/presence/alice", "chat/presence/alice/phone",
    "chat/keys/req/alice/phone", "chat/keys/resp/alice/phone", "chat/keys/status/alice/phone",
    "chat/keys/req/+/+", "$share/keyserver/chat/keys/req/+/+", "$share/x/chat/inbox/#",
    "chat/media/req/alice/phone", "chat/media/resp/alice/phone", "chat/media/req/+/+",
    "$share/media/chat/media/req/+/+", "chat/media/resp/bob/phone", "chat/push/stats",
    "$CONTROL/chat/v1", "$CONTROL/chat/v1/response", "$CONTROL/chat/other", "$CONTROL/#",
    "#", "+/inbox/#", "chat/#", "chat/+/+/+", "chat", "chatter/x", "sensors/room1/temp",
    "$SYS/broker/uptime", "x/chat/inbox/alice/phone", "x/chat/#", "x/+/dm/bob",
]

IDS = [
    "alice", "alice/phone", "a" * 64 + "/" + "d" * 32, "a" * 65 + "/d", "alice/", "/phone",
    "alice/phone/x", "dm:alice:bob", "dm:bob:alice", "dm:alice:alice", "dm:a:b:c", "g:team",
    "g:", "g:a+b", "al.ice_-9/ph-1", "dm:" + "z" * 64 + ":" + "zz" * 32,
]

# ---- key server ----

def key_requests():
    sk = SigningKey(hashlib.sha256(b"fuzz-alice-phone-ik").digest())
    ik = bytes(sk.verify_key)
    spk_key = hashlib.sha256(b"fuzz-spk").digest()
    spk = {"id": 1, "key": spk_key, "sig": sk.sign(spk_key).signature}
    opks = [{"id": i, "key": hashlib.sha256(b"opk%d" % i).digest()} for i in range(1, 6)]
    bad_sig = dict(spk, sig=b"\x00" * 64)
    return {
        "upload": {"rid": 1, "op": "upload", "ik": ik, "spk": spk, "opks": opks},
        "upload_no_opks": {"rid": 2, "op": "upload", "ik": ik, "spk": spk},
        "upload_bad_sig": {"rid": 3, "op": "upload", "ik": ik, "spk": bad_sig, "opks": opks[:1]},
        "upload_dup_ids": {"rid": 4, "op": "upload", "ik": ik, "spk": spk, "opks": opks[:1] * 2},
        "upload_short_key": {"rid": 5, "op": "upload", "ik": ik[:31], "spk": spk},
        "bundle_bob": {"rid": 6, "op": "bundle", "user": "bob"},
        "bundle_self": {"rid": 7, "op": "bundle", "user": "alice"},
        "bundle_unknown": {"rid": 8, "op": "bundle", "user": "nobody"},
        "bundle_bad_user": {"rid": 9, "op": "bundle", "user": "b o b"},
        "count": {"rid": 10, "op": "count"},
        "check": {"rid": 11, "op": "check",
                  "digest": hashlib.sha256(ik + spk_key).digest()},
        "check_short": {"rid": 12, "op": "check", "digest": b"\x01" * 31},
        "no_rid": {"op": "count"},
        "unknown_op": {"rid": 13, "op": "revoke"},
        # the key directory log (docs/KEYSERVER.md)
        "bundle_since": {"rid": 14, "op": "bundle", "user": "bob", "since": 1},
        "head": {"rid": 15, "op": "head"},
        "consistency": {"rid": 16, "op": "consistency", "from": 1, "to": 2},
        "consistency_bad": {"rid": 17, "op": "consistency", "from": 3, "to": 1},
        "history": {"rid": 18, "op": "history", "user": "bob", "device": "phone", "since": 1},
        "log": {"rid": 19, "op": "log", "from": 0, "count": 5},
    }


def xmpp_streams():
    """Seeds of fuzz_xmpp: what chatbench's xmpp mode reads from ejabberd (a
    stream header and features, bind/SM/SASL answers, a message with its
    receipt request, an ack and a receipt, errors, a cut-off element)."""
    return {
        'ack_receipt': b'<a xmlns=\'urn:xmpp:sm:3\' h=\'42\'/><message from="r0@localhost/d" to=\'s0@localhost/d\' id=\'r7\'><received xmlns=\'urn:xmpp:receipts\' id=\'7\'/></message>   ',
        'bind': b"<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>s0@localhost/d</jid></bind></iq><enabled xmlns='urn:xmpp:sm:3' max='300'/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        'errors': b"<iq type='error' id='reg'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
        'features': b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1' from='localhost' version='1.0' xml:lang='en'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms><register xmlns='http://jabber.org/features/iq-register'/></stream:features>",
        'message': b"<message to='r0@localhost' from='s0@localhost/d' id='7' type='chat' xmlns='jabber:client'><body>00000000075bcd1500000000000000076789abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij</body><request xmlns='urn:xmpp:receipts'/></message><r xmlns='urn:xmpp:sm:3'/>",
        'partial': b"<message type='error' id='3'><body>x</body><error type='cancel'><text>a > b &amp; 'c'</text></error></message><a h='",
    }


def keylog_answers():
    """Seeds of fuzz_keylog: key server answers carrying log data (heads,
    proofs, log references), made with tests/vectors/keylog.json's tree."""
    with open(os.path.join(HERE, "..", "vectors", "keylog.json")) as f:
        v = json.load(f)["log"]
    hd = v["head"]
    head = {"size": hd["size"], "root": bytes.fromhex(hd["root"]), "ts": hd["ts"],
            "sig": bytes.fromhex(hd["sig"])}
    inc = [x for x in v["inclusion"] if x["size"] == hd["size"]]
    cons = [x for x in v["consistency"] if x["to"] == hd["size"] and x["from"] > 0]
    ent = v["entries"]
    def ref(i):
        return {"index": i, "ts": ent[i]["ts"], "proof": [bytes.fromhex(p) for p in inc[i]["proof"]]}
    return {
        "bundle": D({"rid": 1, "ok": True, "head": head,
                     "consistency": [bytes.fromhex(p) for p in cons[4]["proof"]],
                     "devices": [{"device": ent[3]["device"], "ik": bytes.fromhex(ent[3]["ik"]),
                                  "log": ref(3)}]}),
        "history": D({"rid": 2, "ok": True, "head": head,
                      "entries": [dict(ref(i), ik=bytes.fromhex(ent[i]["ik"])) for i in (0, 4)]}),
        "head_short_root": D({"head": dict(head, root=b"\x01" * 31)}),
        "proof_too_long": D({"consistency": [b"\x00" * 32] * 70}),
    }

# ---- store records (tests/fuzz/fuzz_store_record.c: u8 kind, bytes) ----

K = {n: i for i, n in enumerate(
    "MSG REFS RCPTS QUEUE QMETA DEDUP CONVS DEVICE SERVICE PREFS RSTATE ADMIN "
    "QUEUE_KEY EXPIRY_KEY RCPTS_KEY RSTATE_KEY DEVICE_KEY SERVICE_KEY CAPS CAPS_KEY".split())}


def be64(v):
    return struct.pack(">Q", v)


def msgkey(conv, seq):
    return conv.encode() + b"\0" + be64(seq)


def msg_record(flags=0x02, cid=be64(7), frm=b"alice/phone", body=b"hi", ts=900, exp=1000, typ=0):
    return (bytes([1, flags]) + be64(ts) + be64(exp) + be64(typ) + bytes([len(cid)]) + cid +
            bytes([len(frm)]) + frm + b"\0" + struct.pack(">I", len(body)) + body)


def store_records():
    mk = msgkey("dm:alice:bob", 1)
    cred = b"\x01" + b"\xab" * 32 + be64(900)
    r = {
        "msg_body": (K["MSG"], msg_record()),
        "msg_bytes_cid_type": (K["MSG"], msg_record(flags=0x01, cid=b"abc", typ=5)),
        "msg_bodies": (K["MSG"], msg_record(flags=0x06, body=D({"bob/tablet": b"x"}))),
        "msg_nobody": (K["MSG"], msg_record(flags=0x0a, body=b"")),
        "msg_truncated": (K["MSG"], msg_record()[:30]),
        "msg_long_len": (K["MSG"], msg_record()[:-2] + b"\xff\xff"),
        "refs": (K["REFS"], be64(2)),
        "rcpts": (K["RCPTS"], be64(1)),
        "rcpts_sole": (K["RCPTS"], be64(1) + b"S"),
        "rcpts_bad_tail": (K["RCPTS"], be64(1) + b"X"),
        "queue_msg": (K["QUEUE"], b"M" + mk),
        "queue_event": (K["QUEUE"], b"E" + D({"k": "receipt", "conv": "dm:alice:bob", "seqs": [1],
                                                "s": "read", "by": "bob", "ts": 5})),
        "queue_dangling": (K["QUEUE"], b"M" + msgkey("dm:alice:bob", 77)),
        "qmeta": (K["QMETA"], be64(9) + be64(3)),
        "dedup": (K["DEDUP"], mk + be64(1000)),
        "convs": (K["CONVS"], be64(41)),
        "device": (K["DEVICE"], cred),
        "service": (K["SERVICE"], cred),
        "prefs": (K["PREFS"], b"\x01\x00\x02"),
        "rstate": (K["RSTATE"], b"\x02"),
        "admin": (K["ADMIN"], b"\xcd" * 32),
        "caps": (K["CAPS"], b"\x01\x00\x00\x00\x07"),
        "caps_short": (K["CAPS"], b"\x01\x05"),
        "caps_key": (K["CAPS_KEY"], b"carol\0phone"),
        "queue_key": (K["QUEUE_KEY"], be64(2)),
        "expiry_key": (K["EXPIRY_KEY"], be64(10) + b"\0" + msgkey("dm:alice:bob", 1)),
        "expiry_key_short": (K["EXPIRY_KEY"], be64(10)),
        "rcpts_key": (K["RCPTS_KEY"], b"bob/phone"),
        "rstate_key": (K["RSTATE_KEY"], b"carol"),
        "device_key": (K["DEVICE_KEY"], b"dave\0phone"),
        "service_key": (K["SERVICE_KEY"], b"keys2"),
    }
    return {name: bytes([k]) + v for name, (k, v) in r.items()}

# ---- sync scripts (tests/fuzz/fuzz_sync.c) ----

(SEND_RAW, SEND, RCPT_RAW, RCPT, SYNC, TICK, DISCONNECT, CONNECT, CTL_RAW, PRIVACY, CAPS,
 SYNC_RAW) = range(12)
ALICE_PHONE, ALICE_LAPTOP, BOB_PHONE, BOB_TABLET, CAROL_PHONE = range(5)
P_ALICE, P_BOB, P_CAROL = range(3)


def sync_scripts():
    send = D({"cid": 77, "body": b"raw"})
    return {
        # bob/tablet comes online and replays what was queued for it
        "tablet_replay": bytes([CONNECT, BOB_TABLET, SYNC, BOB_TABLET,
                                RCPT, BOB_TABLET, 0, 1, 5, TICK, 1]),
        # a send while the peer replays goes behind its backlog
        "send_during_replay": bytes([CONNECT, BOB_TABLET, SYNC, BOB_TABLET,
                                     SEND, ALICE_PHONE, P_BOB, 40, 0, 3]) + b"abc" +
                              bytes([RCPT, BOB_TABLET, 0, 1, 6, TICK, 1]),
        # a short ttl, an offline recipient, then the sweep
        "expiry": bytes([SEND, ALICE_PHONE, P_BOB, 41, 2, 2]) + b"zz" +
                  bytes([TICK, 5, TICK, 250]),
        # read receipts off, then reads over delivered and new seqs
        "privacy_reads": bytes([PRIVACY, BOB_PHONE, 0, RCPT, ALICE_PHONE, 0, 3, 0,
                                RCPT, ALICE_PHONE, 1, 1, 5]),
        "reconnect_storm": bytes([DISCONNECT, ALICE_PHONE, CONNECT, ALICE_PHONE, SYNC, ALICE_PHONE,
                                  DISCONNECT, ALICE_PHONE, CONNECT, ALICE_PHONE, SYNC, ALICE_PHONE]),
        # protocol v2: gathered sents with a delivery merged, coalesced
        # receipts, a sync that declares caps, then the window's end
        "v2_gathered": bytes([CAPS, ALICE_PHONE, 3, CAPS, BOB_PHONE, 2,
                              SEND, ALICE_PHONE, P_BOB, 42, 0, 1]) + b"a" +
                       bytes([SEND, ALICE_PHONE, P_BOB, 43, 0, 1]) + b"b" +
                       bytes([RCPT, BOB_PHONE, 0, 1, 2, SEND, BOB_PHONE, P_ALICE, 44, 0, 0,
                              RCPT, ALICE_PHONE, 1, 1, 3,
                              SYNC_RAW, ALICE_LAPTOP, len(D({"caps": ["rcpts"]}))]) +
                       D({"caps": ["rcpts"]}) +
                       bytes([RCPT, BOB_TABLET, 0, 1, 2, TICK, 0, TICK, 1, DISCONNECT, ALICE_PHONE]),
        "raw_ops": bytes([SEND_RAW, CAROL_PHONE, P_ALICE, len(send)]) + send +
                   bytes([CTL_RAW, BOB_PHONE, len(D(CTLS["devices"]))]) + D(CTLS["devices"]) +
                   bytes([RCPT_RAW, ALICE_LAPTOP, len(D(RECEIPTS["read"]))]) + D(RECEIPTS["read"]),
    }


# ---- group scripts (tests/fuzz/fuzz_group.c) ----

(G_CREATE, G_ADD, G_REMOVE, G_LEAVE, G_ADMIN, G_INFO, G_CTL_RAW, G_SEND, G_BODIES, G_SEND_RAW,
 G_RCPT, G_SYNC, G_CONNECT, G_DISCONNECT, G_TICK, G_DAVE) = range(16)
M_ALICE, M_BOB, M_CAROL, M_DAVE, M_NOBODY, M_INVALID, M_DUP, M_TEXT = (1 << i for i in range(8))
U_ALICE, U_BOB, U_CAROL, U_DAVE = range(4)
G0, G1 = range(2)


def group_scripts():
    def create(dev, g, mask, name=b""):
        return bytes([G_CREATE, dev, g, mask, len(name)]) + name

    def send(dev, g, cid, body=b"hi", flags=0):
        return bytes([G_SEND, dev, g, cid, flags, len(body)]) + body

    def raw(op, *args, payload):
        return bytes([op, *args, len(payload)]) + payload

    return {
        # a send, a send with bodies, the admin leaves (bob is promoted), then
        # alice's devices are no longer members
        "create_send_leave": create(ALICE_PHONE, G0, M_BOB | M_CAROL, b"team") +
            send(BOB_PHONE, G0, 1) + bytes([G_BODIES, ALICE_LAPTOP, G0, 2, 0]) +
            bytes([G_LEAVE, ALICE_PHONE, G0]) + send(ALICE_PHONE, G0, 3) +
            bytes([G_INFO, CAROL_PHONE, G0]),
        # a removed member's send is refused; its receipts may still clear its queue
        "remove_then_send": create(ALICE_PHONE, G0, M_BOB | M_CAROL) + send(CAROL_PHONE, G0, 1) +
            bytes([G_REMOVE, ALICE_PHONE, G0, M_CAROL]) + send(CAROL_PHONE, G0, 2) +
            bytes([G_RCPT, CAROL_PHONE, G0, 0, 1, 3, G_CONNECT, BOB_TABLET, G_SYNC, BOB_TABLET]),
        # the last member leaves: the group goes, its id is taken again
        "delete_recreate": create(BOB_PHONE, G1, 0) + send(BOB_PHONE, G1, 1) +
            bytes([G_LEAVE, BOB_PHONE, G1]) + create(CAROL_PHONE, G1, M_ALICE, b"again") +
            send(ALICE_PHONE, G1, 2),
        # promotion, then the new admin removes the creator
        "admin_promote": create(ALICE_PHONE, G0, M_BOB) + bytes([G_ADMIN, ALICE_PHONE, G0, U_BOB]) +
            bytes([G_REMOVE, BOB_PHONE, G0, M_ALICE | M_NOBODY]) + send(ALICE_LAPTOP, G0, 1) +
            bytes([G_ADD, BOB_PHONE, G0, M_CAROL | M_DUP, G_INFO, CAROL_PHONE, G0]),
        # dave's user goes and comes back while he is a member
        "member_user_removed": create(ALICE_PHONE, G0, M_DAVE | M_BOB) + bytes([G_DAVE, 0]) +
            bytes([G_BODIES, BOB_PHONE, G0, 1, 0]) + bytes([G_DAVE, 2]) +
            send(ALICE_PHONE, G0, 2) + bytes([G_ADMIN, ALICE_PHONE, G0, U_DAVE]) +
            bytes([G_LEAVE, ALICE_PHONE, G0, G_LEAVE, BOB_PHONE, G0]),
        # the admin creates a group for carol ($CONTROL group.create)
        "admin_create": bytes([G_DAVE, 3 | (U_CAROL << 2), G1, M_ALICE | M_BOB]) +
            send(CAROL_PHONE, G1, 1, b"from carol", 3) + bytes([G_LEAVE, CAROL_PHONE, G1]),
        # bodies that do not name exactly the recipients
        "bodies_tweaks": create(ALICE_PHONE, G0, M_BOB | M_CAROL) +
            b"".join(bytes([G_BODIES, ALICE_PHONE, G0, 10 + t, t]) for t in (4, 5, 6, 7, 8)),
        # a member offline, then its replay and receipts; the clock moves on
        "offline_replay": create(ALICE_PHONE, G0, M_BOB) + bytes([G_DISCONNECT, BOB_PHONE]) +
            send(ALICE_PHONE, G0, 1) + bytes([G_ADD, ALICE_PHONE, G0, M_CAROL]) +
            bytes([G_CONNECT, BOB_PHONE, G_SYNC, BOB_PHONE, G_RCPT, BOB_PHONE, G0, 1, 1, 3,
                   G_TICK, 30]),
        # refusals: not a member, not an admin, bad members, unknown users
        "refusals": send(BOB_PHONE, G0, 1) + bytes([G_LEAVE, BOB_PHONE, G0]) +
            create(ALICE_PHONE, G0, M_INVALID) + create(ALICE_PHONE, G0, M_TEXT | M_BOB) +
            create(ALICE_PHONE, G0, M_NOBODY) + create(ALICE_PHONE, G0, M_BOB, b"n" * 130) +
            create(ALICE_PHONE, G0, M_BOB) + create(CAROL_PHONE, G0, 0) +
            bytes([G_ADD, BOB_PHONE, G0, M_CAROL, G_ADMIN, ALICE_PHONE, G0, U_CAROL]),
        # raw payloads: a group.add with its members, and sends on the group topic
        "raw_ops": create(ALICE_PHONE, G0, 0) +
            raw(G_CTL_RAW, ALICE_PHONE, G0, 1, 1, payload=D("members") + D(["bob", "carol"])) +
            raw(G_SEND_RAW, BOB_PHONE, G0, payload=D({"cid": 5, "body": b"raw"})) +
            raw(G_SEND_RAW, CAROL_PHONE, G0, payload=D({"cid": 6, "body": b"a",
                                                         "bodies": {"alice/phone": b"b"}})),
    }


def e2ee_bodies():
    """chat-client's encrypted bodies: those of the shared vectors
    (tests/vectors/e2ee.json), which fuzz_e2ee's bob can decrypt, and near misses."""
    with open(os.path.join(HERE, "..", "vectors", "e2ee.json")) as f:
        v = json.load(f)
    out = {}
    for i, st in enumerate(v["session"]["steps"]):
        out["step%d_%s" % (i + 1, st["sender"])] = bytes.fromhex(st["body"])
    g = bytes.fromhex(v["sender_key"]["group_body"])
    out["group_with_key"] = g
    for m in v["sender_key"]["messages"]:
        out["group_n%d" % m["n"]] = b"\x01\x02\x00\x00" + bytes.fromhex(m["message"])
    first = out["step1_alice"]
    out["short_header"] = first[:40]
    out["bad_version"] = b"\x02" + first[1:]
    out["dist_too_long"] = b"\x01\x02\xff\xff" + g[4:]
    return out


def dictionary():
    words = set()
    for group in (SENDS, RECEIPTS, CTLS, ADMINS, key_requests()):
        for payload in group.values():
            for k, v in payload.items():
                words.add(D(k))
                if isinstance(v, str):
                    words.add(D(v))
    words.update(D(s) for s in ("delivered", "read", "everyone", "contacts", "nobody",
                                "dm:alice:bob", "bob/phone", "bob/tablet", "alice/laptop",
                                "gid", "members", "name", "user", "owner", "bodies",
                                "group.add", "group.remove", "group.leave", "group.admin",
                                "group.info", "slot", "get", "size", "type", "to", "id",
                                "image/jpeg", "audio/ogg",
                                # protocol v2
                                "caps", "sents", "rcpts", "batch", "items", "dl", "sets",
                                "by", "evs", "server", "puback_delivered", "replay_batch",
                                "k", "msg", "seq"))
    # the licence lines of the committed file (spelt in two parts: this
    # script's own header is the only one reuse should read here)
    spdx = "SPDX" + "-"
    lines = ["# %sFileCopyrightText: 2026 The mosquitto-chat authors" % spdx,
             "# %sLicense-Identifier: EPL-2.0 OR BSD-3-Clause" % spdx,
             "# CBOR-encoded keys and values of the wire contract (make_corpus.py)"]
    for w in sorted(words):
        lines.append('"' + "".join("\\x%02x" % b for b in w) + '"')
    return "\n".join(lines) + "\n"


def js_inputs():
    """Seeds of fuzz_js: what the JetStream backend reads back (first byte:
    the decoder, tests/fuzz/fuzz_js.c)."""
    claim = (b"\x01" + be64(17) + be64(1765152000000) + be64(0xfeedface) +
             bytes([6]) + b"dm:a:b" + bytes([2]) + b"n1")
    return {
        "api_pub": b"\x00" + b'{"stream":"CHAT_LOG","seq":12}',
        "api_dup": b"\x00" + b'{"stream":"CHAT_LOG","seq":3,"duplicate":true}',
        "api_del": b"\x00" + b'{"success":true}',
        "api_err": b"\x00" + b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}',
        "id": b"\x01" + b"al=2Eice",
        "conv_dm": b"\x02" + b"dm.al=2Eice.bob",
        "conv_g": b"\x02" + b"g.team",
        "cid_u": b"\x03" + b"u18446744073709551615",
        "cid_b": b"\x03" + b"b00abff",
        "cred_dev": b"\x04" + b"\x01" + bytes(range(32)) + be64(1234),
        "cred_svc": b"\x04" + b"\x01" + bytes(range(32)) + be64(1234) + b"\x01",
        "prefs": b"\x05\x01\x00\x02",
        "push": b"\x06\x01\x02\x01" + b"apns-token-abc",
        "claim": b"\x07" + claim,
        "number": b"\x08" + b"chat.log.dm.a.b.17",
        "leader_get": b"\x09" + b'{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":'
                      b'{"subject":"chat.log.g.team.3","seq":42,"hdrs":"TkFUUy8xLjANCkNoYXQtRnJvbTogYS9kMQ0KDQo=",'
                      b'"data":"aGk=","time":"2026-12-08T00:00:00Z"}}',
        "leader_get_none": b"\x09" + b'{"error":{"code":404,"err_code":10037,"description":"no message found"}}',
        "hdrs": b"\x0a" + b"NATS/1.0\r\nChat-From: a/d1\r\nChat-Cid: u7\r\n\r\n",
        "live": b"\x0b" + b"\x00\x02" + bytes([11]) + b"alice/phone" + be64(7) + bytes([7]) + b"bob/d.1" + be64(9)
                + b"event bytes",
        "live_bad": b"\x0b" + b"\xff\xff" + bytes([3]) + b"a/b" + be64(1),
        "session": b"\x0c" + b"\x01" + be64(1765152000123) + bytes([2]) + b"n1",
        "heartbeat": b"\x0c" + b"\x01" + be64(1765152000123),
        "rcpts": b"\x0d" + be64(42) + b"a/d2:41,b/d1:42,b/d2:43",
        "rcpts_bad": b"\x0d" + be64(7) + b"a/d2:,:7,b/d1:07x,c:",
        "rcpt": b"\x0e" + b"\x01\x02\x00\x02" + be64(1) + be64(4) + be64(9) + be64(9),
        "rcpt_overlap": b"\x0e" + b"\x01\x01\x00\x02" + be64(1) + be64(4) + be64(5) + be64(9),
        "qpos": b"\x0f" + b"120.7.3.99",
        "qpos_bad": b"\x0f" + b"120.7.99.3",
    }


def jswatch_inputs():
    """Seeds of fuzz_jswatch: a chat_groups record (0) and cache scripts (1)
    (tests/fuzz/fuzz_jswatch.c)."""
    def group(seq, name, members):
        b = b"\x01" + be64(seq) + bytes([len(name)]) + name + len(members).to_bytes(4, "big")
        for user, admin in members:
            b += bytes([1 if admin else 0, len(user)]) + user
        return b
    return {
        "group": b"\x00" + group(7, b"Team", [(b"alice", True), (b"bob", False), (b"c.d-e_f", False)]),
        "group_empty": b"\x00" + group(1, b"", []),
        "group_twice": b"\x00" + group(2, b"x", [(b"al", False), (b"al", True)]),
        "script_own_then_watcher": b"\x01" + bytes([0, 9, 2]) + b"ab" + bytes([2, 5, 1]) + b"c" +
                                   bytes([1, 12, 0]) + bytes([2, 10, 0]) + bytes([3, 12, 0]),
        "script_owner": b"\x01" + bytes([2, 1, 0, 6, 2, 0, 26, 3, 0, 22, 4, 0, 7, 5, 0]),
    }


def write(what, items):
    d = os.path.join(OUT, what)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in items.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def keystore_js_records():
    """What chat-keyserver's JetStream store reads back (keyserver/keystore_js.c):
    the first byte picks the decoder (0 device record, 1 one-time key, 2 log
    leaf, 3 device-list change, 4 a Nats-Sequence value, 5 an id as a token)."""
    ik, key, sig = bytes(range(32)), bytes([7]) * 32, bytes([9]) * 64
    dev = b"\x01" + ik + struct.pack(">Q", 1) + key + sig + struct.pack(">QQQQ", 1, 100, 0, 1700000000000)
    opk = b"\x01" + struct.pack(">Q", 42) + key + ik
    leaf = b"\x01" + struct.pack(">Q", 1700000000000) + ik + b"\x05" + b"alice" + b"phone"
    return {
        "dev": b"\x00" + dev, "dev_short": b"\x00" + dev[:-1], "dev_v2": b"\x00\x02" + dev[1:],
        "opk": b"\x01" + opk, "opk_long": b"\x01" + opk + b"x",
        "leaf": b"\x02" + leaf, "leaf_user_len_past_end": b"\x02" + leaf[:41] + b"\xff" + leaf[42:],
        "leaf_bad_user": b"\x02" + leaf[:42] + b"a/ice" + b"phone",
        "ulist_add": b"\x03\x01+phone", "ulist_del": b"\x03\x01-phone", "ulist_bad_op": b"\x03\x01*phone",
        "seq": b"\x04" + b"123456", "seq_overflow": b"\x04" + b"18446744073709551616",
        "seq_not_digits": b"\x04" + b"12a",
        "token_dotted": b"\x05" + b"a.b", "token_specials": b"\x05" + b"*>= .",
    }


def media_requests():
    """chat-media requests (docs/PROTOCOL.md, "Attachments") and near misses."""
    bid = "AAAAAAAAAAAAAAAAAAAAAA"
    reqs = {
        "slot": {"op": "slot", "rid": 1, "size": 307200, "type": "image/jpeg",
                 "to": ["bob/phone", "bob/laptop", "alice/tablet"]},
        "slot_voice": {"op": "slot", "rid": 2, "size": 48000, "type": "audio/ogg; codecs=opus",
                       "to": ["bob/phone"]},
        "slot_dup_to": {"op": "slot", "rid": 3, "size": 5, "type": "a/b", "to": ["b/p", "b/p"]},
        "slot_bad_addr": {"op": "slot", "rid": 4, "size": 5, "type": "a/b", "to": ["bob"]},
        "slot_size0": {"op": "slot", "rid": 5, "size": 0, "type": "a/b", "to": ["b/p"]},
        "slot_no_type": {"op": "slot", "rid": 6, "size": 5, "to": ["b/p"]},
        "slot_type_ctl": {"op": "slot", "rid": 7, "size": 5, "type": "a\x00b", "to": ["b/p"]},
        "slot_to_map": {"op": "slot", "rid": 8, "size": 5, "type": "a/b", "to": {"b": "p"}},
        "get": {"op": "get", "rid": 9, "id": bid},
        "get_short_id": {"op": "get", "rid": 10, "id": "AAAA"},
        "get_path_id": {"op": "get", "rid": 11, "id": "../../../../etc/passwd"},
        "no_rid": {"op": "get", "id": bid},
        "bad_op": {"op": "list", "rid": 12},
        "rid_text": {"op": "get", "rid": "1", "id": bid},
    }
    out = {k: D(v) for k, v in reqs.items()}
    out["indefinite_to"] = (b"\xa5" + D("op") + D("slot") + D("rid") + D(13) + D("size") + D(9)
                            + D("type") + D("a/b") + D("to") + b"\x9f" + D("b/p") + b"\xff")
    out["trailing"] = D(reqs["get"]) + b"\x00"
    return out


def attach_inputs():
    """fuzz_attach's inputs (a selector byte, then the bytes): the pointers
    of tests/vectors/attachment.json and malformed ones (0), chat-media
    answers (1), the vector ciphertexts under the key fuzz_attach holds and
    cut ones (2)."""
    with open(os.path.join(HERE, "..", "vectors", "attachment.json")) as f:
        v = json.load(f)
    out = {}
    for i, p in enumerate(v["pointers"]):
        out["ptr%d" % i] = b"\0" + bytes.fromhex(p["plaintext"])
    for i, p in enumerate(v["bad_pointers"][:4]):
        out["bad_ptr%d" % i] = b"\0" + bytes.fromhex(p["plaintext"])
    answers = {
        "slot_ok": {"rid": 7, "ok": True, "id": "b7Qx-3_kz0Jm9aVbN2rT1w",
                    "put": "http://127.0.0.1:8090/v1/blob/b7Qx-3_kz0Jm9aVbN2rT1w?exp=1&sig=x",
                    "expires": 1796677524},
        "grant_ok": {"rid": 8, "ok": True, "size": 253, "expires": 1796677524,
                     "url": "https://media.example/v1/blob/b7Qx?dev=a%2Fb&exp=1&sig=y"},
        "error": {"rid": 9, "ok": False, "code": "rate", "msg": "slow down", "retry_after": 30},
        "no_ok": {"rid": 10, "id": "x"},
    }
    for k, a in answers.items():
        out["resp_" + k] = b"\1" + D(a)
    small = bytes.fromhex(v["files"][1]["ciphertext"])
    out["ct_small"] = b"\2" + small
    out["ct_small_cut"] = b"\2" + small[:-1]
    out["ct_header_only"] = b"\2" + small[:24]
    return out


def clientev_inputs():
    """fuzz_clientev's inputs (a selector byte, then the event): protocol
    v2 sents (0), rcpts (1), batch (2) events and caps replies (3) as
    docs/PROTOCOL.md "Capabilities (v2)" gives them, and near misses."""
    cid = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
    msg = {"k": "msg", "conv": "dm:alice:bob", "seq": 4, "from": "alice/phone",
           "ts": 1796677524000, "body": b"\x01ciphertext"}
    sents = {
        "one": {"k": "sents", "items": [{"cid": cid, "conv": "dm:alice:bob", "seq": 7,
                                         "ts": 1796677524000}]},
        "dl": {"k": "sents", "items": [
            {"cid": cid, "conv": "dm:alice:bob", "seq": 7, "ts": 1796677524000, "dl": ["bob"]},
            {"cid": 9, "conv": "g:team", "seq": 3, "ts": 1796677524001,
             "dl": ["bob", "carol", "dave"]}]},
        "bad_seq0": {"k": "sents", "items": [{"cid": cid, "conv": "dm:alice:bob", "seq": 0}]},
        "bad_dl": {"k": "sents", "items": [{"cid": 1, "conv": "g:t", "seq": 1, "dl": ["b/p"]}]},
        "empty": {"k": "sents", "items": []},
    }
    rcpts = {
        "group": {"k": "rcpts", "conv": "g:team", "s": "delivered", "ts": 1796677524000,
                  "sets": [{"seqs": [3, 4, 5], "by": ["bob", "carol"]},
                           {"seqs": [3], "by": ["dave"]}]},
        "read": {"k": "rcpts", "conv": "dm:alice:bob", "s": "read", "ts": 1,
                 "sets": [{"seqs": [1], "by": ["bob"]}]},
        "expired": {"k": "rcpts", "conv": "g:team", "s": "expired", "ts": 2,
                    "sets": [{"seqs": [9], "by": ["erin"]}]},
        "bad_state": {"k": "rcpts", "conv": "g:team", "s": "seen",
                      "sets": [{"seqs": [1], "by": ["bob"]}]},
        "bad_empty_set": {"k": "rcpts", "conv": "g:team", "s": "read",
                          "sets": [{"seqs": [], "by": ["bob"]}]},
    }
    batches = {
        "msgs": {"k": "batch", "evs": [msg, dict(msg, seq=5),
                                       {"k": "receipt", "conv": "dm:alice:bob", "seqs": [2],
                                        "s": "delivered", "by": "bob", "ts": 3}]},
        "mixed": {"k": "batch", "evs": [
            {"k": "group", "gid": "team", "conv": "g:team", "seq": 1, "ts": 1, "op": "created",
             "by": "alice", "members": ["alice", "bob"]},
            rcpts["group"], msg]},
        "bad_elem": {"k": "batch", "evs": [msg, 7]},
        "empty": {"k": "batch", "evs": []},
    }
    caps = {
        "ok": {"k": "ctl", "rid": 5, "ok": True, "caps": ["sents", "rcpts", "batch"],
               "server": {"v": 2, "puback_delivered": True, "gather_ms": 10, "replay_batch": 64}},
        "unknown_cap": {"k": "ctl", "rid": 5, "ok": True, "caps": ["sents", "future"],
                        "server": {"v": 3, "puback_delivered": False, "gather_ms": 10,
                                   "replay_batch": 1, "more": [1]}},
        "refused": {"k": "ctl", "rid": 5, "ok": False, "code": "op", "msg": "unknown op"},
        "bad_server": {"k": "ctl", "rid": 5, "ok": True, "server": {"puback_delivered": 1}},
    }
    out = {}
    for sel, prefix, group in ((0, "sents_", sents), (1, "rcpts_", rcpts), (2, "batch_", batches),
                               (3, "caps_", caps)):
        for k, v in group.items():
            out[prefix + k] = bytes([sel]) + D(v)
    out["sents_indefinite"] = b"\0" + indef_map([("k", "sents"), ("items", [
        {"cid": 3, "conv": "dm:a:b", "seq": 2}])])
    out["batch_trailing"] = b"\2" + D(batches["msgs"]) + b"\x00"
    return out


def acks():
    """PUBACKed inbox publishes (fuzz_ack): v1 events and replay batches."""
    def msg(seq, conv="dm:alice:bob", frm="alice/phone"):
        return {"k": "msg", "conv": conv, "seq": seq, "from": frm, "ts": 900, "body": b"hi"}
    grp = {"k": "group", "conv": "g:team", "seq": 1, "ts": 900, "gid": "team", "op": "created",
           "by": "alice", "members": ["alice", "bob"]}
    rcpt = {"k": "receipt", "conv": "dm:alice:bob", "seqs": [1], "s": "delivered", "by": "alice",
            "ts": 900}
    return {
        "msg": D(msg(1)),
        "group": D(grp),
        "batch": D({"k": "batch", "evs": [msg(s) for s in range(1, 7)]}),
        "batch_mixed": D({"k": "batch", "evs": [msg(2), rcpt, grp, msg(3, "dm:bob:carol", "carol/phone")]}),
        "batch_nested": D({"k": "batch", "evs": [{"k": "batch", "evs": [msg(4)]}, msg(5)]}),
        "batch_not_maps": D({"k": "batch", "evs": [1, "x", msg(6)]}),
        "batch_evs_first": D({"evs": [msg(1)], "k": "batch"}),
        "batch_count_lies": b"\xa2\x61k\x65batch\x63evs\x99\xff\xff" + D(msg(1)),
        "batch_empty": D({"k": "batch", "evs": []}),
    }


def main():
    sends = {k: D(v) for k, v in SENDS.items()}
    sends["indefinite_map"] = indef_map([("cid", 13), ("body", b"indef")])
    receipts = {k: D(v) for k, v in RECEIPTS.items()}
    ctls = {k: D(v) for k, v in CTLS.items()}
    admins = {k: D(v) for k, v in ADMINS.items()}
    # Text that is not UTF-8, echoed back by the server (docs/FUZZING.md).
    admins["cmd_not_utf8"] = b"\xa1\x63cmd\x61\xff"
    sends["bodies_key_not_utf8"] = (b"\xa2\x63cid\x0e\x66bodies\xa1\x61\xff\x41x")
    keys = {k: D(v) for k, v in key_requests().items()}
    write("send", sends)
    write("receipt", receipts)
    write("ctl", ctls)
    write("admin", admins)
    write("typing", {k: D(v) for k, v in TYPINGS.items()})
    write("keyreq", keys)
    write("media", media_requests())
    write("store_record", store_records())
    write("sync", sync_scripts())
    write("group", group_scripts())
    write("e2ee", e2ee_bodies())
    write("attach", attach_inputs())
    write("clientev", clientev_inputs())
    write("keylog", keylog_answers())
    write("keystore_js", keystore_js_records())
    write("ack", acks())
    write("xmpp", xmpp_streams())
    write("js", js_inputs())
    write("jswatch", jswatch_inputs())
    write("topic", {"t%02d" % i: t.encode() for i, t in enumerate(TOPICS)})
    write("ids", {"i%02d" % i: s.encode() for i, s in enumerate(IDS)})
    cbor = {}
    for what, group in (("send", sends), ("receipt", receipts), ("ctl", ctls),
                        ("admin", admins), ("keyreq", keys)):
        for name, data in list(group.items())[:4]:
            cbor[what + "_" + name] = data
    # RFC 8949 appendix A odds and ends: floats, tags, negatives, nesting
    cbor.update({
        "float16": bytes.fromhex("f93c00"), "float64": bytes.fromhex("fb3ff199999999999a"),
        "tag_bignum": bytes.fromhex("c249010000000000000000"), "neg": bytes.fromhex("3903e7"),
        "nested": bytes.fromhex("9f018202039f0405ffff"), "simple": bytes.fromhex("f4f5f6f7"),
        "map_indef": bytes.fromhex("bf61610161629f0203ffff"),
        "deep": b"\x81" * 17 + b"\x00",
    })
    write("cbor", cbor)
    with open(os.path.join(HERE, "chat.dict"), "w") as f:
        f.write(dictionary())
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(OUT) for n in ns)
    print("corpus: %d bytes in %s" % (total, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
