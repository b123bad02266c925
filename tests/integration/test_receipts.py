# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Receipts (chat/receipt): forward-only state per (message, recipient user),
each change to every device of the original sender, live or queued for the
offline ones; read-receipt privacy both ways (chat/ctl privacy); refusals of
malformed and foreign receipts; TTL expiry with "expired" to the sender and
no late delivery (per-message ttl here, plugin_opt_offline_ttl in its own
broker below)."""

import cbor2

from chatlib import ChatTestCase, Device, conv_of, main, now_ms, uniq


def replay(dev, timeout=5.0):
    """The events a sync replays, up to (not including) sync done."""
    dev.begin_replay()
    got = []
    while True:
        ev = dev.wait_event(timeout=timeout)
        if ev.get("k") == "sync" and ev.get("done") is True:
            return got
        got.append(ev)


class ReceiptCase(ChatTestCase):
    # App receipts are what is under test; on the patched broker a device's
    # PUBACK would already be its delivered receipt (delivered_on_puback,
    # default on there; test_broker_events covers that path).
    broker_options = {"delivered_on_puback": "false"}

    def reconnect(self, user, dev, token):
        # the replay its subscription starts is read by replay()
        d = Device(self.broker, user, dev, token, wait_replay=False)
        d.connect()
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def assert_receipt(self, ev, conv, seqs, s, by, t0=None):
        self.assertEqual(ev["k"], "receipt")
        self.assertEqual((ev["conv"], ev["seqs"], ev["s"], ev["by"]), (conv, seqs, s, by), ev)
        self.assertIsInstance(ev["ts"], int)
        if t0 is not None:
            self.assertTrue(t0 - 2000 <= ev["ts"] <= now_ms() + 2000, ev)


class ReceiptTest(ReceiptCase):

    def send(self, da, peer, n, first_cid=1):
        seqs = []
        for i in range(first_cid, first_cid + n):
            self.assertEqual(da.send_dm(peer, i, body=b"b%d" % i), 0)
            seqs.append(da.wait_event("sent", cid=i)["seq"])
        return seqs

    def test_delivered_then_read_reach_all_sender_devices(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        da2 = self.dev(a, "laptop")
        db = self.dev(b, "phone")
        db2 = self.dev(b, "tablet")
        self.assertEqual(self.send(da, b, 2), [1, 2])
        for _ in range(2):
            db.wait_event("msg")
            db2.wait_event("msg")
            da2.wait_event("msg")
        t0 = now_ms()
        self.assertEqual(db.receipt("delivered", conv, [1, 2]), 0)
        for d in (da, da2):
            self.assert_receipt(d.wait_event("receipt"), conv, [1, 2], "delivered", b, t0)
        self.assertEqual(db.receipt("read", conv, [1]), 0)
        for d in (da, da2):
            self.assert_receipt(d.wait_event("receipt"), conv, [1], "read", b, t0)
        # the reader's user gets no receipts about its own reading
        for d in (db, db2):
            d.expect_no_event(0.2, k="receipt")
        # the other device of the same user: delivered is already the user's state
        db2.receipt("delivered", conv, [1, 2])
        da.expect_no_event(0.3, k="receipt")
        da2.expect_no_event(0.05, k="receipt")

    def test_repeats_and_backward_moves_produce_nothing(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        self.send(da, b, 3)
        db.receipt("read", conv, [1])        # straight to read
        self.assert_receipt(da.wait_event("receipt"), conv, [1], "read", b)
        db.receipt("read", conv, [1])        # repeat
        db.receipt("delivered", conv, [1])   # backward
        da.expect_no_event(0.3, k="receipt")
        # a mixed list reports only what moved
        db.receipt("delivered", conv, [1, 2, 2])
        self.assert_receipt(da.wait_event("receipt"), conv, [2], "delivered", b)
        db.receipt("read", conv, [1, 2, 3])
        self.assert_receipt(da.wait_event("receipt"), conv, [2, 3], "read", b)
        # unknown seqs and the reader's own messages change nothing
        db.send_dm(a, 99, body=b"mine")
        self.assertEqual(db.wait_event("sent", cid=99)["seq"], 4)
        db.receipt("read", conv, [4, 500])
        da.expect_no_event(0.3, k="receipt")
        db.expect_no_event(0.05, k="receipt")

    def test_receipts_queued_for_offline_sender_device(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        ta2 = self.broker.add_device(a, "laptop")   # offline
        db = self.dev(b, "phone")
        self.send(da, b, 2)
        db.wait_event("msg")
        db.wait_event("msg")
        db.receipt("delivered", conv, [1, 2])
        self.assert_receipt(da.wait_event("receipt"), conv, [1, 2], "delivered", b)
        db.receipt("read", conv, [2])
        self.assert_receipt(da.wait_event("receipt"), conv, [2], "read", b)
        # a/phone goes offline too; the next receipt is queued for both
        # (once the broker has seen it go: DISCONNECT and the receipt come
        # on different sockets)
        mark = self.broker.log_mark()
        da.close()
        self.assertTrue(self.broker.wait_log(lambda l: "Client %s/phone disconnected" % a in l,
                                             mark, timeout=10))
        db.receipt("read", conv, [1])
        da2 = self.reconnect(a, "laptop", ta2)   # its subscription starts the replay
        got = replay(da2)
        self.assertEqual([(e["k"], e.get("seq"), e.get("s"), e.get("seqs")) for e in got],
                         [("msg", 1, None, None), ("msg", 2, None, None),
                          ("receipt", None, "delivered", [1, 2]),
                          ("receipt", None, "read", [2]),
                          ("receipt", None, "read", [1])])
        self.assertEqual([e["cid"] for e in got[:2]], [1, 2])
        for e in got[2:]:
            self.assertEqual((e["conv"], e["by"]), (conv, b))
        # queued receipts leave the queue once replayed; the copies stay until acked
        self.assertEqual([e["k"] for e in replay(da2)], ["msg", "msg"])
        da2.receipt("delivered", conv, [1, 2])   # own copies: no receipt to anyone
        self.assertEqual(replay(da2), [])
        db.expect_no_event(0.2, k="receipt")
        # a/phone gets the read it missed on its own sync
        da1 = self.reconnect(a, "phone", da.token)
        got = replay(da1)
        self.assertEqual([(e["k"], e.get("s"), e.get("seqs")) for e in got],
                         [("receipt", "read", [1])])

    def test_receipt_live_again_after_sender_sync(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        ta = self.broker.add_device(a, "phone")
        da = self.reconnect(a, "phone", ta)
        db = self.dev(b, "phone")
        self.send(da, b, 1)
        db.wait_event("msg")
        da.close()
        db.receipt("delivered", conv, [1])
        da = self.reconnect(a, "phone", ta)
        got = replay(da)
        self.assertEqual([(e["k"], e["s"]) for e in got], [("receipt", "delivered")])
        db.receipt("read", conv, [1])
        self.assert_receipt(da.wait_event("receipt"), conv, [1], "read", b)

    def test_privacy_reader_with_read_receipts_off(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        r = db.ctl("privacy", 7, read_receipts=False)
        self.assertEqual(r, {"k": "ctl", "rid": 7, "ok": True, "read_receipts": False,
                             "presence": "everyone"})
        self.send(da, b, 2)
        db.wait_event("msg")
        db.wait_event("msg")
        # b's read counts as delivered only
        db.receipt("read", conv, [1])
        self.assert_receipt(da.wait_event("receipt"), conv, [1], "delivered", b)
        db.receipt("read", conv, [1, 2])
        self.assert_receipt(da.wait_event("receipt"), conv, [2], "delivered", b)
        db.receipt("read", conv, [1, 2])
        da.expect_no_event(0.3, k="receipt")
        # and its reads still empty its queue
        self.assertEqual(replay(db), [])

    def test_privacy_sender_with_read_receipts_off_receives_none(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        r = da.ctl("privacy", 8, read_receipts=False)
        self.assertEqual((r["ok"], r["read_receipts"]), (True, False))
        self.send(da, b, 2)
        db.wait_event("msg")
        db.wait_event("msg")
        db.receipt("delivered", conv, [1])
        self.assert_receipt(da.wait_event("receipt"), conv, [1], "delivered", b)
        # delivered -> read: nothing a may see moved, so no event at all.
        # (Regression guard, reported bug: an extra "delivered" for [1] here
        # meant plugin/receipts.c notify_senders turned every moved read into
        # "delivered" for a sender with read receipts off, also when the
        # state was already delivered, i.e. a repeat.)
        db.receipt("read", conv, [1])
        da.expect_no_event(0.3, k="receipt")
        # Straight to read without a delivered first: a still learns that it
        # was delivered, only not that it was read.
        # (Regression guard, reported bug: no event here meant notify_senders
        # dropped the whole event for a sender with read receipts off.)
        db.receipt("read", conv, [2])
        ev = da.wait_event("receipt", timeout=2)
        self.assert_receipt(ev, conv, [2], "delivered", b)
        da.expect_no_event(0.2, k="receipt")

    def test_privacy_reply_and_devices(self):
        u, v = uniq("u"), uniq("v")
        du = self.dev(u, "phone")
        self.broker.add_device(v, "zeta")
        self.broker.add_device(v, "alpha")
        r = du.ctl("devices", 1, user=v)
        self.assertEqual(r["ok"], True)
        self.assertEqual(sorted(r["devices"]), ["alpha", "zeta"])
        self.assertEqual(du.ctl("devices", 2, user=uniq("nobody"))["devices"], [])
        # privacy without changes reports the defaults; turning back on works
        r = du.ctl("privacy", 3)
        self.assertEqual((r["ok"], r["read_receipts"], r["presence"]), (True, True, "everyone"))
        self.assertEqual(du.ctl("privacy", 4, read_receipts=False)["read_receipts"], False)
        self.assertEqual(du.ctl("privacy", 5)["read_receipts"], False)
        self.assertEqual(du.ctl("privacy", 6, read_receipts=True)["read_receipts"], True)

    def test_foreign_conversation_refused(self):
        a, b, c = uniq("a"), uniq("b"), uniq("c")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        dc = self.dev(c, "phone")
        self.send(da, b, 1)
        db.wait_event("msg")
        dc.receipt("read", conv, [1])
        err = dc.wait_event("error")
        self.assertEqual(err["code"], "conv")
        self.assertIsInstance(err["msg"], str)
        for bad in ("g:whatever", "dm:%s" % a, "nonsense", conv_of(b, uniq("d"))):
            dc.receipt("delivered", bad, [1])
            self.assertEqual(dc.wait_event("error")["code"], "conv", bad)
        # b's own conversation spelt with the members in the wrong order is not a conv
        reversed_conv = "dm:%s:%s" % tuple(sorted([a, b], key=str.encode, reverse=True))
        db.receipt("delivered", reversed_conv, [1])
        self.assertEqual(db.wait_event("error")["code"], "conv")
        da.expect_no_event(0.3, k="receipt")
        # the message is still queued for b: nothing was acknowledged for it
        self.assertEqual([e["seq"] for e in replay(db)], [1])

    def test_malformed_receipts(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        self.send(da, b, 1)
        db.wait_event("msg")
        topic = "chat/receipt"
        cases = [
            (b"\xff\x00", "cbor"),
            (b"", "cbor"),
            (cbor2.dumps([1, 2]), "cbor"),
            (cbor2.dumps({"s": "delivered", "conv": conv, "seqs": [1]}) + b"\x00", "cbor"),
            (cbor2.dumps({"s": "seen", "conv": conv, "seqs": [1]}), "field"),
            (cbor2.dumps({"s": b"read", "conv": conv, "seqs": [1]}), "field"),
            (cbor2.dumps({"s": "expired", "conv": conv, "seqs": [1]}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv, "seqs": [0]}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv, "seqs": [1, -1]}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv, "seqs": ["1"]}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv, "seqs": []}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv, "seqs": 1}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv, "seqs": list(range(1, 1002))}), "field"),
            (cbor2.dumps({"s": "read", "conv": conv}), "field"),
            (cbor2.dumps({"s": "read", "seqs": [1]}), "field"),
            (cbor2.dumps({"conv": conv, "seqs": [1]}), "field"),
            (cbor2.dumps({"s": "read", "conv": 5, "seqs": [1]}), "field"),
        ]
        for payload, code in cases:
            self.assertEqual(db.publish(topic, payload), 0)
            err = db.wait_event("error", timeout=3)
            self.assertEqual(err["code"], code, payload[:40])
            self.assertIsInstance(err["msg"], str)
        da.expect_no_event(0.3, k="receipt")
        # 1000 seqs is the most, and fine (unknown seqs are ignored)
        db.receipt("delivered", conv, list(range(1, 1001)))
        self.assert_receipt(da.wait_event("receipt"), conv, [1], "delivered", b)
        db.expect_no_event(0.2, k="error")
        self.assertTrue(self.broker.running)

    def test_ttl_expired_to_sender_and_never_delivered(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        ta2 = self.broker.add_device(a, "laptop")   # offline sender device
        tb = self.broker.add_device(b, "phone")
        t0 = now_ms()
        da.send_dm(b, 1, body=b"short", ttl=1)
        da.send_dm(b, 2, body=b"long", ttl=3600)
        self.assertEqual(da.wait_event("sent", cid=1)["seq"], 1)
        self.assertEqual(da.wait_event("sent", cid=2)["seq"], 2)
        ev = da.wait_event("receipt", s="expired", timeout=5)
        self.assert_receipt(ev, conv, [1], "expired", b, t0)
        self.assertGreaterEqual(ev["ts"], t0 + 1000 - 50)
        da.expect_no_event(0.3, k="receipt")
        # b never sees the expired message, only the other
        db = self.reconnect(b, "phone", tb)
        got = replay(db)
        self.assertEqual([(e["seq"], e["body"]) for e in got], [(2, b"long")])
        # the offline sender device gets the expired receipt, and no copy of it
        da2 = self.reconnect(a, "laptop", ta2)
        got = replay(da2)
        self.assertEqual(sorted((e["k"], e.get("seq"), e.get("s")) for e in got),
                         [("msg", 2, None), ("receipt", None, "expired")])
        # a retry of the expired cid is a new message (its dedup entry went with it)
        da.send_dm(b, 1, body=b"again")
        self.assertEqual(da.wait_event("sent", cid=1)["seq"], 3)

    def test_ttl_delivered_messages_do_not_expire_loudly(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        self.broker.add_device(b, "laptop")         # offline, never gets it
        da.send_dm(b, 1, body=b"x", ttl=1)
        db.wait_event("msg")
        db.receipt("delivered", conv, [1])
        self.assert_receipt(da.wait_event("receipt"), conv, [1], "delivered", b)
        # b got it (on one device): no "expired" by b when it goes.
        # (Regression guard, reported bug: the sweep reported an expired receipt
        # for every user with any device that still had the message queued,
        # even when the user's state was already delivered; the store fix,
        # only_unreached() in store/expiry.c, was in the working tree, not
        # yet committed, when this test was written.)
        da.expect_no_event(2.6, k="receipt")


class OfflineTtlTest(ReceiptCase):
    broker_options = dict(ReceiptCase.broker_options, offline_ttl=1)

    def test_offline_ttl_caps_message_ttl(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        tb = self.broker.add_device(b, "phone")
        t0 = now_ms()
        da.send_dm(b, 1, body=b"capped", ttl=3600)
        da.send_dm(b, 2, body=b"default")
        self.assertEqual(da.wait_event("sent", cid=2)["seq"], 2)
        got = {}
        for _ in range(2):
            ev = da.wait_event("receipt", timeout=5)
            self.assertEqual((ev["s"], ev["conv"], ev["by"]), ("expired", conv, b))
            self.assertGreaterEqual(ev["ts"], t0 + 1000 - 50)
            for s in ev["seqs"]:
                got[s] = got.get(s, 0) + 1
        self.assertEqual(got, {1: 1, 2: 1})
        db = self.reconnect(b, "phone", tb)
        self.assertEqual(replay(db), [])


if __name__ == "__main__":
    main()
