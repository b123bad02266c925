# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Protocol v2 through a real broker (docs/PROTOCOL.md, "Capabilities"):
a device declares capabilities (chat/ctl caps, chat/sync caps), they stay
with the device across reconnects and broker restarts and go with it;
`sents` gathers the device's confirmations (and on the patched broker
merges the peer's PUBACK into them), `rcpts` coalesces receipts; devices
that declared nothing see exactly the v1 events."""

import cbor2

from chatlib import Broker, ChatTestCase, Device, conv_of, main, uniq

V2 = ["sents", "rcpts", "batch"]


def counters(broker):
    rc, out, err = broker.chatctl("stats")
    if rc != 0:
        raise AssertionError("chatctl stats failed: %s" % err)
    return {k: int(v) for k, v in (l.split() for l in out.splitlines())}


class CapsTest(ChatTestCase):

    def test_declared_and_reported(self):
        a = uniq("cp")
        d = self.dev(a, "d", caps=["rcpts", "not-yet-invented", "sents"])
        r = d.caps_reply
        self.assertEqual(r["k"], "ctl")
        self.assertTrue(r["ok"])
        self.assertEqual(r["caps"], ["sents", "rcpts"])
        srv = r["server"]
        self.assertEqual(srv["v"], 2)
        # the patched broker counts a msg's PUBACK as delivered (its default)
        self.assertIs(srv["puback_delivered"], self.broker.patched)
        self.assertEqual(srv["gather_ms"], 10)
        self.assertGreaterEqual(srv["replay_batch"], 1)
        # malformed: refused with field, nothing changes
        bad = d.ctl("caps", 2, caps="sents")
        self.assertFalse(bad["ok"])
        self.assertEqual(bad["code"], "field")
        self.assertEqual(d.ctl("caps", 3, caps=[])["caps"], [])

    def test_kept_across_reconnect_and_restart(self):
        # a broker of its own: it restarts
        b = Broker()
        self.addCleanup(b.cleanup)
        b.start()
        u = uniq("cr")
        tok = b.add_device(u, "d")
        tok2 = b.add_device(u, "e")
        d = Device(b, u, "d", tok, caps=V2).connect()
        e = Device(b, u, "e", tok2, caps=["sents"]).connect()
        d.close()
        e.close()
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"],
                          c["devices_caps_batch"]), (2, 1, 1))
        b.restart()
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"],
                          c["devices_caps_batch"]), (2, 1, 1))
        # a device removed takes its capabilities along; added again, it has none
        rc, out, err = b.chatctl("device", "remove", u, "e")
        self.assertEqual(rc, 0, err)
        b.add_device(u, "e")
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"]), (1, 1))
        b.restart()
        self.assertEqual(counters(b)["devices_caps_sents"], 1)
        # chat/sync {caps}: set before its replay, which ends as always
        d = Device(b, u, "d", tok, subscribe=False).connect()
        d.publish("chat/sync", cbor2.dumps({"caps": ["rcpts"]}))
        d.wait_event("sync", done=True)
        c = counters(b)
        self.assertEqual((c["devices_caps_sents"], c["devices_caps_rcpts"]), (0, 1))
        d.close()


if __name__ == "__main__":
    main()
