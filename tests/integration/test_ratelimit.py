# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The per-device send rate limit through a real broker: a flooding device
gets its burst stored and the rest refused (error code "rate" with the cid,
MQTT 5 failure code), nothing refused is stored or delivered, other devices
are not held back, and the bucket refills. The default is on."""

import time

import cbor2

from chatlib import V5, Broker, ChatTestCase, conv_of, main, uniq

RATE, BURST = 20, 10


class RateLimitTest(ChatTestCase):
    # the limit under test, small enough to reach in a few sends
    broker_options = {"send_rate": RATE, "send_burst": BURST}

    def test_flood_refused_past_burst(self):
        a, b, c = uniq("flood"), uniq("b"), uniq("c")
        da = self.dev(a, "phone", protocol=V5)
        db = self.dev(b, "phone")
        dc = self.dev(c, "phone", protocol=V5)
        n = 4 * BURST
        mids = {}
        t0 = time.monotonic()
        for cid in range(1, n + 1):
            info = da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": cid, "body": b"%d" % cid}),
                                qos=1)
            mids[info.mid] = cid
        with da.c.ack_cond:
            self.assertTrue(da.c.ack_cond.wait_for(lambda: len(da.c.ack_codes) >= n, 10))
            codes = {mids[m]: code for m, code in da.c.ack_codes.items()}
            da.c.ack_codes.clear()
        elapsed = time.monotonic() - t0
        accepted = sorted(cid for cid, code in codes.items() if code < 0x80)
        refused = sorted(cid for cid, code in codes.items() if code >= 0x80)
        # the burst plus what refilled while the flood was going on
        self.assertGreaterEqual(len(accepted), BURST)
        self.assertLessEqual(len(accepted), BURST + int(elapsed * RATE) + 1, elapsed)
        # the burst is the head; a token that refilled during the flood (one
        # per 1/RATE s; the flood takes that long under ASan on a busy
        # machine) admits a later cid among the refusals
        self.assertEqual(accepted[:BURST], list(range(1, BURST + 1)), "the burst is the head")
        self.assertGreater(min(refused), BURST)
        self.assertEqual(len(accepted) + len(refused), n)
        self.assertEqual({code for code in codes.values() if code >= 0x80}, {0x87})
        errs = [da.wait_event("error") for _ in refused]
        self.assertEqual({e["code"] for e in errs}, {"rate"})
        self.assertEqual(sorted(e["cid"] for e in errs), refused)
        self.assertIn("retry in", errs[0]["msg"])
        # only the accepted ones were stored and delivered, in order, no gaps
        got = [db.wait_event("msg", conv=conv_of(a, b)) for _ in accepted]
        self.assertEqual([int(e["body"]) for e in got], accepted)
        self.assertEqual([e["seq"] for e in got], list(range(1, len(accepted) + 1)))
        db.expect_no_event(0.3, k="msg")
        # another device is not held back while a is limited
        self.assertLess(dc.send_dm(b, 1, body=b"other"), 0x80)
        self.assertEqual(db.wait_event("msg", conv=conv_of(b, c))["body"], b"other")
        # the bucket refills: a retry of a refused cid after the wait is stored
        time.sleep(2.0 / RATE)
        self.assertLess(da.send_dm(b, refused[0], body=b"%d" % refused[0]), 0x80)
        ev = db.wait_event("msg", conv=conv_of(a, b))
        self.assertEqual((ev["body"], ev["seq"]), (b"%d" % refused[0], len(accepted) + 1))
        rc, out, err = self.broker.chatctl("stats")
        self.assertEqual(rc, 0, err)
        stats = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
        self.assertEqual(int(stats["refused_rate"]), len(refused))

    def test_default_is_on(self):
        b = Broker()
        b.start()
        self.addCleanup(b.cleanup)
        u, v = uniq("d"), uniq("d")
        du = b.device(u, "phone", protocol=V5)
        self.addCleanup(du.close)
        b.add_device(v, "phone")
        # the documented default burst (1000) is accepted at full speed
        n = 1000
        mids = []
        for cid in range(1, n + 2):
            mids.append(du.c.publish("chat/dm/%s" % v, cbor2.dumps({"cid": cid, "body": b"x"}),
                                     qos=1).mid)
        with du.c.ack_cond:
            self.assertTrue(du.c.ack_cond.wait_for(lambda: len(du.c.ack_codes) >= n + 1, 30))
            codes = [du.c.ack_codes[m] for m in mids]
        # (0x10: no subscribers — MQTT 5's success for a publish nobody gets live)
        self.assertEqual([code for code in codes[:n] if code >= 0x80], [])
        # and the flood beyond it, at a rate far over 100/s, meets the limit
        for cid in range(n + 2, n + 200):
            du.c.publish("chat/dm/%s" % v, cbor2.dumps({"cid": cid, "body": b"x"}), qos=1)
        err = du.wait_event("error", code="rate", timeout=10)
        self.assertIn("limit of 100 a second (burst 1000)", err["msg"])


if __name__ == "__main__":
    main()
