# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Smoke run of every bench/chatbench mode with a few hundred messages.

Asserts correctness only — no loss, no duplicates, seqs in order, every
bundle well-formed with a valid signature, every idle connection up — and
never a speed: the numbers are printed for the curious.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from chatlib import BUILD_DIR, Broker, free_port, main, wait_until

CHATBENCH = os.path.join(BUILD_DIR, "bin", "chatbench")
AEDES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "peers",
                     "aedes.mjs")
KEYSERVER = os.path.join(BUILD_DIR, "bin", "chat-keyserver")
EJABBERD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "peers",
                        "ejabberd.sh")


def ejabberd_installed():
    return subprocess.run([EJABBERD, "--check"], stdin=subprocess.DEVNULL).returncode == 0


def run_bench(*args, timeout=60):
    cmd = [CHATBENCH] + [str(a) for a in args] + ["--timeout", "30"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in r.stdout.splitlines() if l.startswith("mode=")]
    if r.returncode != 0 or len(lines) != 1:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                             % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    res = dict(tok.split("=", 1) for tok in lines[0].split() if "=" in tok)
    print("  " + lines[0])
    return res


class BenchSmoke(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CHATBENCH):
            raise unittest.SkipTest("chatbench not built: %s" % CHATBENCH)
        cls.chat = Broker()
        cls.chat.start()
        # A stock mosquitto without the plugin, anonymous clients allowed.
        cls.stock = Broker(with_plugin=False, extra_lines=["allow_anonymous true"])
        open(cls.stock.token_file, "w").close()   # Broker.start() waits for this file
        cls.stock.start()

    @classmethod
    def tearDownClass(cls):
        cls.stock.cleanup()
        cls.chat.cleanup()

    def chat_args(self):
        return ["-p", self.chat.port, "--broker-pid", self.chat.proc.pid,
                "--admin-token-file", self.chat.token_file]

    def assert_clean(self, r, msgs):
        self.assertEqual(r["ok"], "1", r)
        for k in ("lost", "dup", "order_err", "errors"):
            self.assertEqual(r[k], "0", "%s in %r" % (k, r))
        self.assertEqual(int(r["msgs"]), msgs, r)

    def test_relay(self):
        r = run_bench("relay", "-p", self.stock.port, "--broker-pid", self.stock.proc.pid,
                      "--pairs", 4, "--msgs", 400)
        self.assert_clean(r, 400)
        self.assertEqual(int(r["acked"]), 400)

    @unittest.skipUnless(shutil.which("node"), "node not installed")
    def test_peer_launcher_without_aedes(self):
        # compare.sh runs the aedes peer only where --check finds it; here it is
        # not installed: --check says no, and the launcher refuses clearly.
        with tempfile.TemporaryDirectory() as base:
            r = subprocess.run(["node", AEDES, "--check", base], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1, r)
            r = subprocess.run(["node", AEDES, "1883", base], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("aedes not found under " + base, r.stderr)
            r = subprocess.run(["node", AEDES, "99999", base], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn("usage:", r.stderr)

    def test_relay_fixed_rate(self):
        r = run_bench("relay", "-p", self.stock.port, "--pairs", 2, "--msgs", 300, "--rate", 2000)
        self.assert_clean(r, 300)

    def test_dm(self):
        r = run_bench("dm", *self.chat_args(), "--pairs", 4, "--msgs", 400, "--ack-batch", 7)
        self.assert_clean(r, 400)
        # every send confirmed (PUBACK and `sent`), every delivery acknowledged back to the sender
        self.assertEqual(int(r["acked"]), 400)
        self.assertEqual(int(r["sent_events"]), 400)
        self.assertEqual(int(r["receipts_seen"]), 400)

    def test_dm_puback_delivers(self):
        # The patched broker: no app receipts, the receivers' PUBACKs are the
        # delivered receipts (gathered per device and conversation): every
        # delivery still reaches the sender, every seq once.
        if not self.chat.patched:
            self.skipTest("needs the broker-patches build (its PUBACK events)")
        b = Broker()  # delivered_on_puback at its default: on with the patched broker
        try:
            b.start()
            r = run_bench("dm", "-p", b.port, "--broker-pid", b.proc.pid, "--admin-token-file",
                          b.token_file, "--pairs", 4, "--msgs", 400, "--no-receipts")
            self.assert_clean(r, 400)
            self.assertEqual(int(r["receipts_sent"]), 0)
            self.assertEqual(int(r["sent_events"]), 400)
            self.assertEqual(int(r["receipts_seen"]), 400)
        finally:
            b.cleanup()

    def test_iot_rows(self):
        # compare.sh's IoT rows: anonymous clients on a broker with the
        # plugin set up for a shared IoT deployment, and an anonymous "#"
        # subscriber beside a dm run, which must get nothing of chat/.
        b = Broker(options={"foreign_acl": "allow"}, extra_lines=["allow_anonymous true"])
        try:
            b.start()
            r = run_bench("relay", "-p", b.port, "--broker-pid", b.proc.pid, "--pairs", 4,
                          "--msgs", 400)
            self.assert_clean(r, 400)
            r = run_bench("dm", "-p", b.port, "--broker-pid", b.proc.pid, "--admin-token-file",
                          b.token_file, "--pairs", 4, "--msgs", 400, "--iot-sub", "#")
            self.assert_clean(r, 400)
            self.assertEqual((r["iot_sub"], r["iot_sub_chat"]), ("#", "0"), r)
        finally:
            b.cleanup()

    def test_dm_caps(self):
        # Protocol v2 (chatbench --caps): every device declares the caps
        # before it subscribes; gathered confirmations and coalesced receipts
        # still account for every send and every delivery. Where the ctl
        # reply says the PUBACK delivers (the patched broker), no app receipts.
        r = run_bench("dm", *self.chat_args(), "--pairs", 4, "--msgs", 400, "--caps", "sents,rcpts")
        self.assert_clean(r, 400)
        self.assertEqual(r["caps"], "sents,rcpts")
        self.assertEqual(int(r["acked"]), 400)
        self.assertEqual(int(r["sent_events"]), 400)
        self.assertEqual(int(r["receipts_seen"]), 400)
        self.assertEqual(r["puback_delivered"], "1" if self.chat.patched else "0", r)
        if self.chat.patched:
            self.assertEqual(int(r["receipts_sent"]), 0)

    def test_dm_warmup(self):
        # compare.sh's realistic rows: open loop, one message per pair first
        # (not counted), then the run itself, every seq after the first once
        r = run_bench("dm", *self.chat_args(), "--pairs", 20, "--msgs", 200, "--rate", 1000, "--warmup")
        self.assert_clean(r, 200)
        self.assertEqual((r["warmup"], r["acked"], r["receipts_seen"]), ("1", "200", "200"), r)

    @unittest.skipUnless(ejabberd_installed(), "ejabberd not installed (scripts/deps.sh bench)")
    def test_xmpp(self):
        # compare.sh's chat-server peer: a private ejabberd node, the dm's
        # flow over XMPP — every message once and in order, every XEP-0198
        # ack, every XEP-0184 receipt back at its sender.
        if self.chat.patched:
            self.skipTest("no mosquitto in it: the run on stock mosquitto has it")
        with tempfile.TemporaryDirectory() as d:
            port = free_port()
            with open(os.path.join(d, "stderr"), "w") as err:
                ej = subprocess.Popen([EJABBERD, str(port), d], stdin=subprocess.DEVNULL, stdout=err,
                                      stderr=subprocess.STDOUT)
            try:
                def up():
                    try:
                        socket.create_connection(("127.0.0.1", port), 0.2).close()
                        return True
                    except OSError:
                        return ej.poll() is not None
                wait_until(up, timeout=60)
                self.assertIsNone(ej.poll(), open(os.path.join(d, "stderr")).read())
                r = run_bench("xmpp", "-p", port, "--broker-pid", ej.pid, "--xmpp-register",
                              "--run-id", "x1", "--pairs", 4, "--msgs", 400)
                self.assert_clean(r, 400)
                self.assertEqual((r["acked"], r["receipts_seen"]), ("400", "400"), r)
                # registered already ("conflict"): the same users log in again, open loop
                r = run_bench("xmpp", "-p", port, "--broker-pid", ej.pid, "--xmpp-register",
                              "--run-id", "x1", "--pairs", 2, "--msgs", 100, "--rate", 500, "--warmup")
                self.assert_clean(r, 100)
            finally:
                ej.terminate()
                try:
                    ej.wait(15)
                except subprocess.TimeoutExpired:
                    ej.kill()
                    ej.wait()

    def test_dm_fixed_rate(self):
        r = run_bench("dm", *self.chat_args(), "--pairs", 3, "--msgs", 300, "--rate", 1500)
        self.assert_clean(r, 300)
        self.assertEqual(int(r["receipts_seen"]), 300)

    def test_replay(self):
        # window 50 < 300 queued: the drain must continue on delivered receipts;
        # the replay is the one the inbox SUBSCRIBE starts (the default, as in compare.sh)
        b = Broker(options={"inflight_window": 50, "auto_replay": "true"})
        try:
            b.start()
            r = run_bench("replay", "-p", b.port, "--broker-pid", b.proc.pid,
                          "--admin-token-file", b.token_file, "--msgs", 300, "--ack-batch", 20)
            self.assert_clean(r, 300)
            self.assertEqual(r["done"], "1")
            # v2: the device declares `batch`; its replay comes in batch events
            # (of up to 50 here: the window), while a second pair sends live dms
            r = run_bench("replay", "-p", b.port, "--broker-pid", b.proc.pid,
                          "--admin-token-file", b.token_file, "--msgs", 300, "--ack-batch", 20,
                          "--caps", "batch", "--live-rate", 100)
            self.assert_clean(r, 300)
            self.assertEqual((r["done"], r["caps"]), ("1", "batch"), r)
            self.assertGreaterEqual(int(r["batches"]), 6, r)
            self.assertLess(int(r["publishes"]), 300 // 4, r)
            self.assertGreater(int(r["live_msgs"]), 0, r)
        finally:
            b.cleanup()

    def test_keys(self):
        rc, token, err = self.chat.chatctl("service", "add", "benchkeys")
        self.assertEqual(rc, 0, err)
        tf = os.path.join(self.chat.tmp, "benchkeys.token")
        with open(tf, "w") as f:
            f.write(token)
        log = open(os.path.join(self.chat.tmp, "keyserver.log"), "wb")
        ks = subprocess.Popen([KEYSERVER, "-h", "127.0.0.1", "-p", str(self.chat.port), "-u", "benchkeys",
                               "--token-file", tf, "--data-dir", os.path.join(self.chat.tmp, "keys"),
                               "--rate-burst", "1000000", "--rate-refill-seconds", "0"],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            self.assertTrue(wait_until(lambda: b"serving key requests" in
                                       open(os.path.join(self.chat.tmp, "keyserver.log"), "rb").read(), 10),
                            "the key server did not start serving")
            r = run_bench("keys", *self.chat_args(), "--ks-pid", ks.pid, "--users", 5, "--opks", 150,
                          "--fetchers", 3, "--window", 4, "--msgs", 300, "--verify")
            self.assert_clean(r, 300)
            self.assertEqual(int(r["bundles_ok"]), 300)
            self.assertEqual(int(r["bad"]), 0)
            self.assertEqual(int(r["sig_verified"]), 300)
            # 5 devices x 150 one-time keys: each of the 300 bundles got one
            self.assertEqual(int(r["with_opk"]), 300)
        finally:
            ks.terminate()
            ks.wait(10)
            log.close()

    def test_idle(self):
        s = run_bench("idle", "--stock", "-p", self.stock.port, "--broker-pid", self.stock.proc.pid,
                      "--conns", 200)
        c = run_bench("idle", *self.chat_args(), "--conns", 200)
        for r in (s, c):
            self.assertEqual(r["ok"], "1", r)
            self.assertEqual(int(r["up"]), 200, r)
            self.assertEqual(r["closed"], "0", r)
            self.assertGreater(int(r["rss_kb"]), 0)

    def test_fanout(self):
        # one sender, a group of 20 members online: every member gets every send once, in order
        r = run_bench("fanout", *self.chat_args(), "--members", 20, "--msgs", 30, "--window", 4,
                      "--ack-batch", 7)
        self.assert_clean(r, 20 * 30)
        self.assertEqual(r["kind"], "chat")
        self.assertEqual(int(r["complete"]), 30)
        self.assertEqual(int(r["acked"]), 30)
        # a small group: the sender gets every `sent` and every member's receipt
        self.assertEqual(int(r["sent_events"]), 30)
        self.assertEqual(int(r["receipt_seqs"]), 20 * 30)
        self.assertEqual(r["sender_ok"], "1")

    def test_fanout_stock(self):
        r = run_bench("fanout", "--stock", "-p", self.stock.port, "--broker-pid", self.stock.proc.pid,
                      "--members", 20, "--msgs", 30, "--window", 4)
        self.assert_clean(r, 20 * 30)
        self.assertEqual(int(r["acked"]), 30)

    def test_fanout_offline(self):
        # members offline: every send queued for all 20; the first and the last member
        # connect and read the replay their inbox SUBSCRIBE starts (auto replay, the
        # default; a chat/sync after it would start over and replay everything twice)
        r = run_bench("fanout", *self.chat_args(), "--offline", "--members", 20, "--msgs", 30)
        self.assert_clean(r, 20 * 30)
        self.assertEqual(int(r["queue_entries"]), 20 * 30)
        self.assertEqual(int(r["sent_events"]), 30)
        self.assertEqual(int(r["synced_msgs"]), 2 * 30)

if __name__ == "__main__":
    main()
