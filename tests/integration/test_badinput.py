# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Bad sends: each gets an error event with its code, nothing is delivered or
stored, and the broker keeps serving everyone."""

import cbor2

from chatlib import V311, V5, ChatTestCase, conv_of, main, uniq

MAX_BODY = 512


class BadInputTest(ChatTestCase):
    broker_options = {"max_body": MAX_BODY}

    def setUp(self):
        super().setUp()
        self.a, self.b = uniq("a"), uniq("b")
        self.da = self.dev(self.a, "phone")
        self.da5 = self.dev(self.a, "v5", protocol=V5)
        self.db = self.dev(self.b, "phone")

    def refused(self, payload, code, topic=None, qos=1, retain=False, v5=False):
        """Sends payload (bytes or a dict to encode) from a/phone (or a/v5),
        checks the error event and that nothing reached anyone."""
        d = self.da5 if v5 else self.da
        if isinstance(payload, dict):
            payload = cbor2.dumps(payload)
        rc = d.publish(topic or "chat/dm/%s" % self.b, payload, qos=qos, retain=retain)
        if v5 and qos > 0:
            self.assertEqual(rc, 0x87, "PUBACK reason for a %s refusal" % code)
        err = d.wait_event("error")
        self.assertEqual(err["code"], code, err)
        self.assertIsInstance(err.get("msg"), str)
        self.assertTrue(err["msg"])
        return err

    def assert_nothing_stored(self):
        # nobody got anything, and the conversation's next seq is still 1
        other = self.da5
        self.db.expect_no_event(0.2)
        self.da.send_dm(self.b, b"good", body=b"good")
        self.assertEqual(self.da.wait_event("sent", cid=b"good")["seq"], 1)
        ev = self.db.wait_event("msg")
        self.assertEqual((ev["seq"], ev["body"]), (1, b"good"))
        self.assertEqual(other.wait_event("msg")["seq"], 1)
        if self.broker.delivered_on_puback:
            # on the patched broker b's PUBACK of the message is its delivered receipt
            r = self.da.wait_event("receipt", conv=conv_of(self.a, self.b))
            self.assertEqual((r["s"], r["seqs"], r["by"]), ("delivered", [1], self.b))
        self.da.expect_no_event(0.1)
        self.db.expect_no_event(0.1)

    def test_not_cbor(self):
        for v5 in (False, True):
            self.refused(b"\xff\x00garbage", "cbor", v5=v5)
            self.refused(b"", "cbor", v5=v5)
            self.refused(b"\xa2\x63cid\x01", "cbor", v5=v5)   # truncated map
            self.refused(b"hello world", "cbor", v5=v5)
        self.assert_nothing_stored()

    def test_not_a_map(self):
        for payload in [cbor2.dumps([1, 2]), cbor2.dumps("text"), cbor2.dumps(5),
                        cbor2.dumps(None)]:
            err = self.refused(payload, "cbor")
        self.assert_nothing_stored()

    def test_missing_or_wrong_fields(self):
        cases = [
            {"body": b"no cid"},
            {"cid": "text-cid", "body": b"x"},
            {"cid": -1, "body": b"x"},
            {"cid": b"", "body": b"x"},
            {"cid": b"\x00" * 17, "body": b"x"},
            {"cid": 1.5, "body": b"x"},
            {"cid": 1},                                   # neither body nor bodies
            {"cid": 1, "body": "text body"},
            {"cid": 1, "body": b"x", "bodies": {self.b + "/phone": b"y", self.a + "/v5": b"z"}},
            {"cid": 1, "bodies": [b"x"]},
            {"cid": 1, "bodies": {self.b + "/phone": "text", self.a + "/v5": b"z"}},
            {"cid": 1, "body": b"x", "type": "text"},
            {"cid": 1, "body": b"x", "type": -3},
            {"cid": 1, "body": b"x", "ttl": "long"},
        ]
        for m in cases:
            with self.subTest(m=m):
                self.refused(m, "field")
        self.refused({"cid": 2, "body": "text body"}, "field", v5=True)
        self.assert_nothing_stored()

    def test_error_carries_cid(self):
        # cid is optional in an error event; when present it is the send's
        err = self.refused({"cid": 1, "body": "text body"}, "field")
        if "cid" in err:
            self.assertEqual(err["cid"], 1)

    def test_body_too_big(self):
        self.refused({"cid": 1, "body": b"x" * (MAX_BODY + 1)}, "size")
        self.refused({"cid": 2, "body": b"x" * (MAX_BODY * 4)}, "size", v5=True)
        self.refused({"cid": 3, "bodies": {self.b + "/phone": b"x" * 300,
                                           self.a + "/v5": b"x" * 300}}, "size")
        # not even valid CBOR, but too big: refused either way
        err = self.da.publish("chat/dm/%s" % self.b, b"\xff" * (MAX_BODY * 2))
        self.assertIn(self.da.wait_event("error")["code"], ("size", "cbor"))
        self.assert_nothing_stored()

    def test_body_under_limit_ok(self):
        body = b"y" * (MAX_BODY - 64)
        self.da.send_dm(self.b, 1, body=body)
        self.assertEqual(self.db.wait_event("msg")["body"], body)

    def test_invalid_or_unknown_peer(self):
        for peer in ["nobody-here", "bad!id", "x" * 65, "sp ace"]:
            with self.subTest(peer=peer):
                self.refused({"cid": 1, "body": b"x"}, "peer", topic="chat/dm/" + peer)
        self.refused({"cid": 1, "body": b"x"}, "peer", topic="chat/dm/nobody-here", v5=True)
        self.assert_nothing_stored()

    def test_peer_topic_shapes(self):
        for t in ["chat/dm/", "chat/dm/%s/phone" % self.b, "chat/dm/%s/" % self.b,
                  "chat/dm/\u00e9t\u00e9"]:
            with self.subTest(topic=t):
                self.refused({"cid": 1, "body": b"x"}, "peer", topic=t)
        self.assert_nothing_stored()

    def test_v5_qos2_refused_pubrec(self):
        self.refused({"cid": 1, "body": b"x"}, "peer", topic="chat/dm/" + self.a, qos=2, v5=True)
        self.refused({"cid": 2, "body": "text"}, "field", qos=2, v5=True)
        self.assert_nothing_stored()

    def test_send_to_self(self):
        self.refused({"cid": 1, "body": b"x"}, "peer", topic="chat/dm/" + self.a)
        self.refused({"cid": 1, "body": b"x"}, "peer", topic="chat/dm/" + self.a, v5=True)
        self.da.expect_no_event(0.2, k="msg")
        self.assert_nothing_stored()

    def test_qos0_send(self):
        self.refused({"cid": 1, "body": b"x"}, "qos", qos=0)
        self.refused({"cid": 2, "body": b"x"}, "qos", qos=0, v5=True)
        self.assert_nothing_stored()

    def test_retained_send(self):
        self.refused({"cid": 1, "body": b"x"}, "qos", retain=True)
        self.assert_nothing_stored()
        # and nothing was retained on the topic
        c = uniq("c")
        dc = self.dev(c, "phone", subscribe=False)
        dc.subscribe("chat/dm/%s" % self.b)
        self.assertIsNone(dc.wait_message(timeout=0.3))

    def test_unknown_keys_ignored(self):
        self.da.send_dm(self.b, 1, body=b"x", zzz="ignored", extra={"a": 1})
        ev = self.db.wait_event("msg")
        self.assertEqual(ev["body"], b"x")
        self.assertNotIn("zzz", ev)

    def test_bad_sends_do_not_disturb_others(self):
        c, d = uniq("c"), uniq("d")
        dc, dd = self.dev(c, "phone"), self.dev(d, "phone")
        for _ in range(20):
            self.da.publish("chat/dm/%s" % self.b, b"\xff\xfe\xfd", wait=False)
            dc.send_dm(d, None, body=b"no cid", timeout=5)
        for i in range(1, 4):
            dc.send_dm(d, i, body=b"%d" % i)
        self.assertEqual([dd.wait_event("msg")["seq"] for _ in range(3)], [1, 2, 3])
        cb = [self.da.wait_event("error", code="cbor") for _ in range(20)]
        fe = [dc.wait_event("error", code="field") for _ in range(20)]
        self.assertEqual((len(cb), len(fe)), (20, 20))
        self.assert_serving()


if __name__ == "__main__":
    main()
