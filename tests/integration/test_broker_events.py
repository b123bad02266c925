#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""What the broker-patches events add, against a real broker.

On the patched build (ctest label `patched`, CHAT_BROKER) with the plugin's
defaults: a device running nothing but an MQTT library gets ✓✓ through its
PUBACKs and its backlog by subscribing; app receipts and chat/sync still
work. On stock mosquitto: the plugin says it found no extra events, still
replays a backlog when a device subscribes to its inbox (the ACL check of
the SUBSCRIBE is the sign), and refuses to start when told to count PUBACKs
as delivered.
"""

import cbor2

from chatlib import (Broker, ChatTestCase, EVENTS_RE, V5, conv_of, main, uniq,
                     wait_until)


class BrokerEventsTest(ChatTestCase):
    # the plugin's defaults, but a flow window of 10 (default 400) so that a
    # backlog of a few dozen needs the client's PUBACKs to get through
    broker_options = {"replay_window": 10}

    def plain(self, user, dev, clean=True, subscribe=True, protocol=None):
        """U/D on a plain MQTT client: it subscribes to its inbox and
        PUBACKs what it gets (paho does), and never publishes a receipt or a
        sync."""
        token = self.broker.add_device(user, dev)
        return self.plain_again(user, dev, token, clean, subscribe, protocol)

    def plain_again(self, user, dev, token, clean=True, subscribe=True, protocol=None):
        addr = "%s/%s" % (user, dev)
        kw = {"protocol": protocol} if protocol else {}
        c = self.client(client_id=addr, username=addr, password=token, clean=clean,
                        decode=True, **kw)
        c.token = token
        c.connect()
        if subscribe:
            self.assertLess(c.subscribe("chat/inbox/" + addr, 1), 0x80)
        return c

    def events_of(self, c, n, timeout=5.0):
        got = []
        for _ in range(n):
            m = c.wait_message(timeout=timeout)
            self.assertIsNotNone(m, "after %r" % got)
            got.append(m[1])
        return got

    # ---- both brokers ----

    def test_events_logged_once(self):
        lines = [l for l in self.broker.log_text().splitlines() if EVENTS_RE.search(l)]
        self.assertEqual(len(lines), 1, lines)
        if self.broker.patched:
            self.assertIn("connect subscribe message_acked", lines[0])
            self.assertIn("delivered on PUBACK: on; auto replay: on", lines[0])
        else:
            self.assertIn("none", lines[0])

    def test_replay_by_subscribing_on_either_broker(self):
        """A plain client's SUBSCRIBE to its inbox replays its backlog, in
        order, then the end marker; once per connection, so a chat/sync
        afterwards is an ordinary second replay."""
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        token = self.broker.add_device(b, "phone")
        for i in range(1, 6):
            da.send_dm(b, i, body=b"q%d" % i)
        bob = self.plain_again(b, "phone", token)
        got = self.events_of(bob, 6)
        self.assertEqual([e.get("body") for e in got[:5]], [b"q%d" % i for i in range(1, 6)])
        self.assertEqual(got[5], {"k": "sync", "done": True})
        # subscribing again on the same connection starts nothing
        self.assertLess(bob.subscribe("chat/inbox/%s/phone" % b, 1), 0x80)
        self.assertIsNone(bob.wait_message(timeout=0.5))
        # an explicit sync still works (what is not delivered comes again)
        bob.publish("chat/sync", cbor2.dumps({}))
        again = self.events_of(bob, 6 if not self.broker.patched else 1)
        self.assertEqual(again[-1], {"k": "sync", "done": True})

    def test_options_true_need_the_patched_broker(self):
        for opt in ("delivered_on_puback",):
            b = Broker(options={opt: "true"})
            try:
                status = b.start_expect_exit() if not self.broker.patched else None
                if self.broker.patched:
                    b.start()
                    self.assertTrue(b.running)
                else:
                    self.assertNotIn(status, (None, 0), b.diagnostics())
                    self.assertIn("plugin_opt_%s true needs a broker built with broker-patches"
                                  % opt, b.all_output())
            finally:
                b.cleanup()

    # ---- the patched broker ----

    def test_puback_is_delivered(self):
        self.require_patched()
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        self.assertEqual(da.replay_done, {"k": "sync", "done": True})  # connect() waited for it
        bob = self.plain(b, "phone")
        self.assertEqual(self.events_of(bob, 1)[0], {"k": "sync", "done": True})
        da.send_dm(b, 1, body=b"hi")
        sent = da.wait_event("sent", cid=1)
        msg = self.events_of(bob, 1)[0]
        self.assertEqual((msg["k"], msg["seq"], msg["body"]), ("msg", sent["seq"], b"hi"))
        # bob's library PUBACKed it: that is bob's ✓✓
        r = da.wait_event("receipt", s="delivered", conv=conv_of(a, b))
        self.assertEqual((r["seqs"], r["by"]), ([sent["seq"]], b))
        # an app receipt for it changes nothing; a read still moves it on
        bob.publish("chat/receipt", cbor2.dumps({"s": "delivered", "conv": conv_of(a, b),
                                                 "seqs": [sent["seq"]]}))
        da.expect_no_event(0.5, k="receipt")
        bob.publish("chat/receipt", cbor2.dumps({"s": "read", "conv": conv_of(a, b),
                                                 "seqs": [sent["seq"]]}))
        r = da.wait_event("receipt", s="read")
        self.assertEqual(r["seqs"], [sent["seq"]])
        # delivered means gone from bob/phone's queue: a new subscription
        # replays nothing but the end marker
        bob.close()
        bob = self.plain_again(b, "phone", bob.token)
        self.assertEqual(self.events_of(bob, 1), [{"k": "sync", "done": True}])
        self.assertIsNone(bob.wait_message(timeout=0.5))

    def test_backlog_by_subscribing_alone(self):
        """30 messages queued, replay window 10: a client that only
        subscribes and PUBACKs gets them all, in order, then the end."""
        self.require_patched()
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        token = self.broker.add_device(b, "phone")
        for i in range(1, 31):
            da.send_dm(b, i, body=b"m%d" % i)
        for v in (V5, None):
            # the first time with MQTT 5; then again: all delivered, nothing left
            bob = self.plain_again(b, "phone", token, protocol=v)
            if v == V5:
                got = self.events_of(bob, 31)
                self.assertEqual([e.get("seq") for e in got[:30]], list(range(1, 31)))
                self.assertEqual([e["body"] for e in got[:30]], [b"m%d" % i for i in range(1, 31)])
                self.assertEqual(got[30], {"k": "sync", "done": True})
                # the sender saw every one delivered
                seqs = set()
                while len(seqs) < 30:
                    seqs.update(da.wait_event("receipt", s="delivered")["seqs"])
                self.assertEqual(seqs, set(range(1, 31)))
            else:
                self.assertEqual(self.events_of(bob, 1), [{"k": "sync", "done": True}])
            bob.close()

    def test_resumed_session_replays_without_subscribing(self):
        self.require_patched()
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        bob = self.plain(b, "phone", clean=False)
        # its CONNECT replayed (an empty queue); its SUBSCRIBE then did not
        self.assertEqual(self.events_of(bob, 1), [{"k": "sync", "done": True}])
        self.assertIsNone(bob.wait_message(timeout=0.5))
        bob.close()
        wait_until(lambda: "Client %s/phone disconnected" % b in self.broker.log_text())
        da.send_dm(b, 1, body=b"while away")
        # back with its session (and so its subscription): no SUBSCRIBE
        bob = self.plain_again(b, "phone", bob.token, clean=False, subscribe=False)
        got = self.events_of(bob, 2)
        self.assertEqual((got[0]["k"], got[0].get("body")), ("msg", b"while away"), got)
        self.assertEqual(got[1], {"k": "sync", "done": True})
        da.wait_event("receipt", s="delivered", seqs=[got[0]["seq"]])

    def test_sync_still_works(self):
        self.require_patched()
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        token = self.broker.add_device(b, "phone")
        da.send_dm(b, 1, body=b"one")
        db = self.broker.device(b, "phone", token=token)
        self._clients.append(db)
        self.addCleanup(db.close)
        # the subscription replayed it (connect() waited for its end); an
        # explicit sync afterwards ends with done
        self.assertEqual(db.wait_event("msg")["body"], b"one")
        self.assertEqual(db.replay_done, {"k": "sync", "done": True})
        self.assertEqual(db.sync(), 0)
        db.wait_event("sync", done=True)
        db.expect_no_event(0.3, k="msg")  # acknowledged by PUBACK: not replayed again

    def test_own_copies_and_group_events_acked(self):
        self.require_patched()
        a, b = uniq("a"), uniq("b")
        phone = self.dev(a, "phone")
        tablet = self.plain(a, "tablet")
        self.assertEqual(self.events_of(tablet, 1), [{"k": "sync", "done": True}])
        self.broker.add_device(b, "phone")
        phone.send_dm(b, 7, body=b"copy")
        copy = self.events_of(tablet, 1)[0]
        self.assertEqual((copy["k"], copy["cid"]), ("msg", 7))
        # the PUBACK of an own copy clears the tablet's queue but tells nobody
        phone.expect_no_event(0.5, k="receipt")
        # a group event, PUBACKed, is not replayed on the next subscription
        g = uniq("g")
        rc, out, err = self.broker.chatctl("group", "create", g, "--owner", a, "--members", b)
        self.assertEqual(rc, 0, err)
        ev = self.events_of(tablet, 1)[0]
        self.assertEqual((ev["k"], ev["gid"]), ("group", g))
        tablet.close()
        tablet = self.plain_again(a, "tablet", tablet.token)
        self.assertEqual(self.events_of(tablet, 1), [{"k": "sync", "done": True}])


if __name__ == "__main__":
    main()
