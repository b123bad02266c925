# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chat-keyserver through a real broker: X3DH with real keys, exhaustion,
rate limit, isolation between devices, restarts, reconnects, standby.

Device B uploads Ed25519/X25519 keys made with PyNaCl; device A fetches B's
bundle, verifies the signed pre-key, runs X3DH and sends the initial message
through the chat; B runs its half of X3DH and both arrive at the same secret.
"""

import hashlib
import hmac
import os
import re
import signal
import subprocess
import time

import cbor2
from nacl import bindings as nb

from chatlib import KEYSERVER, V5, ChatTestCase, Identity, KeyServer, main, uniq, wait_until

# ---------------------------------------------------------------- X3DH

def hkdf_sha256(ikm, info, length=32, salt=b"\x00" * 32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


X3DH_INFO = b"mosquitto-chat X3DH v1"


def x3dh_kdf(*dhs):
    # Signal's X3DH §2.2: F = 32 0xFF bytes for X25519, zero salt, HKDF-SHA256.
    return hkdf_sha256(b"\xff" * 32 + b"".join(dhs), X3DH_INFO)


def x3dh_initiate(alice, entry):
    """Alice's side, from one bundle entry: verify, then derive SK."""
    ik_b = entry["ik"]
    spk = entry["spk"]
    # raises nacl.exceptions.BadSignatureError if the server forged anything
    nb.crypto_sign_open(spk["sig"] + spk["key"], ik_b)
    ek_pk, ek_sk = nb.crypto_box_keypair()
    dh1 = nb.crypto_scalarmult(alice.ik_x_sk(), spk["key"])
    dh2 = nb.crypto_scalarmult(ek_sk, nb.crypto_sign_ed25519_pk_to_curve25519(ik_b))
    dh3 = nb.crypto_scalarmult(ek_sk, spk["key"])
    dhs = [dh1, dh2, dh3]
    if "opk" in entry:
        dhs.append(nb.crypto_scalarmult(ek_sk, entry["opk"]["key"]))
    sk = x3dh_kdf(*dhs)
    header = {"ik": alice.ik_pk, "ek": ek_pk, "spk": spk["id"]}
    if "opk" in entry:
        header["opk"] = entry["opk"]["id"]
    return sk, header


def x3dh_respond(bob, header):
    """Bob's side, from Alice's initial message header."""
    ik_a_x = nb.crypto_sign_ed25519_pk_to_curve25519(header["ik"])
    assert header["spk"] == bob.spk_id
    dh1 = nb.crypto_scalarmult(bob.spk_sk, ik_a_x)
    dh2 = nb.crypto_scalarmult(bob.ik_x_sk(), header["ek"])
    dh3 = nb.crypto_scalarmult(bob.spk_sk, header["ek"])
    dhs = [dh1, dh2, dh3]
    if "opk" in header:
        dhs.append(nb.crypto_scalarmult(bob.opks.pop(header["opk"]), header["ek"]))
    return x3dh_kdf(*dhs)


# ---------------------------------------------------------------- tests

class KeyServerTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ks = KeyServer.for_broker(cls.broker)
        cls.token_file, cls.ks_dir = cls.ks.token_file, cls.ks.data_dir
        try:
            cls.ks.wait_serving()
        except Exception:
            cls.ks.cleanup()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.ks.stop()
            if rc != 0:
                raise AssertionError("keyserver exited %r:\n%s" % (rc, cls.ks.text()))
        finally:
            cls.ks.cleanup()
            super().tearDownClass()

    _rid = 0

    def keydev(self, user, dev, protocol=V5):
        """A device subscribed to its key response and status topics."""
        d = self.dev(user, dev, protocol=protocol)
        for kind in ("resp", "status"):
            code = d.subscribe("chat/keys/%s/%s/%s" % (kind, user, dev), 1)
            self.assertLess(code, 0x80, "own %s topic refused" % kind)
        return d

    def request(self, d, req, timeout=5.0):
        KeyServerTest._rid += 1
        rid = KeyServerTest._rid
        req = dict(req, rid=rid)
        code = d.publish("chat/keys/req/%s/%s" % (d.user, d.dev), cbor2.dumps(req))
        self.assertLess(code, 0x80, "request refused by the broker")
        resp_topic = "chat/keys/resp/%s/%s" % (d.user, d.dev)
        m = d.wait_message(lambda m: m[0] == resp_topic and m[1].get("rid") == rid, timeout)
        if m is None:
            raise AssertionError("no response to %r\n%s" % (req.get("op"), self.ks.text()[-3000:]))
        return m[1]

    def status(self, d, timeout=5.0, **match):
        topic = "chat/keys/status/%s/%s" % (d.user, d.dev)
        m = d.wait_message(lambda m: m[0] == topic and all(m[1].get(k) == v
                                                           for k, v in match.items()), timeout)
        self.assertIsNotNone(m, "no status %r for %s" % (match, d.addr))
        return m[1]

    # ---- X3DH end to end ----

    def test_x3dh_shared_secret(self):
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        alice, bob = Identity(), Identity(spk_id=7)

        r = self.request(db, bob.upload_req(20))
        self.assertEqual(r, {"rid": r["rid"], "ok": True, "opks": 20})
        self.assertEqual(self.status(db), {"opks": 20, "low": False})
        self.request(da, alice.upload_req(5))

        r = self.request(da, {"op": "bundle", "user": b})
        self.assertTrue(r["ok"], r)
        self.assertEqual(len(r["devices"]), 1)
        entry = r["devices"][0]
        self.assertEqual(entry["device"], "phone")
        self.assertEqual(entry["ik"], bob.ik_pk)
        self.assertEqual(entry["spk"], {"id": 7, "key": bob.spk_pk, "sig": bob.spk_sig})
        self.assertEqual(entry["opk"]["id"], 1)

        sk_a, header = x3dh_initiate(alice, entry)
        # The initial message goes through the chat like any other message.
        ad = alice.ik_pk + bob.ik_pk
        nonce = os.urandom(24)
        ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(b"hello bob", ad, nonce, sk_a)
        body = cbor2.dumps(dict(header, n=nonce, ct=ct))
        da.send_dm(b, 1, body=body)
        ev = db.wait_event("msg")
        init = cbor2.loads(ev["body"])
        sk_b = x3dh_respond(bob, init)
        self.assertEqual(sk_a, sk_b)
        self.assertEqual(len(sk_a), 32)
        pt = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(
            init["ct"], init["ik"] + bob.ik_pk, init["n"], sk_b)
        self.assertEqual(pt, b"hello bob")

        # A second session gets another one-time key, never the same one.
        r = self.request(da, {"op": "bundle", "user": b})
        self.assertEqual(r["devices"][0]["opk"]["id"], 2)
        sk_a2, header2 = x3dh_initiate(alice, r["devices"][0])
        self.assertEqual(x3dh_respond(bob, header2), sk_a2)
        self.assertNotEqual(sk_a2, sk_a)

        r = self.request(db, {"op": "count"})
        self.assertEqual(r["opks"], 18)
        digest = hashlib.sha256(bob.ik_pk + bob.spk_pk).digest()
        self.assertTrue(self.request(db, {"op": "check", "digest": digest})["match"])
        self.assertFalse(self.request(db, {"op": "check", "digest": bytes(32)})["match"])

    def test_multi_device_bundle_and_exhaustion(self):
        a, b = uniq("alice"), uniq("bob")
        da = self.keydev(a, "phone")
        dbp, dbl = self.keydev(b, "phone"), self.keydev(b, "laptop")
        alice, bob_p, bob_l = Identity(), Identity(), Identity()
        self.request(dbp, bob_p.upload_req(2))
        self.assertEqual(self.status(dbp), {"opks": 2, "low": True})
        self.request(dbl, bob_l.upload_req(1))

        got = {"phone": [], "laptop": []}
        for _ in range(3):
            r = self.request(da, {"op": "bundle", "user": b})
            self.assertTrue(r["ok"], r)
            self.assertEqual(sorted(e["device"] for e in r["devices"]), ["laptop", "phone"])
            for e in r["devices"]:
                got[e["device"]].append(e.get("opk", {}).get("id"))
                # with or without an opk, the bundle works for X3DH
                idn = bob_p if e["device"] == "phone" else bob_l
                sk, hdr = x3dh_initiate(alice, e)
                self.assertEqual(x3dh_respond(idn, hdr), sk)
        self.assertEqual(got["phone"], [1, 2, None])
        self.assertEqual(got["laptop"], [1, None, None])
        # the pool's retained status followed it down
        self.assertEqual(self.status(dbp, opks=0), {"opks": 0, "low": True})
        self.assertEqual(self.request(dbp, {"op": "count"})["opks"], 0)

        # a refill is announced, and the next bundle carries the new key
        self.request(dbp, bob_p.upload_req(12))
        self.assertEqual(self.status(dbp, opks=12), {"opks": 12, "low": False})
        r = self.request(da, {"op": "bundle", "user": b})
        phone = [e for e in r["devices"] if e["device"] == "phone"][0]
        self.assertEqual(phone["opk"]["id"], 3)
        # the status is retained: a later connection of the device sees it
        dbp.close()
        again = self.dev(b, "phone", protocol=V5, token=dbp.token)
        self.assertLess(again.subscribe("chat/keys/status/%s/phone" % b), 0x80)
        self.assertEqual(self.status(again), {"opks": 12, "low": False})

    def test_rate_limit(self):
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        self.request(db, Identity().upload_req(50))
        for _ in range(6):
            self.assertTrue(self.request(da, {"op": "bundle", "user": b})["ok"])
        r = self.request(da, {"op": "bundle", "user": b})
        self.assertFalse(r["ok"])
        self.assertEqual(r["code"], "rate")
        self.assertGreater(r["retry_after"], 590)
        self.assertLessEqual(r["retry_after"], 600)
        self.assertIn("msg", r)
        # the refusal cost B nothing
        self.assertEqual(self.request(db, {"op": "count"})["opks"], 44)
        # another device of A has its own budget; so does another target
        da2 = self.keydev(a, "laptop")
        self.assertTrue(self.request(da2, {"op": "bundle", "user": b})["ok"])

    def test_errors_over_the_wire(self):
        u = uniq("eve")
        d = self.keydev(u, "phone")
        topic = "chat/keys/req/%s/phone" % u
        d.publish(topic, b"\xff\x00garbage")
        m = d.wait_message(lambda m: m[0].startswith("chat/keys/resp/"))
        self.assertEqual((m[1]["ok"], m[1]["code"]), (False, "cbor"))
        self.assertNotIn("rid", m[1])
        r = self.request(d, {"op": "teleport"})
        self.assertEqual((r["ok"], r["code"]), (False, "op"))
        ident = Identity()
        req = ident.upload_req(1)
        req["spk"]["sig"] = bytes(64)
        r = self.request(d, req)
        self.assertEqual((r["ok"], r["code"]), (False, "sig"))
        req = ident.upload_req(101)
        r = self.request(d, req)
        self.assertEqual((r["ok"], r["code"]), (False, "field"))
        r = self.request(d, {"op": "upload", "ik": b"short", "spk": {}})
        self.assertEqual((r["ok"], r["code"]), (False, "field"))
        r = self.request(d, {"op": "bundle", "user": uniq("nobody")})
        self.assertEqual((r["ok"], r["code"]), (False, "notfound"))
        # still serving
        self.assertEqual(self.request(d, {"op": "count"}), {"rid": KeyServerTest._rid, "ok": True,
                                                            "opks": 0})

    def test_third_device_isolated(self):
        a, b, e = uniq("alice"), uniq("bob"), uniq("eve")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        de = self.dev(e, "phone", protocol=V5)
        self.request(db, Identity().upload_req(3))
        self.status(db, opks=3)
        # Eve cannot read B's responses or status
        for t in ["chat/keys/resp/%s/phone" % b, "chat/keys/status/%s/phone" % b,
                  "chat/keys/resp/+/+", "chat/keys/resp/%s/+" % b, "chat/keys/#",
                  "$share/keyserver/chat/keys/req/+/+", "chat/keys/req/%s/phone" % b]:
            self.assertGreaterEqual(de.subscribe(t), 0x80, t)
        # nor publish on B's request topic: refused, and no key is popped
        code = de.publish("chat/keys/req/%s/phone" % b,
                          cbor2.dumps({"op": "bundle", "rid": 1, "user": b}))
        self.assertEqual(code, 0x87)
        code = de.publish("chat/keys/req/%s/phone" % b,
                          cbor2.dumps(dict(Identity().upload_req(1), rid=2)))
        self.assertEqual(code, 0x87)
        time.sleep(0.3)
        self.assertEqual(db.drain(), [])
        self.assertEqual(self.request(db, {"op": "count"})["opks"], 3)
        # Eve's own request is answered on Eve's topic only
        rid_before = KeyServerTest._rid
        r = self.request(self.keydev(e, "tablet"), {"op": "bundle", "user": b})
        self.assertTrue(r["ok"])
        self.assertEqual(r["rid"], rid_before + 1)
        time.sleep(0.3)
        # B hears only about its own pool (3 → 2), nothing of Eve's exchange
        self.assertEqual(db.drain(), [("chat/keys/status/%s/phone" % b, {"opks": 2, "low": True})])
        self.assertEqual(da.drain(), [])
        # Eve was told, in her own inbox, that her two publishes were refused
        self.assertEqual([(t, ev["k"], ev["code"]) for t, ev in de.drain()],
                         [("chat/inbox/%s/phone" % e, "error", "topic")] * 2)


