# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The key directory log (issue 33; docs/KEYSERVER.md "Key directory log",
docs/SECURITY.md): a real broker + plugin, chat-keyserver, and the lying
key server built for the tests only (chat-keyserver-lying, CHAT_KS_LIE),
against chat-client and chat-keyaudit through their command lines.

- an honest key server's proofs are accepted; the client remembers the
  head and the log key (first use), and the key is the one in keylog.pub;
- a key server that serves one client a key that is not in the log is
  caught by that client (the bundle is not used), while the others are
  served honestly by the same process;
- a key server that logs an attacker's key for a device is caught by that
  device's own history check;
- the auditor passes on an honest log, fails on a forked one, and so does
  a client that saw a head of the history before the fork.
Each test runs its own key server (one at a time behind the broker's share
group) on its own data directory; the lying one takes over that directory,
signing key included, as a compromised server would.
"""

import os
import subprocess

import cbor2

from chatlib import BUILD_DIR, ChatTestCase, KeyServer, main, uniq

CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
AUDIT = os.path.join(BUILD_DIR, "bin", "chat-keyaudit")
LYING = os.path.join(BUILD_DIR, "bin", "chat-keyserver-lying")


class KeyLogTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ks_token = cls.broker.service_token_file("keys")

    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.broker.tmp, uniq("t"))
        os.makedirs(self.home)
        self.ks_dir = os.path.join(self.home, "keys-data")
        self.ks = None
        self.start_ks()

    def tearDown(self):
        self.stop_ks()
        super().tearDown()

    def start_ks(self, lie=None):
        token = self.ks_token
        if lie:
            self.ks = KeyServer(self.broker, token, self.ks_dir, binary=LYING,
                                env={"CHAT_KS_LIE": lie})
        else:
            self.ks = KeyServer(self.broker, token, self.ks_dir)
        self.ks.wait_serving()

    def stop_ks(self):
        if self.ks:
            self.assertEqual(self.ks.stop(), 0, self.ks.text())
            self.ks.cleanup()
            self.ks = None

    def device(self, user, dev):
        token = self.broker.add_device(user, dev)
        path = os.path.join(self.home, "%s_%s.token" % (user, dev))
        with open(path, "w") as f:
            f.write(token + "\n")
        return {"addr": "%s/%s" % (user, dev), "token": path,
                "state": os.path.join(self.home, "%s_%s.state" % (user, dev))}

    def exe(self, prog, d, *args, extra=()):
        cmd = [prog, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", d["addr"],
               "--token-file", d["token"], "--state", d["state"]] + list(extra) + \
            [str(a) for a in args]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s\nkey server:\n%s"
                         % (r.stdout, r.stderr, self.ks.text()[-2000:] if self.ks else ""))
        return r

    def register(self, user, dev="d"):
        d = self.device(user, dev)
        self.ok(self.exe(CLIENT, d, "--recv", "--timeout", "0"))
        return d

    def state(self, d):
        with open(os.path.join(d["state"], "state"), "rb") as f:
            return cbor2.loads(f.read())

    def log_pub(self):
        with open(os.path.join(self.ks_dir, "keylog.pub")) as f:
            return f.read().strip()

    # ---- tests ----

    def test_honest_proofs_then_a_key_not_in_the_log(self):
        alice, bob, carol, dave = uniq("alice"), uniq("bob"), uniq("carol"), uniq("dave")
        a, b = self.register(alice), self.register(bob)
        r = self.ok(self.exe(CLIENT, a, "--send", bob, "checked against the log"))
        self.assertNotIn("KEY DIRECTORY", r.stderr)
        self.assertIn("trusting the key server's log key %s on first use" % self.log_pub(),
                      self.exe(CLIENT, self.device(uniq("eve"), "d"), "--recv", "--timeout",
                               "0").stderr)
        st = self.state(a)
        self.assertEqual(st["log_pub"].hex(), self.log_pub())
        self.assertGreaterEqual(st["log_size"], 2)   # alice's and bob's keys at least
        shown = self.ok(self.exe(CLIENT, b, "--recv", "--timeout", "0")).stdout
        self.assertIn("checked against the log", shown)

        c = self.register(carol)
        dv = self.register(dave)
        # the key server turns: alice (only) gets keys for carol that are not logged
        self.stop_ks()
        self.start_ks(lie="swap:%s/d" % alice)
        r = self.exe(CLIENT, a, "--send", carol, "must not reach an impostor")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("KEY DIRECTORY CHECK FAILED", r.stderr)
        self.assertIn("the identity key served for %s/d is not the one in the log" % carol,
                      r.stderr)
        self.assertIn("not sending to %s: the key directory check failed" % carol, r.stderr)
        self.assertNotIn("%s/d" % carol, [p[0] for p in self.state(a)["peers"]])
        # the same process answers dave honestly: only the victim is lied to
        r = self.ok(self.exe(CLIENT, dv, "--send", carol, "dave is served the logged key"))
        self.assertNotIn("KEY DIRECTORY", r.stderr)
        self.assertIn("dave is served the logged key",
                      self.ok(self.exe(CLIENT, c, "--recv", "--timeout", "0")).stdout)

    def test_own_history_detects_a_logged_fake_key(self):
        erin, frank = uniq("erin"), uniq("frank")
        e = self.register(erin)
        self.ok(self.exe(CLIENT, e, "--recv", "--timeout", "0"))   # and again: history clean
        f = self.register(frank)
        self.stop_ks()
        # logs (honestly) an attacker's key for erin/d and serves it
        self.start_ks(lie="logfake:%s/d" % erin)
        # frank cannot tell: the key is in the log (this is what a key-change
        # notice and erin's own check are for, docs/SECURITY.md)
        self.ok(self.exe(CLIENT, f, "--send", erin, "frank talks to the attacker"))
        r = self.exe(CLIENT, e, "--recv", "--timeout", "0")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("KEY DIRECTORY CHECK FAILED: the key server logged a key in this "
                      "device's name", r.stderr)
        self.assertIn("which this device never published", r.stderr)

    def test_auditor_passes_then_finds_the_fork(self):
        users = [uniq("u%d" % i) for i in range(3)]
        devs = [self.register(u) for u in users]
        self.ok(self.exe(CLIENT, devs[0], "--send", users[1], "before the fork"))
        aud = self.device(uniq("auditor"), "a")
        aud["state"] = os.path.join(self.home, "audit.state")
        r = self.ok(self.exe(AUDIT, aud, extra=["--log-key", self.log_pub()]))
        self.assertIn("consistent: 3 entries, 3 signed heads; head size 3", r.stdout)
        self.register(uniq("late"))   # the log grows: still consistent with the last run
        r = self.ok(self.exe(AUDIT, aud))
        self.assertIn("consistent: 4 entries, 4 signed heads; head size 4", r.stdout)
        with open(aud["state"]) as f:
            self.assertIn("size 4\n", f.read())

        # history rewritten: the first key replaced, every head signed again
        self.stop_ks()
        self.start_ks(lie="fork")
        r = self.exe(AUDIT, aud)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FORK or tampering: the log's history changed since the last audit",
                      r.stdout)
        # a fresh auditor sees a self-consistent log: forks show only against
        # what someone saw before (docs/SECURITY.md)
        fresh = self.device(uniq("auditor"), "b")
        fresh["state"] = os.path.join(self.home, "audit2.state")
        self.ok(self.exe(AUDIT, fresh))
        # so does a client that saw a head before the fork
        r = self.exe(CLIENT, devs[2], "--send", users[1], "after the fork")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("KEY DIRECTORY CHECK FAILED: the key server's log forked", r.stderr)

    def raw(self, d, req):
        rid = len(req) + 1000
        topic = "chat/keys/resp/%s/%s" % (d.user, d.dev)
        d.publish("chat/keys/req/%s/%s" % (d.user, d.dev), cbor2.dumps(dict(req, rid=rid)))
        m = d.wait_message(lambda m: m[0] == topic and m[1].get("rid") == rid, 5.0)
        self.assertIsNotNone(m, "no answer to %r" % req)
        return m[1]

    def test_bad_input_to_the_log_ops(self):
        user = uniq("probe")
        d = self.register(user)
        p = self.dev(user, "raw")
        p.subscribe("chat/keys/resp/%s/raw" % user)
        head = self.raw(p, {"op": "head"})
        self.assertTrue(head["ok"])
        self.assertEqual(head["pub"].hex(), self.log_pub())
        size = head["size"]
        for req, code in (({"op": "consistency", "from": 2, "to": 1}, "range"),
                          ({"op": "consistency", "from": 0, "to": size + 1}, "range"),
                          ({"op": "consistency", "from": "x"}, "field"),
                          ({"op": "log", "from": size + 1}, "range"),
                          ({"op": "log"}, "field"),
                          ({"op": "history", "user": "a b", "device": "d"}, "field"),
                          ({"op": "history", "user": user, "device": "d", "since": -1}, "field"),
                          ({"op": "bundle", "user": user, "since": b"1"}, "field")):
            r = self.raw(p, req)
            self.assertEqual((r["ok"], r.get("code")), (False, code), req)
        # the answers that work: a consistency proof and a page of the log
        r = self.raw(p, {"op": "consistency", "from": 0})
        self.assertEqual((r["ok"], r["to"], r["proof"]), (True, size, []))
        r = self.raw(p, {"op": "log", "from": 0, "count": 1000})
        self.assertEqual(len(r["entries"]), size)
        self.assertEqual([h["size"] for h in r["heads"]], list(range(1, size + 1)))
        self.assertEqual(r["entries"][-1]["user"], user)
        self.assertEqual(self.exe(AUDIT, d, extra=["--log-key", "xyz"]).returncode, 2)
        self.assertEqual(self.exe(CLIENT, d, "--recv", "--timeout", "0",
                                  extra=["--log-key", "00" * 31]).returncode, 2)
        # a pinned key the key server does not sign with: the client refuses
        r = self.exe(CLIENT, self.device(uniq("pinned"), "d"), "--recv", "--timeout", "0",
                     extra=["--log-key", "11" * 32])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("the log head is not signed by the log key", r.stderr)


if __name__ == "__main__":
    main()
