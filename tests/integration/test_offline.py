# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Offline queues and chat/sync: everything sent to an offline device is
replayed in order, then {"k":"sync","done":true}; a delivered receipt takes
messages out of the device's queue; large backlogs are replayed through a
window of unacknowledged messages (plugin_opt_inflight_window, 100 here) that
delivered receipts refill; what arrives during a replay comes after the
backlog. Quota refusal (plugin_opt_max_queue) has its own broker below."""

import cbor2

from chatlib import V311, V5, ChatTestCase, Device, conv_of, main, now_ms, uniq

WINDOW = 100


def replay(dev, ack_every=None, timeout=10.0):
    """Reads dev's inbox until sync done; returns the events before it. With
    ack_every, sends a delivered receipt each time that many msgs arrived
    (and for the rest at the end)."""
    got, pending = [], []
    while True:
        ev = dev.wait_event(timeout=timeout)
        if ev.get("k") == "sync":
            if ev.get("done") is not True:
                raise AssertionError("sync event without done: %r" % ev)
            break
        got.append(ev)
        if ev.get("k") == "msg" and ack_every:
            pending.append(ev)
            if len(pending) >= ack_every:
                ack(dev, pending)
                pending = []
    if pending:
        ack(dev, pending)
    return got


def ack(dev, msgs, s="delivered"):
    """Delivered receipts for msg events, one per conversation."""
    by_conv = {}
    for m in msgs:
        by_conv.setdefault(m["conv"], []).append(m["seq"])
    for conv, seqs in by_conv.items():
        for i in range(0, len(seqs), 1000):
            dev.receipt(s, conv, seqs[i:i + 1000])


def flood(da, peer, n, first_cid=1, body=lambda i: b"m%d" % i, timeout=30.0):
    """n sends from da to peer without waiting for each PUBACK; waits for all
    of them (and all the sent events), asserts they were accepted in order."""
    mids = []
    for i in range(first_cid, first_cid + n):
        info = da.c.publish("%s/dm/%s" % (da.prefix, peer),
                            cbor2.dumps({"cid": i, "body": body(i)}), qos=1)
        mids.append(info.mid)
    with da.c.ack_cond:
        ok = da.c.ack_cond.wait_for(lambda: all(m in da.c.ack_codes for m in mids), timeout)
        codes = [da.c.ack_codes.pop(m, None) for m in mids]
    if not ok:
        raise AssertionError("only %d of %d PUBACKs" % (sum(c is not None for c in codes), n))
    seqs = [da.wait_event("sent", timeout=timeout)["seq"] for _ in range(n)]
    return codes, seqs


class OfflineTest(ChatTestCase):
    # one device loads big backlogs at full speed: the send limit is not under test.
    # What stays queued here is driven by app receipts (and replays by chat/sync);
    # on the patched broker a device's PUBACK would deliver each message first
    # (delivered_on_puback, default on there; test_broker_events tests that).
    broker_options = {"inflight_window": WINDOW, "send_rate": 0, "delivered_on_puback": "false"}

    def offline(self, user, dev):
        """Registers U/D and returns its token; the device stays offline."""
        return self.broker.add_device(user, dev)

    def online(self, user, dev, token, proto=V311):
        """Connects U/D; the replay its subscription starts is read by the
        test (begin_replay, then replay()): backlogs here exceed the window."""
        d = Device(self.broker, user, dev, token, protocol=proto, wait_replay=False)
        d.connect()
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def test_sync_empty_queue_only_done(self):
        b = uniq("b")
        db = self.dev(b, "phone")
        self.assertEqual(db.sync(), 0)
        self.assertEqual(replay(db), [])
        db.expect_no_event(0.2)

    def test_offline_then_sync_all_in_order_then_done(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        self.offline(a, "laptop")            # the sender's other device, offline
        ta2 = self.offline(a, "tablet")
        tb = self.offline(b, "phone")
        tb2 = self.offline(b, "tablet")
        t0 = now_ms()
        for i in range(1, 6):
            self.assertEqual(da.send_dm(b, 100 + i, body=b"m%d" % i, type=i), 0)
            self.assertEqual(da.wait_event("sent", cid=100 + i)["seq"], i)
        t1 = now_ms()
        db = self.online(b, "phone", tb)      # its subscription starts the replay
        db.begin_replay()
        got = replay(db)
        self.assertEqual([(e["k"], e["seq"]) for e in got], [("msg", i) for i in range(1, 6)])
        for i, e in enumerate(got, start=1):
            self.assertEqual(e["conv"], conv)
            self.assertEqual(e["from"], a + "/phone")
            self.assertEqual(e["body"], b"m%d" % i)
            self.assertEqual(e["type"], i)
            self.assertNotIn("cid", e)
            self.assertTrue(t0 - 2000 <= e["ts"] <= t1 + 2000, e)
        db.expect_no_event(0.2)
        # the other device of b has its own queue, untouched by b/phone's sync
        db2 = self.online(b, "tablet", tb2)
        db2.begin_replay()
        self.assertEqual([e["seq"] for e in replay(db2)], [1, 2, 3, 4, 5])
        # the sender's other device gets its copies, with cid
        da2 = self.online(a, "tablet", ta2)
        da2.begin_replay()
        own = replay(da2)
        self.assertEqual([(e["seq"], e["cid"]) for e in own], [(i, 100 + i) for i in range(1, 6)])

    def test_delivered_receipt_empties_queue(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        tb = self.offline(b, "phone")
        for i in range(1, 6):
            da.send_dm(b, i, body=b"x%d" % i)
        self.assertEqual(da.wait_event("sent", cid=5)["seq"], 5)
        db = self.online(b, "phone", tb)
        db.begin_replay()
        self.assertEqual([e["seq"] for e in replay(db)], [1, 2, 3, 4, 5])
        # acknowledging some: the others are still queued
        self.assertEqual(db.receipt("delivered", conv, [1, 2]), 0)
        db.begin_replay()
        self.assertEqual([e["seq"] for e in replay(db)], [3, 4, 5])
        # "read" implies delivered
        db.receipt("read", conv, [3])
        db.receipt("delivered", conv, [4, 5])
        db.begin_replay()
        self.assertEqual(replay(db), [], "a second sync after the receipts must return only done")
        # and after a reconnect too
        db.close()
        db = self.online(b, "phone", tb)
        db.begin_replay()
        self.assertEqual(replay(db), [])

    def test_live_messages_stay_queued_until_delivered(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        da.send_dm(b, 1, body=b"live")
        self.assertEqual(db.wait_event("msg")["seq"], 1)
        # no receipt yet: a sync replays it
        db.begin_replay()
        got = replay(db)
        self.assertEqual([(e["seq"], e["body"]) for e in got], [(1, b"live")])
        db.receipt("delivered", conv, [1])
        db.begin_replay()
        self.assertEqual(replay(db), [])

    def test_big_backlog_through_window_in_order(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        tb = self.offline(b, "phone")
        n = 2000
        codes, seqs = flood(da, b, n)
        self.assertEqual(codes, [0] * n)
        self.assertEqual(seqs, list(range(1, n + 1)))
        db = self.online(b, "phone", tb)
        db.begin_replay()
        got = replay(db, ack_every=50, timeout=10)
        self.assertEqual(len(got), n)
        self.assertEqual([e["seq"] for e in got], list(range(1, n + 1)))
        self.assertEqual([e["body"] for e in got], [b"m%d" % i for i in range(1, n + 1)])
        self.assertTrue(all(e["conv"] == conv for e in got))
        db.begin_replay()
        self.assertEqual(replay(db), [])

    def test_no_acks_stalls_at_window_then_live_after_backlog(self):
        # On the patched broker the client's PUBACKs free the window: no stall
        # (test_broker_events.test_backlog_by_subscribing_alone).
        self.require_stock()
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da = self.dev(a, "phone")
        tb = self.offline(b, "phone")
        n = 250
        flood(da, b, n)
        db = self.online(b, "phone", tb)
        db.begin_replay()
        first = [db.wait_event("msg", timeout=10) for _ in range(WINDOW)]
        self.assertEqual([e["seq"] for e in first], list(range(1, WINDOW + 1)))
        # the window is full: nothing more, and no done, until receipts
        db.expect_no_event(0.6)
        # new messages during the replay wait behind the backlog
        for i in range(3):
            self.assertEqual(da.send_dm(b, 1000 + i, body=b"new%d" % i), 0)
        self.assertEqual([da.wait_event("sent", cid=1000 + i)["seq"] for i in range(3)],
                         [n + 1, n + 2, n + 3])
        db.expect_no_event(0.3)
        # acknowledging in batches refills the window
        ack(db, first[:50])
        more = [db.wait_event("msg", timeout=5) for _ in range(50)]
        self.assertEqual([e["seq"] for e in more], list(range(WINDOW + 1, WINDOW + 51)))
        db.expect_no_event(0.3)               # window full again (50 + 50 outstanding)
        ack(db, first[50:] + more)
        tail = replay(db, ack_every=25)
        self.assertEqual([e["seq"] for e in tail], list(range(WINDOW + 51, n + 4)))
        self.assertEqual([e["body"] for e in tail[-3:]], [b"new0", b"new1", b"new2"])
        # after done the device is live again
        da.send_dm(b, 2000, body=b"after")
        ev = db.wait_event("msg")
        self.assertEqual((ev["seq"], ev["body"]), (n + 4, b"after"))
        db.receipt("delivered", conv, [n + 4])
        db.begin_replay()
        self.assertEqual(replay(db), [])

    def test_window_full_at_the_queue_end(self):
        # The pump looks one entry past each slice (plugin/sync.c): a backlog
        # that ends exactly where the window fills gets its done at once; one
        # entry more, and done waits for the receipt that makes room for it.
        self.require_stock()
        da = self.dev(uniq("a"), "phone")
        for extra in (0, 1):
            b = uniq("b")
            tb = self.offline(b, "phone")
            codes, _ = flood(da, b, WINDOW + extra, first_cid=1000 * (extra + 1))
            self.assertEqual(codes, [0] * (WINDOW + extra))
            db = self.online(b, "phone", tb)
            db.begin_replay()
            first = [db.wait_event("msg", timeout=10) for _ in range(WINDOW)]
            self.assertEqual([e["seq"] for e in first], list(range(1, WINDOW + 1)))
            if extra:
                db.expect_no_event(0.6)       # the window is full, and more is queued
                ack(db, first[:1])
                self.assertEqual(db.wait_event("msg", timeout=5)["seq"], WINDOW + 1)
            self.assertEqual(db.wait_event("sync", timeout=5)["done"], True)
            db.expect_no_event(0.3)

    def test_receipt_for_replaying_sender_comes_after_backlog(self):
        self.require_stock()  # a stalled replay needs a window PUBACKs do not free
        a, b, c = uniq("a"), uniq("b"), uniq("c")
        dc = self.dev(c, "phone")
        ta = self.offline(a, "phone")
        db = self.dev(b, "phone")
        n = WINDOW + 20
        flood(dc, a, n)
        da = self.online(a, "phone", ta)
        da.begin_replay()
        first = [da.wait_event("msg", timeout=10) for _ in range(WINDOW)]
        self.assertEqual([e["seq"] for e in first], list(range(1, WINDOW + 1)))
        # a sends while its replay is stalled: its `sent`, and b's receipt,
        # wait behind a's backlog (flow window, docs/PROTOCOL.md)
        self.assertEqual(da.send_dm(b, 1, body=b"hi"), 0)
        db.wait_event("msg")
        db.receipt("delivered", conv_of(a, b), [1])
        da.expect_no_event(0.4, k="receipt")
        ack(da, first)
        rest = replay(da, ack_every=10)
        self.assertEqual([e["k"] for e in rest], ["msg"] * (n - WINDOW) + ["sent", "receipt"])
        self.assertEqual([e["seq"] for e in rest[:-1]], list(range(WINDOW + 1, n + 1)) + [1])
        self.assertEqual((rest[-1]["s"], rest[-1]["seqs"], rest[-1]["by"]), ("delivered", [1], b))
        # replayed receipts are gone; the device is live again
        db.receipt("read", conv_of(a, b), [1])
        self.assertEqual(da.wait_event("receipt")["s"], "read")
        da.begin_replay()
        self.assertEqual(replay(da), [])

    def test_resync_starts_over(self):
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        tb = self.offline(b, "phone")
        for i in range(1, 4):
            da.send_dm(b, i, body=b"r%d" % i)
        da.wait_event("sent", cid=3)
        db = self.online(b, "phone", tb)
        db.begin_replay()
        self.assertEqual([e["seq"] for e in replay(db)], [1, 2, 3])
        # no receipts: everything is still queued; a new sync replays it all
        db.begin_replay()
        self.assertEqual([e["seq"] for e in replay(db)], [1, 2, 3])

    def test_several_conversations_in_enqueue_order(self):
        a, c, b = uniq("a"), uniq("c"), uniq("b")
        da = self.dev(a, "phone")
        dc = self.dev(c, "phone")
        tb = self.offline(b, "phone")
        order = []
        for i in range(3):
            da.send_dm(b, i, body=b"a%d" % i)
            order.append((conv_of(a, b), da.wait_event("sent", cid=i)["seq"]))
            dc.send_dm(b, i, body=b"c%d" % i)
            order.append((conv_of(c, b), dc.wait_event("sent", cid=i)["seq"]))
        db = self.online(b, "phone", tb)
        db.begin_replay()
        got = replay(db, ack_every=2)
        self.assertEqual([(e["conv"], e["seq"]) for e in got], order)
        db.begin_replay()
        self.assertEqual(replay(db), [])


class QuotaTest(ChatTestCase):
    # the quota under test (default 100000), small enough to fill. It counts
    # every queued entry, receipt events included (docs/PROTOCOL.md): on the
    # patched broker b's PUBACKs would queue receipts for a's offline laptop
    # between the sends, at times the test does not control.
    broker_options = {"max_queue": 3, "delivered_on_puback": "false"}

    def test_over_quota_refused_then_works_after_acks(self):
        a, b = uniq("a"), uniq("b")
        da5 = self.dev(a, "v5", protocol=V5)
        tb = self.broker.add_device(b, "phone")
        for i in range(1, 4):
            self.assertIn(da5.send_dm(b, i, body=b"q%d" % i), (0x00, 0x10))
            self.assertEqual(da5.wait_event("sent", cid=i)["seq"], i)
        # the fourth: refused, nothing stored
        self.assertEqual(da5.send_dm(b, 4, body=b"q4"), 0x87)
        err = da5.wait_event("error")
        self.assertEqual(err["code"], "quota")
        self.assertEqual(err.get("cid"), 4)
        self.assertIsInstance(err.get("msg"), str)
        da5.expect_no_event(0.2, k="sent")
        # an MQTT 3.1.1 sender gets the error event (its PUBACK cannot say no)
        d3 = Device(self.broker, a, "v3", self.broker.add_device(a, "v3"))
        # (a's new device has an empty queue; b's is still full)
        d3.connect()
        self.addCleanup(d3.close)
        self.assertEqual(d3.send_dm(b, 5, body=b"q5"), 0)
        self.assertEqual(d3.wait_event("error")["code"], "quota")
        # b syncs: exactly the three stored messages
        db = Device(self.broker, b, "phone", tb, wait_replay=False)
        db.connect()                          # its subscription starts the replay
        self.addCleanup(db.close)
        db.begin_replay()
        got = replay(db)
        self.assertEqual([(e["seq"], e["body"]) for e in got], [(1, b"q1"), (2, b"q2"), (3, b"q3")])
        # still full until acknowledged
        self.assertEqual(da5.send_dm(b, 6, body=b"q6"), 0x87)
        self.assertEqual(da5.wait_event("error")["code"], "quota")
        ack(db, got)
        # now there is room; the next message is seq 4 (nothing refused was stored)
        self.assertIn(da5.send_dm(b, 4, body=b"q4 again"), (0x00, 0x10))
        self.assertEqual(da5.wait_event("sent", cid=4)["seq"], 4)
        ev = db.wait_event("msg")
        self.assertEqual((ev["seq"], ev["body"]), (4, b"q4 again"))

    def test_quota_counts_each_device(self):
        # the sender's own other device, offline, has a queue too
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone", protocol=V5)
        self.broker.add_device(a, "laptop")
        db = self.dev(b, "phone")
        for i in range(1, 4):
            self.assertIn(da.send_dm(b, i, body=b"x"), (0x00, 0x10))
            self.assertEqual(db.wait_event("msg")["seq"], i)
        db.receipt("delivered", conv_of(a, b), [1, 2, 3])
        da.wait_event("receipt", s="delivered", seqs=[1, 2, 3])
        # b acknowledged everything, a/laptop holds three copies: full
        self.assertEqual(da.send_dm(b, 4, body=b"x"), 0x87)
        self.assertEqual(da.wait_event("error")["code"], "quota")
        db.expect_no_event(0.2, k="msg")


class OfflineSyncWritesTest(OfflineTest):
    """The same with plugin_opt_sync_writes true: on the patched broker,
    group commit (plugin/commit.c) holds PUBACKs and events behind shared
    fsyncs; on stock mosquitto every write is fsync'd. Nothing above may
    change."""
    broker_options = dict(OfflineTest.broker_options, sync_writes="true")


if __name__ == "__main__":
    main()
