# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The mosquitto_pub / mosquitto_sub walkthrough in examples/scripts works.

Each examples/scripts/NN-*.sh runs, in order, against this file's broker
(presence grace 1 s so the presence script is quick), and must exit 0 after
its own assertions ("ok: …"). Then the whole walkthrough runs a second time
against the same broker: the scripts are meant to be rerun against a
`make run` broker that keeps its data."""

import glob
import os
import subprocess
import tempfile

from chatlib import BUILD_DIR, SOURCE_DIR, ChatTestCase, Device, MediaServer, main, uniq

SCRIPTS = sorted(glob.glob(os.path.join(SOURCE_DIR, "examples", "scripts", "[0-9][0-9]-*.sh")))


class ExampleScriptsTest(ChatTestCase):
    # the plugin's defaults (as make run has them: a subscription to the
    # inbox replays the backlog), but a presence grace of 1 s
    broker_options = {"presence_grace": 1}

    @classmethod
    def setUpClass(cls):
        # chat-media beside the broker, as make run has it (08-attachment.sh)
        super().setUpClass()
        cls.media = MediaServer.for_broker(cls.broker)
        try:
            cls.media.wait_serving()
        except Exception:
            cls.media.cleanup()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.media.stop()
        finally:
            cls.media.cleanup()
            super().tearDownClass()

    def env(self):
        env = dict(os.environ)
        env.update(CHAT_HOST="127.0.0.1", CHAT_PORT=str(self.broker.port), CHAT_BUILD=BUILD_DIR,
                   CHAT_DATA=self.broker.data_dir,
                   CHAT_STATE=os.path.join(self.broker.data_dir, "examples"),
                   CHAT_MEDIA_URL=self.media.url)
        return env

    def run_script(self, path):
        r = subprocess.run(["bash", path], env=self.env(), capture_output=True, text=True,
                           timeout=90, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, "%s failed:\n--- stdout\n%s--- stderr\n%s\n%s"
                         % (os.path.basename(path), r.stdout, r.stderr, self.broker.diagnostics(30)))
        self.assertIn("ok: ", r.stdout)
        return r.stdout

    def test_scripts_in_order_then_again(self):
        self.assertGreaterEqual(len(SCRIPTS), 6, SCRIPTS)
        for round_ in (1, 2):
            for path in SCRIPTS:
                with self.subTest(script=os.path.basename(path), round=round_):
                    out = self.run_script(path)
                    print("round %d %s: %s" % (round_, os.path.basename(path),
                                               out.strip().splitlines()[-1]))

    def test_run_all(self):
        r = subprocess.run(["bash", os.path.join(SOURCE_DIR, "examples", "scripts", "run-all.sh")],
                           env=self.env(), capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("walkthrough: all scripts passed", r.stdout)

    def test_provision_example(self):
        """examples/provision.py, as an app backend runs it: a provisioner
        account adds a device (whose token connects), reads the counters,
        is refused what it may not do, and removes the device."""
        name = uniq("shop")
        rc, tok, err = self.broker.chatctl("service", "add", name, "--role", "provisioner")
        self.assertEqual(rc, 0, err)
        tokfile = os.path.join(self.broker.tmp, name + ".token")
        with open(tokfile, "w") as f:
            f.write(tok)

        def provision(*args):
            return subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "examples",
                                                                     "provision.py"),
                                   "-p", str(self.broker.port), "-u", name,
                                   "--token-file", tokfile] + list(args),
                                  capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL)

        u = uniq("bob")
        r = provision("add", u, "tablet")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = Device(self.broker, u, "tablet", r.stdout.strip()).connect()
        self.assertEqual(d.connack, 0)
        d.close()
        r = provision("stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^devices \d+$")
        r = provision("add", u, "tablet")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists", r.stderr)
        r = provision("remove", u, "tablet")
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, out, err = self.broker.chatctl("device", "list", u)
        self.assertEqual((rc, out), (0, ""), err)


if __name__ == "__main__":
    main()
