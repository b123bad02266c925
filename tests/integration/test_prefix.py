# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""plugin_opt_topic_prefix: the whole chat tree moves under another prefix."""

import cbor2

from chatlib import V311, V5, ChatTestCase, conv_of, main, uniq

PREFIX = "acme/chat"


class PrefixTest(ChatTestCase):
    broker_options = {"topic_prefix": PREFIX, "foreign_acl": "allow"}
    broker_lines = ("allow_anonymous true",)

    def test_send_under_prefix(self):
        a, b = uniq("a"), uniq("b")
        da, db = self.dev(a, "phone"), self.dev(b, "phone", protocol=V5)
        self.assertTrue(db.inbox.startswith(PREFIX + "/inbox/"))
        da.send_dm(b, 1, body=b"hi")
        ev = db.wait_event("msg")
        self.assertEqual((ev["conv"], ev["seq"], ev["body"]), (conv_of(a, b), 1, b"hi"))
        self.assertEqual(da.wait_event("sent")["seq"], 1)

    def test_prefix_protected(self):
        a, b = uniq("a"), uniq("b")
        da, db = self.dev(a, "phone", protocol=V5), self.dev(b, "phone")
        for f in ["acme/#", PREFIX + "/#", PREFIX + "/inbox/+/+", "+/chat/inbox/%s/phone" % b,
                  PREFIX + "/inbox/%s/phone" % b]:
            self.assertGreaterEqual(da.subscribe(f), 0x80, f)
        anon = self.client(client_id=uniq("iot"), protocol=V5)
        anon.connect()
        self.assertGreaterEqual(anon.subscribe(PREFIX + "/inbox/%s/phone" % b), 0x80)
        self.assertEqual(anon.publish(PREFIX + "/dm/" + b, cbor2.dumps({"cid": 1, "body": b"x"})), 0x87)
        db.expect_no_event(0.3)

    def test_plain_chat_is_ordinary_topic(self):
        # with another prefix, "chat/..." is an ordinary topic (foreign_acl allow)
        sub = self.client(client_id=uniq("iot"))
        sub.connect()
        self.assertEqual(sub.subscribe("chat/inbox/x/y", 1), 1)
        pub = self.client(client_id=uniq("iot"))
        pub.connect()
        pub.publish("chat/inbox/x/y", b"plain")
        self.assertEqual(sub.wait_message().payload, b"plain")


if __name__ == "__main__":
    main()
