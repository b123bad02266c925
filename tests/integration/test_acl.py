# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Access control for chat devices: subscriptions and publishes."""

import cbor2

from chatlib import V311, V5, ChatTestCase, conv_of, main, uniq

# Filters that could reach another device's private topics.
WILDCARDS = ["#", "chat/#", "chat/inbox/#", "chat/inbox/+/+", "+/inbox/#", "+/+/+/+",
             "chat/+/{u}/phone", "chat/inbox/{u}/+", "chat/inbox/+/phone",
             "$share/g/chat/inbox/#", "$share/g/chat/inbox/{u}/phone",
             "chat/keys/resp/+/+", "chat/dm/+", "chat/dm/#",
             "chat/media/resp/+/+", "chat/media/resp/{u}/+", "chat/media/#",
             "chat/media/req/+/+", "$share/g/chat/media/req/+/+"]


class AclTest(ChatTestCase):

    def setUp(self):
        super().setUp()
        self.alice, self.bob = uniq("alice"), uniq("bob")
        self.da = self.dev(self.alice, "phone")
        self.db = self.dev(self.bob, "phone")

    def test_own_inbox_granted_v3_v5(self):
        for proto, dev in [(V311, "s3"), (V5, "s5")]:
            d = self.dev(self.alice, dev, protocol=proto, subscribe=False)
            code = d.subscribe(d.inbox, 1)
            self.assertLess(code, 0x80)
            code = d.subscribe("chat/keys/resp/%s/%s" % (self.alice, dev), 1)
            self.assertLess(code, 0x80, "own key response topic")
            code = d.subscribe("chat/media/resp/%s/%s" % (self.alice, dev), 1)
            self.assertLess(code, 0x80, "own media response topic")

    def test_foreign_inbox_refused(self):
        for proto, dev, want in [(V311, "f3", {0x80}), (V5, "f5", {0x87})]:
            d = self.dev(self.alice, dev, protocol=proto)
            for t in ["chat/inbox/%s/phone" % self.bob, "chat/inbox/%s/phone" % self.alice,
                      "chat/keys/resp/%s/phone" % self.bob, "chat/keys/status/%s/phone" % self.bob,
                      "chat/media/resp/%s/phone" % self.bob, "chat/media/req/%s/phone" % self.alice,
                      "chat/media/req/%s/phone" % self.bob]:
                self.assertIn(d.subscribe(t), want, t)

    def test_wildcards_refused(self):
        for n, (proto, dev) in enumerate([(V311, "w3"), (V5, "w5")]):
            d = self.dev(self.alice, dev, protocol=proto)
            for f in WILDCARDS:
                f = f.format(u=self.alice)
                code = d.subscribe(f)
                if proto == V311:
                    self.assertEqual(code, 0x80, f)
                else:
                    self.assertGreaterEqual(code, 0x80, f)
            # the connection is still good and the own inbox still works
            self.db.send_dm(self.alice, n, body=b"after")
            self.assertEqual(d.wait_event("msg")["body"], b"after")

    def test_wildcard_does_not_leak(self):
        # Even if a refused filter were granted, no foreign traffic must arrive.
        spy = self.dev(self.alice, "spy")
        for f in ["#", "chat/#", "chat/inbox/+/+"]:
            spy.subscribe(f)
        c = uniq("carol")
        dc = self.dev(c, "phone")
        self.db.send_dm(c, 1, body=b"secret")
        dc.wait_event("msg")
        self.db.wait_event("sent")
        msgs = spy.drain()
        self.assertEqual(msgs, [])
        self.assertIsNone(spy.wait_message(timeout=0.3))

    def test_device_cannot_subscribe_control(self):
        for f in ["$CONTROL/chat/v1", "$CONTROL/chat/v1/response", "$CONTROL/#"]:
            self.assertGreaterEqual(self.da.subscribe(f), 0x80, f)

    def test_forged_inbox_publish_dropped(self):
        fake = cbor2.dumps({"k": "msg", "conv": conv_of(self.alice, self.bob), "seq": 99,
                            "from": self.alice + "/phone", "ts": 1, "body": b"forged"})
        d5 = self.dev(self.alice, "p5", protocol=V5)
        self.assertEqual(d5.publish(self.db.inbox, fake), 0x87)
        self.da.publish(self.db.inbox, fake)
        self.db.expect_no_event(0.4)
        err = self.da.wait_event("error")
        self.assertEqual(err["code"], "topic")

    def test_publish_to_other_chat_topics_dropped(self):
        d5 = self.dev(self.alice, "o5", protocol=V5)
        for t in ["chat/presence/%s" % self.bob, "chat/presence/%s/phone" % self.bob,
                  "chat/keys/req/%s/phone" % self.bob, "chat/keys/resp/%s/phone" % self.alice,
                  "chat/media/req/%s/phone" % self.bob, "chat/media/resp/%s/phone" % self.alice,
                  "chat/media/resp/%s/phone" % self.bob, "chat/media/req/%s/o5" % self.bob,
                  "chat/whatever", "chat", "$CONTROL/chat/v1"]:
            self.assertEqual(d5.publish(t, cbor2.dumps({"x": 1})), 0x87, t)
        self.assert_serving()

    def test_media_topics(self):
        # A device publishes requests on its own chat/media/req/U/D only; a
        # service account (chat-media) reads them through its shared
        # subscription and answers on chat/media/resp/U/D, which only U/D
        # may read.
        tok = self.broker.service_token_file("mediaacl")
        svc = self.client(username="mediaacl", password=open(tok).read().strip(), protocol=V5)
        svc.connect()
        for f in ["$share/media/chat/media/req/+/+", "chat/media/req/+/+"]:
            self.assertLess(svc.subscribe(f, 0), 0x80, f)
        for f in ["chat/media/resp/+/+", "chat/media/#", "chat/media/req/#",
                  "chat/media/req/%s/+" % self.alice, "chat/inbox/+/+"]:
            self.assertGreaterEqual(svc.subscribe(f, 0), 0x80, f)
        d5 = self.dev(self.alice, "m5", protocol=V5)
        self.assertLess(d5.subscribe("chat/media/resp/%s/m5" % self.alice, 1), 0x80)
        self.assertEqual(d5.publish("chat/media/req/%s/m5" % self.alice, b"\xa0"), 0)
        m = svc.wait_message(lambda m: m.topic == "chat/media/req/%s/m5" % self.alice)
        self.assertIsNotNone(m, "the service never saw the request")
        # the service may answer; it may not forge a request
        self.assertEqual(svc.publish("chat/media/resp/%s/m5" % self.alice, b"\xa0"), 0)
        self.assertIsNotNone(d5.wait_message(lambda m: m[0] == "chat/media/resp/%s/m5"
                                             % self.alice))
        self.assertEqual(svc.publish("chat/media/req/%s/m5" % self.alice, b"\xa0"), 0x87)
        # another device sees none of it
        self.assertEqual([m for m in self.db.drain() if "media" in m[0]], [])

    def test_device_outside_chat_defer(self):
        # Default foreign_acl defer, no other ACL: a device gets nothing outside chat/.
        self.assertGreaterEqual(self.da.subscribe("iot/temp"), 0x80)


if __name__ == "__main__":
    main()
