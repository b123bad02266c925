# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Sync writes with group commit (plugin/commit.c, store/commit.c) on the
broker-patches build, whose 0004 lets the plugin acknowledge a publish after
a shared fsync; on stock mosquitto sync writes fsync every write and the
same observable rules hold.

 - a send's PUBACK arrives before its `sent` event (the event waits for the
   fsync behind the barrier; the ack is completed first);
 - many senders at once get every ack with fewer fsyncs than sends
   (commit_batches < commit_acks_deferred);
 - a sender that drops its connection while its ack is held gets none; its
   retry with the same cid is answered from the dedup index with the same
   seq, and the peer gets the message once;
 - the log line says which durability the broker gives;
 - a disk whose fsync fails (the power-cut shim's POWERCUT_FAIL_FLAG): the
   broker ends as a crash would (exit 74) before acknowledging anything the
   fsync was to cover; after a restart the client's resend is stored or
   deduplicated, and the peer gets every message once.

Each broker here sets plugin_opt_sync_writes true (and one a commit window)
because that is the subject; the rest of the suite runs the defaults.
"""

import os
import threading
import time
import unittest

import cbor2

from chatlib import BUILD_DIR, SANITIZER_ENV, V5, ChatTestCase, conv_of, main, uniq

SHIM = os.path.join(BUILD_DIR, "lib", "powercut.so")


def stats(broker):
    rc, out, err = broker.chatctl("stats")
    assert rc == 0, err
    return dict((l.split()[0], int(l.split()[1])) for l in out.splitlines() if l.strip())


class GroupCommitTest(ChatTestCase):
    broker_options = {"sync_writes": "true"}

    def pair(self):
        a, b = uniq("a"), uniq("b")
        ta, tb = self.broker.add_device(a, "phone"), self.broker.add_device(b, "phone")
        return self.dev(a, "phone", token=ta), self.dev(b, "phone", token=tb)

    def test_mode_logged(self):
        if self.broker.patched:
            self.assertIn("sync writes: group commit", self.broker.log_text())
        else:
            self.assertIn("sync writes: one fsync per write", self.broker.log_text())

    def test_puback_before_sent(self):
        da, db = self.pair()
        before = stats(self.broker)
        # What the sender had been acknowledged when each `sent` arrived:
        # paho reads one socket in order, so this is the wire order.
        acked_at = {}
        orig = da.c.on_message

        def hooked(c, u, msg):
            ev = cbor2.loads(msg.payload)
            if isinstance(ev, dict) and ev.get("k") == "sent":
                with da.c.ack_cond:
                    acked_at[ev["cid"]] = set(da.c.ack_codes)
            orig(c, u, msg)
        da.c.on_message = hooked

        n = 50
        mids = {}
        for cid in range(1, n + 1):
            info = da.c.publish("chat/dm/%s" % db.user,
                                cbor2.dumps({"cid": cid, "body": b"m%d" % cid}), qos=1)
            mids[cid] = info.mid
        with da.c.ack_cond:
            self.assertTrue(da.c.ack_cond.wait_for(
                lambda: all(m in da.c.ack_codes for m in mids.values()), 10),
                self.broker.diagnostics())
        for cid in range(1, n + 1):
            da.wait_event("sent", cid=cid, timeout=10)
        for cid in range(1, n + 1):
            self.assertIn(mids[cid], acked_at[cid], "sent %d arrived before its PUBACK" % cid)
        got = [db.wait_event("msg", timeout=10)["seq"] for _ in range(n)]
        self.assertEqual(got, list(range(1, n + 1)))
        after = stats(self.broker)
        deferred = after["commit_acks_deferred"] - before["commit_acks_deferred"]
        if self.broker.patched:
            self.assertGreater(deferred, 0, "no acknowledgement was held")
            self.assertGreater(after["commit_batches"], before["commit_batches"])
        else:
            self.assertEqual(deferred, 0)
            self.assertEqual(after["commit_batches"], 0)

    def test_concurrent_senders_share_fsyncs(self):
        self.require_patched()
        peer_user = uniq("peer")
        tp = self.broker.add_device(peer_user, "phone")
        senders = []
        for i in range(8):
            u = uniq("s%d" % i)
            senders.append(self.dev(u, "phone", token=self.broker.add_device(u, "phone")))
        before = stats(self.broker)
        per = 40
        mids = [[] for _ in senders]

        def burst(i, d):
            for cid in range(1, per + 1):
                mids[i].append(d.c.publish("chat/dm/%s" % peer_user,
                                           cbor2.dumps({"cid": cid, "body": b"x"}), qos=1).mid)
        threads = [threading.Thread(target=burst, args=(i, d)) for i, d in enumerate(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, d in enumerate(senders):
            with d.c.ack_cond:
                self.assertTrue(d.c.ack_cond.wait_for(
                    lambda: all(m in d.c.ack_codes for m in mids[i]), 20),
                    self.broker.diagnostics())
                self.assertEqual({d.c.ack_codes[m] for m in mids[i]}, {0})
        after = stats(self.broker)
        sends = after["messages_stored"] - before["messages_stored"]
        deferred = after["commit_acks_deferred"] - before["commit_acks_deferred"]
        batches = after["commit_batches"] - before["commit_batches"]
        self.assertEqual(sends, len(senders) * per)
        self.assertGreater(deferred, 0)
        self.assertLess(batches, sends, "as many fsyncs as sends: no group commit")
        print("[%d sends, %d acks held, %d fsyncs]" % (sends, deferred, batches))
        # every send reached the peer's queue and comes back in its replay
        dp = self.dev(peer_user, "phone", token=tp, wait_replay=False)
        dp.begin_replay()
        n = 0
        while True:
            ev = dp.wait_event(timeout=15)
            if ev.get("k") == "sync":
                break
            n += ev.get("k") == "msg"
        self.assertGreaterEqual(n, min(sends, 400))   # one flow window at least


class GroupCommitHeldAckTest(ChatTestCase):
    # A commit window of 100 ms holds each ack long enough for the sender
    # to leave before it is sent.
    broker_options = {"sync_writes": "true", "commit_window_us": "100000"}

    def test_disconnect_with_ack_held_then_retry(self):
        a, b = uniq("a"), uniq("b")
        ta, tb = self.broker.add_device(a, "phone"), self.broker.add_device(b, "phone")
        db = self.dev(b, "phone", token=tb)
        da = self.dev(a, "phone", token=ta)
        before = stats(self.broker)
        da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": b"retry-1", "body": b"once"}), qos=1)
        time.sleep(0.02)          # the broker has it; the commit window has not passed
        with da.c.ack_cond:
            acked = dict(da.c.ack_codes)
        da.drop()
        if self.broker.patched:
            self.assertEqual(acked, {}, "the ack was not held")
            self.assertEqual(stats(self.broker)["commit_acks_deferred"],
                             before["commit_acks_deferred"] + 1)
        # the app retries with the same cid on its next connection
        da2 = self.dev(a, "phone", token=ta)
        self.assertEqual(da2.send_dm(b, b"retry-1", body=b"once"), 0)
        sent = da2.wait_event("sent", timeout=5)
        self.assertEqual((sent["conv"], sent["seq"]), (conv_of(a, b), 1))
        got = db.wait_event("msg", timeout=5)
        self.assertEqual((got["seq"], got["body"]), (1, b"once"))
        db.expect_no_event(timeout=0.5, k="msg")
        da2.expect_no_event(timeout=0.2, k="sent")
        after = stats(self.broker)
        self.assertEqual(after["messages_stored"] - before["messages_stored"], 1)
        self.assertEqual(after["messages_duplicate"] - before["messages_duplicate"], 1)


@unittest.skipIf(SANITIZER_ENV or not os.path.exists(SHIM),
                 "needs the power-cut shim (tests/powercut), not built in sanitizer builds")
class GroupCommitFsyncFailureTest(ChatTestCase):
    # The subject is sync writes on the patched broker, whose fsyncs the
    # shim makes fail from a chosen instant.
    broker_options = {"sync_writes": "true"}

    def test_failed_fsync_stops_the_broker_and_nothing_is_lost(self):
        self.require_patched()
        a, b = uniq("a"), uniq("b")
        ta, tb = self.broker.add_device(a, "phone"), self.broker.add_device(b, "phone")
        flag = os.path.join(self.broker.tmp, "disk-bad")
        self.broker.stop()
        self.broker.env = {"LD_PRELOAD": SHIM, "POWERCUT_DIR": self.broker.data_dir,
                           "POWERCUT_LOG": os.path.join(self.broker.tmp, "powercut.log"),
                           "POWERCUT_FAIL_FLAG": flag}
        self.broker.start()
        self.broker.env = {}
        da = self.dev(a, "phone", token=ta, protocol=V5)
        self.assertLess(da.send_dm(b, 1, body=b"before"), 0x80)   # a healthy disk (0x10: no subscribers)
        self.assertEqual(da.wait_event("sent", timeout=5)["seq"], 1)

        open(flag, "w").close()                                      # the disk goes bad
        info = da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": 2, "body": b"held"}), qos=1)
        # The broker ends as a crash would (exit status 74), before any
        # acknowledgement or event that the failed fsync was to cover.
        self.broker.proc.wait(timeout=10)
        self.assertEqual(self.broker.proc.returncode, 74, self.broker.diagnostics())
        self.assertIn("stopping the broker (exit status 74)", self.broker.log_text())
        self.assertTrue(da.disconnected.wait(5))
        with da.c.ack_cond:
            self.assertNotIn(info.mid, da.c.ack_codes, "acknowledged, though its fsync failed")
        self.assertEqual([e for e in da.events() if e.get("k") == "sent" and e["cid"] == 2], [])

        # Restarted on a healthy disk (its service manager would): the
        # client resends what was never acknowledged; whether the write had
        # reached the disk or not, the peer gets each message once.
        os.remove(flag)
        self.broker.start()
        da2 = self.dev(a, "phone", token=ta, protocol=V5)
        self.assertLess(da2.send_dm(b, 2, body=b"held"), 0x80)
        self.assertEqual(da2.wait_event("sent", timeout=5)["seq"], 2)
        db = self.dev(b, "phone", token=tb)
        got = [db.wait_event("msg", timeout=5) for _ in range(2)]
        self.assertEqual([(m["seq"], m["body"]) for m in got], [(1, b"before"), (2, b"held")])
        db.expect_no_event(timeout=0.5, k="msg")


if __name__ == "__main__":
    main()
