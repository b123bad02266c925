# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Presence through a real broker (plugin_opt_presence_grace 1): the
chat/presence/U document goes online at connect and offline with `seen`
once the last device has been gone for the grace period — after a clean
DISCONNECT, after the socket is closed without one, after the client
process is killed — with no flicker on a fast reconnect; who may subscribe
(own devices, dm partners, group co-members, as U's privacy allows);
strangers refused in the SUBACK; a new subscriber gets the current
document at once — answered by the plugin by default, from mosquitto's
retain tree with plugin_opt_presence_retained true."""

import os
import signal
import sys
import subprocess
import textwrap
import time

from chatlib import ChatTestCase, Device, main, now_ms, uniq

GRACE = 1.0


class Watcher:
    """A device subscribed to chat/presence/U, reading presence documents;
    `retains` holds the MQTT retain flag of each document, in order."""

    def __init__(self, case, dev, user):
        self.dev = dev
        self.topic = "%s/presence/%s" % (dev.prefix, user)
        self.retains = []
        decode = dev.c.on_message

        def on_message(c, u, msg):
            if msg.topic == self.topic:
                self.retains.append(bool(msg.retain))
            decode(c, u, msg)
        dev.c.on_message = on_message
        code = dev.subscribe(self.topic, 1)
        case.assertLess(code, 0x80, "presence subscription refused")

    def next(self, timeout=5.0):
        m = self.dev.wait_message(lambda m: m[0] == self.topic, timeout)
        return None if m is None else m[1]


def stat(broker, name):
    rc, out, err = broker.chatctl("stats")
    assert rc == 0, err
    return int(dict(line.split() for line in out.splitlines() if line.strip())[name])


class PresenceTest(ChatTestCase):
    # the grace (default 10 s) is what every offline transition waits out:
    # 1 s keeps the file short; test_readme's walkthrough runs the default
    broker_options = {"presence_grace": 1}

    def pair(self):
        """Users a and b with a dm between them; a/phone online; b watches a."""
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        da = Device(self.broker, a, "phone", ta)
        da.connect()
        self._clients.append(da)
        db = self.dev(b, "phone")
        db.send_dm(a, 1, body=b"hi")
        w = Watcher(self, db, a)
        self.assertEqual(w.next(), {"s": "online"})
        return a, ta, da, db, w

    def assert_offline_after(self, w, t0, a_seen=True):
        doc = w.next(timeout=GRACE + 3)
        took = time.monotonic() - t0
        self.assertIsNotNone(doc, "no offline document")
        if os.environ.get("CHAT_PRESENCE_TIMING"):
            sys.stderr.write("offline after %.3f s\n" % took)
        self.assertEqual(doc["s"], "offline", doc)
        self.assertGreaterEqual(took, GRACE - 0.1, "offline before the grace period")
        self.assertLessEqual(took, GRACE + 1.0, "offline later than grace + 1 s")
        if a_seen:
            self.assertTrue(now_ms() - 5000 <= doc["seen"] <= now_ms(), doc)
        else:
            self.assertNotIn("seen", doc)
        return doc

    def test_clean_disconnect(self):
        a, ta, da, db, w = self.pair()
        t0 = time.monotonic()
        da.close()
        self.assert_offline_after(w, t0)
        self.assertIsNone(w.next(timeout=1.5), "offline published twice")

    def test_socket_dropped_without_disconnect(self):
        a, ta, da, db, w = self.pair()
        da.drop()                   # stops paho's loop (up to 1 s), then closes the socket
        t0 = time.monotonic()
        self.assert_offline_after(w, t0)

    def test_client_process_killed(self):
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        db = self.dev(b, "phone")
        db.send_dm(a, 1, body=b"hi")
        script = textwrap.dedent("""
            import sys, time
            import paho.mqtt.client as mqtt
            addr, token, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
            c = mqtt.Client(client_id=addr, clean_session=True)
            c.username_pw_set(addr, token)
            c.will_set("chat/presence/" + addr, b"", 0, False)
            c.on_connect = lambda *a: (print("up", flush=True))
            c.connect("127.0.0.1", port, 30)
            c.loop_forever()
        """)
        p = subprocess.Popen(["/usr/bin/python3", "-c", script, a + "/phone", ta,
                              str(self.broker.port)], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "up")
            w = Watcher(self, db, a)
            self.assertEqual(w.next(), {"s": "online"})
            t0 = time.monotonic()
            p.send_signal(signal.SIGKILL)
            p.wait(5)
            self.assert_offline_after(w, t0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            p.stdout.close()

    def test_no_flicker_on_fast_reconnect(self):
        a, ta, da, db, w = self.pair()
        da.drop()
        time.sleep(0.3)
        d2 = Device(self.broker, a, "phone", ta)
        d2.connect()
        self._clients.append(d2)
        self.addCleanup(d2.close)
        self.assertIsNone(w.next(timeout=GRACE + 1.5), "presence changed on a fast reconnect")
        # a second device coming and going changes nothing either
        t2 = self.broker.add_device(a, "laptop")
        d3 = Device(self.broker, a, "laptop", t2)
        d3.connect()
        d3.close()
        self.assertIsNone(w.next(timeout=GRACE + 0.5))
        # session takeover by the same client id: still online
        d4 = Device(self.broker, a, "phone", ta)
        d4.connect()
        self._clients.append(d4)
        self.addCleanup(d4.close)
        self.assertIsNone(w.next(timeout=GRACE + 0.5))
        t0 = time.monotonic()
        d4.close()
        self.assert_offline_after(w, t0)

    def test_who_may_subscribe(self):
        a, ta, da, db, w = self.pair()
        # a stranger: refused in the SUBACK; so are wildcards
        x = self.dev(uniq("x"), "phone")
        self.assertGreaterEqual(x.subscribe("chat/presence/%s" % a, 1), 0x80)
        self.assertGreaterEqual(x.subscribe("chat/presence/+", 1), 0x80)
        self.assertGreaterEqual(db.subscribe("chat/presence/#", 1), 0x80)
        # a's own other device may
        a2 = self.dev(a, "tablet")
        self.assertLess(a2.subscribe("chat/presence/%s" % a, 1), 0x80)
        # a group co-member may (presence "everyone", the default) ...
        g = uniq("g")
        c = self.dev(uniq("c"), "phone")
        self.assertTrue(da.ctl("group.create", 1, gid=g, members=[c.user])["ok"])
        self.assertLess(c.subscribe("chat/presence/%s" % a, 1), 0x80)
        # ... but not under "contacts", which leaves the dm partner only
        self.assertTrue(da.ctl("privacy", 2, presence="contacts")["ok"])
        c2 = self.dev(c.user, "tablet")
        self.assertGreaterEqual(c2.subscribe("chat/presence/%s" % a, 1), 0x80)
        b2 = self.dev(db.user, "tablet")
        self.assertLess(b2.subscribe("chat/presence/%s" % a, 1), 0x80)
        # the dm partner still sees offline with seen; the co-member, whose
        # subscription predates "contacts", sees nothing (read ACL at delivery)
        cw = "chat/presence/%s" % a
        c.drain()
        a2.close()
        t0 = time.monotonic()
        da.close()
        self.assert_offline_after(w, t0)
        self.assertIsNone(c.wait_message(lambda m: m[0] == cw, 0.5))

    def test_nobody_hides_presence(self):
        a, ta, da, db, w = self.pair()
        self.assertTrue(da.ctl("privacy", 1, presence="nobody")["ok"])
        b2 = self.dev(db.user, "tablet")
        self.assertGreaterEqual(b2.subscribe("chat/presence/%s" % a, 1), 0x80)
        da.close()
        self.assertIsNone(w.next(timeout=GRACE + 1.5), "presence leaked past 'nobody'")

    def test_current_state_at_once(self):
        """A new subscriber gets U's current document at once, whatever it is,
        then every change: by default answered by the plugin (not from the
        broker's retain tree), so the first document's retain flag is clear
        and nothing of presence is retained."""
        a, ta, da, db, w = self.pair()
        self.assertEqual(w.retains, [False])
        answers = stat(self.broker, "presence_answers")
        self.assertGreaterEqual(answers, 1)
        t0 = time.monotonic()
        da.close()
        self.assert_offline_after(w, t0)
        late = Watcher(self, self.dev(db.user, "tablet"), a)
        doc = late.next(timeout=2)
        self.assertEqual(doc["s"], "offline", doc)
        self.assertTrue(now_ms() - 5000 <= doc["seen"] <= now_ms(), doc)
        self.assertEqual(stat(self.broker, "presence_answers"), answers + 1)
        # back online: both watchers get the change, live (retain clear)
        d2 = Device(self.broker, a, "phone", ta)
        d2.connect()
        self._clients.append(d2)
        self.addCleanup(d2.close)
        self.assertEqual(w.next(), {"s": "online"})
        self.assertEqual(late.next(), {"s": "online"})
        self.assertEqual(late.retains, [False, False])
        # one answer per SUBSCRIBE: no retained copy beside it
        self.assertIsNone(late.next(timeout=0.3))


class PresenceRetainedTest(ChatTestCase):
    """plugin_opt_presence_retained true (the fallback): the documents live in
    mosquitto's retain tree and a subscriber gets them from there, the retain
    flag set; the plugin answers nothing itself."""
    broker_options = {"presence_grace": 1, "presence_retained": "true"}

    def test_retained_documents(self):
        a, b = uniq("a"), uniq("b")
        ta = self.broker.add_device(a, "phone")
        da = Device(self.broker, a, "phone", ta)
        da.connect()
        self._clients.append(da)
        db = self.dev(b, "phone")
        db.send_dm(a, 1, body=b"hi")
        w = Watcher(self, db, a)
        self.assertEqual(w.next(), {"s": "online"})
        da.close()
        doc = w.next(timeout=GRACE + 3)
        self.assertEqual(doc["s"], "offline", doc)
        late = Watcher(self, self.dev(b, "tablet"), a)
        self.assertEqual(late.next(), doc)
        self.assertIsNone(late.next(timeout=0.3), "answered twice")
        self.assertEqual(w.retains, [True, False])
        self.assertEqual(late.retains, [True])
        self.assertEqual(stat(self.broker, "presence_answers"), 0)


if __name__ == "__main__":
    main()
