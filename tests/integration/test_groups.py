# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Groups through a real broker: ctl group.create/add/remove/leave/admin with
their `group` events in the conversation's order, fan-out of chat/group/{G}
to every device of every member, non-members refused, a removed member cut
off (live and on sync), chatctl group create over $CONTROL, groups across a
restart."""

import cbor2

from chatlib import V5, ChatTestCase, Device, main, uniq


def replay(dev, timeout=5.0):
    """The events a sync replays, up to (not including) sync done."""
    dev.begin_replay()
    got = []
    while True:
        ev = dev.wait_event(timeout=timeout)
        if ev.get("k") == "sync" and ev.get("done") is True:
            return got
        got.append(ev)


def trace(events):
    """(kind or group op, seq) of each event."""
    return [(e["op"] if e["k"] == "group" else e["k"], e.get("seq")) for e in events]


class GroupTest(ChatTestCase):

    def reconnect(self, user, dev, token, **kw):
        # the replay its subscription starts is read by replay()
        kw.setdefault("wait_replay", False)
        d = Device(self.broker, user, dev, token, **kw)
        d.connect()
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def test_membership_events_in_order(self):
        g = uniq("g")
        a, b, c = uniq("a"), uniq("b"), uniq("c")
        da, db, dc = self.dev(a, "phone"), self.dev(b, "phone"), self.dev(c, "phone")
        r = da.ctl("group.create", 1, gid=g, name="Friends", members=[b])
        self.assertEqual((r["ok"], r["gid"], r["seq"]), (True, g, 1), r)
        for d in (da, db):
            ev = d.wait_event("group", op="created")
            self.assertEqual((ev["gid"], ev["conv"], ev["seq"], ev["by"], ev["members"], ev["name"]),
                             (g, "g:" + g, 1, a, [a, b], "Friends"))
        dc.expect_no_event(0.2, k="group")
        # only admins add; the admin adds c
        r = db.ctl("group.add", 2, gid=g, members=[c])
        self.assertEqual((r["ok"], r["code"]), (False, "admin"), r)
        self.assertTrue(da.ctl("group.add", 3, gid=g, members=[c])["ok"])
        # a message, then more changes: one order for everyone
        self.assertEqual(db.send_group(g, 1, body=b"hello"), 0)
        self.assertEqual(db.wait_event("sent", cid=1)["seq"], 3)
        self.assertTrue(da.ctl("group.admin", 4, gid=g, user=c)["ok"])
        self.assertTrue(dc.ctl("group.remove", 5, gid=g, members=[b])["ok"])
        r = dc.ctl("group.leave", 6, gid=g)
        self.assertEqual((r["ok"], r["seq"]), (True, 6), r)
        want = {   # ("created", 1) was consumed above
            da: [("added", 2), ("msg", 3), ("admin", 4), ("removed", 5), ("left", 6)],
            db: [("added", 2), ("admin", 4), ("removed", 5)],
            dc: [("added", 2), ("msg", 3), ("admin", 4), ("removed", 5), ("left", 6)],
        }
        for d, expected in want.items():
            got = []
            while len(got) < len(expected):
                ev = d.wait_event(timeout=3)
                if ev["k"] in ("group", "msg"):
                    got.append(ev)
            self.assertEqual(trace(got), expected, d.addr)
            d.expect_no_event(0.2, k="group")
        info = da.ctl("group.info", 7, gid=g)
        self.assertEqual((info["members"], info["admins"]), ([a], [a]))

    def test_fanout_to_every_member_device(self):
        g = uniq("g")
        a, b, c = uniq("a"), uniq("b"), uniq("c")
        a1, a2 = self.dev(a, "phone"), self.dev(a, "laptop")
        b1, b2 = self.dev(b, "phone"), self.dev(b, "tablet")
        c1 = self.dev(c, "phone")
        self.assertTrue(a1.ctl("group.create", 1, gid=g, members=[b, c])["ok"])
        self.assertEqual(a1.send_group(g, 10, body=b"to all"), 0)
        sent = a1.wait_event("sent", cid=10)
        self.assertEqual((sent["conv"], sent["seq"]), ("g:" + g, 2))
        for d in (a2, b1, b2, c1):
            ev = d.wait_event("msg", conv="g:" + g)
            self.assertEqual((ev["seq"], ev["from"], ev["body"]), (2, a1.addr, b"to all"))
            self.assertEqual("cid" in ev, d is a2)
        a1.expect_no_event(0.2, k="msg")
        # bodies: exactly every member device but the sender's
        devs = {}
        for u in (a, b, c):
            devs[u] = a1.ctl("devices", 20 + len(devs), user=u)["devices"]
        names = ["%s/%s" % (u, d) for u in devs for d in devs[u] if (u, d) != (a, "phone")]
        self.assertEqual(len(names), 4)
        a1.send_group(g, 11, bodies={n: n.encode() for n in names[:3]})
        err = a1.wait_event("error", code="devices")
        self.assertEqual((err["missing"], err["extra"]), ([names[3]], []))
        self.assertEqual(a1.send_group(g, 12, bodies={n: n.encode() for n in names}), 0)
        for d in (a2, b1, b2, c1):
            self.assertEqual(d.wait_event("msg", seq=3)["body"], d.addr.encode())

    def test_non_member_refused(self):
        g = uniq("g")
        a, x = uniq("a"), uniq("x")
        da = self.dev(a, "phone")
        dx = self.dev(x, "phone", protocol=V5)
        self.assertTrue(da.ctl("group.create", 1, gid=g)["ok"])
        self.assertEqual(dx.send_group(g, 1, body=b"let me in"), 0x87)
        err = dx.wait_event("error", cid=1)
        self.assertEqual(err["code"], "member")
        dx.send_group(uniq("nosuch"), 2, body=b"x")
        self.assertEqual(dx.wait_event("error", cid=2)["code"], "member")
        r = dx.ctl("group.add", 3, gid=g, members=[x])
        self.assertEqual((r["ok"], r["code"]), (False, "member"))
        da.expect_no_event(0.3, k="msg")
        # the group's seqs were not used by the refusals
        self.assertEqual(da.send_group(g, 1, body=b"mine"), 0)
        self.assertEqual(da.wait_event("sent", cid=1)["seq"], 2)

    def test_removed_member_cut_off(self):
        g = uniq("g")
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        db = self.dev(b, "phone")
        tb2 = self.broker.add_device(b, "tablet")          # offline throughout
        self.assertTrue(da.ctl("group.create", 1, gid=g, members=[b])["ok"])
        da.send_group(g, 1, body=b"before")
        db.wait_event("msg", seq=2)
        r = da.ctl("group.remove", 2, gid=g, members=[b])
        self.assertEqual(r["seq"], 3)
        ev = db.wait_event("group", op="removed")
        self.assertEqual((ev["members"], ev["seq"]), ([b], 3))
        da.send_group(g, 2, body=b"after")
        self.assertEqual(da.wait_event("sent", cid=2)["seq"], 4)
        db.expect_no_event(0.5, k="msg")
        db.send_group(g, 1, body=b"still here?")
        self.assertEqual(db.wait_event("error", cid=1)["code"], "member")
        # the offline device gets everything up to its removal, nothing after
        dt = self.reconnect(b, "tablet", tb2)
        self.assertEqual(trace(replay(dt)), [("created", 1), ("msg", 2), ("removed", 3)])
        # it can still clear its queue (on the patched broker its PUBACKs of
        # the replay did); then it has nothing more
        if not self.broker.delivered_on_puback:
            dt.receipt("delivered", "g:" + g, [1, 2, 3])
        self.assertEqual(replay(dt), [])
        dt.receipt("delivered", "g:" + g, [4])
        self.assertEqual(dt.wait_event("error")["code"], "conv")

    def test_receipts_in_groups(self):
        g = uniq("g")
        a, b, c = uniq("a"), uniq("b"), uniq("c")
        da, db, dc = self.dev(a, "phone"), self.dev(b, "phone"), self.dev(c, "phone")
        self.assertTrue(da.ctl("group.create", 1, gid=g, members=[b, c])["ok"])
        da.send_group(g, 1, body=b"x")
        if self.broker.delivered_on_puback:
            # the patched broker: each member's PUBACK of the msg is its ✓✓
            got = {da.wait_event("receipt", s="delivered")["by"] for _ in range(2)}
            self.assertEqual(got, {b, c})
        db.receipt("read", "g:" + g, [2])
        ev = da.wait_event("receipt")
        self.assertEqual((ev["conv"], ev["seqs"], ev["s"], ev["by"]), ("g:" + g, [2], "read", b))
        dc.receipt("delivered", "g:" + g, [1, 2])     # 1 is the created event: no state
        if not self.broker.delivered_on_puback:      # (there a repeat: nothing new)
            ev = da.wait_event("receipt")
            self.assertEqual((ev["seqs"], ev["s"], ev["by"]), ([2], "delivered", c))
        da.expect_no_event(0.3, k="receipt")

    def test_chatctl_group_create_and_restart(self):
        g = uniq("g")
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        db = self.dev(b, "phone")
        rc, out, err = self.broker.chatctl("group", "create", g, "--owner", a, "--members", b)
        self.assertEqual(rc, 0, err)
        ev = db.wait_event("group", op="created")
        self.assertEqual((ev["by"], ev["members"], ev["seq"]), (a, [a, b], 1))
        rc, out, err = self.broker.chatctl("group", "create", g, "--owner", a)
        self.assertNotEqual(rc, 0)
        self.assertIn("exists", err)
        rc, out, err = self.broker.chatctl("group", "create", uniq("g"), "--owner", uniq("nobody"))
        self.assertNotEqual(rc, 0)
        db.close()
        self.broker.restart()
        db = self.reconnect(b, "phone", db.token)
        da = self.reconnect(a, "phone", ta)
        r = db.ctl("group.add", 1, gid=g, members=[b])
        self.assertEqual(r["code"], "admin")                # the owner is the admin
        self.assertEqual(da.send_group(g, 1, body=b"after restart"), 0)
        self.assertEqual(db.wait_event("msg")["seq"], 2)


class GroupSyncWritesTest(GroupTest):
    """The same with plugin_opt_sync_writes true: on the patched broker,
    group commit (plugin/commit.c) holds PUBACKs and events behind shared
    fsyncs; on stock mosquitto every write is fsync'd. Nothing above may
    change."""
    broker_options = dict(GroupTest.broker_options, sync_writes="true")


if __name__ == "__main__":
    main()
