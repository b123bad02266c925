# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""A PUBACK means stored: kill -9 right after it, restart, and the store still
has the message (the conversation's seq continues; a retry of the same cid
answers with the original seq)."""

from chatlib import V311, V5, ChatTestCase, Device, conv_of, main, uniq


class DurabilityTest(ChatTestCase):

    def reconnect(self, user, dev, token, proto=V311):
        d = Device(self.broker, user, dev, token, protocol=proto)
        d.connect()
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def test_store_before_puback(self):
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        tb = self.broker.add_device(b, "phone")
        da = self.reconnect(a, "phone", ta)
        db = self.reconnect(b, "phone", tb)
        for i in range(1, 6):
            self.assertEqual(da.send_dm(b, i, body=b"m%d" % i), 0)
        # kill at once after the fifth PUBACK, before anything else happens
        self.broker.kill9()
        self.broker.start()
        da = self.reconnect(a, "phone", ta)
        db = self.reconnect(b, "phone", tb)
        # b's subscription replays what is still queued for it: each stored
        # message once, with its own body (all five on stock mosquitto; the
        # patched broker's PUBACK = delivered may have taken some before the
        # kill)
        replayed = [(e["seq"], e["body"]) for e in db.events() if e.get("k") == "msg"]
        if self.broker.delivered_on_puback:
            self.assertEqual(replayed, [(i, b"m%d" % i) for i in range(1, 6)
                                        if i in dict(replayed)])
        else:
            self.assertEqual(replayed, [(i, b"m%d" % i) for i in range(1, 6)])
        # tokens survived; a retry of cid 5 is recognised with its seq
        da.send_dm(b, 5, body=b"m5 again")
        s = da.wait_event("sent", cid=5)
        self.assertEqual((s["conv"], s["seq"]), (conv_of(a, b), 5))
        # the next message continues the sequence
        da.send_dm(b, 6, body=b"m6")
        self.assertEqual(da.wait_event("sent", cid=6)["seq"], 6)
        ev = db.wait_event("msg", seq=6)
        self.assertEqual(ev["body"], b"m6")
        # the retry was not stored or delivered again
        db.expect_no_event(0.3, k="msg", seq=5)

    def test_qos2_stored_before_pubrec(self):
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        self.broker.add_device(b, "phone")
        da = self.reconnect(a, "phone", ta, V5)
        self.assertLess(da.send_dm(b, b"q2", body=b"x", qos=2), 0x80)
        self.broker.kill9()
        self.broker.start()
        da = self.reconnect(a, "phone", ta, V5)
        da.send_dm(b, b"next", body=b"y", qos=2)
        self.assertEqual(da.wait_event("sent", cid=b"next")["seq"], 2)

    def test_removal_survives_restart(self):
        u = uniq("gone")
        tok = self.broker.add_device(u, "phone")
        keep = self.broker.add_device(u, "laptop")
        rc, _, err = self.broker.chatctl("device", "remove", u, "phone")
        self.assertEqual(rc, 0, err)
        self.broker.kill9()
        self.broker.start()
        c = self.client(client_id=u + "/phone", username=u + "/phone", password=tok)
        self.assertEqual(c.try_connect(), 5)
        self.reconnect(u, "laptop", keep)

    def test_clean_restart_keeps_everything(self):
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        tb = self.broker.add_device(b, "phone")
        da = self.reconnect(a, "phone", ta)
        da.send_dm(b, 1, body=b"x")
        da.wait_event("sent")
        with open(self.broker.token_file) as f:
            admin_token = f.read()
        self.broker.restart()
        with open(self.broker.token_file) as f:
            self.assertEqual(f.read(), admin_token, "admin token changed across restart")
        da = self.reconnect(a, "phone", ta)
        db = self.reconnect(b, "phone", tb)
        # the message queued before the restart is replayed to b's first
        # subscription
        self.assertEqual([(e["seq"], e["body"]) for e in db.events() if e.get("k") == "msg"],
                         [(1, b"x")])
        da.send_dm(b, 2, body=b"y")
        self.assertEqual(db.wait_event("msg")["seq"], 2)
        # chatctl still works with the same admin token
        rc, out, err = self.broker.chatctl("device", "add", uniq("x"), "d")
        self.assertEqual(rc, 0, err)


class DurabilitySyncWritesTest(DurabilityTest):
    """The same with plugin_opt_sync_writes true: on the patched broker,
    group commit (plugin/commit.c) holds PUBACKs and events behind shared
    fsyncs; on stock mosquitto every write is fsync'd. Nothing above may
    change."""
    broker_options = dict(DurabilityTest.broker_options, sync_writes="true")


if __name__ == "__main__":
    main()
