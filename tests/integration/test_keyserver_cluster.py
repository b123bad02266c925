# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chat-keyserver in cluster mode (issue 27; docs/CLUSTER.md "The key
server", docs/KEYSERVER.md "Cluster mode"): two key servers on one 3-node
NATS JetStream cluster (clusterlib), behind one broker in the default
`$share/keyserver` group, so every request goes to one of them.

- uploads racing through both servers onto a nearly full pool: each is
  stored whole or refused `full` (the per-subject limit);
- many concurrent bundle requests for one user's pools from several
  devices: every one-time key handed out exactly once, none twice; uploads
  served by either; the rate limit (a sliding window in JetStream) holds
  across both;
- kill -9 of one key server mid-load, then (CHAT_KS_LEADER_KILL=1, as
  bench/keyserver-cluster.sh runs it: an election is 5-18 s) kill -9 of the
  one-time key stream's leader: still no key twice, and every key handed out is gone
  from the pool (what is drained afterwards never repeats one);
- the key directory log: chat-client's proofs verify, chat-keyaudit finds
  the log consistent through either server, and the two servers' heads of
  one size are the same bytes (one shared key, a deterministic ts).
Each test has its own --cluster-prefix (its own streams): stream limits are
per stream, so a test that needs another rate budget needs other streams.
"""

import hashlib
import os
import re
import subprocess
import threading
import time

import cbor2

from chatlib import (BUILD_DIR, V5, ChatTestCase, Identity, KeyServer, main, uniq,
                     wait_until)
from clusterlib import NatsCluster, have_nats

CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
# The kill -9 of the stream leader waits out a Raft election (5-18 s on
# nats-server 2.9, not tunable): too long for the suite's time budget, so it
# runs from bench/keyserver-cluster.sh (which sets this), not in CI.
LEADER_KILL = bool(os.environ.get("CHAT_KS_LEADER_KILL"))
AUDIT = os.path.join(BUILD_DIR, "bin", "chat-keyaudit")


class Requests:
    """Requests published without waiting, responses matched by rid as they
    come, from whichever key server answered."""

    def __init__(self, test):
        self.test = test
        self.rid = 0
        self.lock = threading.Lock()

    def send(self, d, req):
        with self.lock:
            self.rid += 1
            rid = self.rid
        d.publish("chat/keys/req/%s/%s" % (d.user, d.dev), cbor2.dumps(dict(req, rid=rid)),
                  wait=False)
        return rid

    @staticmethod
    def wait(d, rids, timeout=10.0):
        """{rid: response} for the rids answered within timeout."""
        want = set(rids)
        got = {}
        topic = "chat/keys/resp/%s/%s" % (d.user, d.dev)

        def collect():
            for m in d.drain():
                if m[0] == topic and isinstance(m[1], dict) and m[1].get("rid") in want:
                    got[m[1]["rid"]] = m[1]
            return len(got) == len(want)
        wait_until(collect, timeout, 0.02)
        return got


class KeyServerClusterTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        if not have_nats():
            raise AssertionError("nats-server is not installed (scripts/deps.sh)")
        super().setUpClass()
        cls.nats = NatsCluster(3)
        try:
            cls.nats.start()
        except Exception:
            cls.nats.cleanup()
            super().tearDownClass()
            raise
        cls.token_file = cls.broker.service_token_file("keys")

    @classmethod
    def tearDownClass(cls):
        cls.nats.cleanup()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.req = Requests(self)
        self.home = os.path.join(self.broker.tmp, uniq("t"))
        os.makedirs(self.home)

    def start_ks(self, prefix, *args):
        """A cluster-mode key server (the data dir is given but unused)."""
        ks = KeyServer(self.broker, self.token_file, os.path.join(self.home, uniq("unused")),
                       "--cluster-urls", self.nats.urls, "--cluster-prefix", prefix, *args)
        self.addCleanup(ks.cleanup)
        return ks

    def pair(self, prefix, *args):
        a = self.start_ks(prefix, *args)
        a.wait_serving()
        b = self.start_ks(prefix, *args)
        b.wait_serving()
        return a, b

    def keydev(self, user, dev):
        d = self.dev(user, dev, protocol=V5)
        self.assertLess(d.subscribe("chat/keys/resp/%s/%s" % (user, dev)), 0x80)
        return d

    def call(self, d, req, timeout=10.0):
        rid = self.req.send(d, req)
        got = Requests.wait(d, [rid], timeout)
        self.assertIn(rid, got, "no answer to %r" % req.get("op"))
        return got[rid]

    @staticmethod
    def answered(ks):
        return ks.text().count("answered")

    # ---- exactly once, uploads from either, the rate limit across both ----

    def test_concurrent_pops_exactly_once_and_shared_rate_limit(self):
        a, b = self.pair("t1")
        target = uniq("target")
        devs = [self.keydev(target, "d%d" % i) for i in range(2)]
        # uploads land on either server: three rounds per device, 10 keys each
        ids = {}
        for d in devs:
            ident = Identity()
            for _ in range(3):
                r = self.call(d, ident.upload_req(10))
                self.assertTrue(r["ok"], r)
            ids[d.dev] = set(ident.opks)
            self.assertEqual(self.call(d, {"op": "count"})["opks"], 30)
        # 8 requesting devices, 6 bundles each (the default burst), all at once
        reqs = [self.keydev(uniq("r"), "p") for _ in range(8)]
        sent = {r: [self.req.send(r, {"op": "bundle", "user": target}) for _ in range(6)]
                for r in reqs}
        handed = {d.dev: [] for d in devs}
        for r, rids in sent.items():
            got = Requests.wait(r, rids, 20)
            self.assertEqual(len(got), 6, "unanswered bundles:\n%s\n%s"
                             % (a.text()[-2000:], b.text()[-2000:]))
            for resp in got.values():
                self.assertTrue(resp["ok"], "%r\n%s\n%s" % (resp, a.text()[-3000:],
                                                            b.text()[-3000:]))
                for e in resp["devices"]:
                    if "opk" in e:
                        handed[e["device"]].append(e["opk"]["id"])
        for dev, got in handed.items():
            self.assertEqual(len(got), len(set(got)), "a one-time key handed out twice: %r" % got)
            self.assertEqual(set(got), ids[dev], "not every key handed out")
        for d in devs:
            self.assertEqual(self.call(d, {"op": "count"})["opks"], 0)
        self.assertGreater(self.answered(a), 0)
        self.assertGreater(self.answered(b), 0)
        # the budget is shared: a fresh requester's 10 simultaneous bundles
        # through both servers: exactly the burst (6) served
        r = self.keydev(uniq("r"), "p")
        got = Requests.wait(r, [self.req.send(r, {"op": "bundle", "user": target})
                                for _ in range(10)], 20)
        self.assertEqual(len(got), 10)
        codes = sorted(str(x.get("code")) for x in got.values())
        self.assertEqual(codes.count("None"), 6, codes)
        self.assertEqual(codes.count("rate"), 4, codes)
        self.assertTrue(all(x["retry_after"] >= 1 for x in got.values() if not x["ok"]))
        # and one of the 8 above is still over budget, whichever server asks
        for _ in range(2):
            self.assertEqual(self.call(reqs[0], {"op": "bundle", "user": target}).get("code"),
                             "rate")
        # a third key server with another pool cap is refused: the streams
        # hold the limits, and every key server must enforce the same
        odd = self.start_ks("t1", "--pool-cap", "5")
        self.assertEqual(odd.proc.wait(15), 1)
        self.assertIn("stream t1_KS_OPK exists with another max_msgs_per_subject (--pool-cap)",
                      odd.text())

    # ---- the pool cap: uploads racing through both servers stay whole ----

    def test_pool_cap_uploads_whole_or_full(self):
        # --pool-cap 10 (not the default 1000) so that two uploads of 4 onto
        # a pool of 6 overflow it; streams of their own (prefix t4)
        self.pair("t4", "--pool-cap", "10")
        owner = self.keydev(uniq("owner"), "d")
        ident = Identity()
        self.assertEqual(self.call(owner, ident.upload_req(6))["opks"], 6)
        self.assertEqual(self.call(owner, ident.upload_req(5)).get("code"), "full")
        for _ in range(5):
            # two uploads of 4 at once; the device's own requests are spread
            # over both key servers by the share group
            rids = [self.req.send(owner, ident.upload_req(4)) for _ in range(2)]
            got = Requests.wait(owner, rids, 20)
            self.assertEqual(len(got), 2)
            ok = [r for r in got.values() if r["ok"]]
            for r in got.values():
                if not r["ok"]:
                    self.assertEqual(r["code"], "full", r)
            have = self.call(owner, {"op": "count"})["opks"]
            self.assertEqual(have, 6 + 4 * len(ok), "an upload half stored: %r" % got)
            self.assertLessEqual(have, 10)
            if have == 10:   # pop back down to 6 for the next round
                taker = self.keydev(uniq("taker"), "p")
                for _ in range(4):
                    self.assertTrue(self.call(taker, {"op": "bundle",
                                                      "user": owner.user})["ok"])
                self.assertEqual(self.call(owner, {"op": "count"})["opks"], 6)
        # check: the stored keys' digest, from whichever server answers
        digest = hashlib.sha256(ident.ik_pk + ident.spk_pk).digest()
        for _ in range(2):
            self.assertTrue(self.call(owner, {"op": "check", "digest": digest})["match"])
        self.assertFalse(self.call(owner, {"op": "check", "digest": bytes(32)})["match"])
        # the device is removed: both key servers get the notice, one drops
        # it (the other finds nothing left), and bundles stop naming it
        taker = self.keydev(uniq("taker"), "p")
        self.assertTrue(self.call(taker, {"op": "bundle", "user": owner.user})["ok"])
        rc, _, err = self.broker.chatctl("device", "remove", owner.user, "d")
        self.assertEqual(rc, 0, err)
        # (a new requester for each look: the rate budget is 6)
        self.assertTrue(wait_until(lambda: self.call(self.keydev(uniq("t"), "p"),
                                                     {"op": "bundle", "user": owner.user})
                                   .get("code") == "notfound", 10, 0.3))

    # ---- kill -9 of a key server and of the stream leader under load ----

    def test_kill9_keyserver_and_stream_leader_no_key_twice(self):
        a, b = self.pair("t2", "--rate-burst", "100000")
        target = uniq("target")
        owner = self.keydev(target, "d")
        ident = Identity()
        for _ in range(2):
            self.assertTrue(self.call(owner, ident.upload_req(100))["ok"])
        uploaded = set(ident.opks)
        reqs = [self.keydev(uniq("r"), "p") for _ in range(3)]
        handed, answers, errors = [], [0], []
        stop = threading.Event()
        topic = "chat/keys/resp/%s/%s"

        def take(r, m):
            """Every response that reaches the device counts, however late."""
            if m[0] != topic % (r.user, r.dev) or not isinstance(m[1], dict):
                return
            resp = m[1]
            answers[0] += 1
            if not resp.get("ok"):
                errors.append(resp.get("code"))
                return
            for e in resp["devices"]:
                if "opk" in e:
                    handed.append(e["opk"]["id"])

        def load(r):
            while not stop.is_set():
                for _ in range(4):
                    self.req.send(r, {"op": "bundle", "user": target})
                m = r.wait_message(timeout=3)
                while m is not None:
                    take(r, m)
                    m = r.wait_message(timeout=0.05)
        threads = [threading.Thread(target=load, args=(r,), daemon=True) for r in reqs]
        for t in threads:
            t.start()
        try:
            self.assertTrue(wait_until(lambda: len(handed) >= 40, 15), "no load")
            b.proc.kill()                               # a key server, mid-load
            b.proc.wait(5)
            n = len(handed)
            self.assertTrue(wait_until(lambda: len(handed) >= n + 40, 15),
                            "the surviving key server stopped serving:\n" + a.text()[-3000:])
            leader, stall = None, None
            if LEADER_KILL:
                leader = self.nats.stream_leader("t2_KS_OPK")
                self.assertIsNotNone(leader)
                self.nats.kill9(leader)                 # the stream's leader
                t_kill, n = time.monotonic(), len(handed)
                # a new leader is elected (5-18 s on 2.9); meanwhile pops
                # fail closed (code "store") and reads go on from the replicas
                self.assertTrue(wait_until(lambda: len(handed) > n + 5, 30),
                                "no pops after the leader kill:\n" + a.text()[-3000:])
                stall = time.monotonic() - t_kill
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        # answers still in flight (a JetStream call waits at most 5 s)
        time.sleep(5.5 if LEADER_KILL else 1.0)
        for r in reqs:
            for m in r.drain():
                take(r, m)
        if leader is not None:
            self.nats.restart(leader)
        self.assertEqual(len(handed), len(set(handed)), "a one-time key handed out twice")
        self.assertTrue(set(handed) <= uploaded)
        self.assertTrue(set(errors) <= {"store"}, errors)
        # whatever is left is disjoint from what was handed out: drain it
        rest = []
        r = reqs[0]
        deadline = time.monotonic() + 20
        while True:
            resp = self.call(r, {"op": "bundle", "user": target}, timeout=20)
            if not resp["ok"] and resp.get("code") == "store" and time.monotonic() < deadline:
                time.sleep(0.2)   # the restarted node rejoining: fail closed, retry
                continue
            self.assertTrue(resp["ok"], "%r\n%s" % (resp, a.text()[-2000:]))
            opk = [e["opk"]["id"] for e in resp["devices"] if "opk" in e]
            if not opk:
                break
            rest += opk
        self.assertFalse(set(rest) & set(handed), "a key handed out was still in the pool")
        self.assertEqual(len(rest), len(set(rest)))
        lost = uploaded - set(rest) - set(handed)
        # popped (deleted) but never answered: only by the killed key server,
        # or answers lost with it; never more than what was in flight
        self.assertLess(len(lost), 40, "keys lost: %d" % len(lost))
        print("\n  %d bundles answered, %d keys handed out, %d drained after, %d popped but "
              "not answered, %d refused (store); %s"
              % (answers[0], len(handed), len(rest), len(lost), len(errors),
                 "pops resumed %.1f s after the leader kill" % stall if stall
                 else "no leader kill (CHAT_KS_LEADER_KILL unset)"))

    # ---- the key directory log from two servers ----

    def client_dev(self, user):
        token = self.broker.add_device(user, "d")
        path = os.path.join(self.home, "%s.token" % user)
        with open(path, "w") as f:
            f.write(token + "\n")
        return {"addr": "%s/d" % user, "token": path, "state": os.path.join(self.home, user)}

    def exe(self, prog, d, *args, extra=()):
        cmd = [prog, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", d["addr"],
               "--token-file", d["token"], "--state", d["state"]] + list(extra) + list(args)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, "%s\n%s" % (r.stdout, r.stderr))
        return r

    def test_key_log_heads_agree_and_proofs_verify(self):
        # the streams of the first test (same configuration): the log may
        # already hold its devices' leaves, so sizes count from base
        a, b = self.pair("t1")
        obs = self.keydev(uniq("obs"), "p")
        base = self.call(obs, {"op": "head"})["size"]
        pub = re.search(r"log key ([0-9a-f]{64})", a.text()).group(1)
        self.assertIn("log key " + pub, b.text())      # one key for the cluster
        self.assertEqual(self.call(obs, {"op": "head"})["pub"].hex(), pub)
        users = [uniq("u%d" % i) for i in range(4)]
        devs = []
        for u in users:                                  # uploads through either server
            devs.append(self.client_dev(u))
            self.exe(CLIENT, devs[-1], "--recv", "--timeout", "0")
        for i in range(3):                               # bundles with inclusion proofs
            r = self.exe(CLIENT, devs[i], "--send", users[i + 1], "proof %d" % i)
            self.assertNotIn("KEY DIRECTORY", r.stderr)
        aud = self.client_dev(uniq("auditor"))
        r = self.exe(AUDIT, aud, extra=["--log-key", pub])
        n = base + 4
        self.assertIn("consistent: %d entries, %d signed heads; head size %d" % (n, n, n), r.stdout)
        # each server alone: the same head, byte for byte; the audit goes on
        # consistently from the other server's heads
        heads = []
        for stop, keep in ((b, a), (a, None)):
            self.assertEqual(stop.stop(), 0)
            if keep is None:
                keep = self.start_ks("t1")               # rebuilt from the stream
                keep.wait_serving()
            heads.append(self.call(obs, {"op": "head"})["head"])
            r = self.exe(AUDIT, aud)
            self.assertIn("head size %d" % n, r.stdout)
        self.assertEqual(heads[0], heads[1])
        self.assertEqual(heads[0]["size"], n)
        # a device registered now is proved in the larger tree, and the
        # client that saw the older head accepts the consistency proof
        late = self.client_dev(uniq("late"))
        self.exe(CLIENT, late, "--recv", "--timeout", "0")
        r = self.exe(CLIENT, devs[0], "--send", late["addr"].split("/")[0], "after restart")
        self.assertNotIn("KEY DIRECTORY", r.stderr)
        self.assertIn("head size %d" % (n + 1), self.exe(AUDIT, aud).stdout)

if __name__ == "__main__":
    main()
