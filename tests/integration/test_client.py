# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chat-client end to end: real broker + plugin, real chat-keyserver, and
chat-client processes driven through their command line.

alice has two devices, bob one. They register, exchange 1:1 messages both
ways (bob offline while alice sends), every device decrypts every message,
receipts reach alice, a restart of bob's client resumes its session without
registering again, duplicates are dropped, a group of three rotates its
sender keys when a member is removed, and no plaintext ever appears in the
broker's or the key server's data directories or logs.

The client speaks protocol v2 by default (docs/PROTOCOL.md "Capabilities
(v2)": it declares sents, rcpts and batch); alice's laptop runs with
--protocol 1 throughout, so the v1 forms are exercised beside them in the
same conversation, and test_v2_declared_and_receipts checks what each
declares and which delivered receipts each sends.
"""

import os
import subprocess
import threading

import cbor2

from chatlib import (BUILD_DIR, Broker, ChatTestCase, Device, KeyServer, conv_of, main, uniq,
                     wait_until)

CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
CANARY = b"canary sent in clear by a plain MQTT device"


class ClientTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # a pool below 100 is "low": one used one-time key makes a client top up
        cls.ks = KeyServer.for_broker(cls.broker, "--low-threshold", "100")
        cls.ks_dir = cls.ks.cmd[cls.ks.cmd.index("--data-dir") + 1]
        try:
            cls.ks.wait_serving()
        except Exception:
            cls.ks.cleanup()
            super().tearDownClass()
            raise
        cls.plaintexts = []
        cls.home = os.path.join(cls.broker.tmp, "clients")
        os.makedirs(cls.home)

    @classmethod
    def tearDownClass(cls):
        try:
            # the server saw only ciphertext: no plaintext in its data or logs
            ks_log = cls.ks.text()
            cls.ks.stop()
            blobs = [("key server log", ks_log.encode()),
                     ("broker log", cls.broker.all_output().encode())]
            for root in (cls.broker.data_dir, cls.ks_dir):
                for d, _, files in os.walk(root):
                    for name in files:
                        with open(os.path.join(d, name), "rb") as f:
                            blobs.append((os.path.join(d, name), f.read()))
            assert cls.plaintexts, "no plaintext was checked"
            # the search does find a body that was sent in clear
            assert any(CANARY in data for where, data in blobs
                       if where.startswith(cls.broker.data_dir)), \
                "the unencrypted canary is not in the broker's data dir: the search proves nothing"
            for text in cls.plaintexts:
                for where, data in blobs:
                    assert text.encode() not in data, "%r found in %s" % (text, where)
        finally:
            cls.ks.cleanup()
            super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.shown = {}     # device address -> messages its runs printed, not yet read

    # ---- helpers ----

    def device(self, user, dev, broker=None, protocol=None):
        """protocol 1: the client runs with --protocol 1 (the v1 forms)."""
        broker = broker or self.broker
        token = broker.add_device(user, dev)
        path = os.path.join(self.home, "%s_%s.token" % (user, dev))
        with open(path, "w") as f:
            f.write(token + "\n")
        return {"addr": "%s/%s" % (user, dev), "token": path, "token_value": token,
                "state": os.path.join(self.home, "%s_%s.state" % (user, dev)),
                "port": broker.port,
                "args": ["--protocol", str(protocol)] if protocol else []}

    def client_cmd(self, d, *args):
        return [CLIENT, "-h", "127.0.0.1", "-p", str(d.get("port", self.broker.port)),
                "-u", d["addr"], "--token-file", d["token"], "--state", d["state"]] + \
            d.get("args", []) + [str(a) for a in args]

    def run_client(self, d, *args, timeout=30, check=True):
        cmd = self.client_cmd(d, *args)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s\n%s"
                                 % (" ".join(cmd), r.returncode, r.stdout, r.stderr,
                                    self.ks.text()[-3000:]))
        # every run prints the messages that reach it, --send and --group too
        # (the replay its inbox subscription starts comes then): what the user
        # has been shown, read by the next recv()
        for line in r.stdout.splitlines():
            f = line.split("\t")
            if len(f) == 4:
                self.shown.setdefault(d["addr"], []).append((f[0], int(f[1]), f[2], f[3]))
        return r

    def send(self, d, peer, text):
        self.plaintexts.append(text)
        r = self.run_client(d, "--send", peer, text)
        self.assertIn("sent", r.stderr)
        return r

    def send_group(self, d, gid, text):
        self.plaintexts.append(text)
        return self.run_client(d, "--group", gid, text)

    def recv(self, d, seconds=1):
        """Runs --recv; returns the messages shown to d since its last recv
        (by this run, or by --send/--group runs in between), and stderr."""
        r = self.run_client(d, "--recv", "--timeout", seconds)
        for l in r.stdout.splitlines():
            self.assertEqual(len(l.split("\t")), 4, r.stdout)
        return self.shown.pop(d["addr"], []), r.stderr

    def state(self, d):
        with open(os.path.join(d["state"], "state"), "rb") as f:
            return cbor2.loads(f.read())

    # ---- tests ----

    def test_dm_two_devices_offline_receipts_restart(self):
        alice, bob = uniq("alice"), uniq("bob")
        a1, b1 = self.device(alice, "phone"), self.device(bob, "phone")
        a2 = self.device(alice, "laptop", protocol=1)
        conv = conv_of(alice, bob)
        for d in (a1, a2, b1):   # first runs: register with the key server
            _, err = self.recv(d, 0)
            self.assertIn("registered %s" % d["addr"], err)
            st = self.state(d)
            self.assertTrue(st["registered"])
            self.assertEqual(len(st["opks"]), 100)

        # bob is not running: offline delivery
        self.send(a1, bob, "hello bob, from alice's phone")
        msgs, err = self.recv(b1)
        self.assertEqual(msgs, [(conv, 1, a1["addr"], "hello bob, from alice's phone")])
        # alice's bundle request took one of bob's one-time keys: the key
        # server's retained status said low, and bob's client topped up
        self.assertIn("ran low; uploaded 100 more", err)
        self.assertEqual(len(self.state(b1)["opks"]), 199)
        msgs, _ = self.recv(a2)   # alice's other device gets its copy
        self.assertEqual(msgs, [(conv, 1, a1["addr"], "hello bob, from alice's phone")])

        self.send(b1, alice, "hi alice \u2713 both devices")
        self.send(a2, bob, "and this is alice's laptop")
        msgs, err = self.recv(a1)
        self.assertEqual(msgs, [(conv, 2, b1["addr"], "hi alice \u2713 both devices"),
                                (conv, 3, a2["addr"], "and this is alice's laptop")])
        # receipts: bob's client acknowledged seq 1 -> alice's phone shows ✓✓
        self.assertIn("\u2713\u2713 %s #1 (%s)" % (conv, bob), err)
        msgs, err = self.recv(a2)
        self.assertEqual(msgs, [(conv, 2, b1["addr"], "hi alice \u2713 both devices")])

        # restart of bob's client: same state, no new registration, session resumed
        msgs, err = self.recv(b1)
        self.assertEqual(msgs, [(conv, 3, a2["addr"], "and this is alice's laptop")])
        self.assertNotIn("registered", err)
        self.assertNotIn("new identity", err)
        self.send(a1, bob, "second message on the same session")
        msgs, err = self.recv(b1)
        self.assertEqual(msgs, [(conv, 4, a1["addr"], "second message on the same session")])
        self.assertNotIn("registered", err)
        # the same session as before the restart: no second X3DH with alice's phone
        sessions = dict((addr, s) for addr, s in self.state(b1)["peers"])
        self.assertEqual(len(sessions[a1["addr"]]), 1)
        # alice's phone sees bob's delivered receipts for its messages
        _, err = self.recv(a1)
        self.assertIn("\u2713\u2713 %s #4" % conv, err)

    def test_duplicates_dropped(self):
        # The client's dedup needs the server to replay a message twice before
        # the client's receipt. With the defaults it never does: the replay the
        # inbox SUBSCRIBE starts (auto_replay) brings the message and the client
        # acknowledges it before its own chat/sync, and on the patched broker
        # the PUBACK alone delivers it (delivered_on_puback). So this test runs
        # on its own broker with both off, as an operator may run it: there the
        # client's own sync and /sync replay the message twice.
        broker = Broker(options={"auto_replay": "false", "delivered_on_puback": "false"})
        self.addCleanup(broker.cleanup)
        broker.start()
        ks = KeyServer.for_broker(broker, "--low-threshold", "100")
        self.addCleanup(ks.cleanup)
        ks.wait_serving()
        self._duplicates_dropped(broker)
        # the server saw only ciphertext
        ks_log = ks.text()
        ks.stop()
        blobs = [ks_log.encode(), broker.all_output().encode()]
        for root in (broker.data_dir, ks.data_dir):
            for d, _, files in os.walk(root):
                for name in files:
                    with open(os.path.join(d, name), "rb") as f:
                        blobs.append(f.read())
        self.assertFalse([b for b in blobs if b"only once please" in b])

    def _duplicates_dropped(self, broker):
        alice, bob = uniq("alice"), uniq("bob")
        a, b = self.device(alice, "d", broker), self.device(bob, "d", broker)
        for d in (a, b):
            self.recv(d, 0)
        self.send(a, bob, "only once please")
        # the client's own sync and /sync right behind it, before any
        # receipt: the server replays the message twice, the client shows it once
        # (/sync is in the pipe before the client starts, so it follows the
        # client's own sync at once)
        rfd, wfd = os.pipe()
        os.write(wfd, b"/sync\n")
        proc = subprocess.Popen(self.client_cmd(b), stdin=rfd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.close(rfd)
        err_lines = []
        reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
        reader.start()
        try:
            wait_until(lambda: any("dropped" in l for l in err_lines), timeout=10)
            os.write(wfd, b"/quit\n")
            out = proc.stdout.read()
            proc.wait(20)
            reader.join(5)
        finally:
            os.close(wfd)
            if proc.poll() is None:
                proc.kill()
        err = "".join(err_lines)
        self.assertEqual(out.count("only once please"), 1, out + err)
        self.assertIn("duplicate %s #1 dropped" % conv_of(alice, bob), err)
        msgs, _ = self.recv(b, 0)
        self.assertEqual(msgs, [])
        # the interactive client showed it, so alice gets a read receipt
        _, err = self.recv(a, 0)
        self.assertIn("read %s #1 (%s)" % (conv_of(alice, bob), bob), err)

    def test_group_rotation_on_removal(self):
        alice, bob, carol = uniq("alice"), uniq("bob"), uniq("carol")
        a, b, c = self.device(alice, "d"), self.device(bob, "d"), self.device(carol, "d")
        gid = uniq("team")
        conv = "g:" + gid
        for d in (a, b, c):
            self.recv(d, 0)
        rc, out, err = self.broker.chatctl("group", "create", gid, "--owner", alice,
                                           "--members", "%s,%s" % (bob, carol))
        self.assertEqual(rc, 0, err)
        self.send_group(a, gid, "team hello one")
        self.send_group(b, gid, "bob to the team")
        for d, want in ((b, [(conv, 2, a["addr"], "team hello one")]),
                        (c, [(conv, 2, a["addr"], "team hello one"),
                             (conv, 3, b["addr"], "bob to the team")])):
            msgs, _ = self.recv(d)
            self.assertEqual(msgs, want)
        msgs, err = self.recv(a)
        self.assertEqual(msgs, [(conv, 3, b["addr"], "bob to the team")])
        # bob and carol have alice's message: per user, then "to all" once
        # (coalesced into one rcpts event for a v2 client, or one receipt each)
        self.assertIn("\u2713\u2713 %s #2 (%s)" % (conv, bob), err)
        self.assertIn("\u2713\u2713 %s #2 (%s)" % (conv, carol), err)
        self.assertEqual(err.count("%s #2 delivered to all" % conv), 1, err)
        self.assertEqual([h[4] for h in self.state(a)["hist"] if h[0] == conv and h[1] == 2],
                         [2])   # ST_DELIVERED: every recipient user has it
        key1 = self._own_key(a, gid)
        self.assertEqual(sorted(key1[1]), sorted([b["addr"], c["addr"]]))

        # alice removes carol: her next message is under a new sender key
        # that only bob's device receives
        dev = Device(self.broker, alice, "d", a["token_value"])
        dev.connect()
        try:
            self.assertTrue(dev.ctl("group.remove", 7, gid=gid, members=[carol])["ok"])
        finally:
            dev.close()
        self.send_group(a, gid, "after carol left")
        msgs, _ = self.recv(b)
        self.assertEqual(msgs, [(conv, 5, a["addr"], "after carol left")])
        msgs, _ = self.recv(c)
        self.assertEqual(msgs, [])
        key2 = self._own_key(a, gid)
        self.assertGreater(key2[0], key1[0])
        self.assertEqual(key2[1], [b["addr"]])
        # carol holds only alice's old chain: the new one never reached her
        held = [int.from_bytes(k[2][:4], "big") for k in self.state(c)["pskeys"]
                if k[0] == gid and k[1] == a["addr"]]
        self.assertEqual(held, [key1[0]])

    def _own_key(self, d, gid):
        for g, _, chain, sent_to in self.state(d)["own"]:
            if g == gid:
                return int.from_bytes(chain[:4], "big"), sent_to
        raise AssertionError("no sender key for %s" % gid)

    def test_v2_declared_and_receipts(self):
        """A v2 client declares sents, rcpts and batch (persisted: chatctl
        stats counts it), a --protocol 1 client nothing. Where the server
        counts a PUBACK as delivered (the patched broker) the v2 client sends
        no delivered receipt and the sender still gets its ✓✓; elsewhere it
        sends them, as the v1 client always does."""
        alice, bob, carol = uniq("alice"), uniq("bob"), uniq("carol")
        a, b = self.device(alice, "d"), self.device(bob, "d")
        c = self.device(carol, "d", protocol=1)
        before = self._stats()
        for d in (a, b, c):
            self.recv(d, 0)
        after = self._stats()
        for cap in ("sents", "rcpts", "batch"):   # a and b, not c
            self.assertEqual(after["devices_caps_" + cap] - before["devices_caps_" + cap], 2,
                             (before, after))
        conv_b, conv_c = conv_of(alice, bob), conv_of(alice, carol)
        self.send(a, bob, "to a v2 peer")
        self.send(a, bob, "and once more")
        self.send(a, carol, "to a v1 peer")
        s0 = self._stats()
        n0 = s0["receipts_in"]
        msgs, _ = self.recv(b, 0)
        self.assertEqual(msgs, [(conv_b, 1, a["addr"], "to a v2 peer"),
                                (conv_b, 2, a["addr"], "and once more")])
        s1 = self._stats()
        n1 = s1["receipts_in"]
        # the server used the v2 forms with them: a's confirmations came
        # gathered (sents), b's replay of two messages as one batch
        self.assertGreaterEqual(s0["sents_out"] - before["sents_out"], 2)
        self.assertGreaterEqual(s1["replay_batches"] - s0["replay_batches"], 1)
        msgs, _ = self.recv(c, 0)
        self.assertEqual(msgs, [(conv_c, 1, a["addr"], "to a v1 peer")])
        n2 = self._stats()["receipts_in"]
        self.assertEqual(n1 - n0, 0 if self.broker.delivered_on_puback else 1)
        self.assertEqual(n2 - n1, 1)   # v1: a delivered receipt whatever the broker
        _, err = self.recv(a, 0)
        self.assertIn("\u2713\u2713 %s #1 (%s)" % (conv_b, bob), err)
        self.assertIn("\u2713\u2713 %s #2 (%s)" % (conv_b, bob), err)
        self.assertIn("\u2713\u2713 %s #1 (%s)" % (conv_c, carol), err)
        self.assertEqual(self._stats()["receipts_in"] - n2, 0)   # a only sent: nothing to ack

        # b online (interactive): a's send is delivered before its
        # confirmation goes out, so on the patched broker (b's PUBACK is the
        # receipt) the one `sents` event says both: ✓ and ✓✓ in a's --send run
        proc = subprocess.Popen(self.client_cmd(b), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        out_lines = []
        reader = threading.Thread(target=lambda: out_lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            wait_until(lambda: any("/quit to leave" in l for l in out_lines), timeout=10)
            r = self.send(a, bob, "while you are here")
            wait_until(lambda: any("while you are here" in l for l in out_lines), timeout=10)
            proc.stdin.write("/quit\n")
            proc.stdin.close()
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertIn("\u2713 %s #3 sent" % conv_b, r.stderr)
        if self.broker.delivered_on_puback:
            self.assertIn("\u2713\u2713 %s #3 (%s)" % (conv_b, bob), r.stderr)
            self.assertTrue(any("delivered receipts by PUBACK" in l for l in out_lines), out_lines)

    def _stats(self):
        rc, out, err = self.broker.chatctl("stats")
        self.assertEqual(rc, 0, err)
        return {k: int(v) for k, v in (l.split() for l in out.splitlines())}

    def test_canary_in_clear(self):
        # a body sent without encryption, to show the plaintext search works
        a, b = uniq("plain"), uniq("plain")
        self.dev(b, "d")
        da = self.dev(a, "d")
        da.send_dm(b, 1, body=CANARY)
        self.assertEqual(da.wait_event("sent")["seq"], 1)

    def test_device_without_keys_is_named(self):
        alice, bob = uniq("alice"), uniq("bob")
        a = self.device(alice, "d")
        self.recv(a, 0)
        self.device(bob, "never-ran")   # provisioned, but no keys on the key server
        r = self.run_client(a, "--send", bob, "nobody can read this", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no keys for %s: no device of this user has uploaded keys" % bob, r.stderr)
        # with one registered device the other one is named
        self.recv(self.device(bob, "phone"), 0)
        r = self.run_client(a, "--send", bob, "nobody can read this", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s/never-ran has no keys on the key server" % bob, r.stderr)

    def test_usage_errors(self):
        d = {"addr": "x/y", "token": "/nonexistent", "state": "/tmp/none"}
        r = self.run_client(d, "--send", "bob", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.run_client(d, "--recv", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.run_client(d, "--recv", "--timeout", "1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read /nonexistent", r.stderr)


if __name__ == "__main__":
    main()
