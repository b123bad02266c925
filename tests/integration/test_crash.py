# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Queues survive the broker: kill -9 during a burst of QoS 1 sends, restart
on the same data dir, and the recipient's sync delivers every message whose
PUBACK the sender saw, with no seq gaps; a clean restart keeps queues and
queued receipts too. Repeated: several rounds of kill -9 at random points
under load, of the broker (no acknowledged message lost) and of the key
server (no one-time pre-key handed out twice)."""

import os
import random
import sys
import time

import cbor2

from chatlib import V5, ChatTestCase, Device, Identity, KeyServer, conv_of, main, uniq


def replay(dev, ack_every=100, timeout=10.0):
    """Syncs; returns the events up to sync done, acknowledging msgs with
    delivered receipts in batches as they come."""
    dev.begin_replay()
    got, pending = [], {}
    while True:
        ev = dev.wait_event(timeout=timeout)
        if ev.get("k") == "sync" and ev.get("done") is True:
            break
        got.append(ev)
        if ev.get("k") == "msg":
            seqs = pending.setdefault(ev["conv"], [])
            seqs.append(ev["seq"])
            if len(seqs) >= ack_every:
                dev.receipt("delivered", ev["conv"], seqs)
                pending[ev["conv"]] = []
    for conv, seqs in pending.items():
        if seqs:
            dev.receipt("delivered", conv, seqs)
    return got


class CrashTest(ChatTestCase):
    # Queues must hold messages until a device's receipt across restarts; on
    # the patched broker a device's PUBACK would be that receipt (its default
    # delivered_on_puback), emptying them before the crash under test.
    broker_options = {"delivered_on_puback": "false"}

    def reconnect(self, user, dev, token):
        # the replay its subscription starts is read by replay()
        d = Device(self.broker, user, dev, token, wait_replay=False)
        d.connect()
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def test_kill9_mid_burst_every_acked_send_delivered(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        ta = self.broker.add_device(a, "phone")
        tb = self.broker.add_device(b, "phone")      # offline throughout the burst
        da = self.reconnect(a, "phone", ta)
        n, kill_after = 500, 150
        mid_cid = {}
        for cid in range(1, n + 1):
            info = da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": cid, "body": b"%d" % cid}),
                                qos=1)
            mid_cid[info.mid] = cid
        with da.c.ack_cond:
            self.assertTrue(da.c.ack_cond.wait_for(lambda: len(da.c.ack_codes) >= kill_after, 20),
                            self.broker.diagnostics())
        self.broker.kill9()
        # every PUBACK that reached the client before the connection died counts
        self.assertTrue(da.disconnected.wait(5), "the sender did not see the broker go")
        da.c.loop_stop()
        da._looping = False
        with da.c.ack_cond:
            acked = sorted(mid_cid[m] for m, code in da.c.ack_codes.items() if code == 0)
        sys.stderr.write("[%d of %d sends acknowledged before kill -9] " % (len(acked), n))
        self.assertGreaterEqual(len(acked), kill_after)
        self.assertLess(len(acked), n, "the burst finished before the kill; nothing was tested")

        self.broker.start()
        db = self.reconnect(b, "phone", tb)
        got = replay(db)
        self.assertTrue(all(e["k"] == "msg" and e["conv"] == conv for e in got), got[:3])
        seqs = [e["seq"] for e in got]
        cids = [int(e["body"]) for e in got]
        self.assertEqual(seqs, list(range(1, len(got) + 1)), "seq gaps or repeats after the crash")
        self.assertEqual(cids, sorted(cids), "stored out of send order")
        self.assertEqual(len(set(cids)), len(cids), "a send stored twice")
        missing = sorted(set(acked) - set(cids))
        self.assertEqual(missing, [], "acknowledged sends lost by kill -9")

        # the sender retries everything it has no PUBACK for: the stored ones
        # answer with their original seq, the rest are stored now, once.
        da = self.reconnect(a, "phone", ta)
        unacked = [c for c in range(1, n + 1) if c not in set(acked)]
        stored_seq = {c: s for c, s in zip(cids, seqs)}
        for cid in unacked:
            da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": cid, "body": b"%d" % cid}), qos=1)
        sent = {}
        for _ in unacked:
            ev = da.wait_event("sent", timeout=10)
            sent[ev["cid"]] = ev["seq"]
        for cid in unacked:
            if cid in stored_seq:
                self.assertEqual(sent[cid], stored_seq[cid], "retry of a stored cid")
        self.assertEqual(len(set(sent.values())), len(sent), "two retries answered with one seq")
        # b is live after its sync: it gets exactly the newly stored ones
        fresh = [c for c in unacked if c not in stored_seq]
        live = [db.wait_event("msg", timeout=10) for _ in fresh]
        self.assertEqual([int(e["body"]) for e in live], fresh)
        self.assertEqual([e["seq"] for e in live], list(range(len(got) + 1, n + 1)))
        db.expect_no_event(0.3, k="msg")

    def test_clean_restart_keeps_queues_and_receipts(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        ta = self.broker.add_device(a, "phone")
        tb = self.broker.add_device(b, "phone")
        tb2 = self.broker.add_device(b, "laptop")
        da = self.reconnect(a, "phone", ta)
        db = self.reconnect(b, "phone", tb)
        for i in range(1, 4):
            da.send_dm(b, i, body=b"r%d" % i)
        self.assertEqual([db.wait_event("msg")["seq"] for _ in range(3)], [1, 2, 3])
        da.close()
        db.receipt("read", conv, [1])                 # queued for the offline a/phone
        db.close()
        self.broker.restart()
        db2 = self.reconnect(b, "laptop", tb2)
        self.assertEqual([(e["seq"], e["body"]) for e in replay(db2)],
                         [(1, b"r1"), (2, b"r2"), (3, b"r3")])
        db = self.reconnect(b, "phone", tb)
        self.assertEqual([e["seq"] for e in replay(db)], [2, 3])
        da = self.reconnect(a, "phone", ta)
        got = replay(da)
        self.assertEqual([(e["k"], e["s"], e["seqs"], e["by"]) for e in got],
                         [("receipt", "read", [1], b),
                          # b/laptop's replay acknowledged 2 and 3 too
                          ("receipt", "delivered", [2, 3], b)])
        # everything acknowledged: after another kill -9, all queues are empty
        self.broker.kill9()
        self.broker.start()
        for user, dev, tok in ((a, "phone", ta), (b, "phone", tb), (b, "laptop", tb2)):
            d = self.reconnect(user, dev, tok)
            self.assertEqual(replay(d), [], "%s/%s" % (user, dev))



ROUNDS = int(os.environ.get("CHAT_CRASH_ROUNDS", "5"))


class CrashRoundsTest(ChatTestCase):
    """kill -9 at random points, several rounds (seed printed; set
    CHAT_CRASH_SEED to replay one, CHAT_CRASH_ROUNDS for more rounds)."""

    def setUp(self):
        super().setUp()
        seed = int(os.environ.get("CHAT_CRASH_SEED", str(int(time.time()))))
        sys.stderr.write("[seed %d] " % seed)
        self.rng = random.Random(seed)

    def connect(self, user, dev, token, protocol=V5):
        # the replay its subscription starts is read by replay()
        d = Device(self.broker, user, dev, token, protocol=protocol, wait_replay=False).connect()
        self.addCleanup(d.close)
        return d

    def test_broker_kill9_rounds_lose_no_acknowledged_message(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        ta, tb = self.broker.add_device(a, "phone"), self.broker.add_device(b, "phone")
        acked, sent, cid = set(), set(), 0
        for rnd in range(ROUNDS):
            da = self.connect(a, "phone", ta)
            burst, kill_at = 300, self.rng.randrange(10, 280)
            mid_cid = {}
            for _ in range(burst):
                cid += 1
                sent.add(cid)
                info = da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": cid, "body": b"%d" % cid}),
                                    qos=1)
                mid_cid[info.mid] = cid
            with da.c.ack_cond:
                self.assertTrue(da.c.ack_cond.wait_for(lambda: len(da.c.ack_codes) >= kill_at, 20),
                                self.broker.diagnostics())
            self.broker.kill9()
            self.assertTrue(da.disconnected.wait(5))
            da.c.loop_stop()
            da._looping = False
            with da.c.ack_cond:
                acked |= {mid_cid[m] for m, code in da.c.ack_codes.items() if code < 0x80}
            self.broker.start()
        db = self.connect(b, "phone", tb)
        got = replay(db, timeout=20)
        cids = [int(e["body"]) for e in got if e.get("k") == "msg" and e["conv"] == conv]
        self.assertEqual([e["seq"] for e in got], list(range(1, len(got) + 1)), "seq gaps")
        self.assertEqual(len(set(cids)), len(cids), "a send stored twice")
        self.assertEqual(cids, sorted(cids), "stored out of order")
        self.assertEqual(sorted(acked - set(cids)), [], "acknowledged sends lost")
        self.assertTrue(set(cids) <= sent)
        sys.stderr.write("[%d broker kill -9 rounds: %d sends acknowledged, all %d delivered] "
                         % (ROUNDS, len(acked), len(cids)))

    def test_keyserver_kill9_rounds_hand_out_no_key_twice(self):
        # the rounds fetch hundreds of bundles as fast as they can: the key
        # server's rate limit (default burst 6) is not under test
        args = ("--rate-burst", "1000000", "--rate-refill-seconds", "0")
        ks = KeyServer.for_broker(self.broker, *args)
        self.addCleanup(ks.cleanup)
        ks.wait_serving()
        v = uniq("victim")
        dv = self.dev(v, "phone", protocol=V5)
        self.assertLess(dv.subscribe("chat/keys/resp/%s/phone" % v), 0x80)
        ident = Identity()
        pool = 0
        for i in range(3):
            req = ident.upload_req(100)
            dv.publish("chat/keys/req/%s/phone" % v, cbor2.dumps(dict(req, rid=i + 1)))
            r = dv.wait_message(lambda m: m[0].startswith("chat/keys/resp/") and m[1].get("rid") == i + 1,
                                10)
            self.assertTrue(r and r[1].get("ok"), r)
            pool = r[1]["opks"]
        self.assertEqual(pool, 300)
        fetchers = []
        for n in range(3):
            u = uniq("fetch")
            d = self.dev(u, "phone", protocol=V5)
            self.assertLess(d.subscribe("chat/keys/resp/%s/phone" % u), 0x80)
            fetchers.append(d)
        handed, rid = [], 100
        for rnd in range(ROUNDS):
            per_round = 40
            kill_after = self.rng.randrange(1, per_round)
            for i in range(per_round):
                rid += 1
                d = fetchers[i % len(fetchers)]
                d.publish("chat/keys/req/%s" % d.addr, cbor2.dumps({"op": "bundle", "user": v,
                                                                    "rid": rid}), wait=False)
                time.sleep(0.004)   # a steady load, so the kill lands mid-stream
                if i == kill_after:
                    # a bundle or two in flight while the key server dies
                    ks.proc.kill()
                    ks.proc.wait(5)
            ks = KeyServer(self.broker, ks.token_file, ks.data_dir, *args)
            self.addCleanup(ks.cleanup)
            ks.wait_serving()
            time.sleep(0.3)
            for d in fetchers:
                for m in d.drain():
                    if m[0].startswith("chat/keys/resp/") and m[1].get("ok"):
                        handed += [e["opk"]["id"] for e in m[1]["devices"] if "opk" in e]
        self.assertEqual(len(handed), len(set(handed)), "a one-time key handed out twice")
        rid += 1
        dv.publish("chat/keys/req/%s/phone" % v, cbor2.dumps({"op": "count", "rid": rid}))
        r = dv.wait_message(lambda m: m[0].startswith("chat/keys/resp/") and m[1].get("rid") == rid, 10)
        left = r[1]["opks"]
        # keys popped by a bundle whose answer died with the server are gone, never reissued
        self.assertLessEqual(left + len(handed), 300)
        self.assertGreater(len(handed), 0)
        sys.stderr.write("[%d key server kill -9 rounds: %d keys handed out, none twice, %d left] "
                         % (ROUNDS, len(handed), left))


class SyncWritesCrashTest(CrashTest):
    """The same with plugin_opt_sync_writes on: fsync per batch on stock
    mosquitto, group commit (PUBACKs held for a shared fsync) on the patched
    broker."""
    broker_options = dict(CrashTest.broker_options, sync_writes="true")

if __name__ == "__main__":
    main()
