# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The web client (examples/web) in a real browser: Debian's Chromium driven
by playwright-core (examples/web/test/browser.mjs) against a real broker with
an MQTT-over-WebSockets listener that also serves the built page (http_dir),
and a real key server. Each scenario gets fresh users.

CHAT_WEB_SHOTS=DIR saves screenshots of the main screens there (docs/ uses them).
"""

import base64
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import struct
import threading
import zlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chatlib import BUILD_DIR, CHATCTL, SOURCE_DIR, ChatTestCase, MediaServer, free_port, main, uniq
from test_attachments import MARKER, big_file, voice_note
from test_keyserver import KeyServer

WEB_SRC = os.path.join(SOURCE_DIR, "examples", "web")
WEB_OUT = os.path.join(BUILD_DIR, "web")
CHROMIUM = "/usr/bin/chromium"
CHAT_CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
LYING = os.path.join(BUILD_DIR, "bin", "chat-keyserver-lying")
WS_PORT = free_port()


def png(path, w=64, h=48):
    """An RGB gradient PNG with the test's marker in a tEXt chunk."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + bytes((x * 4 % 256, y * 5 % 256, 128) [c] for x in range(w) for c in range(3))
                   for y in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"tEXt", b"Comment\0" + MARKER) + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)
    return data


