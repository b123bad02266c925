# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chat-pushgw against local HTTPS/HTTP-2 stand-ins of FCM HTTP v1, Google's
OAuth2 token endpoint and APNs (h2provider.py, behind a test CA): what the
real services check is checked there — the JWTs' signatures and claims, the
token exchange, the exact headers and JSON, HTTP/2 — and here what the
gateway does with their answers: one connection reused for many pushes,
an access token obtained, renewed before it expires and after a 401 (one
retry), the APNs provider token renewed, 404/410 → "invalid", 429/5xx →
backoff, and credentials re-read on SIGHUP.

The wake-ups are published by the test itself on a broker without the
plugin (the gateway's other side is only MQTT), so each case controls
exactly what the gateway receives and reads its acknowledgements.
test_push.py covers the plugin's side end to end.
"""

import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import cbor2

from chatlib import BUILD_DIR, Broker, Client, V5, main, uniq, wait_until
from h2provider import H2Provider, apns_key, p256_raw, service_account

PUSHGW = os.path.join(BUILD_DIR, "bin", "chat-pushgw")
PREFIX = os.environ.get("CHAT_PUSHGW_PREFIX", "").split()
KEY_ID, TEAM_ID = "ABC123DEFG", "TEAM123456"


class Gateway:
    def __init__(self, tc, *extra):
        self.log_path = os.path.join(tc.tmp, "pushgw-%s.log" % uniq("g"))
        self.log = open(self.log_path, "wb")
        p = tc.provider
        self.proc = subprocess.Popen(
            PREFIX + [PUSHGW, "-h", "127.0.0.1", "-p", str(tc.broker.port), "-u", "pushgw",
                      "--token-file", tc.token_file, "--provider-cafile", p.cafile,
                      "--fcm-credentials", tc.sa_file,
                      "--fcm-url", p.base + "/v1/projects/%s/messages:send" % p.project,
                      "--apns-key", tc.p8_file, "--apns-key-id", KEY_ID, "--apns-team-id", TEAM_ID,
                      "--apns-topic", p.topic, "--apns-url", p.base,
                      "--webpush-vapid-key", tc.vapid_file, "--webpush-subject", "mailto:ops@example.org",
                      "--retry-min-ms", "200", "--retry-max-ms", "400", "--max-attempts", "4",
                      "--timeout-ms", "5000", "--stats-interval", "1", "--log-level", "debug"]
            + list(extra), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: "forwarding wake-ups" in self.text() or self.proc.poll() is not None, 10):
            raise AssertionError("gateway not serving:\n" + self.text())
        if self.proc.poll() is not None:
            raise AssertionError("gateway exited %d:\n%s" % (self.proc.returncode, self.text()))

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.log.close()
        return self.proc.returncode


class ProvidersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # no plugin: the test plays the plugin (wake-ups in, acks out)
        cls.broker = Broker(with_plugin=False, extra_lines=["allow_anonymous true"])
        open(cls.broker.token_file, "w").close()   # Broker.start() waits for this file
        cls.broker.start()
        cls.tmp = tempfile.mkdtemp(prefix="chat-push-prov-")
        cls.provider = H2Provider(cls.tmp)
        cls.token_file = os.path.join(cls.tmp, "pushgw.token")
        with open(cls.token_file, "w") as f:
            f.write("any\n")
        cls.sa_file = os.path.join(cls.tmp, "service-account.json")
        cls.email = "pushgw@chat-test.iam.gserviceaccount.com"
        cls.provider.sa_keys[cls.email] = service_account(cls.sa_file, cls.provider.project,
                                                          cls.email, cls.provider.token_uri)
        cls.p8_file = os.path.join(cls.tmp, "AuthKey_%s.p8" % KEY_ID)
        cls.provider.apns_keys[KEY_ID] = (TEAM_ID, apns_key(cls.p8_file))
        cls.vapid_file = os.path.join(cls.tmp, "vapid.pem")
        cls.provider.vapid_public = p256_raw(apns_key(cls.vapid_file))
        cls.plugin = Client(cls.broker, protocol=V5)
        cls.plugin.connect()
        cls.plugin.subscribe("chat/push/ack")
        cls.acks = {}
        cls.next_id = 1000

    @classmethod
    def tearDownClass(cls):
        cls.plugin.close()
        cls.provider.close()
        cls.broker.cleanup()

    def setUp(self):
        self.provider.token_lifetime = 3600
        self.provider.apns_max_age = 3600
        self.provider.fcm_always_401 = False

    def tearDown(self):
        self.assertEqual(self.provider.errors, [])

    def gateway(self, *extra):
        g = Gateway(self, *extra)
        self.addCleanup(lambda: g.proc.poll() is None and g.stop())
        return g

    def wake(self, platform, token, pending=1, mode=None, wait=True):
        ProvidersTest.next_id += 1
        w = {"k": "wake", "id": self.next_id, "to": "u%d/phone" % self.next_id,
             "platform": platform, "token": token, "pending": pending}
        if mode:
            w["mode"] = mode
        self.plugin.publish("chat/push/wake", cbor2.dumps(w), qos=1, wait=wait)
        return self.next_id

    def ack_of(self, wid, timeout=10):
        def find():
            for m in self.plugin.drain():
                a = cbor2.loads(m.payload)
                self.acks[a["id"]] = a["r"]
            return wid in self.acks
        self.assertTrue(wait_until(find, timeout), "no ack for %d" % wid)
        return self.acks[wid]

    # ---- FCM ----

    def test_fcm_token_exchange_and_one_connection(self):
        g = self.gateway()
        grants0 = len(self.provider.grants)
        conns0 = self.provider.connections
        ids = [self.wake("fcm", "fcm-tok-%d" % i, pending=i + 1) for i in range(40)]
        for i, wid in enumerate(ids):
            self.assertEqual(self.ack_of(wid), "ok", g.text())
        reqs = self.provider.of("fcm")[-40:]
        self.assertEqual(sorted(r["body"]["message"]["data"]["pending"] for r in reqs),
                         sorted(str(i + 1) for i in range(40)))
        # one token exchange, and one HTTP/2 connection for it and all 40
        self.assertEqual(len(self.provider.grants), grants0 + 1)
        self.assertEqual(self.provider.connections, conns0 + 1)
        self.assertEqual({r["cid"] for r in reqs}, {self.provider.connections})
        tok = self.provider.of("token")[-1]
        self.assertEqual(tok["jwt"][1]["iss"], self.email)
        self.assertEqual(g.stop(), 0)
        self.assertIn("connections 1\n", g.text())

    def test_fcm_renews_before_expiry(self):
        self.provider.token_lifetime = 8   # renewed at 6 s, used until 6 s
        g = self.gateway()
        n0 = len(self.provider.grants)
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-renew-1")), "ok")
        self.assertEqual(len(self.provider.grants), n0 + 1)
        # without any wake-up, a new token comes before the old one expires
        self.assertTrue(wait_until(lambda: len(self.provider.grants) == n0 + 2, 9), g.text())
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-renew-2")), "ok")
        self.assertEqual([r["status"] for r in self.provider.of("fcm", "fcm-renew-2")], [200])
        self.assertEqual(self.provider.of("fcm", "fcm-renew-2")[0]["access_token"],
                         self.provider.grants[-1][0])

    def test_fcm_401_renews_and_retries_once(self):
        g = self.gateway()
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-401-a")), "ok")
        n0 = len(self.provider.grants)
        self.provider.revoke_tokens()   # e.g. the key was rotated in the console
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-401-b")), "ok", g.text())
        self.assertEqual([r["status"] for r in self.provider.of("fcm", "fcm-401-b")], [401, 200])
        self.assertEqual(len(self.provider.grants), n0 + 1)
        # refused again after the renewal: failed, after exactly one retry
        self.provider.fcm_always_401 = True
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-401-c")), "failed")
        self.assertEqual([r["status"] for r in self.provider.of("fcm", "fcm-401-c")], [401, 401])
        self.assertTrue(wait_until(lambda: re.search(r"failed for credentials [1-9]", g.text()), 5))

    def test_fcm_unregistered_and_rejected(self):
        self.gateway()
        self.assertEqual(self.ack_of(self.wake("fcm", "gone-fcm-1")), "invalid")
        self.assertEqual(len(self.provider.of("fcm", "gone-fcm-1")), 1)
        # INVALID_ARGUMENT is not UNREGISTERED: failed, the token is kept
        self.assertEqual(self.ack_of(self.wake("fcm", "bad-fcm-1")), "failed")
        self.assertEqual(len(self.provider.of("fcm", "bad-fcm-1")), 1)

    def test_429_and_5xx_back_off(self):
        g = self.gateway()
        self.provider.script["fcm-busy"] = [503, 429]
        self.provider.script["0123456789abcdef"] = [500]
        a = self.wake("fcm", "fcm-busy")
        b = self.wake("apns", "0123456789abcdef")
        self.assertEqual(self.ack_of(a), "ok")
        self.assertEqual(self.ack_of(b), "ok")
        reqs = self.provider.of("fcm", "fcm-busy")
        self.assertEqual([r["status"] for r in reqs], [503, 429, 200])
        for x, y in zip(reqs, reqs[1:]):
            self.assertGreaterEqual(y["t"] - x["t"], 0.09)   # retry-min-ms 200, jitter to half
        self.assertEqual([r["status"] for r in self.provider.of("apns", "0123456789abcdef")], [500, 200])
        # retries exhausted (--max-attempts 4): failed
        self.provider.script["fcm-down"] = [503] * 10
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-down")), "failed")
        self.assertEqual(len(self.provider.of("fcm", "fcm-down")), 4)
        self.assertTrue(wait_until(lambda: re.search(r"retries exhausted [1-9]", g.text()), 5))

    # ---- APNs ----

    def test_apns_background_and_alert(self):
        self.gateway()
        a = self.wake("apns", "00aa11bb22cc33dd", pending=3)
        b = self.wake("apns", "00aa11bb22cc33ee", pending=2, mode="alert")
        self.assertEqual(self.ack_of(a), "ok")
        self.assertEqual(self.ack_of(b), "ok")
        bg, = self.provider.of("apns", "00aa11bb22cc33dd")
        al, = self.provider.of("apns", "00aa11bb22cc33ee")
        self.assertEqual(bg["headers"]["apns-push-type"], "background")
        self.assertEqual(bg["body"], {"aps": {"content-available": 1}, "pending": 3})
        self.assertEqual(al["headers"]["apns-push-type"], "alert")
        self.assertEqual(al["headers"]["apns-priority"], "10")
        self.assertEqual(al["body"]["aps"]["mutable-content"], 1)
        self.assertEqual(al["body"]["aps"]["alert"], {"loc-key": "CHAT_NEW_MESSAGES"})
        self.assertEqual(bg["cid"], al["cid"])
        self.assertEqual(bg["jwt"][0]["kid"], KEY_ID)

    def test_apns_provider_token_renewed(self):
        g = self.gateway("--apns-renew", "4")
        self.assertEqual(self.ack_of(self.wake("apns", "aaaa0000aaaa0001")), "ok")
        self.assertEqual(self.ack_of(self.wake("apns", "aaaa0000aaaa0002")), "ok")
        time.sleep(4.2)
        self.assertEqual(self.ack_of(self.wake("apns", "aaaa0000aaaa0003")), "ok")
        j = [self.provider.of("apns", "aaaa0000aaaa000%d" % i)[0]["jwt"][1]["iat"] for i in (1, 2, 3)]
        self.assertEqual(j[0], j[1])          # reused while fresh
        self.assertGreaterEqual(j[2], j[0] + 4)  # signed anew after --apns-renew
        # a refused provider token is signed anew and the push retried once
        self.provider.apns_reject = 1
        self.assertEqual(self.ack_of(self.wake("apns", "aaaa0000aaaa0004")), "ok", g.text())
        self.assertEqual([r["status"] for r in self.provider.of("apns", "aaaa0000aaaa0004")], [403, 200])
        self.provider.apns_reject = 2
        self.assertEqual(self.ack_of(self.wake("apns", "aaaa0000aaaa0005")), "failed")
        self.assertEqual([r["status"] for r in self.provider.of("apns", "aaaa0000aaaa0005")], [403, 403])

    def test_apns_unregistered_and_bad_token(self):
        self.gateway()
        self.assertEqual(self.ack_of(self.wake("apns", "dead00112233445566")), "invalid")
        self.assertEqual(self.ack_of(self.wake("apns", "bad0011223344556677")), "invalid")
        self.assertEqual(len(self.provider.of("apns", "dead00112233445566")), 1)

    # ---- Web Push ----

    def test_webpush_encrypted_and_signed(self):
        self.gateway()
        sub = self.provider.webpush_subscription("s1")
        self.assertEqual(self.ack_of(self.wake("webpush", sub, pending=7)), "ok")
        r, = self.provider.of("webpush", "s1")
        self.assertEqual(r["status"], 201)
        self.assertEqual(r["body"], {"pending": 7})   # decrypted by the provider
        gone = self.provider.webpush_subscription("gone-1")
        self.assertEqual(self.ack_of(self.wake("webpush", gone)), "invalid")
        # not a subscription at all: it can never work, so "invalid"
        self.assertEqual(self.ack_of(self.wake("webpush", "tok-not-json")), "invalid")

    # ---- operations ----

    def test_sighup_rereads_credentials(self):
        g = self.gateway()
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-hup-1")), "ok")
        # the operator rotates the service account's key: a new file
        email2 = "rotated@chat-test.iam.gserviceaccount.com"
        self.provider.sa_keys[email2] = service_account(
            self.sa_file + ".new", self.provider.project, email2, self.provider.token_uri)
        os.rename(self.sa_file + ".new", self.sa_file)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "SIGHUP: credentials re-read" in g.text(), 5), g.text())
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-hup-2")), "ok")
        self.assertEqual(self.provider.grants[-1][1], email2)
        # a broken file: the old credentials stay
        with open(self.sa_file, "w") as f:
            f.write("{not json")
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "keeping the old credentials" in g.text(), 5), g.text())
        self.assertEqual(self.ack_of(self.wake("fcm", "fcm-hup-3")), "ok")
        self.assertIsNone(g.proc.poll())
        self.provider.sa_keys[self.email] = service_account(
            self.sa_file, self.provider.project, self.email, self.provider.token_uri)

    def test_throughput_one_connection(self):
        """Wake-ups per second through one HTTP/2 connection (docs/BENCHMARKS.md;
        CHAT_PUSH_BENCH_N sets how many, default 500)."""
        n = int(os.environ.get("CHAT_PUSH_BENCH_N", "500"))
        g = self.gateway("--log-level", "info")
        self.assertEqual(self.ack_of(self.wake("fcm", "warm-up")), "ok")
        conns0 = self.provider.connections
        t0 = time.monotonic()
        ids = [self.wake("fcm" if i % 2 else "apns", "%016x" % i, wait=False) for i in range(n)]
        for wid in ids:
            self.assertEqual(self.ack_of(wid, timeout=120), "ok")
        dt = time.monotonic() - t0
        self.assertEqual(self.provider.connections, conns0)
        print("\n%d wake-ups (FCM and APNs alternating) in %.2f s: %.0f/s over one HTTP/2 "
              "connection" % (n, dt, n / dt))
        with open("/proc/%d/stat" % g.proc.pid) as f:
            ticks = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        print("gateway CPU since its start: %.2f s" % (ticks / os.sysconf("SC_CLK_TCK")))
        self.assertEqual(g.stop(), 0)


if __name__ == "__main__":
    main()
