"""Queues survive the broker: kill -9 during a burst of QoS 1 sends, restart
on the same data dir, and the recipient's sync delivers every message whose
PUBACK the sender saw, with no seq gaps; a clean restart keeps queues and
queued receipts too."""

import sys

import cbor2

from chatlib import ChatTestCase, Device, conv_of, main, uniq


def replay(dev, ack_every=100, timeout=10.0):
    """Syncs; returns the events up to sync done, acknowledging msgs with
    delivered receipts in batches as they come."""
    dev.sync()
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

    def reconnect(self, user, dev, token):
        d = Device(self.broker, user, dev, token)
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



class SyncWritesCrashTest(CrashTest):
    """The same with plugin_opt_sync_writes on (fsync per batch)."""
    broker_options = {"sync_writes": "true"}

if __name__ == "__main__":
    main()
