# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""TLS between the broker and every program that connects to it.

A test CA is made here with openssl (a server certificate for 127.0.0.1 and
localhost, a client certificate, and a second CA that signed neither). The
broker's TLS listeners are the installed snippet's commented ones
(packaging/mosquitto-chat.conf.in), uncommented, on free ports, with the
test's certificates: 8883 for the apps, 8884 for services with
require_certificate, 8443 for the web client over wss. Beside them the
suite's plain loopback listener, as in the snippet.

Over TLS: chatctl adds devices and reads the counters (options on the
command line, in an -o file and in the default options file), chat-keyserver
serves the keys that chat-client registers and fetches, two chat-clients
exchange a message, chat-keyaudit audits the key server's log, chat-media
answers a device's upload request, chat-pushgw hands a wake-up to a
provider, and a device talks over wss. Refused, each with a clear error and never a crash: a CA that
did not sign the broker's certificate, a missing CA file, a bad client key,
no client certificate where one is required, and plain MQTT on a TLS port.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import paho.mqtt.client as mqtt

from chatlib import (BUILD_DIR, CHATCTL, KEYSERVER, SOURCE_DIR, V5, ChatTestCase, Device, KeyServer,
                     MediaDevice, MediaServer, conv_of, free_port, main, uniq, wait_until)
from test_push import Provider

CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
PUSHGW = os.path.join(BUILD_DIR, "bin", "chat-pushgw")
AUDIT = os.path.join(BUILD_DIR, "bin", "chat-keyaudit")
SNIPPET = os.path.join(SOURCE_DIR, "packaging", "mosquitto-chat.conf.in")
# the snippet's certificate paths, replaced by the test CA's
SERVER_CRT, SERVER_KEY = "/etc/mosquitto/certs/chat.crt", "/etc/mosquitto/certs/chat.key"
CLIENT_CA = "/etc/mosquitto/ca_certificates/chat-ca.crt"


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))


