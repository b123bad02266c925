# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Foreign (non-chat) clients on a shared broker.

With plugin_opt_foreign_acl allow + allow_anonymous true, an anonymous IoT
client sees plain MQTT outside chat/ (QoS 0/1/2, retained, wills, $share,
3.1.1 and 5, wildcard filters such as "#") but nothing of chat/ or
$CONTROL/chat/ (test_iot_diff.py compares it with a broker without the
plugin). With the default defer
and no other ACL, mosquitto denies (every ACL check defers)."""

import os
import signal
import subprocess
import time

import cbor2

from chatlib import (V311, V5, Broker, ChatTestCase, Client, conv_of, main, uniq,
                     wait_until)


class ForeignAllowTest(ChatTestCase):
    broker_options = {"foreign_acl": "allow"}
    broker_lines = ("allow_anonymous true",)

    def anon(self, proto=V311, **kw):
        c = self.client(client_id=kw.pop("client_id", uniq("iot")), protocol=proto, **kw)
        c.connect()
        return c

    def test_pubsub_all_qos_both_protocols(self):
        for sp in (V311, V5):
            for pp in (V311, V5):
                sub, pub = self.anon(sp), self.anon(pp)
                topic = "iot/%s/temp" % uniq("t")
                self.assertEqual(sub.subscribe(topic, 2), 2)
                for qos in (0, 1, 2):
                    rc = pub.publish(topic, b"q%d" % qos, qos=qos)
                    self.assertLess(rc, 0x80)
                    m = sub.wait_message(lambda m: m.topic == topic)
                    self.assertIsNotNone(m, "qos %d v%s->v%s" % (qos, pp, sp))
                    self.assertEqual((m.payload, m.qos), (b"q%d" % qos, qos))

    def test_wildcards_outside_chat(self):
        sub, pub = self.anon(), self.anon(V5)
        base = uniq("plant")
        self.assertEqual(sub.subscribe("%s/+/temp" % base, 1), 1)
        self.assertEqual(sub.subscribe("%s/line2/#" % base, 1), 1)
        pub.publish("%s/line1/temp" % base, b"21")
        pub.publish("%s/line2/x/y" % base, b"deep")
        got = {sub.wait_message().topic, sub.wait_message().topic}
        self.assertEqual(got, {"%s/line1/temp" % base, "%s/line2/x/y" % base})

    def test_retained(self):
        pub = self.anon()
        topic = "iot/%s/state" % uniq("r")
        pub.publish(topic, b"on", qos=1, retain=True)
        for proto in (V311, V5):
            late = self.anon(proto)
            late.subscribe(topic, 1)
            m = late.wait_message()
            self.assertIsNotNone(m)
            self.assertEqual((m.payload, m.retain), (b"on", True))
        pub.publish(topic, b"", qos=1, retain=True)   # clear
        late = self.anon()
        late.subscribe(topic, 1)
        self.assertIsNone(late.wait_message(timeout=0.3))

    def test_will(self):
        for proto in (V311, V5):
            topic = "iot/%s/lwt" % uniq("w")
            watcher = self.anon()
            watcher.subscribe(topic, 1)
            dying = self.anon(proto, will={"topic": topic, "payload": b"gone", "qos": 1})
            dying.drop()
            m = watcher.wait_message(timeout=5)
            self.assertIsNotNone(m, "will not delivered (proto %s)" % proto)
            self.assertEqual(m.payload, b"gone")
            # a clean disconnect does not send it
            polite = self.anon(proto, will={"topic": topic, "payload": b"gone", "qos": 1})
            polite.close()
            self.assertIsNone(watcher.wait_message(timeout=0.3))

    def test_will_mosquitto_sub_killed(self):
        topic = "iot/%s/lwt" % uniq("ws")
        watcher = self.anon()
        watcher.subscribe(topic, 1)
        p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                              "-t", "iot/nothing", "--will-topic", topic, "--will-payload", "bye",
                              "--will-qos", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # wait until it is connected (the log names its connection)
            self.assertTrue(wait_until(lambda: "iot/nothing" in self.broker.log_text(), 5),
                            self.broker.diagnostics())
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(5)
        m = watcher.wait_message(timeout=5)
        self.assertIsNotNone(m)
        self.assertEqual(m.payload, b"bye")

    def test_shared_subscription(self):
        topic = "iot/%s/jobs" % uniq("s")
        w1, w2 = self.anon(), self.anon(V5)
        self.assertEqual(w1.subscribe("$share/grp/" + topic, 1), 1)
        self.assertEqual(w2.subscribe("$share/grp/" + topic, 1), 1)
        pub = self.anon()
        n = 20
        for i in range(n):
            pub.publish(topic, b"%d" % i)
        got = []
        deadline = time.monotonic() + 5
        while len(got) < n and time.monotonic() < deadline:
            for w in (w1, w2):
                m = w.wait_message(timeout=0.05)
                if m:
                    got.append((w, m.payload))
        self.assertEqual(sorted(p for _, p in got), sorted(b"%d" % i for i in range(n)))
        self.assertTrue(any(w is w1 for w, _ in got) and any(w is w2 for w, _ in got),
                        "shared subscription did not spread messages")

    def test_mosquitto_clients(self):
        topic = "iot/%s/cli" % uniq("c")
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                                "-t", topic, "-C", "1", "-W", "5", "-q", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: topic in self.broker.log_text(), 5)
        pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                              "-t", topic, "-m", "hello", "-q", "2", "-V", "mqttv5"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(pub.returncode, 0, pub.stderr)
        out, err = sub.communicate(timeout=10)
        self.assertEqual((sub.returncode, out.strip()), (0, "hello"), err)

    # ---- but not chat/ ----
    def test_chat_subscriptions_refused(self):
        for proto, want in ((V311, {0x80}), (V5, {0x87})):
            c = self.anon(proto)
            for f in ["chat/inbox/alice/phone", "chat/#", "chat/inbox/+/+", "chat/dm/bob",
                      "$share/g/chat/inbox/#", "chat/keys/req/+/+", "$CONTROL/chat/v1/response",
                      "$CONTROL/chat/v1"]:
                self.assertIn(c.subscribe(f), want, f)

    def test_chat_publish_dropped(self):
        a, b = uniq("a"), uniq("b")
        self.dev(a, "phone")
        db = self.dev(b, "phone")
        c5, c3 = self.anon(V5), self.anon(V311)
        send = cbor2.dumps({"cid": 1, "body": b"from iot"})
        fake = cbor2.dumps({"k": "msg", "conv": conv_of(a, b), "seq": 1, "from": a + "/phone",
                            "ts": 1, "body": b"forged"})
        for t, p in [("chat/dm/" + b, send), (db.inbox, fake), ("chat/presence/" + b, b"")]:
            self.assertEqual(c5.publish(t, p), 0x87, t)
            c3.publish(t, p)
        db.expect_no_event(0.4)
        # a username that looks like a chat device but has no token is no way in
        c = self.client(client_id=b + "/phone", username=b + "/phone")
        self.assertEqual(c.try_connect(), 5)

    def test_hash_subscriber_sees_no_chat(self):
        spy = self.anon()
        self.assertEqual(spy.subscribe("#", 1), 1)   # standard MQTT: granted, and no chat traffic
        a, b = uniq("a"), uniq("b")
        da, db = self.dev(a, "phone"), self.dev(b, "phone")
        da.send_dm(b, 1, body=b"secret")
        db.wait_event("msg")
        da.wait_event("sent")
        time.sleep(0.2)
        leaked = [m.topic for m in spy.drain() if m.topic.startswith(("chat/", "$CONTROL"))]
        self.assertEqual(leaked, [])

    def test_no_chat_leak_to_any_filter(self):
        """Whatever a foreign client subscribes to, it never sees chat traffic."""
        filters = ["#", "+/#", "+/dm/+", "+/dm/#", "+/+/+", "+/+/+/+", "+/inbox/#",
                   "$share/spy/#", "$share/spy/+/dm/+", "chat/+/+"]
        spies = []
        for proto in (V311, V5):
            spy = self.anon(proto)
            for f in filters:
                spy.subscribe(f, 2)
            spies.append(spy)
        a, b = uniq("a"), uniq("b")
        da, db = self.dev(a, "phone"), self.dev(b, "phone")
        db.subscribe("chat/presence/" + b)
        da.send_dm(b, 1, body=b"secret", qos=2)
        da.send_dm(b, 2, body=b"secret")
        da.send_dm(a, 3, body=b"to self: refused")
        db.wait_event("msg", seq=2)
        da.wait_event("error")
        da.drop()   # fires its presence will
        time.sleep(0.3)
        for spy in spies:
            leaked = [m.topic for m in spy.drain() if not m.topic.startswith("$SYS")]
            self.assertEqual(leaked, [])

    def test_lookalike_topics_are_ordinary(self):
        c = self.anon()
        for t in ["chatroom/x", "chat2", "xchat/inbox/a/b", "Chat/inbox/a/b"]:
            self.assertEqual(c.subscribe(t, 1), 1, t)
            self.anon(V5).publish(t, b"v")
            m = c.wait_message()
            self.assertIsNotNone(m, t)
            self.assertEqual(m.topic, t)

    def test_device_outside_chat_allowed(self):
        # foreign_acl applies to chat devices outside chat/ too
        u = uniq("d")
        d = self.dev(u, "phone", protocol=V5)
        t = "iot/%s/x" % u
        self.assertLess(d.subscribe(t, 1), 0x80)
        self.assertLess(self.anon().publish(t, b"from iot"), 0x80)
        m = d.wait_message(lambda m: m[0] == t)
        self.assertIsNotNone(m)

    def test_control_refused(self):
        target = uniq("victim")
        req = cbor2.dumps({"cmd": "device.add", "rid": 1, "user": target, "device": "d"})
        c5, c3 = self.anon(V5), self.anon(V311)
        self.assertEqual(c5.publish("$CONTROL/chat/v1", req), 0x87)
        c3.subscribe("$CONTROL/chat/v1/response")
        c3.publish("$CONTROL/chat/v1", req)
        self.assertIsNone(c3.wait_message(timeout=0.3))
        self.assertIsNone(c5.wait_message(timeout=0.05))
        rc, _, err = self.broker.chatctl("device", "add", target, "d")
        self.assertEqual(rc, 0, "device was created by an anonymous client: " + err)
        # nor may an anonymous client claim to be the admin
        c = self.client(client_id="x", username="$admin", password="guess")
        self.assertEqual(c.try_connect(), 5)

    def test_chat_still_works(self):
        self.assert_serving()


class ForeignDeferTest(ChatTestCase):
    """Default foreign_acl defer, anonymous allowed, no acl_file: denied."""
    broker_lines = ("allow_anonymous true",)

    def test_anonymous_denied_ordinary_topics(self):
        for proto, want in ((V311, {0x80}), (V5, {0x87})):
            sub = self.client(client_id=uniq("iot"), protocol=proto)
            sub.connect()
            self.assertIn(sub.subscribe("iot/temp", 1), want)
        pub = self.client(client_id=uniq("iot"), protocol=V5)
        pub.connect()
        self.assertEqual(pub.publish("iot/temp", b"1"), 0x87)

    def test_chat_works_with_defer(self):
        self.assert_serving()


class ForeignDeferAclFileTest(ChatTestCase):
    """defer + an acl_file: the acl_file decides outside chat/, never inside."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        fd, cls.acl = tempfile.mkstemp(prefix="chat-it-acl-")
        with os.fdopen(fd, "w") as f:
            f.write("topic readwrite iot/#\ntopic readwrite chat/#\ntopic readwrite #\n")
        os.chmod(cls.acl, 0o644)
        cls.broker_lines = ("allow_anonymous true", "acl_file %s" % cls.acl)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.unlink(cls.acl)

    def test_acl_file_decides_outside_chat(self):
        sub = self.client(client_id=uniq("iot"))
        sub.connect()
        self.assertEqual(sub.subscribe("iot/x", 1), 1)
        pub = self.client(client_id=uniq("iot"), protocol=V5)
        pub.connect()
        self.assertLess(pub.publish("iot/x", b"v"), 0x80)
        self.assertEqual(sub.wait_message().payload, b"v")
        # acl_file grants chat/#, but the plugin keeps foreign clients out
        self.assertEqual(sub.subscribe("chat/inbox/a/b", 1), 0x80)
        self.assertEqual(pub.publish("chat/dm/x", b"v"), 0x87)

    def test_hash_granted_by_acl_file_carries_no_chat(self):
        # the plugin defers "#" to the acl_file, which grants it; at delivery
        # the plugin is asked before the acl_file ("topic readwrite #")
        spy = self.client(client_id=uniq("iot"), protocol=V5)
        spy.connect()
        self.assertEqual(spy.subscribe("#", 1), 1)
        a, b = uniq("a"), uniq("b")
        da, db = self.dev(a, "phone"), self.dev(b, "phone")
        db.subscribe("chat/presence/" + b)
        da.send_dm(b, 1, body=b"secret")
        db.wait_event("msg")
        pub = self.client(client_id=uniq("iot"))
        pub.connect()
        pub.publish("iot/after", b"v")
        self.assertIsNotNone(spy.wait_message(lambda m: m.topic == "iot/after"))
        da.drop()
        time.sleep(0.3)
        leaked = [m.topic for m in spy.drain() if m.topic.startswith(("chat/", "$CONTROL"))]
        self.assertEqual(leaked, [])

    def test_chat_works_with_acl_file(self):
        self.assert_serving()


