# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Typing through a real broker: chat/typing/{conv} {on} relayed as `typing`
events to the other members' online devices (dm and group), at QoS 0,
never stored: an offline device's sync does not replay them; strangers and
malformed requests refused with an `error` event."""

import threading

import cbor2

from chatlib import ChatTestCase, Device, conv_of, main, uniq


class TypingTest(ChatTestCase):

    def qos_of_inbox(self, dev):
        """Records the QoS of every message dev receives on its inbox."""
        seen = []
        lock = threading.Lock()
        orig = dev.c.on_message

        def on_message(c, u, msg):
            with lock:
                seen.append(msg.qos)
            orig(c, u, msg)
        dev.c.on_message = on_message
        return seen

    def test_dm_typing_relayed_not_replayed(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        da, da2 = self.dev(a, "phone"), self.dev(a, "laptop")
        db = self.dev(b, "phone")
        tb2 = self.broker.add_device(b, "tablet")          # offline
        qos = self.qos_of_inbox(db)
        da.typing(conv, True)
        ev = db.wait_event("typing")
        self.assertEqual(ev, {"k": "typing", "conv": conv, "from": da.addr, "on": True})
        self.assertEqual(qos, [0])
        da.typing(conv, False)
        self.assertIs(db.wait_event("typing")["on"], False)
        da2.expect_no_event(0.3, k="typing")               # not to one's own devices
        da.expect_no_event(0.05, k="typing")
        # the device that was offline gets none of it on sync
        dt = Device(self.broker, b, "tablet", tb2)
        dt.connect()
        self._clients.append(dt)
        self.addCleanup(dt.close)
        dt.sync()
        ev = dt.wait_event()
        self.assertEqual(ev, {"k": "sync", "done": True})
        # and, online now, it gets the next one
        db.typing(conv, True)
        self.assertEqual(da.wait_event("typing")["from"], db.addr)
        self.assertEqual(da2.wait_event("typing")["from"], db.addr)

    def test_group_typing_and_refusals(self):
        g = uniq("g")
        a, b, c, x = uniq("a"), uniq("b"), uniq("c"), uniq("x")
        da, db, dc, dx = (self.dev(u, "phone") for u in (a, b, c, x))
        self.assertTrue(da.ctl("group.create", 1, gid=g, members=[b, c])["ok"])
        db.typing("g:" + g, True)
        for d in (da, dc):
            ev = d.wait_event("typing")
            self.assertEqual((ev["conv"], ev["from"], ev["on"]), ("g:" + g, db.addr, True))
        db.expect_no_event(0.2, k="typing")
        dx.expect_no_event(0.05, k="typing")
        # strangers, bad conversations, bad payloads
        dx.typing("g:" + g, True)
        self.assertEqual(dx.wait_event("error")["code"], "conv")
        dx.typing(conv_of(a, b), True)
        self.assertEqual(dx.wait_event("error")["code"], "conv")
        dx.typing("nonsense", True)
        self.assertEqual(dx.wait_event("error")["code"], "conv")
        dx.publish("chat/typing/" + conv_of(x, a), cbor2.dumps({"on": "yes"}), qos=0)
        self.assertEqual(dx.wait_event("error")["code"], "field")
        dx.publish("chat/typing/" + conv_of(x, a), b"\xff", qos=0)
        self.assertEqual(dx.wait_event("error")["code"], "cbor")
        da.expect_no_event(0.3, k="typing")
        self.assert_serving()


if __name__ == "__main__":
    main()
