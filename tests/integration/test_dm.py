# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""1:1 messages between online devices: fields, seqs, sent, dedup, bodies."""

import time

import cbor2

from chatlib import V311, V5, ChatTestCase, conv_of, main, now_ms, uniq


class DmTest(ChatTestCase):

    def pair(self, proto=V311):
        a, b = uniq("a"), uniq("b")
        return a, b, self.dev(a, "phone", protocol=proto), self.dev(b, "phone", protocol=proto)

    def assert_ts(self, ev, before, after):
        self.assertIsInstance(ev["ts"], int)
        self.assertGreaterEqual(ev["ts"], before - 2000)
        self.assertLessEqual(ev["ts"], after + 2000)

    def take_puback_receipt(self, d, conv, by, seqs=(1,)):
        """On the patched broker the peer's PUBACKs are its delivered receipt:
        each of the sender's devices gets it once; takes it from d."""
        if self.broker.delivered_on_puback:
            r = d.wait_event("receipt", conv=conv)
            self.assertEqual((r["s"], r["seqs"], r["by"]), ("delivered", list(seqs), by), r)

    def test_delivery_every_field(self):
        # bytewise order: "Zed" < "amy" (uppercase first), so conv is dm:Zed...:amy...
        a, b = uniq("amy"), uniq("Zed")
        da = self.dev(a, "phone")
        da2 = self.dev(a, "laptop")
        db = self.dev(b, "phone")
        db2 = self.dev(b, "tablet", protocol=V5)
        conv = "dm:%s:%s" % (b, a)
        self.assertEqual(conv, conv_of(a, b))
        t0 = now_ms()
        rc = da.send_dm(b, b"\x01\x02", body=b"\x00ciphertext\xff", type=7, ttl=3600)
        self.assertEqual(rc, 0)
        t1 = now_ms()
        for peer in (db, db2):
            ev = peer.wait_event("msg")
            self.assertEqual(ev["conv"], conv)
            self.assertEqual(ev["seq"], 1)
            self.assertEqual(ev["from"], a + "/phone")
            self.assertEqual(ev["body"], b"\x00ciphertext\xff")
            self.assertEqual(ev["type"], 7)
            self.assertNotIn("cid", ev, "cid leaked to the peer")
            self.assert_ts(ev, t0, t1)
        own = da2.wait_event("msg")
        self.assertEqual(own["conv"], conv)
        self.assertEqual(own["seq"], 1)
        self.assertEqual(own["from"], a + "/phone")
        self.assertEqual(own["body"], b"\x00ciphertext\xff")
        self.assertEqual(own["cid"], b"\x01\x02")
        self.assertEqual(own["type"], 7)
        self.assert_ts(own, t0, t1)
        sent = da.wait_event("sent")
        self.assertEqual(sent["cid"], b"\x01\x02")
        self.assertEqual(sent["conv"], conv)
        self.assertEqual(sent["seq"], 1)
        self.assert_ts(sent, t0, t1)
        for d in (da, da2):
            self.take_puback_receipt(d, conv, b)
        # the sender gets no msg copy of its own message, nobody gets two
        da.expect_no_event(0.3)
        for d in (da2, db, db2):
            d.expect_no_event(0.05)

    def test_no_type_no_type_field(self):
        a, b, da, db = self.pair()
        da.send_dm(b, 5, body=b"x")
        ev = db.wait_event("msg")
        self.assertNotIn("type", ev)
        self.assertEqual(set(ev), {"k", "conv", "seq", "from", "ts", "body"})

    def test_consecutive_seqs_both_directions(self):
        a, b, da, db = self.pair()
        conv = conv_of(a, b)
        for i in range(1, 4):
            da.send_dm(b, i, body=b"m%d" % i)
            self.assertEqual(da.wait_event("sent", cid=i)["seq"], i)
        self.assertEqual([db.wait_event("msg")["seq"] for _ in range(3)], [1, 2, 3])
        # the conversation's counter is shared by both directions
        db.send_dm(a, b"r", body=b"reply")
        self.assertEqual(db.wait_event("sent")["seq"], 4)
        ev = da.wait_event("msg")
        self.assertEqual((ev["conv"], ev["seq"], ev["from"]), (conv, 4, b + "/phone"))
        # another conversation of a's starts at 1
        c = uniq("c")
        dc = self.dev(c, "phone")
        da.send_dm(c, 100, body=b"hi c")
        self.assertEqual(dc.wait_event("msg")["seq"], 1)
        self.assertEqual(da.wait_event("sent", cid=100)["seq"], 1)

    def test_burst_in_order(self):
        a, b, da, db = self.pair()
        n = 50
        for i in range(1, n + 1):
            da.publish("chat/dm/%s" % b, cbor2.dumps({"cid": i, "body": b"%d" % i}), wait=False)
        got = [db.wait_event("msg", timeout=10) for _ in range(n)]
        self.assertEqual([e["seq"] for e in got], list(range(1, n + 1)))
        self.assertEqual([e["body"] for e in got], [b"%d" % i for i in range(1, n + 1)])
        sents = {}
        for _ in range(n):
            e = da.wait_event("sent", timeout=10)
            sents[e["cid"]] = e["seq"]
        self.assertEqual(sents, {i: i for i in range(1, n + 1)})

    def test_qos2_send(self):
        a, b, da, db = self.pair(V5)
        self.assertLess(da.send_dm(b, 9, body=b"q2", qos=2), 0x80)
        self.assertEqual(da.wait_event("sent")["seq"], 1)
        self.assertEqual(db.wait_event("msg")["body"], b"q2")
        db.expect_no_event(0.3)

    def test_cid_dedup_bytes_and_uint(self):
        a, b, da, db = self.pair()
        conv = conv_of(a, b)
        for n, cid in enumerate([b"\xaa" * 16, 12345678901234, 0], start=1):
            da.send_dm(b, cid, body=b"first")
            s1 = da.wait_event("sent", cid=cid)
            self.assertEqual((s1["conv"], s1["seq"]), (conv, n))
            self.assertEqual(db.wait_event("msg")["seq"], n)
            # the retry: same cid, even with another body
            da.send_dm(b, cid, body=b"retry")
            s2 = da.wait_event("sent", cid=cid)
            self.assertEqual((s2["conv"], s2["seq"]), (conv, n))
            db.expect_no_event(0.3)
        # bstr 1 and uint 1 are different cids
        da.send_dm(b, b"\x01", body=b"x")
        self.assertEqual(da.wait_event("sent", cid=b"\x01")["seq"], 4)
        da.send_dm(b, 1, body=b"y")
        self.assertEqual(da.wait_event("sent", cid=1)["seq"], 5)
        self.assertEqual([db.wait_event("msg")["seq"] for _ in range(2)], [4, 5])

    def test_big_cids(self):
        a, b, da, db = self.pair()
        for cid in (2**64 - 1, 2**32, b"\xff" * 16, b"\x00"):
            da.send_dm(b, cid, body=b"x")
            self.assertEqual(da.wait_event("sent", cid=cid)["cid"], cid)
            db.wait_event("msg")

    def test_peer_offline(self):
        a, b = uniq("a"), uniq("b")
        da = self.dev(a, "phone")
        self.broker.add_device(b, "phone")
        self.assertEqual(da.send_dm(b, 1, body=b"later"), 0)
        self.assertEqual(da.wait_event("sent")["seq"], 1)

    def test_default_max_body(self):
        a, b, da, db = self.pair()
        big = bytes(range(256)) * 200          # 51200 bytes: under the 64 KiB default
        da.send_dm(b, 1, body=big)
        self.assertEqual(db.wait_event("msg", timeout=10)["body"], big)
        da.send_dm(b, 2, body=b"x" * 70000)
        self.assertEqual(da.wait_event("error")["code"], "size")
        db.expect_no_event(0.2)

    def test_hostile_cbor_no_crash(self):
        a, b, da, db = self.pair()
        deep = b"\xa2\x63cid\x01\x64body" + b"\x81" * 60000 + b"\x41x"
        hostile = [
            deep,
            b"\x81" * 60000 + b"\x00",                        # deep array, not a map
            b"\xa1\x63cid\x5b\x7f\xff\xff\xff\xff\xff\xff\xff",  # bstr claiming 2^63 bytes
            b"\xbb\x7f\xff\xff\xff\xff\xff\xff\xff",          # map claiming 2^63 pairs
            b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00",          # array of 2^32 items
            b"\xbf\x63cid\x01\x64body\x5f\x41a\x41b\xff\xff",  # indefinite map + bstr
            b"\xa3\x63cid\x01\x64body\x41x\x61x\x62\xff\xfe",   # invalid UTF-8 in a text value
            b"\xa2\x63cid\xc2\x41\x01\x64body\x41x",             # tagged cid (bignum)
            b"\xa2\x63cid\x01\x63cid\x02",                       # duplicate keys, no body
        ]
        for i, p in enumerate(hostile):
            da.publish("chat/dm/%s" % b, p)
            self.assertTrue(self.broker.running, "broker died on hostile payload %d\n%s"
                            % (i, self.broker.diagnostics()))
        # every one is answered (delivered or refused), and the broker still serves
        time.sleep(0.2)
        self.assertTrue(self.broker.running)
        self.assert_serving()

    def test_same_cid_two_devices_two_messages(self):
        a, b = uniq("a"), uniq("b")
        da1 = self.dev(a, "phone")
        da2 = self.dev(a, "laptop")
        db = self.dev(b, "phone")
        da1.send_dm(b, 42, body=b"from phone")
        self.assertEqual(da1.wait_event("sent", cid=42)["seq"], 1)
        da2.send_dm(b, 42, body=b"from laptop")
        self.assertEqual(da2.wait_event("sent", cid=42)["seq"], 2)
        m1, m2 = db.wait_event("msg"), db.wait_event("msg")
        self.assertEqual([(m1["seq"], m1["from"]), (m2["seq"], m2["from"])],
                         [(1, a + "/phone"), (2, a + "/laptop")])
        # and each sees the other's as an own-device copy with cid
        c2 = da2.wait_event("msg", seq=1)
        self.assertEqual(c2["cid"], 42)
        c1 = da1.wait_event("msg", seq=2)
        self.assertEqual(c1["cid"], 42)

    def test_bodies_exact_set(self):
        a, b = uniq("a"), uniq("b")
        da1 = self.dev(a, "phone")
        da2 = self.dev(a, "laptop")
        db1 = self.dev(b, "phone")
        db2 = self.dev(b, "tablet")
        bodies = {a + "/laptop": b"for a laptop", b + "/phone": b"for b phone",
                  b + "/tablet": b"for b tablet"}
        self.assertEqual(da1.send_dm(b, 1, bodies=bodies), 0)
        self.assertEqual(da1.wait_event("sent")["seq"], 1)
        for d in (da2, db1, db2):
            ev = d.wait_event("msg")
            self.assertEqual(ev["body"], bodies[d.addr], d.addr)
            self.assertNotIn("bodies", ev)
            self.assertEqual(ev["seq"], 1)
        self.take_puback_receipt(da1, conv_of(a, b), b)
        da1.expect_no_event(0.2)

    def _refused_bodies(self, da, b, bodies, missing, extra, proto):
        rc = da.send_dm(b, 77, bodies=bodies)
        if proto == V5:
            self.assertEqual(rc, 0x87, "MQTT 5 PUBACK of a refused send")
        err = da.wait_event("error")
        self.assertEqual(err["code"], "devices")
        self.assertIsInstance(err.get("msg"), str)
        self.assertEqual(sorted(err.get("missing", [])), sorted(missing))
        self.assertEqual(sorted(err.get("extra", [])), sorted(extra))
        da.expect_no_event(0.2, k="sent")

    def test_bodies_wrong_set(self):
        for proto in (V311, V5):
            a, b = uniq("a"), uniq("b")
            da1 = self.dev(a, "phone", protocol=proto)
            da2 = self.dev(a, "laptop")
            db1 = self.dev(b, "phone")
            self.broker.add_device(b, "offline")   # registered, never connected
            full = {a + "/laptop": b"1", b + "/phone": b"2", b + "/offline": b"3"}
            # missing one peer device, plus a stranger
            bad = dict(full)
            del bad[b + "/offline"]
            bad["nobody/x"] = b"4"
            self._refused_bodies(da1, b, bad, [b + "/offline"], ["nobody/x"], proto)
            # missing the sender's other device
            bad = dict(full)
            del bad[a + "/laptop"]
            self._refused_bodies(da1, b, bad, [a + "/laptop"], [], proto)
            # naming the sending device itself is extra
            bad = dict(full)
            bad[a + "/phone"] = b"self"
            self._refused_bodies(da1, b, bad, [], [a + "/phone"], proto)
            # nothing was delivered or stored: the next good send is seq 1
            for d in (da2, db1):
                d.expect_no_event(0.1)
            da1.send_dm(b, 78, bodies=full)
            self.assertEqual(da1.wait_event("sent", cid=78)["seq"], 1)
            self.assertEqual(db1.wait_event("msg")["body"], b"2")
            self.assertEqual(da2.wait_event("msg")["body"], b"1")

    def test_v5_refused_send_puback_and_v3_error(self):
        a, b = uniq("a"), uniq("b")
        d5 = self.dev(a, "v5", protocol=V5)
        d3 = self.dev(a, "v3", protocol=V311)
        db = self.dev(b, "phone")
        # to oneself: refused
        self.assertEqual(d5.send_dm(a, 1, body=b"x"), 0x87)
        self.assertEqual(d5.wait_event("error")["code"], "peer")
        self.assertEqual(d3.send_dm(a, 1, body=b"x"), 0)   # 3.1.1 has no reason code
        self.assertEqual(d3.wait_event("error")["code"], "peer")
        # an accepted v5 send gets a success code (0 or 0x10 "no matching subscribers")
        self.assertIn(d5.send_dm(b, 2, body=b"ok"), (0x00, 0x10))
        self.assertEqual(db.wait_event("msg")["from"], a + "/v5")


class DmSyncWritesTest(DmTest):
    """The same with plugin_opt_sync_writes true: on the patched broker,
    group commit (plugin/commit.c) holds PUBACKs and events behind shared
    fsyncs; on stock mosquitto every write is fsync'd. Nothing above may
    change."""
    broker_options = dict(DmTest.broker_options, sync_writes="true")


if __name__ == "__main__":
    main()
