# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Push wake-ups end to end: a real broker with the plugin, real chat-pushgw
processes, and a local HTTP server (Python's http.server) standing in for
FCM/APNs — the only stand-in: the real services are outside this network.

One wake-up per coalescing window for a burst of 100 messages; none while
the device is online; none for typing; a token the provider disowns is
unregistered; a gateway killed mid-retry, or absent, loses no wake-up, nor
does a broker restart; a provider timeout is retried; two gateways share
the work.
"""

import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chatlib import BUILD_DIR, ChatTestCase, conv_of, main, uniq, wait_until

PUSHGW = os.path.join(BUILD_DIR, "bin", "chat-pushgw")
# e.g. CHAT_PUSHGW_PREFIX="valgrind --error-exitcode=3 --leak-check=full"
PREFIX = os.environ.get("CHAT_PUSHGW_PREFIX", "").split()
INTERVAL = 2  # plugin_opt_push_interval, seconds
RETRY = 3     # plugin_opt_push_retry


class Provider:
    """An FCM/APNs-shaped endpoint that records every POST. Tokens starting
    with "bad" are disowned (404 UNREGISTERED); while `failing` holds a
    token, it answers 503 for it; a token in `slow` is answered only after
    3 s, once (the gateway's timeout is 2 s)."""

    def __init__(self):
        self.requests = []
        self.failing = set()
        self.slow = set()
        self.lock = threading.Lock()
        prov = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                token = (body.get("message", {}).get("token") or
                         self.path.rsplit("/", 1)[-1])
                with prov.lock:
                    slow = token in prov.slow
                    prov.slow.discard(token)
                if slow:
                    time.sleep(3)
                with prov.lock:
                    code = (404 if token.startswith("bad") else
                            503 if token in prov.failing else 200)
                    prov.requests.append({"t": time.monotonic(), "path": self.path,
                                          "auth": self.headers.get("Authorization"),
                                          "body": body, "token": token, "code": code})
                out = (b'{"error":{"status":"UNREGISTERED"}}' if code == 404 else b"{}")
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except BrokenPipeError:
                    pass  # the gateway gave up waiting (the slow token)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_token(self, token):
        with self.lock:
            return [r for r in self.requests if r["token"] == token]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Gateway:
    def __init__(self, tc, *extra):
        self.log_path = os.path.join(tc.broker.tmp, "pushgw-%s.log" % uniq("g"))
        self.log = open(self.log_path, "wb")
        url = "http://127.0.0.1:%d" % tc.provider.port
        self.proc = subprocess.Popen(
            PREFIX + [PUSHGW, "-h", "127.0.0.1", "-p", str(tc.broker.port), "-u", "pushgw",
             "--token-file", tc.token_file, "--fcm-url", url + "/v1/projects/p/messages:send",
             "--fcm-auth", tc.auth_file, "--apns-url", url + "/3/device/{token}",
             "--retry-min-ms", "200", "--retry-max-ms", "800", "--max-attempts", "50",
             "--timeout-ms", "2000", "--stats-interval", "0", "--log-level", "debug"] + list(extra),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_serving(self):
        if not wait_until(lambda: "forwarding wake-ups" in self.text(), 10):
            raise AssertionError("gateway not serving:\n" + self.text())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait(5)
        self.log.close()


class PushBase(ChatTestCase):
    """A broker with the push options, service account pushgw, a provider."""
    # the wake-up interval and retry (defaults in seconds to minutes) are what
    # these tests time: short values keep them short
    broker_options = {"push_interval": INTERVAL, "push_retry": RETRY}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rc, out, err = cls.broker.chatctl("service", "add", "pushgw")
        if rc != 0:
            raise AssertionError("chatctl service add pushgw: %s" % err)
        cls.token_file = os.path.join(cls.broker.tmp, "pushgw.token")
        with open(cls.token_file, "w") as f:
            f.write(out.strip() + "\n")
        cls.auth_file = os.path.join(cls.broker.tmp, "fcm.auth")
        with open(cls.auth_file, "w") as f:
            f.write("Authorization: Bearer test-oauth-token\n")
        cls.provider = Provider()

    @classmethod
    def tearDownClass(cls):
        cls.provider.close()
        super().tearDownClass()

    def gateway(self, *extra):
        g = Gateway(self, *extra)
        self.addCleanup(lambda: g.proc.poll() is None and g.stop())
        g.wait_serving()
        return g

    def offline_device(self, platform="fcm", token=None, **extra):
        """A device that registered a push target and then went offline."""
        user = uniq("p")
        d = self.dev(user, "phone")
        token = token or "tok-" + user
        self.assertTrue(d.ctl("push.register", 1, platform=platform, token=token, **extra)["ok"])
        mark = self.broker.log_mark()
        d.close()
        self.assertTrue(self.broker.wait_log(
            lambda l: "Client %s/phone disconnected" % user in l, mark), self.broker.diagnostics())
        return user, token


class PushTest(PushBase):
    def test_burst_of_100_one_wakeup_per_window(self):
        gw = self.gateway()
        bob, token = self.offline_device()
        alice = self.dev(uniq("a"), "phone")
        t0 = time.monotonic()
        for i in range(100):
            alice.send_dm(bob, i + 1, body=b"hello %d" % i)
        t_sent = time.monotonic()
        self.assertTrue(wait_until(lambda: any(r["body"]["message"]["data"]["pending"] == "100"
                                               for r in self.provider.for_token(token)),
                                   INTERVAL * 3 + 5), (self.provider.for_token(token), gw.text()))
        # Quiet afterwards: the wake-ups were acknowledged and nothing new came.
        time.sleep(RETRY + 1)
        reqs = self.provider.for_token(token)
        windows = int((t_sent - t0) / INTERVAL) + 2
        self.assertLessEqual(len(reqs), windows, reqs)
        for a, b in zip(reqs, reqs[1:]):
            self.assertGreaterEqual(b["t"] - a["t"], INTERVAL - 0.3, reqs)
        for r in reqs:
            raw = json.dumps(r["body"])
            self.assertNotIn(alice.user, raw)
            self.assertNotIn("hello", raw)
            self.assertEqual(r["auth"], "Bearer test-oauth-token")
            self.assertEqual(r["path"], "/v1/projects/p/messages:send")
        # It counts what it did (other tests' devices may be owed resends too).
        self.assertEqual(gw.stop(), 0)
        counts = re.search(r"stopping: received (\d+), delivered (\d+)", gw.text())
        self.assertGreaterEqual(int(counts.group(2)), len(reqs), gw.text())
        self.assertGreaterEqual(int(counts.group(1)), int(counts.group(2)), gw.text())

    def test_none_while_online_and_none_for_typing(self):
        self.gateway()
        carol = self.dev(uniq("c"), "phone")
        ctoken = "tok-" + carol.user
        self.assertTrue(carol.ctl("push.register", 1, platform="fcm", token=ctoken)["ok"])
        erin, etoken = self.offline_device()
        dave = self.dev(uniq("d"), "phone")
        for i in range(20):
            dave.send_dm(carol.user, i + 1, body=b"x")
            dave.typing(conv_of(dave.user, erin))
        carol.wait_event("msg", seq=20)
        time.sleep(INTERVAL + 1)
        self.assertEqual(self.provider.for_token(ctoken), [])
        self.assertEqual(self.provider.for_token(etoken), [])
        # The same gateway does wake erin for a message: the setup works.
        dave.send_dm(erin, 100, body=b"y")
        self.assertTrue(wait_until(lambda: self.provider.for_token(etoken), 5))

    def test_apns_token_in_the_path(self):
        self.gateway()
        hexes = "00aa11bb22cc33dd44ee55ff66778899"
        user, token = self.offline_device("apns", hexes)
        self.dev(uniq("s"), "phone").send_dm(user, 1, body=b"z")
        self.assertTrue(wait_until(lambda: self.provider.for_token(token), 5))
        r = self.provider.for_token(token)[0]
        self.assertEqual(r["path"], "/3/device/" + hexes)
        self.assertEqual(r["body"], {"aps": {"content-available": 1}, "pending": 1})

    def test_apns_alert_mode(self):
        # registered for visible notifications: a generic localizable alert,
        # mutable so the app's extension can fetch; never message content
        self.gateway()
        hexes = "00aa11bb22cc33dd44ee55ff667788aa"
        user, token = self.offline_device("apns", hexes, mode="alert")
        self.dev(uniq("s"), "phone").send_dm(user, 1, body=b"secret")
        self.assertTrue(wait_until(lambda: self.provider.for_token(token), 5))
        r = self.provider.for_token(token)[0]
        self.assertEqual(r["body"], {"aps": {"alert": {"loc-key": "CHAT_NEW_MESSAGES"},
                                             "mutable-content": 1, "sound": "default"},
                                     "pending": 1})

    def test_gateway_counters_in_stats(self):
        # each gateway publishes its counters on chat/push/stats; the plugin
        # sums them into pushgw_* ($SYS and chatctl stats), so a credential
        # failing shows up in monitoring, not only in a log
        def stats():
            rc, out, err = self.broker.chatctl("stats")
            self.assertEqual(rc, 0, err)
            return dict((l.split()[0], int(l.split()[1])) for l in out.splitlines() if l.strip())
        before = stats()
        gws = [self.gateway("--stats-interval", "1"), self.gateway("--stats-interval", "1")]
        targets = [self.offline_device() for _ in range(4)]
        sender = self.dev(uniq("s"), "phone")
        for i, (user, _) in enumerate(targets):
            sender.send_dm(user, i + 1, body=b"1")
        for _, token in targets:
            self.assertTrue(wait_until(lambda: self.provider.for_token(token), 10))
        self.assertTrue(wait_until(
            lambda: stats()["pushgw_delivered"] >= before["pushgw_delivered"] + 4, 5),
            (stats(), gws[0].text()))
        s = stats()
        self.assertGreaterEqual(s["pushgw_received"], s["pushgw_delivered"])
        self.assertIn("pushgw_failed_auth", s)
        # a device cannot forge them
        d = self.dev(uniq("f"), "phone")
        self.assertGreaterEqual(d.subscribe("chat/push/stats"), 0x80)

    def test_invalid_token_unregisters(self):
        gw = self.gateway()
        user, token = self.offline_device(token="bad-" + uniq("t"))
        sender = self.dev(uniq("s"), "phone")
        mark = self.broker.log_mark()
        sender.send_dm(user, 1, body=b"1")
        self.assertTrue(self.broker.wait_log(
            lambda l: "rejected the token of %s/phone" % user in l, mark, timeout=10),
            gw.text())
        sender.send_dm(user, 2, body=b"2")
        time.sleep(INTERVAL + RETRY + 1)
        self.assertEqual(len(self.provider.for_token(token)), 1)
        self.assertIn("invalid", gw.text())

    def test_gateway_killed_and_restarted_loses_nothing(self):
        gw = self.gateway()
        user, token = self.offline_device()
        self.provider.failing.add(token)
        self.dev(uniq("s"), "phone").send_dm(user, 1, body=b"1")
        # The provider is down: the gateway retries; killed mid-retry.
        self.assertTrue(wait_until(lambda: len(self.provider.for_token(token)) >= 2, 10))
        gw.kill9()
        self.provider.failing.discard(token)
        # No gateway at all while another wake-up falls due.
        user2, token2 = self.offline_device()
        self.dev(uniq("s"), "phone").send_dm(user2, 1, body=b"1")
        time.sleep(1)
        self.assertEqual(self.provider.for_token(token2), [])
        gw2 = self.gateway()
        for tok in (token, token2):
            self.assertTrue(wait_until(
                lambda: any(r["code"] == 200 for r in self.provider.for_token(tok)),
                RETRY * 2 + 5), (tok, gw2.text()))
        self.assertEqual(gw2.stop(), 0)
        self.assertIn("stopping: received", gw2.text())

    def test_timeout_retried(self):
        gw = self.gateway()
        user, token = self.offline_device()
        self.provider.slow.add(token)
        self.dev(uniq("s"), "phone").send_dm(user, 1, body=b"1")
        self.assertTrue(wait_until(lambda: any(r["code"] == 200
                                               for r in self.provider.for_token(token)[1:]), 10),
                        gw.text())
        self.assertIn("no answer from 127.0.0.1:%d within 2000 ms" % self.provider.port, gw.text())

    def test_two_gateways_share_the_load(self):
        gws = [self.gateway(), self.gateway()]
        targets = [self.offline_device() for _ in range(8)]
        sender = self.dev(uniq("s"), "phone")
        for i, (user, _) in enumerate(targets):
            sender.send_dm(user, i + 1, body=b"1")
        for _, token in targets:
            self.assertTrue(wait_until(lambda: self.provider.for_token(token), 10),
                            (token, gws[0].text(), gws[1].text()))
        # the provider records a request before it answers; the gateway logs
        # the answer after: wait for the log lines, not only the requests
        served_by = lambda: [sum(t[0] + "/phone (fcm): HTTP 200" in g.text() for t in targets)
                             for g in gws]
        wait_until(lambda: sum(served_by()) == len(targets), 10)
        served = served_by()
        self.assertEqual(sum(served), len(targets), served)
        self.assertTrue(all(served), served)

    def test_register_errors_and_acl(self):
        d = self.dev(uniq("e"), "phone")
        r = d.ctl("push.register", 1, platform="carrier-pigeon", token="x")
        self.assertEqual((r["ok"], r["code"]), (False, "field"))
        r = d.ctl("push.register", 2, platform="apns", token="zz")
        self.assertEqual(r["code"], "field")
        r = d.ctl("push.register", 3, platform="fcm", token="x" * 5000)
        self.assertEqual(r["code"], "field")
        self.assertTrue(d.ctl("push.unregister", 4)["ok"])
        # Wake-ups carry tokens: devices may neither read nor fake them.
        self.assertGreaterEqual(d.subscribe("chat/push/wake"), 0x80)
        self.assertGreaterEqual(d.subscribe("$share/x/chat/push/wake"), 0x80)


class PushRestartTest(PushBase):
    """Its own broker: a restart rotates the broker's log, which the other
    tests read."""

    def test_owed_across_a_broker_restart(self):
        # Queued while no gateway runs, then the broker restarts: the store's
        # queue is the record of the wake-up owed.
        user, token = self.offline_device()
        self.dev(uniq("s"), "phone").send_dm(user, 1, body=b"1")
        self.broker.restart()
        gw = self.gateway()
        self.assertTrue(wait_until(
            lambda: any(r["code"] == 200 for r in self.provider.for_token(token)), RETRY * 2 + 5),
            gw.text())
        self.assertEqual(self.provider.for_token(token)[-1]["body"]["message"]["data"],
                         {"pending": "1"})


if __name__ == "__main__":
    main()
