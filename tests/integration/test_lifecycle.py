# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Device lifecycle end to end: `chatctl device remove U D` disconnects the
device, drops its queue, and the change reaches U's other devices, U's 1:1
contacts and U's group co-members as a `devices` inbox event (nobody else);
the key server drops the device's keys through the broker's retained notice,
also when it was away at the time of the removal."""

import os
import time

import cbor2

from chatlib import V5, ChatTestCase, Device, main, uniq, wait_until
from test_keyserver import Identity, KeyServer


class DeviceRemovalTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rc, out, err = cls.broker.chatctl("service", "add", "keys")
        assert rc == 0, err
        cls.token_file = os.path.join(cls.broker.tmp, "keys.token")
        with open(cls.token_file, "w") as f:
            f.write(out.strip() + "\n")

    def start_ks(self):
        ks = KeyServer(self.broker, self.token_file, os.path.join(self.broker.tmp, "ks"))
        self.addCleanup(ks.cleanup)
        ks.wait_serving()
        return ks

    def keydev(self, user, dev):
        d = self.dev(user, dev, protocol=V5)
        self.assertLess(d.subscribe("chat/keys/resp/%s/%s" % (user, dev)), 0x80)
        return d

    def request(self, d, req, timeout=5.0):
        rid = int(time.monotonic() * 1000) % 1000000
        d.publish("chat/keys/req/%s/%s" % (d.user, d.dev), cbor2.dumps(dict(req, rid=rid)))
        m = d.wait_message(lambda m: isinstance(m[1], dict) and m[1].get("rid") == rid, timeout)
        self.assertIsNotNone(m, "no key server response")
        return m[1]

    def bundle_devices(self, d, user):
        r = self.request(d, {"op": "bundle", "user": user})
        return sorted(e["device"] for e in r.get("devices", [])) if r["ok"] else r["code"]

    def test_remove_reaches_devices_contacts_members_and_keys(self):
        ks = self.start_ks()
        a, b, c, x = uniq("alice"), uniq("bob"), uniq("carol"), uniq("dave")
        phone = self.keydev(a, "phone")
        tablet = self.keydev(a, "tablet")
        db, dc, dx = self.keydev(b, "phone"), self.keydev(c, "phone"), self.keydev(x, "phone")
        for d in (phone, tablet):
            self.assertTrue(self.request(d, Identity().upload_req(3))["ok"])
        self.assertEqual(self.bundle_devices(db, a), ["phone", "tablet"])
        # bob is a 1:1 contact (a message exists), carol shares a group, dave neither
        db.send_dm(a, 1, bodies={"%s/phone" % a: b"p", "%s/tablet" % a: b"t"})
        tablet.wait_event("msg")
        rc, _, err = self.broker.chatctl("group", "create", uniq("g"), "--owner", a,
                                         "--members", c)
        self.assertEqual(rc, 0, err)
        # a message queued for the tablet while it is away
        tablet.close()
        db.send_dm(a, 2, bodies={"%s/phone" % a: b"p2", "%s/tablet" % a: b"queued"})
        tablet = Device(self.broker, a, "tablet", tablet.token, protocol=V5, subscribe=True)
        tablet.connect()
        self.addCleanup(tablet.close)
        for d in (phone, db, dc, dx):
            d.drain()

        rc, out, err = self.broker.chatctl("device", "remove", a, "tablet")
        self.assertEqual((rc, out), (0, ""), err)
        self.assertTrue(tablet.disconnected.wait(5), "the removed device stays connected")
        for d, who in ((phone, "own device"), (db, "contact"), (dc, "group member")):
            ev = d.wait_event("devices", user=a)
            self.assertEqual((ev["devices"], ev["removed"]), (["phone"], "tablet"), who)
        dx.expect_no_event(timeout=0.5, k="devices")
        # the key server drops the device's keys
        ks.wait_text("device %s/tablet was removed" % a)
        self.assertEqual(self.bundle_devices(db, a), ["phone"])

        # re-added, the same address starts empty: the old queue went with it
        tok = self.broker.add_device(a, "tablet")
        again = Device(self.broker, a, "tablet", tok).connect()
        self.addCleanup(again.close)
        again.sync()
        got = []
        while True:
            ev = again.wait_event(timeout=10)
            if ev.get("k") == "sync":
                break
            got.append(ev)
        self.assertEqual([e for e in got if e.get("k") == "msg"], [])
        self.assertEqual(ks.stop(), 0)

    def test_key_server_counters_in_broker_stats(self):
        ks = KeyServer(self.broker, self.token_file, os.path.join(self.broker.tmp, "ks-st"),
                       "--stats-interval", "1", "--rate-burst", "2")
        self.addCleanup(ks.cleanup)
        ks.wait_serving()
        a, b = uniq("alice"), uniq("bob")
        da, db = self.keydev(a, "phone"), self.keydev(b, "phone")
        self.assertTrue(self.request(db, Identity().upload_req(20))["ok"])
        codes = [self.request(da, {"op": "bundle", "user": b}).get("code") for _ in range(3)]
        self.assertEqual(codes, [None, None, "rate"])

        def counters():
            rc, out, err = self.broker.chatctl("stats")
            self.assertEqual(rc, 0, err)
            return {k: int(v) for k, v in (l.split() for l in out.splitlines())}
        ok = wait_until(lambda: (lambda c: c["keys_requests"] >= 4 and
                                 c["keys_refused_rate"] >= 1 and
                                 c["keys_pool_keys"] >= 18)(counters()), timeout=10)
        self.assertTrue(ok, counters())
        self.assertEqual(ks.stop(), 0)

    def test_key_server_away_acts_on_reconnect(self):
        ks = self.start_ks()
        a, b = uniq("alice"), uniq("bob")
        laptop, db = self.keydev(a, "laptop"), self.keydev(b, "phone")
        phone = self.keydev(a, "phone")
        for d in (laptop, phone):
            self.assertTrue(self.request(d, Identity().upload_req(2))["ok"])
        self.assertEqual(ks.stop(), 0)
        rc, _, err = self.broker.chatctl("device", "remove", a, "laptop")
        self.assertEqual(rc, 0, err)
        ks = self.start_ks()
        ks.wait_text("device %s/laptop was removed" % a)
        self.assertEqual(self.bundle_devices(db, a), ["phone"])
        # acted on once: the notice is cleared, a restart does not drop again
        self.assertEqual(ks.stop(), 0)
        ks2 = self.start_ks()
        self.assertEqual(self.bundle_devices(db, a), ["phone"])
        self.assertNotIn("was removed", ks2.text())
        self.assertEqual(ks2.stop(), 0)


if __name__ == "__main__":
    main()