class ForeignPasswordFileTest(ChatTestCase):
    """IoT accounts in a password_file beside chat devices with tokens
    (docs/OPERATIONS.md, "Chat and IoT clients on one broker"):
    allow_anonymous false, foreign_acl allow."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        fd, cls.pwfile = tempfile.mkstemp(prefix="chat-it-passwd-")
        os.close(fd)
        subprocess.run(["mosquitto_passwd", "-b", cls.pwfile, "sensor1", "s3cret"], check=True,
                       capture_output=True)
        os.chmod(cls.pwfile, 0o644)
        cls.broker_options = {"foreign_acl": "allow"}
        cls.broker_lines = ("allow_anonymous false", "password_file %s" % cls.pwfile)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.unlink(cls.pwfile)

    def test_accounts_and_devices(self):
        for kw, want in (({"username": "sensor1", "password": "wrong"}, 5), ({}, 5)):
            c = self.client(client_id=uniq("iot"), **kw)
            self.assertEqual(c.try_connect(), want, kw)
        spy = self.client(client_id=uniq("iot"), username="sensor1", password="s3cret", protocol=V5)
        spy.connect()
        self.assertEqual(spy.subscribe("#", 2), 2)
        self.assertEqual(spy.subscribe("chat/#", 1), 0x87)
        a, b = uniq("a"), uniq("b")
        da, db = self.dev(a, "phone"), self.dev(b, "phone")   # tokens, not the password_file
        da.send_dm(b, 1, body=b"secret")
        db.wait_event("msg")
        pub = self.client(client_id=uniq("iot"), username="sensor1", password="s3cret")
        pub.connect()
        pub.publish("iot/x", b"v", qos=2)
        m = spy.wait_message(lambda m: m.topic == "iot/x")
        self.assertIsNotNone(m)
        self.assertEqual((m.payload, m.qos), (b"v", 2))
        leaked = [m.topic for m in spy.drain() if m.topic.startswith(("chat/", "$CONTROL"))]
        self.assertEqual(leaked, [])


if __name__ == "__main__":
    main()