class WebTest(ChatTestCase):
    # the pages show presence going offline; without the grace (default 10 s)
    # they need not wait for it
    broker_options = {"presence_grace": 0}
    broker_lines = ("listener %d 127.0.0.1" % WS_PORT, "protocol websockets", "http_dir %s" % WEB_OUT)

    @classmethod
    def setUpClass(cls):
        for need, hint in ((os.path.join(WEB_OUT, "index.html"), "the web client is not built"),
                           (os.path.join(WEB_SRC, "node_modules", "playwright-core"), "node modules missing"),
                           (CHROMIUM, "chromium is not installed")):
            if not os.path.exists(need):
                raise AssertionError("%s (%s): run scripts/deps.sh and rebuild" % (hint, need))
        super().setUpClass()
        rc, out, err = cls.broker.chatctl("service", "add", "keys")
        if rc != 0:
            raise AssertionError("chatctl service add keys: %s" % err)
        token_file = os.path.join(cls.broker.tmp, "keys.token")
        with open(token_file, "w") as f:
            f.write(out.strip() + "\n")
        cls.ks = KeyServer(cls.broker, token_file, os.path.join(cls.broker.tmp, "keys-data"))
        try:
            cls.ks.wait_serving()
        except Exception:
            cls.ks.cleanup()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.ks.cleanup()
        finally:
            super().tearDownClass()

    def users(self, *names, plain=False):
        out = {}
        for n in names:
            u = n if plain else uniq(n)
            out[n] = {"addr": "%s/web" % u, "token": self.broker.add_device(u, "web")}
        return out

    def run_scenario(self, name, users, **extra):
        cfg = {"url": "http://127.0.0.1:%d/" % WS_PORT, "users": users,
               "shots": os.environ.get("CHAT_WEB_SHOTS")}
        cfg.update(extra)
        env = dict(os.environ, CHAT_WEB=json.dumps(cfg))
        r = subprocess.run(["node", "test/browser.mjs", name], cwd=WEB_SRC, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
        print(r.stdout)
        if r.returncode != 0:
            self.fail("browser scenario %s failed (rc %d):\n%s\n%s\nkey server:\n%s\n%s"
                      % (name, r.returncode, r.stdout, r.stderr, self.ks.text()[-3000:],
                         self.broker.diagnostics(40)))

    def test_pair(self):
        """alice and bob in two browser contexts: a 1:1 chat with ✓✓ and read
        receipts and unread counts, presence and typing, a group, devices."""
        # plain names on the screenshots (no other test uses them)
        self.run_scenario("pair", self.users("alice", "bob", plain=True))

    def test_reload(self):
        """A reload resumes the session (no sign-in, history and sessions kept);
        a message sent while the page was closed arrives when it is back."""
        self.run_scenario("reload", self.users("alice", "bob"))

    def test_interop(self):
        """A browser user and a chat-client user, both ways: 1:1 (X3DH and
        the Double Ratchet started from either side) and a group (sender keys)."""
        if not os.path.exists(CHAT_CLIENT):
            self.fail("chat-client not built: %s" % CHAT_CLIENT)
        users = self.users("alice")
        carol = uniq("carol")
        token_file = os.path.join(self.broker.tmp, "%s.token" % carol)
        with open(token_file, "w") as f:
            f.write(self.broker.add_device(carol, "cli") + "\n")
        users["carol"] = {"addr": "%s/cli" % carol}
        argv = [CHAT_CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", "%s/cli" % carol,
                "--token-file", token_file, "--state", os.path.join(self.broker.tmp, "%s.state" % carol)]
        self.run_scenario("interop", users, client={"argv": argv})

    def test_lying_key_server(self):
        """The key server turns (chat-keyserver-lying, built for the tests
        only) and serves alice's page a key for carol that is not in the key
        directory log: the page refuses the bundle and the send fails with the
        reason (docs/KEYSERVER.md "Key directory log")."""
        users = self.users("alice")
        alice = users["alice"]["addr"]
        carol = uniq("carol")
        token_file = os.path.join(self.broker.tmp, "%s.token" % carol)
        with open(token_file, "w") as f:
            f.write(self.broker.add_device(carol, "cli") + "\n")
        users["carol"] = {"addr": "%s/cli" % carol}
        r = subprocess.run([CHAT_CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u",
                            "%s/cli" % carol, "--token-file", token_file, "--state",
                            os.path.join(self.broker.tmp, "%s.state" % carol), "--recv",
                            "--timeout", "0"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        ks, data = type(self).ks, os.path.join(self.broker.tmp, "keys-data")
        ks.stop()
        ks.cleanup()
        type(self).ks = KeyServer(self.broker, ks.token_file, data, binary=LYING,
                                  env={"CHAT_KS_LIE": "swap:%s" % alice})
        try:
            type(self).ks.wait_serving()
            self.run_scenario("lied", users)
        finally:
            type(self).ks.stop()
            type(self).ks.cleanup()
            type(self).ks = KeyServer(self.broker, ks.token_file, data)
            type(self).ks.wait_serving()

    def test_own_history_finds_a_logged_fake_key(self):
        """alice's page signs in; the key server then logs an attacker's key in
        alice's name (chat-keyserver-lying, logfake). Back online, the page
        finds it in its own history and says so."""
        users = self.users("alice")
        flag = os.path.join(self.broker.tmp, uniq("flag"))
        cfg = {"url": "http://127.0.0.1:%d/" % WS_PORT, "users": users, "flag": flag, "shots": None}
        p = subprocess.Popen(["node", "test/browser.mjs", "impersonated"], cwd=WEB_SRC,
                             env=dict(os.environ, CHAT_WEB=json.dumps(cfg)), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        ks, data = type(self).ks, os.path.join(self.broker.tmp, "keys-data")
        try:
            for line in p.stdout:
                out.append(line)
                if "READY" in line:
                    break
            self.assertIn("READY", "".join(out), "".join(out))
            ks.stop()
            ks.cleanup()
            type(self).ks = KeyServer(self.broker, ks.token_file, data, binary=LYING,
                                      env={"CHAT_KS_LIE": "logfake:%s" % users["alice"]["addr"]})
            type(self).ks.wait_serving()
            open(flag, "w").close()
            out.extend(p.stdout)
            self.assertEqual(p.wait(120), 0, "".join(out) + type(self).ks.text()[-2000:])
            print("".join(out))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            type(self).ks.stop()
            type(self).ks.cleanup()
            type(self).ks = KeyServer(self.broker, ks.token_file, data)
            type(self).ks.wait_serving()

    def test_removal(self):
        """An admin removes one of bob's two browser devices: that page is
        signed out with a message, and alice's next message reaches the other."""
        users = self.users("alice", "bob")
        bob = users["bob"]["addr"].split("/")[0]
        users["bobtab"] = {"addr": "%s/tab" % bob, "token": self.broker.add_device(bob, "tab")}
        chatctl = [CHATCTL, "-p", str(self.broker.port), "--token-file", self.broker.token_file]
        self.run_scenario("removal", users, chatctl=chatctl)

    def test_safety(self):
        """Safety numbers (docs/E2EE.md §8): alice's browser, alice's
        chat-client and bob's chat-client show the same number and QR payload;
        alice verifies bob on both devices; bob's device is removed and comes
        back with new keys: both of alice's devices show the notices, lose the
        verified mark, and agree on the new number with bob; a tablet bob adds
        writes first, and alice's answer reaches it without a spurious notice."""
        if not os.path.exists(CHAT_CLIENT):
            self.fail("chat-client not built: %s" % CHAT_CLIENT)
        users = self.users("alice")
        alice = users["alice"]["addr"].split("/")[0]
        bob = uniq("bob")
        users["bob"] = {"addr": "%s/phone" % bob}
        clients = {}
        for name, addr, state in (("alicecli", "%s/cli" % alice, "alicecli"),
                                  ("bob", "%s/phone" % bob, "bob"),
                                  ("bobnew", "%s/phone" % bob, "bobnew"),
                                  ("bobtab", "%s/tab" % bob, "bobtab")):
            token_file = os.path.join(self.broker.tmp, "%s-%s.token" % (bob, name))
            if name not in ("bobnew", "bobtab"):   # the scenario adds these devices and writes their tokens
                u, d = addr.split("/")
                with open(token_file, "w") as f:
                    f.write(self.broker.add_device(u, d) + "\n")
            clients[name] = {"token_file": token_file, "argv": [
                CHAT_CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", addr,
                "--token-file", token_file,
                "--state", os.path.join(self.broker.tmp, "%s-%s.state" % (bob, state))]}
        chatctl = [CHATCTL, "-p", str(self.broker.port), "--token-file", self.broker.token_file]
        self.run_scenario("safety", users, clients=clients, chatctl=chatctl)

    def test_attachment(self):
        """Attachments in the page, with chat-media: a picture (shown inline,
        with a thumbnail made on the sender's page), a voice note (played
        with controls) and a 5 MB file (a download link) 1:1 between two
        pages; a voice note to a group with a chat-client member; 5 MB from
        chat-client to a page. Every copy byte-identical; kept across a
        reload; no byte of the files in chat-media's data dir or log."""
        # the page's origin may call chat-media (CORS); nothing else changes
        media = MediaServer.for_broker(self.broker, "--cors-origin", "http://127.0.0.1:%d" % WS_PORT)
        self.addCleanup(media.cleanup)
        media.wait_serving()
        site = tempfile.mkdtemp(prefix="chat-web-files-")
        self.addCleanup(shutil.rmtree, site, True)
        files = {"photo.png": png(os.path.join(site, "photo.png")),
                 "voice.wav": voice_note(os.path.join(site, "voice.wav")),
                 "report.bin": big_file(os.path.join(site, "report.bin"))}
        users = self.users("alice", "bob")
        carol = uniq("carol")
        token_file = os.path.join(self.broker.tmp, "%s.token" % carol)
        with open(token_file, "w") as f:
            f.write(self.broker.add_device(carol, "cli") + "\n")
        users["carol"] = {"addr": "%s/cli" % carol}
        argv = [CHAT_CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", "%s/cli" % carol,
                "--token-file", token_file, "--state", os.path.join(self.broker.tmp, "%s.state" % carol)]
        self.run_scenario("attachment", users, client={"argv": argv},
                          files={n: {"path": os.path.join(site, n), "sha256": hashlib.sha256(b).hexdigest()}
                                 for n, b in files.items()})
        log = media.text()
        self.assertEqual(media.stop(), 0, log)
        for d, _, names in os.walk(media.data_dir):
            for name in names:
                with open(os.path.join(d, name), "rb") as f:
                    self.assertNotIn(MARKER, f.read(), os.path.join(d, name))
        self.assertNotIn(MARKER.decode(), log)

    def test_webpush_service_worker(self):
        """The page as a deployment that offers Web Push serves it: by a web
        server that sends JavaScript as such (a browser registers a service
        worker from nothing else; mosquitto's http_dir sends no Content-Type),
        with the deployment's VAPID public key in vapid-public-key.txt."""
        site = tempfile.mkdtemp(prefix="chat-web-site-")
        self.addCleanup(shutil.rmtree, site, True)
        for f in ("index.html", "app.js", "sw.js"):
            shutil.copy(os.path.join(WEB_OUT, f), site)
        pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        with open(os.path.join(site, "vapid-public-key.txt"), "w") as f:
            f.write(base64.urlsafe_b64encode(pub).decode().rstrip("=") + "\n")
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

        handler = functools.partial(Quiet, directory=site)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        url = "http://127.0.0.1:%d/?ws=ws://127.0.0.1:%d/mqtt" % (httpd.server_address[1], WS_PORT)
        self.run_scenario("webpush", self.users("alice"), url=url)


if __name__ == "__main__":
    main()