class KeyServerLifecycleTest(ChatTestCase):
    """Restarts of the key server and of the broker; two side by side."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token_file = cls.broker.service_token_file("keys")

    def start_ks(self, data_dir, *args):
        ks = KeyServer(self.broker, self.token_file, data_dir, *args)
        self.addCleanup(ks.cleanup)
        return ks

    def keydev(self, user, dev):
        d = self.dev(user, dev, protocol=V5)
        self.assertLess(d.subscribe("chat/keys/resp/%s/%s" % (user, dev)), 0x80)
        return d

    def request(self, d, ks, req, timeout=5.0):
        rid = int(time.monotonic() * 1000) % 1000000
        d.publish("chat/keys/req/%s/%s" % (d.user, d.dev), cbor2.dumps(dict(req, rid=rid)))
        m = d.wait_message(lambda m: m[1].get("rid") == rid, timeout)
        if m is None:
            raise AssertionError("no response:\n%s" % ks.text()[-3000:])
        return m[1]

    def test_once_ever_across_restart_and_broker_reconnect(self):
        data = os.path.join(self.broker.tmp, "ks-restart")
        ks = self.start_ks(data, "--rate-burst", "100")
        ks.wait_serving()
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        self.request(db, ks, Identity().upload_req(6))
        ids = [self.request(da, ks, {"op": "bundle", "user": b})["devices"][0]["opk"]["id"]
               for _ in range(2)]

        # SIGTERM: a clean stop; the next process continues where it left off
        self.assertEqual(ks.stop(), 0)
        self.assertIn("stopping", ks.text())
        ks = self.start_ks(data, "--rate-burst", "100")
        ks.wait_serving()
        ids += [self.request(da, ks, {"op": "bundle", "user": b})["devices"][0]["opk"]["id"]
                for _ in range(2)]

        # the broker goes away and comes back: the key server reconnects
        self.broker.restart()
        ks.wait_text("reconnecting in")
        ks.wait_serving(count=2, timeout=20)
        da, db = self.keydev(a, "phone2"), self.keydev(b, "phone2")
        ids += [self.request(da, ks, {"op": "bundle", "user": b})["devices"][0]["opk"]["id"]
                for _ in range(2)]
        self.assertEqual(ids, [1, 2, 3, 4, 5, 6])
        r = self.request(da, ks, {"op": "bundle", "user": b})
        self.assertNotIn("opk", r["devices"][0])
        self.assertEqual(ks.stop(), 0)

    def test_rate_budget_survives_restart(self):
        data = os.path.join(self.broker.tmp, "ks-rate")
        ks = self.start_ks(data, "--rate-burst", "2", "--rate-refill-seconds", "3600")
        ks.wait_serving()
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        self.request(db, ks, Identity().upload_req(5))
        for _ in range(2):
            self.assertTrue(self.request(da, ks, {"op": "bundle", "user": b})["ok"])
        self.assertEqual(self.request(da, ks, {"op": "bundle", "user": b})["code"], "rate")
        self.assertEqual(ks.stop(), 0)
        ks = self.start_ks(data, "--rate-burst", "2", "--rate-refill-seconds", "3600")
        ks.wait_serving()
        r = self.request(da, ks, {"op": "bundle", "user": b})
        self.assertEqual(r["code"], "rate")
        self.assertGreater(r["retry_after"], 3500)

    def test_two_side_by_side_standby_takes_over(self):
        data = os.path.join(self.broker.tmp, "ks-pair")
        first = self.start_ks(data)
        first.wait_serving()
        second = self.start_ks(data)
        second.wait_text("standing by")
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        self.request(db, first, Identity().upload_req(4))
        self.assertEqual(self.request(da, first, {"op": "bundle", "user": b})
                         ["devices"][0]["opk"]["id"], 1)
        self.assertNotIn("serving", second.text())
        self.assertEqual(first.stop(), 0)
        second.wait_text("took over")
        second.wait_serving()
        self.assertEqual(self.request(da, second, {"op": "bundle", "user": b})
                         ["devices"][0]["opk"]["id"], 2)
        self.assertEqual(second.stop(), 0)

    def test_backup_on_sigusr1_and_restore(self):
        data = os.path.join(self.broker.tmp, "ks-backup")
        backups = os.path.join(self.broker.tmp, "ks-backups")
        ks = self.start_ks(data, "--rate-burst", "100", "--backup-dir", backups)
        ks.wait_serving()
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        self.request(db, ks, Identity().upload_req(4))
        self.assertEqual(self.request(da, ks, {"op": "bundle", "user": b})
                         ["devices"][0]["opk"]["id"], 1)
        ks.proc.send_signal(signal.SIGUSR1)
        ks.wait_text("backup written to")
        copy = re.search(r"backup written to (\S+) in \d+ ms", ks.text()).group(1)
        self.assertEqual(os.path.dirname(copy), backups)
        # after the backup: key 2 is handed out by the live server
        self.assertEqual(self.request(da, ks, {"op": "bundle", "user": b})
                         ["devices"][0]["opk"]["id"], 2)
        self.assertEqual(ks.stop(), 0)
        # restore: a key server on the copy serves the store as it was (key 2 again)
        ks = self.start_ks(copy, "--rate-burst", "100")
        ks.wait_serving()
        self.assertEqual(self.request(da, ks, {"op": "bundle", "user": b})
                         ["devices"][0]["opk"]["id"], 2)
        self.assertEqual(ks.stop(), 0)
        # without --backup-dir the signal is refused in the log, the server goes on
        ks = self.start_ks(data, "--rate-burst", "100")
        ks.wait_serving()
        ks.proc.send_signal(signal.SIGUSR1)
        ks.wait_text("SIGUSR1 without --backup-dir")
        self.assertEqual(self.request(da, ks, {"op": "bundle", "user": b})
                         ["devices"][0]["opk"]["id"], 3)
        self.assertEqual(ks.stop(), 0)

    def test_bad_arguments_and_token(self):
        r = subprocess.run([KEYSERVER, "-h", "127.0.0.1"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)
        r = subprocess.run([KEYSERVER, "-h", "127.0.0.1", "-p", "1", "-u", "keys",
                            "--token-file", "/nonexistent", "--data-dir", self.broker.tmp],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("token", r.stderr)
        # a wrong token is refused by the broker and retried, never served
        bad = os.path.join(self.broker.tmp, "bad.token")
        with open(bad, "w") as f:
            f.write("x" * 43)
        ks = KeyServer(self.broker, bad, os.path.join(self.broker.tmp, "ks-bad"))
        self.addCleanup(ks.cleanup)
        ks.wait_text("refused the connection")
        self.assertNotIn("serving", ks.text())
        self.assertEqual(ks.stop(), 0)


if __name__ == "__main__":
    main()
