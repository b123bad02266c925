# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Protocol v2 through a real broker (docs/PROTOCOL.md, "Capabilities"):
a device declares capabilities (chat/ctl caps, chat/sync caps), they stay
with the device across reconnects and broker restarts and go with it;
`sents` gathers the device's confirmations (and on the patched broker
merges the peer's PUBACK into them), `rcpts` coalesces receipts; devices
that declared nothing see exactly the v1 events."""

import time

import cbor2

from chatlib import Broker, ChatTestCase, Device, conv_of, main, uniq

V2 = ["sents", "rcpts", "batch"]


def counters(broker):
    rc, out, err = broker.chatctl("stats")
    if rc != 0:
        raise AssertionError("chatctl stats failed: %s" % err)
    return {k: int(v) for k, v in (l.split() for l in out.splitlines())}


class CapsTest(ChatTestCase):

    def test_declared_and_reported(self):
        a = uniq("cp")
        d = self.dev(a, "d", caps=["rcpts", "not-yet-invented", "sents"])
        r = d.caps_reply
        self.assertEqual(r["k"], "ctl")
        self.assertTrue(r["ok"])
        self.assertEqual(r["caps"], ["sents", "rcpts"])
        srv = r["server"]
        self.assertEqual(srv["v"], 2)
        # the patched broker counts a msg's PUBACK as delivered (its default)
        self.assertIs(srv["puback_delivered"], self.broker.patched)
        self.assertEqual(srv["gather_ms"], 10)
        self.assertGreaterEqual(srv["replay_batch"], 1)
        # malformed: refused with field, nothing changes
        bad = d.ctl("caps", 2, caps="sents")
        self.assertFalse(bad["ok"])
        self.assertEqual(bad["code"], "field")
        self.assertEqual(d.ctl("caps", 3, caps=[])["caps"], [])

    def test_kept_across_reconnect_and_restart(self):
        # a broker of its own: it restarts
        b = Broker()
        self.addCleanup(b.cleanup)
        b.start()
        u = uniq("cr")
        tok = b.add_device(u, "d")
        tok2 = b.add_device(u, "e")
        d = Device(b, u, "d", tok, caps=V2).connect()
        e = Device(b, u, "e", tok2, caps=["sents"]).connect()
        d.close()
        e.close()
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"],
                          c["devices_caps_batch"]), (2, 1, 1))
        b.restart()
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"],
                          c["devices_caps_batch"]), (2, 1, 1))
        # and in effect: connected again without declaring, it gets sents
        p = uniq("cp")
        b.add_device(p, "d")
        d = Device(b, u, "d", tok).connect()
        d.send_dm(p, 1, body=b"after the restart")
        ev = d.wait_event()
        self.assertEqual(ev["k"], "sents", ev)
        self.assertEqual(ev["items"][0]["cid"], 1)
        d.close()
        # a device removed takes its capabilities along; added again, it has none
        rc, out, err = b.chatctl("device", "remove", u, "e")
        self.assertEqual(rc, 0, err)
        b.add_device(u, "e")
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"]), (1, 1))
        b.restart()
        self.assertEqual(counters(b)["devices_caps_sents"], 1)
        # chat/sync {caps}: set before its replay, which ends as always
        d = Device(b, u, "d", tok, subscribe=False).connect()
        d.publish("chat/sync", cbor2.dumps({"caps": ["rcpts"]}))
        d.wait_event("sync", done=True)
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"]), (0, 1))
        d.close()



def collect(dev, done, timeout=5.0):
    """Inbox events of dev, in order, until done(events) holds."""
    got = []
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("%s: gave up waiting; got %r" % (dev.addr, got))
        m = dev.wait_message(lambda m: m[0] == dev.inbox, left)
        if m is not None:
            got.append(m[1])
    return got


def confirmed(events):
    """(conv, seq) -> cid of every confirmation in events (sent or sents)."""
    out = {}
    for e in events:
        if e["k"] == "sent":
            out[(e["conv"], e["seq"])] = e["cid"]
        elif e["k"] == "sents":
            for it in e["items"]:
                out[(it["conv"], it["seq"])] = it["cid"]
    return out


def delivered_to(events, conv, seq):
    """The users whose delivery of (conv, seq) events told: dl, rcpts, receipt."""
    users = []
    for e in events:
        if e["k"] == "sents":
            for it in e["items"]:
                if (it["conv"], it["seq"]) == (conv, seq):
                    users += it.get("dl", [])
        elif e["k"] == "rcpts" and e["conv"] == conv and e["s"] == "delivered":
            for st in e["sets"]:
                if seq in st["seqs"]:
                    users += st["by"]
        elif e["k"] == "receipt" and e["conv"] == conv and e["s"] == "delivered" \
                and seq in e["seqs"]:
            users.append(e["by"])
    return users


def ack_all(dev, events):
    """An app's delivered receipts for the msg events (on the patched
    broker the PUBACKs did it already; a second one changes nothing)."""
    by_conv = {}
    for e in events:
        if e["k"] == "msg":
            by_conv.setdefault(e["conv"], []).append(e["seq"])
    for conv, seqs in by_conv.items():
        dev.receipt("delivered", conv, seqs)


class GatherTest(ChatTestCase):
    """sents and rcpts live, on the broker of the run (stock or patched)."""

    def test_order_kept(self):
        # a v2 device and a v1 peer answering at once: every event the v2
        # device gets comes after the confirmations of what it sent before
        a, b = uniq("oa"), uniq("ob")
        conv = conv_of(a, b)
        da = self.dev(a, "d", caps=V2)
        db = self.dev(b, "d")
        order = []
        for i in range(1, 21):
            da.send_dm(b, i, body=b"ping %d" % i)
            db.wait_event("msg")
            db.send_dm(a, 1000 + i, body=b"pong %d" % i)
            self.assertEqual(db.wait_event("sent", cid=1000 + i)["conv"], conv)
        got = collect(da, lambda ev: len(confirmed(ev)) == 20 and
                      sum(e["k"] == "msg" for e in ev) == 20)
        seen = set()
        for e in got:
            if e["k"] == "msg":
                # pong i (seq 2i) comes after ping i's confirmation (seq 2i - 1)
                self.assertIn(e["seq"] - 1, seen, got)
            for (c, q) in confirmed([e]):
                seen.add(q)
            order.append(e["k"])
        self.assertNotIn("sent", order)  # v2: no single confirmations

    def test_retry_confirmed_in_sents(self):
        a, b = uniq("ra"), uniq("rb")
        da = self.dev(a, "d", caps=V2)
        self.broker.add_device(b, "d")
        da.send_dm(b, b"c1", body=b"once")
        da.send_dm(b, b"c1", body=b"once")  # a retry: not stored again
        got = collect(da, lambda ev: sum(len(e["items"]) for e in ev if e["k"] == "sents") == 2)
        items = [it for e in got if e["k"] == "sents" for it in e["items"]]
        self.assertEqual([it["cid"] for it in items], [b"c1", b"c1"])
        self.assertEqual(items[0]["seq"], items[1]["seq"])

    def test_dl_merged_and_other_devices_told(self):
        # the sender's v1 device gets a receipt per delivery as before; the
        # v2 device learns each delivery exactly once, in its sents (dl) or
        # as a receipt; on the patched broker the peer's PUBACK is that
        # delivery and arrives within the window: merged
        a, b = uniq("ma"), uniq("mb")
        conv = conv_of(a, b)
        da = self.dev(a, "d", caps=V2)
        dt = self.dev(a, "t")
        db = self.dev(b, "d")
        n = 10
        for i in range(1, n + 1):
            da.send_dm(b, i, body=b"m%d" % i)
        msgs = collect(db, lambda ev: len(ev) == n)
        ack_all(db, msgs)
        seqs = [e["seq"] for e in msgs]

        def all_told(ev):
            return all(delivered_to(ev, conv, q) for q in seqs)
        got = collect(da, lambda ev: len(confirmed(ev)) == n and all_told(ev))
        for q in seqs:
            self.assertEqual(delivered_to(got, conv, q), [b], (q, got))
        merged = sum(b in it.get("dl", []) for e in got if e["k"] == "sents" for it in e["items"])
        if self.broker.patched:
            # each PUBACK comes within about a millisecond, the window is
            # 10 ms: nearly all merge on an idle machine (a loaded one may
            # let a few miss it; they came as receipts above)
            self.assertGreaterEqual(merged, 1, got)
        # the v1 device: msg copies, then a receipt per delivery
        tv = collect(dt, lambda ev: all(delivered_to(ev, conv, q) for q in seqs))
        self.assertEqual({e["k"] for e in tv}, {"msg", "receipt"})
        da.expect_no_event(timeout=0.3)

    def test_v1_devices_unchanged(self):
        a, b = uniq("va"), uniq("vb")
        conv = conv_of(a, b)
        da = self.dev(a, "d", caps=V2)
        db = self.dev(b, "d")
        db.send_dm(a, 1, body=b"hello")
        s = db.wait_event("sent", cid=1)
        self.assertEqual(set(s), {"k", "cid", "conv", "seq", "ts"})
        da.wait_event("msg")
        da.receipt("read", conv, [s["seq"]])
        # (on the patched broker da's PUBACK told a delivery before)
        r = db.wait_event("receipt", s="read")
        self.assertEqual((r["by"], r["seqs"], r["conv"]), (a, [s["seq"]], conv))
        self.assertEqual(set(r), {"k", "conv", "seqs", "s", "by", "ts"})


class WindowTest(ChatTestCase):
    """How many events a window saves, with a window long enough (200 ms
    instead of 10) that thirty Python clients on a loaded test machine
    answer within one or two of them: the counts below do not depend on
    the machine's speed."""

    broker_options = {"delivered_gather_ms": "200"}

    def test_group_of_30_rcpts(self):
        # 30 members deliver one message: the v2 sender hears it in a few
        # events (dl and rcpts sets), the v1 device in 30 receipts
        a = uniq("ga")
        members = [uniq("gm") for _ in range(30)]
        da = self.dev(a, "d", caps=V2)
        dt = self.dev(a, "t")
        devs = [self.dev(m, "d") for m in members]
        g = uniq("g")
        self.assertTrue(da.ctl("group.create", 1, gid=g, members=members)["ok"])
        for d in devs:
            d.wait_event("group")
        collect(da, lambda ev: any(e["k"] == "group" for e in ev))
        conv = "g:" + g
        da.send_group(g, 1, body=b"to all")
        for d in devs:
            ack_all(d, [d.wait_event("msg")])
        got = collect(da, lambda ev: len(confirmed(ev)) == 1 and
                      len(delivered_to(ev, conv, list(confirmed(ev).keys())[0][1])) == 30)
        seq = list(confirmed(got).keys())[0][1]
        self.assertEqual(sorted(delivered_to(got, conv, seq)), sorted(members))
        self.assertNotIn("receipt", [e["k"] for e in got])
        self.assertLessEqual(len(got), 6, got)  # a few windows, not 30 events
        tv = collect(dt, lambda ev: len(delivered_to(ev, conv, seq)) == 30)
        self.assertEqual(sum(e["k"] == "receipt" for e in tv), 30)
        # reads coalesce the same way
        for d in devs[:10]:
            d.receipt("read", conv, [seq], wait=False)
        got = collect(da, lambda ev: sum(len(st["by"]) for e in ev if e["k"] == "rcpts"
                                         for st in e["sets"]) == 10)
        self.assertTrue(all(e["k"] == "rcpts" and e["s"] == "read" for e in got), got)
        self.assertLessEqual(len(got), 3, got)


if __name__ == "__main__":
    main()