def make_pki(d):
    """ca.crt (signs server.crt for 127.0.0.1/localhost and client.crt) and
    other-ca.crt (signs nothing used here), EC P-256 keys, valid 2 days."""
    def ca(name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
                "-subj", "/CN=mosquitto-chat test %s" % name, cwd=d)

    def leaf(name, cn, ext):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext",
                cwd=d)

    ca("ca")
    ca("other-ca")
    leaf("server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
         "extendedKeyUsage=serverAuth")
    leaf("client", "keys", "extendedKeyUsage=clientAuth")
    with open(os.path.join(d, "bad.key"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    for name in os.listdir(d):   # mosquitto may run as another user
        os.chmod(os.path.join(d, name), 0o644)


def snippet_tls_lines(pki, ports, web_dir, snippet=SNIPPET):
    """The snippet's commented listener blocks, uncommented, on the test's
    ports and certificates: the lines a user uncomments (in the source's
    snippet, or an installed one)."""
    out = []
    for line in open(snippet).read().splitlines():
        m = re.match(r"#(listener|certfile|keyfile|cafile|require_certificate|protocol|http_dir)"
                     r"\b(.*)$", line)
        if not m:
            continue
        key, rest = m.group(1), m.group(2)
        if key == "listener":
            port = int(rest.split()[0])
            rest = " %d" % ports[port]
        elif key == "http_dir":
            if not web_dir:
                continue
            rest = " " + web_dir
        rest = (rest.replace(SERVER_CRT, os.path.join(pki, "server.crt"))
                .replace(SERVER_KEY, os.path.join(pki, "server.key"))
                .replace(CLIENT_CA, os.path.join(pki, "ca.crt")))
        out.append(key + rest)
    return out


class TlsTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="chat-tls-")
        make_pki(cls.pki)
        cls.ports = {8883: free_port(), 8884: free_port(), 8443: free_port()}
        web = os.path.join(BUILD_DIR, "web")
        cls.broker_lines = snippet_tls_lines(cls.pki, cls.ports,
                                             web if os.path.isdir(web) else None)
        super().setUpClass()
        cls.tls_port, cls.svc_port, cls.wss_port = (cls.ports[8883], cls.ports[8884],
                                                    cls.ports[8443])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.pki, ignore_errors=True)

    def pem(self, name):
        return os.path.join(self.pki, name)

    def tls_args(self, ca="ca.crt", client_cert=False):
        a = ["--cafile", self.pem(ca)]
        if client_cert:
            a += ["--cert", self.pem("client.crt"), "--key", self.pem("client.key")]
        return a

    def chatctl(self, *args, env=None):
        cmd = [CHATCTL, "--token-file", self.broker.token_file] + [str(a) for a in args]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, env=env)

    def assert_clear_failure(self, r, *needles):
        """Exit 1, one line on stderr naming the cause, no crash."""
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)

    # ---- the snippet ----

    def test_snippet_has_the_listeners(self):
        text = open(SNIPPET).read()
        self.assertIn("\nlistener 1883 127.0.0.1\n", text)
        self.assertEqual(len(self.broker_lines) >= 12, True, self.broker_lines)
        conf = open(self.broker.conf).read()
        for port in self.ports.values():
            self.assertIn("listener %d\n" % port, conf)
        self.assertIn("require_certificate true", conf)
        self.assertIn("protocol websockets", conf)

    # ---- chatctl ----

    def test_chatctl_over_tls(self):
        r = self.chatctl("-p", self.tls_port, *self.tls_args(), "device", "add", uniq("t"), "d")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.strip()), 43)
        # the services' listener wants a client certificate
        r = self.chatctl("-p", self.svc_port, *self.tls_args(client_cert=True), "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^devices \d+$")
        r = self.chatctl("-p", self.tls_port, *self.tls_args(), "--tls-version", "tlsv1.3",
                         "stats")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_chatctl_options_file(self):
        d = tempfile.mkdtemp(dir=self.broker.tmp)
        opts = os.path.join(d, "chatctl.opts")
        with open(opts, "w") as f:
            f.write("# chatctl options, one a line\n\n-p %d\n--cafile %s\n--cert %s\n"
                    "--key %s\n" % (self.svc_port, self.pem("ca.crt"), self.pem("client.crt"),
                                    self.pem("client.key")))
        r = self.chatctl("-o", opts, "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        # the command line wins over the file: a CA that did not sign
        r = self.chatctl("-o", opts, "--cafile", self.pem("other-ca.crt"), "stats")
        self.assert_clear_failure(r, "certificate verify failed")
        # the default file, as mosquitto_ctrl's: $XDG_CONFIG_HOME/chatctl
        os.rename(opts, os.path.join(d, "chatctl"))
        env = dict(os.environ, XDG_CONFIG_HOME=d)
        r = self.chatctl("stats", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(d, "chatctl"), "a") as f:
            f.write("--no-such-option\n")
        r = self.chatctl("stats", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("chatctl:7: unknown option '--no-such-option'", r.stderr)
        r = self.chatctl("-o", os.path.join(d, "missing"), "stats")
        self.assert_clear_failure(r, "cannot read options file")

    def test_chatctl_refusals(self):
        port = ["-p", self.tls_port]
        r = self.chatctl(*port, *self.tls_args("other-ca.crt"), "stats")
        self.assert_clear_failure(r, "cannot connect to 127.0.0.1:%d: TLS: certificate verify "
                                  "failed (is --cafile" % self.tls_port)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        r = self.chatctl(*port, "--cafile", self.pem("missing.crt"), "stats")
        self.assert_clear_failure(r, "cannot read --cafile %s: No such file or directory"
                                  % self.pem("missing.crt"))
        r = self.chatctl(*port, "--cafile", self.pem("ca.crt"), "--cert", self.pem("client.crt"),
                         "--key", self.pem("bad.key"), "stats")
        self.assert_clear_failure(r, "TLS: Unable to load client key file")
        r = self.chatctl(*port, "--cert", self.pem("client.crt"), "stats")
        self.assert_clear_failure(r, "--cert needs --cafile or --capath")
        # no client certificate on the services' listener
        r = self.chatctl("-p", self.svc_port, *self.tls_args(), "stats")
        self.assert_clear_failure(r, "TLS:")
        # plain MQTT to the TLS port, TLS to the plain one
        r = self.chatctl(*port, "stats")
        self.assertEqual(r.returncode, 1, r.stderr)
        r = self.chatctl("-p", self.broker.port, *self.tls_args(), "stats")
        self.assert_clear_failure(r, "TLS:")
        # the name check: the certificate names 127.0.0.1 and localhost only
        r = self.chatctl("-h", socket.gethostname(), *port, *self.tls_args(), "stats")
        if r.returncode == 1 and "certificate verify failed" in r.stderr:
            r = self.chatctl("-h", socket.gethostname(), *port, *self.tls_args(), "--insecure",
                             "stats")
            self.assertEqual(r.returncode, 0, r.stderr)

    # ---- the sidecars and the client ----

    def key_server(self, *args):
        """A key server (-p in args: after KeyServer's own, it counts) on a
        data dir of its own."""
        if not getattr(TlsTest, "keys_token", None):
            TlsTest.keys_token = self.broker.service_token_file("keys")
        ks = KeyServer(self.broker, self.keys_token, os.path.join(self.broker.tmp, uniq("keys")),
                       *args)
        self.addCleanup(ks.cleanup)
        return ks

    def client_device(self, user):
        token = self.broker.add_device(user, "cli")
        path = os.path.join(self.broker.tmp, "%s.token" % user)
        with open(path, "w") as f:
            f.write(token + "\n")
        return [CLIENT, "-h", "127.0.0.1", "-p", str(self.tls_port), "-u", user + "/cli",
                "--token-file", path, "--state", os.path.join(self.broker.tmp, user + ".state")]

    def run_cmd(self, cmd, timeout=60):
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def test_keyserver_and_client_over_tls(self):
        ks = self.key_server("-p", str(self.svc_port), *self.tls_args(client_cert=True))
        ks.wait_serving()
        alice, bob = uniq("ta"), uniq("tb")
        a, b = self.client_device(alice), self.client_device(bob)
        # first runs register each device's keys with the key server
        for cmd in (b, a):
            r = self.run_cmd(cmd + self.tls_args() + ["--recv", "--timeout", "1"])
            self.assertEqual(r.returncode, 0, r.stderr + ks.text()[-2000:])
        r = self.run_cmd(a + self.tls_args() + ["--send", bob, "over tls"])
        self.assertEqual(r.returncode, 0, r.stderr + ks.text()[-2000:])
        r = self.run_cmd(b + self.tls_args() + ["--recv", "--timeout", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("\t%s/cli\tover tls" % alice, r.stdout)
        self.assertIn("request from %s/cli" % alice, ks.text())
        # a CA that did not sign: refused, said so, no crash
        r = self.run_cmd(a + self.tls_args("other-ca.crt") + ["--recv", "--timeout", "1"])
        self.assertEqual(r.returncode, 1, r.stderr)
        # the handshake ends in the connect or in the first loop turn after it
        self.assertRegex(r.stderr, r"^chat-client: (cannot connect to 127\.0\.0\.1:\d+|network): "
                         r"TLS: certificate verify failed \(is --cafile")
        r = self.run_cmd(a + ["--cafile", self.pem("missing.crt"), "--recv", "--timeout", "1"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot read --cafile", r.stderr)

    def test_keyaudit_over_tls(self):
        ks = self.key_server("-p", str(self.svc_port), *self.tls_args(client_cert=True))
        ks.wait_serving()
        u = uniq("tk")
        r = self.run_cmd(self.client_device(u) + self.tls_args() + ["--recv", "--timeout", "1"])
        self.assertEqual(r.returncode, 0, r.stderr + ks.text()[-2000:])
        aud = self.client_device(uniq("taud"))
        aud[aud.index("--state") + 1] = os.path.join(self.broker.tmp, uniq("audit") + ".state")
        audit = [AUDIT] + aud[1:]
        r = self.run_cmd(audit + self.tls_args())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + ks.text()[-2000:])
        self.assertIn("consistent: 1 entries", r.stdout)
        # a CA that did not sign: the audit could not be completed (3), said so
        r = self.run_cmd(audit + self.tls_args("other-ca.crt"))
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("TLS: certificate verify failed", r.stderr)

    def test_media_over_tls(self):
        media = MediaServer.for_broker(self.broker, "-p", str(self.svc_port),
                                       *self.tls_args(client_cert=True), user=uniq("media"))
        self.addCleanup(media.cleanup)
        media.wait_serving()
        u, v = uniq("tm"), uniq("tm")
        md = MediaDevice(self.dev(u, "d", protocol=V5))
        self.broker.add_device(v, "d")
        r = md.slot(10, ["%s/d" % v])
        self.assertTrue(r["ok"], r)
        self.assertTrue(r["put"].startswith(media.url), r)
        self.assertEqual(media.stop(), 0, media.text())
        # a CA that did not sign: it says so and keeps trying (the broker may be mended)
        bad = MediaServer.for_broker(self.broker, "-p", str(self.svc_port),
                                     *self.tls_args("other-ca.crt"), user=uniq("media"))
        self.addCleanup(bad.cleanup)
        bad.wait_text("TLS: certificate verify failed")
        self.assertIsNone(bad.proc.poll())
        self.assertEqual(bad.stop(), 0)

    def test_keyserver_refusals(self):
        ks = self.key_server("-p", str(self.tls_port), *self.tls_args("other-ca.crt"))
        ks.wait_text("TLS: certificate verify failed")
        self.assertIsNone(ks.proc.poll())          # it retries: the broker may be mended
        self.assertEqual(ks.stop(), 0)
        # its own key unusable: no retry mends that, it exits
        ks = self.key_server("-p", str(self.svc_port), "--cafile", self.pem("ca.crt"),
                             "--cert", self.pem("client.crt"), "--key", self.pem("bad.key"))
        self.assertEqual(ks.proc.wait(15), 1, ks.text())
        self.assertIn("TLS: Unable to load client key file", ks.text())
        r = self.run_cmd([KEYSERVER, "-h", "127.0.0.1", "-p", "1", "-u", "keys", "--token-file", "x",
                      "--data-dir", "y", "--cafile", self.pem("missing.crt")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("chat-keyserver: cannot read --cafile", r.stderr)

    def test_pushgw_over_tls(self):
        provider = Provider()
        self.addCleanup(provider.close)
        tok = self.broker.service_token_file("pushgw")
        log_path = os.path.join(self.broker.tmp, "pushgw-tls.log")
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        url = "http://127.0.0.1:%d/v1/projects/p/messages:send" % provider.port
        gw = subprocess.Popen([PUSHGW, "-h", "127.0.0.1", "-p", str(self.svc_port), "-u", "pushgw",
                               "--token-file", tok, "--fcm-url", url, "--stats-interval", "0",
                               "--log-level", "debug"] + self.tls_args(client_cert=True),
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def stop():
            if gw.poll() is None:
                gw.terminate()
                gw.wait(10)
        self.addCleanup(stop)
        text = lambda: open(log_path, "rb").read().decode(errors="replace")
        self.assertTrue(wait_until(lambda: "forwarding wake-ups" in text(), 10), text())
        bob = uniq("tp")
        d = self.dev(bob, "phone")
        self.assertTrue(d.ctl("push.register", 1, platform="fcm", token="tok-" + bob)["ok"])
        d.close()
        alice = self.dev(uniq("ta"), "phone")
        alice.send_dm(bob, 1, body=b"wake up")
        # the plugin's wake-up (plugin_opt_push_interval, default 5 s) through
        # the gateway over TLS to the provider, and its "ok" back
        self.assertTrue(wait_until(lambda: provider.for_token("tok-" + bob), 20), text())
        self.assertTrue(wait_until(lambda: re.search(r"wake-up \d+ for %s/phone \(fcm\): HTTP 200"
                                                     % bob, text()), 5), text())
        bad = self.run_cmd([PUSHGW, "-h", "127.0.0.1", "-p", "1", "-u", "pushgw", "--token-file", tok,
                        "--fcm-url", url, "--cafile", self.pem("ca.crt"), "--key",
                        self.pem("client.key")])
        self.assertEqual(bad.returncode, 2)
        self.assertIn("chat-pushgw: --key needs --cert too", bad.stderr)

    # ---- the web client's listener ----

    def test_device_over_wss(self):
        u, v = uniq("tw"), uniq("tw")
        du = Device(self.broker, u, "web", self.broker.add_device(u, "web"),
                    port=self.wss_port)
        # the same paho client, over secure WebSockets (paho 1.6 reads its
        # transport only when it connects)
        du.c._transport = "websockets"
        du.c.ws_set_options(path="/mqtt")
        du.c.tls_set(ca_certs=self.pem("ca.crt"))
        du.connect()
        self.addCleanup(du.close)
        dv = self.dev(v, "d")
        du.send_dm(v, 1, body=b"from the browser's listener")
        self.assertEqual(dv.wait_event("msg", conv=conv_of(u, v))["body"],
                         b"from the browser's listener")
        # the page from the same port, over https
        if os.path.isdir(os.path.join(BUILD_DIR, "web")):
            import urllib.request
            ctx = ssl.create_default_context(cafile=self.pem("ca.crt"))
            with urllib.request.urlopen("https://127.0.0.1:%d/" % self.wss_port, context=ctx,
                                        timeout=5) as r:
                self.assertIn("<title>mosquitto-chat</title>", r.read().decode())


if __name__ == "__main__":
    main()
