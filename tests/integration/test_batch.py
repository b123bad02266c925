# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Batched replay through a real broker (docs/PROTOCOL.md §5, the `batch`
capability; plugin/sync.c). A device that declared `batch` gets its queue
replayed as {"k": "batch", "evs": [...]} publishes of up to
plugin_opt_replay_batch (64) events: 5,000 queued messages arrive each
once, in order, then `sync done`, then live delivery as plain `msg`
events. On stock mosquitto the device's delivered receipts (one per batch)
refill its window; on the patched broker its PUBACKs do, a batch's PUBACK
freeing all of its places and delivering every message in it (the sender
gets the receipts without any app receipt). A device that did not declare
the capability gets the v1 replay, one event per publish."""

import time

import cbor2

from chatlib import ChatTestCase, conv_of, main, uniq

N = 5000
BATCH = 64  # plugin_opt_replay_batch's default


class BatchTest(ChatTestCase):
    # 5,000 sends in a few seconds from one device: the send rate limit
    # (100/s, burst 1000) would refuse most of them.
    broker_options = {"send_rate": 0}

    def stats(self):
        rc, out, err = self.broker.chatctl("stats")
        self.assertEqual(rc, 0, err)
        return dict((l.split()[0], int(l.split()[1])) for l in out.splitlines() if l.strip())

    def declare(self, d, caps, in_effect=None):
        r = d.ctl("caps", 1, caps=caps)
        self.assertTrue(r["ok"], r)
        self.assertEqual(sorted(r["caps"]), sorted(caps if in_effect is None else in_effect), r)
        self.assertEqual(r["server"]["replay_batch"], BATCH, r)

    def fill(self, sender, peer, n):
        """n messages sender -> peer, without waiting for each PUBACK."""
        infos = [sender.c.publish("chat/dm/%s" % peer, cbor2.dumps({"cid": i, "body": b"m%d" % i}),
                                  qos=1) for i in range(1, n + 1)]
        for info in infos:
            info.wait_for_publish(60)
            self.assertTrue(info.is_published())

    def read_replay(self, d, conv, ack, timeout=60.0):
        """Reads d's inbox until `sync done`: the publishes as they came
        (kinds), the seqs of conv's messages in order. ack: a delivered
        receipt for each publish's messages (the stock broker's refill)."""
        kinds, seqs = [], []
        deadline = time.monotonic() + timeout
        while True:
            m = d.wait_message(lambda m: m[0] == d.inbox, max(0.1, deadline - time.monotonic()))
            self.assertIsNotNone(m, "replay stalled after %d messages, %d publishes"
                                 % (len(seqs), len(kinds)))
            ev = m[1]
            kinds.append(ev["k"])
            if ev["k"] == "sync":
                self.assertTrue(ev["done"])
                return kinds, seqs
            evs = ev["evs"] if ev["k"] == "batch" else [ev]
            if ev["k"] == "batch":
                self.assertEqual(sorted(ev), ["evs", "k"])
                self.assertTrue(2 <= len(evs) <= BATCH, len(evs))
            got = []
            for e in evs:
                self.assertNotEqual(e["k"], "batch")
                if e["k"] == "msg" and e["conv"] == conv:
                    self.assertEqual(e["body"], b"m%d" % e["seq"])
                    got.append(e["seq"])
            seqs += got
            if ack and got:
                d.receipt("delivered", conv, got, wait=False)

    def test_replay_5000_in_batches_then_live(self):
        a, b = uniq("ba"), uniq("bb")
        conv = conv_of(a, b)
        alice = self.dev(a, "phone", subscribe=False)
        bob = self.dev(b, "batch")
        # a name this server does not know is ignored
        self.declare(bob, ["batch", "some-future-cap"], in_effect=["batch"])
        bob.close()
        before = self.stats()
        self.fill(alice, b, N)

        bob = self.dev(b, "batch", token=bob.token, wait_replay=False)
        t0 = time.monotonic()
        kinds, seqs = self.read_replay(bob, conv, ack=not self.broker.delivered_on_puback)
        secs = time.monotonic() - t0
        self.assertEqual(seqs, list(range(1, N + 1)))  # every seq once, in order
        batches = kinds.count("batch")
        # 5,000 in batches of 64 (fewer when the window has less room)
        self.assertGreaterEqual(batches, N // BATCH)
        self.assertLess(len(kinds), N // 4, kinds[:20])
        self.assertEqual(kinds[-1], "sync")
        self.assertGreaterEqual(self.stats()["replay_batches"] - before.get("replay_batches", 0),
                                batches)
        print("replayed %d messages in %d publishes (%d batches) in %.2fs"
              % (N, len(kinds), batches, secs))

        # live again: one message, one plain msg event
        alice.send_dm(b, N + 1, body=b"m%d" % (N + 1))
        ev = bob.wait_event("msg", conv=conv, timeout=10)
        self.assertEqual(ev["seq"], N + 1)

        if self.broker.delivered_on_puback:
            # the PUBACKs of the batches were bob's delivered receipts: alice
            # hears of every seq without any app receipt, and nothing stays
            # queued for bob's next replay
            delivered = set()
            deadline = time.monotonic() + 20
            while len(delivered) < N and time.monotonic() < deadline:
                m = alice.wait_message(lambda m: m[1].get("k") == "receipt", 1.0)
                if m:
                    self.assertEqual(m[1]["s"], "delivered")
                    delivered.update(m[1]["seqs"])
            self.assertTrue(set(range(1, N + 1)) <= delivered, N - len(delivered))
            bob.close()
            bob = self.dev(b, "batch", token=bob.token)
            self.assertEqual([e for e in bob.events() if e.get("k") == "msg"], [])

    def test_v1_device_unchanged(self):
        a, b = uniq("va"), uniq("vb")
        conv = conv_of(a, b)
        alice = self.dev(a, "phone", subscribe=False)
        bob = self.dev(b, "phone")
        bob.close()
        self.fill(alice, b, 100)
        bob = self.dev(b, "phone", token=bob.token, wait_replay=False)
        kinds, seqs = self.read_replay(bob, conv, ack=not self.broker.delivered_on_puback)
        self.assertEqual(seqs, list(range(1, 101)))
        self.assertEqual(kinds, ["msg"] * 100 + ["sync"])

    def test_empty_caps_back_to_v1(self):
        a, b = uniq("ea"), uniq("eb")
        conv = conv_of(a, b)
        alice = self.dev(a, "phone", subscribe=False)
        bob = self.dev(b, "batch")
        self.declare(bob, ["batch"])
        self.declare(bob, [])
        bob.close()
        self.fill(alice, b, 10)
        bob = self.dev(b, "batch", token=bob.token, wait_replay=False)
        kinds, seqs = self.read_replay(bob, conv, ack=True)
        self.assertEqual(seqs, list(range(1, 11)))
        self.assertEqual(kinds, ["msg"] * 10 + ["sync"])


if __name__ == "__main__":
    main()
