# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""scripts/run.sh (make run): starts the broker in the foreground with a data
dir in the checkout, prints next steps that work as printed, serves the web
client and MQTT over WebSockets on a second port, and refuses a busy port.
Runs in a scratch copy of the checkout on free ports (CHAT_PORT,
CHAT_WS_PORT), with mosquitto_pub/_sub and chatctl shims that only add
-p PORT."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from chatlib import BROKER_DEFAULT_LINES, BUILD_DIR, CHATCTL, PLUGIN, SANITIZER_ENV, SOURCE_DIR, free_port, main, wait_until


class RunScriptTest(unittest.TestCase):

    def scratch(self, port):
        work = tempfile.mkdtemp(prefix="chat-it-run-")
        self.addCleanup(shutil.rmtree, work, True)
        for d in ("scripts", "build/bin", "build/lib", "shims"):
            os.makedirs(os.path.join(work, d))
        for f in ("run.sh", "cbor"):
            shutil.copy2(os.path.join(SOURCE_DIR, "scripts", f), os.path.join(work, "scripts", f))
        shutil.copytree(os.path.join(SOURCE_DIR, "examples", "scripts"),
                        os.path.join(work, "examples", "scripts"))
        os.symlink(PLUGIN, os.path.join(work, "build", "lib", "mosquitto_chat.so"))
        os.symlink(os.path.join(BUILD_DIR, "web"), os.path.join(work, "build", "web"))
        os.symlink(os.path.join(os.path.dirname(CHATCTL), "chat-keyserver"),
                   os.path.join(work, "build", "bin", "chat-keyserver"))
        os.symlink(os.path.join(os.path.dirname(CHATCTL), "chat-media"),
                   os.path.join(work, "build", "bin", "chat-media"))

        def shim(path, target):
            with open(path, "w") as f:
                f.write('#!/bin/sh\nexec %s -p %d "$@"\n' % (target, port))
            os.chmod(path, 0o755)
        shim(os.path.join(work, "build", "bin", "chatctl"), CHATCTL)
        shim(os.path.join(work, "shims", "mosquitto_sub"), "/usr/bin/mosquitto_sub")
        shim(os.path.join(work, "shims", "mosquitto_pub"), "/usr/bin/mosquitto_pub")
        return work

    def env(self, work, port, ws_port=None):
        env = dict(os.environ)
        env.pop("BUILD", None)
        env["CHAT_PORT"] = str(port)
        env["CHAT_WS_PORT"] = str(ws_port or free_port())
        env["CHAT_MEDIA_PORT"] = str(free_port())
        env.update(SANITIZER_ENV)   # an ASan plugin needs its runtime preloaded into mosquitto
        env["PATH"] = os.path.join(work, "shims") + ":" + env.get("PATH", "/usr/bin:/bin")
        return env

    def start_run(self, work, env):
        """Starts scripts/run.sh in work, its output in run.out; stopped by
        SIGTERM (as Ctrl-C) at the test's end. Returns (process, output path)."""
        out_path = os.path.join(work, "run.out")
        out = open(out_path, "w")
        p = subprocess.Popen([os.path.join(work, "scripts", "run.sh")], cwd=work, env=env,
                             stdout=out, stderr=subprocess.STDOUT)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            out.close()
        self.addCleanup(stop)
        return p, out_path

    def test_serves_and_next_steps_work(self):
        port, ws_port = free_port(), free_port()
        work = self.scratch(port)
        p, out_path = self.start_run(work, self.env(work, port, ws_port))

        def up():
            if p.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return os.path.exists(os.path.join(work, "data", "admin.token"))
            except OSError:
                return False
        self.assertTrue(wait_until(up, 10), "run.sh did not come up")
        self.assertIsNone(p.poll(), "run.sh exited:\n" + open(out_path).read())
        self.assertTrue(os.path.exists(os.path.join(work, "data", "mosquitto.conf")))
        conf = open(os.path.join(work, "data", "mosquitto.conf")).read()
        self.assertIn("listener %d 127.0.0.1" % port, conf)
        self.assertIn("plugin_opt_data_dir %s/data" % work, conf)
        self.assertEqual(os.geteuid() == 0, "user root" in conf)
        # the broker settings the test brokers mirror (chatlib.BROKER_DEFAULT_LINES)
        for line in BROKER_DEFAULT_LINES:
            self.assertIn("\n%s\n" % line, conf)

        # the printed address serves the web client, on the WebSockets port
        url = "http://127.0.0.1:%d/" % ws_port
        self.assertTrue(wait_until(lambda: url in open(out_path).read(), 10), open(out_path).read())
        self.assertIn("listener %d\nprotocol websockets\nhttp_dir %s/build/web" % (ws_port, work), conf)
        with urllib.request.urlopen(url, timeout=5) as r:
            page = r.read().decode()
        self.assertIn("<title>mosquitto-chat</title>", page)
        with urllib.request.urlopen(url + "app.js", timeout=5) as r:
            self.assertGreater(len(r.read()), 10000)

        # the key server runs beside the broker with its own service credential
        keys_token = os.path.join(work, "data", "keys.token")
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(work, "data", "keys")), 10),
                        "key server did not start:\n" + open(out_path).read())
        self.assertEqual(len(open(keys_token).read().strip()), 43)
        self.assertEqual(os.stat(keys_token).st_mode & 0o777, 0o600)
        # so does chat-media, its URL printed; it serves nothing unsigned
        m = re.search(r"chat-media started at (http://127\.0\.0\.1:\d+)", open(out_path).read())
        self.assertIsNotNone(m, open(out_path).read())
        media_token = os.path.join(work, "data", "media.token")
        self.assertEqual(os.stat(media_token).st_mode & 0o777, 0o600)

        def media_answers():
            try:
                urllib.request.urlopen(m.group(1) + "/", timeout=2)
            except urllib.error.HTTPError as e:
                return e.code == 404
            except OSError:
                return False
            return False
        self.assertTrue(wait_until(media_answers, 10), open(out_path).read())

        # the printed next steps: indented command lines after the banner
        printed = open(out_path).read()
        cmds = [l[2:] for l in printed.splitlines() if l.startswith("  ") and not l.strip().startswith("#")]
        self.assertTrue(any("examples/scripts/device-token alice phone" in c for c in cmds), printed)
        self.assertTrue(any("scripts/cbor decode --hex" in c and "-F %x" in c for c in cmds), printed)
        self.assertTrue(any("scripts/cbor encode" in c and "mosquitto_pub" in c and " -s" in c
                            for c in cmds), printed)
        script = []
        for c in cmds:
            script.append(c)
            if c.rstrip().endswith("&"):
                script.append("sleep 1")   # a person would wait for the subscription too
        # the first line can be the replay's {"k": "sync", "done": true} (subscribing
        # starts one): wait for the message itself
        script.append("for i in $(seq 50); do grep -q '\"msg\"' sub.out 2>/dev/null && break; "
                      "sleep 0.1; done")
        script.append("kill $(jobs -p) 2>/dev/null; cat sub.out")
        text = "\n".join(script) + "\n"
        # the background subscriber's output goes to a file so the script can wait for it
        text = re.sub(r"(scripts/cbor decode --hex[^&\n]*)&", r"\1> sub.out &", text)
        r = subprocess.run(["bash", "-c", text], cwd=work, env=self.env(work, port),
                           capture_output=True, text=True, timeout=60)
        events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        msgs = [e for e in events if e.get("k") == "msg"]
        self.assertEqual(len(msgs), 1, "script:\n%s\nstdout:\n%s\nstderr:\n%s" % (text, r.stdout, r.stderr))
        self.assertEqual((msgs[0]["conv"], msgs[0]["seq"], msgs[0]["from"], msgs[0]["body"]),
                         ("dm:alice:bob", 1, "alice/phone", "b64:aGVsbG8="))

    def test_iot_clients_beside_chat(self):
        """CHAT_IOT=1 make run: an anonymous `mosquitto_sub -t '#' -v` sees
        the IoT traffic and none of the chat traffic before it."""
        port = free_port()
        work = self.scratch(port)
        env = self.env(work, port)
        env["CHAT_IOT"] = "1"
        p, out_path = self.start_run(work, env)
        self.assertTrue(wait_until(lambda: "mosquitto is serving" in open(out_path).read(), 10),
                        open(out_path).read())
        self.assertIn("allow_anonymous true",
                      open(os.path.join(work, "data", "mosquitto.conf")).read())
        script = "\n".join([
            "A=$(build/bin/chatctl --token-file data/admin.token device add alice phone)",
            "build/bin/chatctl --token-file data/admin.token device add bob phone > /dev/null",
            "mosquitto_sub -t '#' -v -C 1 -W 10 > sub.out &",
            "sleep 1",
            "scripts/cbor encode '{\"cid\":1,\"body\":\"b64:aGVsbG8=\"}' | mosquitto_pub "
            "-i alice/phone -u alice/phone -P \"$A\" -t chat/dm/bob -q 1 -s",
            "sleep 0.5",
            "mosquitto_pub -t home/kitchen/temp -m 21 -q 1",
            "wait; cat sub.out"])
        r = subprocess.run(["bash", "-c", script], cwd=work, env=self.env(work, port),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout.strip(), "home/kitchen/temp 21", r.stderr)

    def test_refuses_busy_port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        self.addCleanup(s.close)
        work = self.scratch(port)
        r = subprocess.run([os.path.join(work, "scripts", "run.sh")], cwd=work,
                           env=self.env(work, port), capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(str(port), r.stderr)
        self.assertIn("in use", r.stderr)


if __name__ == "__main__":
    main()
