# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The README as a newcomer meets it: `make run`, the example session, the
walkthrough — in the README's order, against one broker, twice.

`make run` is scripts/run.sh with the configuration it writes and nothing
changed: stock mosquitto, the plugin's defaults, the key server beside it, on
127.0.0.1:1883 (and 9001 for WebSockets), data in <checkout>/data. Here the
checkout is a scratch copy (scripts/, examples/scripts/, and build/ linked to
the build under test) so the real data/ is not touched. Then:

1. the shell commands between <!-- example-session --> and
   <!-- /example-session --> in README.md run verbatim, and what they print
   must be the README's json block that follows them (ts aside);
2. examples/scripts/run-all.sh, which the README says to run next, must pass;
3. `make run` is stopped and started again with its data kept, and the
   session (seq counts on, as the README says) and the walkthrough run again.

So that the README's commands run unchanged on the ports they name while other
tests run beside this one, everything runs in a network namespace of its own
(`unshare -n`, which needs root: make test and CI run as root), where 1883 and
9001 are free. Where no namespace can be made, the test says so and runs on
free ports instead, with mosquitto_pub/_sub shims that only add -p PORT and
CHAT_PORT for run.sh and the example scripts."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from chatlib import BUILD_DIR, SANITIZER_ENV, SLOW, SOURCE_DIR, free_port, main, wait_until

README = os.path.join(SOURCE_DIR, "README.md")
START, END = "<!-- example-session -->", "<!-- /example-session -->"
SERVING = "mosquitto-chat: mosquitto is serving on"


def extract(text):
    """Returns (shell script, expected json events) or (None, reason)."""
    if START not in text or END not in text:
        return None, "README.md has no %s ... %s markers" % (START, END)
    body = text.split(START, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"```[a-z]*\n(.*?)```", body, re.S)
    if not blocks:
        return None, "no code block between the markers"
    lines = []
    for line in "\n".join(blocks).splitlines():
        line = re.sub(r"^\s*\$ ", "", line)
        if re.match(r"\s*(make run|scripts/run\.sh)\b", line):
            continue   # make run is started by the test, before the session
        lines.append(line)
    after = text.split(END, 1)[1]
    section = re.split(r"\n#", after, 1)[0]     # up to the next heading
    m = re.search(r"```json\n(.*?)```", section, re.S)
    if not m:
        return None, "no ```json block after the session"
    expected = [json.loads(l) for l in m.group(1).splitlines() if l.strip()]
    return "set -e\n" + "\n".join(lines) + "\n", expected


class NetNS:
    """A network namespace with its loopback up, held by a sleeping process;
    run(argv) gives the argv that runs inside it. None if none can be made."""

    @classmethod
    def make(cls):
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
            return None
        ip = shutil.which("ip") or "/usr/sbin/ip"
        try:
            holder = subprocess.Popen(["unshare", "-n", "sh", "-c",
                                       "%s link set lo up && echo up && exec sleep 3600" % ip],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      stdin=subprocess.DEVNULL)
        except OSError:
            return None
        line = holder.stdout.readline()
        if line.strip() != b"up":
            holder.kill()
            holder.wait()
            return None
        ns = cls()
        ns.holder = holder
        return ns

    def run(self, argv):
        return ["nsenter", "-t", str(self.holder.pid), "-n"] + list(argv)

    def close(self):
        self.holder.kill()
        self.holder.wait()


