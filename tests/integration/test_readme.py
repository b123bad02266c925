"""The README's example session works exactly as written.

Runs the shell commands between <!-- example-session --> and
<!-- /example-session --> in README.md against a test broker. The session is
written for `make run` (127.0.0.1:1883, data in <repo>/data); here it runs in a
scratch directory that mirrors the checkout (build/bin/chatctl, scripts/cbor,
data/ -> the test broker's data dir), with mosquitto_pub/_sub and chatctl
shims that only add `-p PORT`. The output must match the README's json block
that follows the session (ts aside)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from chatlib import CHATCTL, SOURCE_DIR, ChatTestCase, main

README = os.path.join(SOURCE_DIR, "README.md")
START, END = "<!-- example-session -->", "<!-- /example-session -->"


def extract():
    """Returns (shell script, expected json lines) or (None, reason)."""
    if not os.path.exists(README):
        return None, "README.md missing"
    text = open(README).read()
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
            continue   # the test broker stands in for make run
        lines.append(line)
    after = text.split(END, 1)[1]
    expected = []
    section = re.split(r"\n#", after, 1)[0]     # up to the next heading
    m = re.search(r"```json\n(.*?)```", section, re.S)
    if m:
        expected = [json.loads(l) for l in m.group(1).splitlines() if l.strip()]
    return "\n".join(lines) + "\n", expected


class ReadmeSessionTest(ChatTestCase):

    def setUp(self):
        super().setUp()
        self.script, self.expected = extract()
        if self.script is None:
            self.skipTest(self.expected)

    def make_checkout(self):
        work = tempfile.mkdtemp(prefix="chat-it-readme-")
        self.addCleanup(shutil.rmtree, work, True)
        port = self.broker.port
        os.makedirs(os.path.join(work, "build", "bin"))
        os.makedirs(os.path.join(work, "scripts"))
        os.makedirs(os.path.join(work, "shims"))
        os.symlink(os.path.join(SOURCE_DIR, "scripts", "cbor"), os.path.join(work, "scripts", "cbor"))
        os.symlink(self.broker.data_dir, os.path.join(work, "data"))

        def shim(path, target):
            with open(path, "w") as f:
                f.write('#!/bin/sh\nexec %s -p %d "$@"\n' % (target, port))
            os.chmod(path, 0o755)
        shim(os.path.join(work, "build", "bin", "chatctl"), CHATCTL)
        shim(os.path.join(work, "shims", "mosquitto_sub"), "/usr/bin/mosquitto_sub")
        shim(os.path.join(work, "shims", "mosquitto_pub"), "/usr/bin/mosquitto_pub")
        return work

    def test_example_session(self):
        work = self.make_checkout()
        env = dict(os.environ)
        env["PATH"] = os.path.join(work, "shims") + ":" + env.get("PATH", "/usr/bin:/bin")
        r = subprocess.run(["bash", "-c", self.script], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "session failed:\n--- script\n%s--- stdout\n%s--- stderr\n%s\n%s"
                         % (self.script, r.stdout, r.stderr, self.broker.diagnostics(20)))
        events = []
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                events.append(json.loads(line))
        self.assertTrue(events, "the session printed no JSON event:\n" + r.stdout + r.stderr)
        msg = [e for e in events if e.get("k") == "msg"]
        self.assertEqual(len(msg), 1, events)
        self.assertEqual({k: msg[0].get(k) for k in ("conv", "seq", "from", "body")},
                         {"conv": "dm:alice:bob", "seq": 1, "from": "alice/phone",
                          "body": "b64:aGVsbG8="})
        if self.expected:
            strip = lambda evs: [{k: v for k, v in e.items() if k != "ts"} for e in evs]
            self.assertEqual(strip(events), strip(self.expected),
                             "output differs from the README's json block")
            for e in events:
                if "ts" in e:
                    self.assertIsInstance(e["ts"], int)


if __name__ == "__main__":
    main()