class NewcomerTest(unittest.TestCase):

    def setUp(self):
        self.script, self.expected = extract(open(README).read())
        if self.script is None:
            self.fail(self.expected)
        self.work = tempfile.mkdtemp(prefix="chat-it-newcomer-")
        if not os.environ.get("CHAT_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.work, True)
        for d in ("scripts", "examples"):
            os.makedirs(os.path.join(self.work, d))
        for f in ("run.sh", "cbor"):
            shutil.copy2(os.path.join(SOURCE_DIR, "scripts", f), os.path.join(self.work, "scripts", f))
        shutil.copytree(os.path.join(SOURCE_DIR, "examples", "scripts"),
                        os.path.join(self.work, "examples", "scripts"))
        os.symlink(BUILD_DIR, os.path.join(self.work, "build"))

        env = dict(os.environ)
        for k in list(env):
            if k.startswith("CHAT_") or k == "BUILD":
                del env[k]      # a newcomer has none of these set
        env.update(SANITIZER_ENV)   # an ASan plugin needs its runtime preloaded into mosquitto
        self.ns = NetNS.make()
        if self.ns:
            self.addCleanup(self.ns.close)
            self.wrap = self.ns.run
        else:
            sys.stderr.write("[no network namespace (not root?): free ports and -p shims] ")
            port = free_port()
            shims = os.path.join(self.work, "shims")
            os.makedirs(shims)
            for tool in ("mosquitto_sub", "mosquitto_pub"):
                with open(os.path.join(shims, tool), "w") as f:
                    f.write('#!/bin/sh\nexec /usr/bin/%s -p %d "$@"\n' % (tool, port))
                os.chmod(os.path.join(shims, tool), 0o755)
            env["PATH"] = shims + ":" + env.get("PATH", "/usr/bin:/bin")
            env["CHAT_PORT"] = str(port)
            env["CHAT_WS_PORT"] = str(free_port())
            self.wrap = lambda argv: list(argv)
        self.env = env
        # the user's own tools (the session, the walkthrough: mosquitto_pub,
        # mosquitto_rr, curl) run without the sanitizer runtime that an ASan
        # build preloads into make run's mosquitto: a user has none, and curl
        # with libasan preloaded hangs in its PUT (seen in make asan)
        self.client_env = {k: v for k, v in env.items() if k not in SANITIZER_ENV}
        self.make_run = None

    def tearDown(self):
        self.stop_make_run()

    # ---- make run, in the foreground of its own process
    def start_make_run(self):
        out_path = os.path.join(self.work, "run.out")
        self.run_out = open(out_path, "a")
        mark = os.path.getsize(out_path)
        self.make_run = subprocess.Popen(self.wrap([os.path.join(self.work, "scripts", "run.sh")]),
                                         cwd=self.work, env=self.env, stdout=self.run_out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def printed():
            return open(out_path).read()[mark:]
        ok = wait_until(lambda: self.make_run.poll() is not None or SERVING in printed(), 20 * SLOW)
        self.assertTrue(ok and self.make_run.poll() is None, "make run did not come up:\n" + printed())
        self.assertIn("key server started", printed())

    def stop_make_run(self):
        p, self.make_run = self.make_run, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)     # as Ctrl-C: run.sh stops what it started
            try:
                p.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.run_out.close()

    def make_run_output(self):
        return open(os.path.join(self.work, "run.out")).read()

    # ---- the README's steps
    def example_session(self, seq=None, after=None):
        """Runs the session; the msg's seq must be seq, or greater than after
        (the conversation counts on); returns it."""
        r = subprocess.run(self.wrap(["bash", "-c", self.script]), cwd=self.work, env=self.client_env,
                           capture_output=True, text=True, timeout=60 * SLOW,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, "the session failed:\n--- script\n%s--- stdout\n%s"
                         "--- stderr\n%s--- make run\n%s"
                         % (self.script, r.stdout, r.stderr, self.make_run_output()[-3000:]))
        events = [json.loads(l) for l in r.stdout.splitlines() if l.strip().startswith("{")]
        got = [e.get("seq") for e in events if e.get("k") == "msg"]
        if seq is None and len(got) == 1 and isinstance(got[0], int) and got[0] > after:
            seq = got[0]
        expected = [dict(e, seq=seq) if e.get("k") == "msg" else e for e in self.expected]
        strip = lambda evs: [{k: v for k, v in e.items() if k != "ts"} for e in evs]
        self.assertEqual(strip(events), strip(expected),
                         "the session printed other than the README shows (run %d):\n%s%s"
                         % (1 if after is None else 2, r.stdout, r.stderr))
        for e in events:
            if "ts" in e:
                self.assertIsInstance(e["ts"], int)
        return seq

    def walkthrough(self, round_):
        r = subprocess.run(self.wrap(["bash", os.path.join("examples", "scripts", "run-all.sh")]),
                           cwd=self.work, env=self.client_env, capture_output=True, text=True,
                           timeout=240 * SLOW, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, "run-all.sh failed (round %d):\n--- stdout\n%s--- stderr\n%s"
                         "--- make run\n%s" % (round_, r.stdout, r.stderr,
                                              self.make_run_output()[-3000:]))
        self.assertIn("walkthrough: all scripts passed", r.stdout)
        scripts = glob.glob(os.path.join(self.work, "examples", "scripts", "[0-9][0-9]-*.sh"))
        self.assertEqual(r.stdout.count("ok: "), len(scripts), r.stdout)

    def test_make_run_session_walkthrough_then_again_after_restart(self):
        self.start_make_run()
        conf = open(os.path.join(self.work, "data", "mosquitto.conf")).read()
        self.assertIn("plugin_opt_data_dir %s/data" % self.work, conf)
        self.assertNotIn("plugin_opt_auto_replay", conf)     # the defaults, as a user gets them
        self.assertNotIn("plugin_opt_delivered_on_puback", conf)
        first = self.example_session(seq=1)
        self.walkthrough(1)
        # make run again, data kept: the same steps work, seq counts on
        self.stop_make_run()
        t0 = time.monotonic()
        self.start_make_run()
        self.assertLess(time.monotonic() - t0, 20 * SLOW)
        self.example_session(after=first)
        self.walkthrough(2)


if __name__ == "__main__":
    main()
