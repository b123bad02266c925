# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Under systemd the sidecars' stderr lines carry sd-daemon(3) priority
prefixes (<3> error, <4> warning, <6> info, <7> debug), which journald turns
into the entries' priorities; elsewhere the lines are plain. systemd says
stderr is journald's by JOURNAL_STREAM=DEV:INODE of that stream: the test
gives them a file and its DEV:INODE."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from chatlib import BUILD_DIR, Broker, main, wait_until

KEYSERVER = os.path.join(BUILD_DIR, "bin", "chat-keyserver")
PUSHGW = os.path.join(BUILD_DIR, "bin", "chat-pushgw")
MEDIA = os.path.join(BUILD_DIR, "bin", "chat-media")
LINE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z chat-keyserver (error|warning|info|debug): "
PRIO = {"error": "3", "warning": "4", "info": "6", "debug": "7"}


class JournalTest(unittest.TestCase):

    def run_with(self, cmd, journal, wait=True, env_value=None):
        """Runs cmd with stderr in a temp file; journal: JOURNAL_STREAM names
        that file. Returns (process, function reading the file)."""
        f = tempfile.NamedTemporaryFile(prefix="journal-", delete=False)
        self.addCleanup(os.unlink, f.name)
        self.addCleanup(f.close)
        st = os.fstat(f.fileno())
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        if journal:
            env["JOURNAL_STREAM"] = env_value or "%d:%d" % (st.st_dev, st.st_ino)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=f, env=env)
        if wait:
            p.wait(15)

        def text():
            with open(f.name, errors="replace") as g:
                return g.read()
        return p, text

    def test_keyserver_priorities(self):
        b = Broker()
        self.addCleanup(b.cleanup)
        b.start()
        data = tempfile.mkdtemp(prefix="journal-ks-")
        self.addCleanup(shutil.rmtree, data, True)
        cmd = [KEYSERVER, "-h", "127.0.0.1", "-p", str(b.port), "-u", "keys",
               "--token-file", b.service_token_file("keys"), "--data-dir", data,
               "--log-level", "debug"]
        p, text = self.run_with(cmd, True, wait=False)
        try:
            self.assertTrue(wait_until(lambda: "serving key requests" in text(), 10), text())
        finally:
            p.terminate()
            p.wait(10)
        lines = text().splitlines()
        self.assertGreater(len(lines), 1)
        seen = set()
        for line in lines:
            m = re.match(r"<(\d)>" + LINE, line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(1), PRIO[m.group(2)], line)
            seen.add(m.group(2))
        self.assertIn("info", seen)

    def test_error_and_bad_option(self):
        _, text = self.run_with([KEYSERVER, "-h", "127.0.0.1", "-p", "1", "-u", "keys",
                                 "--token-file", "/nonexistent/token", "--data-dir",
                                 "/nonexistent"], True)
        self.assertRegex(text(), r"^<3>" + LINE + r"cannot read a token")
        p, text = self.run_with([KEYSERVER, "-h", "h", "-p", "0", "-u", "k", "--token-file",
                                 "t", "--data-dir", "d"], True)
        self.assertEqual(p.returncode, 2)
        self.assertTrue(text().startswith("<3>chat-keyserver: invalid value '0' for -p"), text())
        p, text = self.run_with([PUSHGW, "-h", "h", "-p", "1", "-u", "p", "--token-file", "t"],
                                True)
        self.assertEqual(p.returncode, 2)
        self.assertTrue(text().startswith("<3>chat-pushgw: configure at least one"), text())

    def test_media_priorities(self):
        b = Broker()
        self.addCleanup(b.cleanup)
        b.start()
        data = tempfile.mkdtemp(prefix="journal-media-")
        self.addCleanup(shutil.rmtree, data, True)
        cmd = [MEDIA, "-h", "127.0.0.1", "-p", str(b.port), "-u", "media",
               "--token-file", b.service_token_file("media"), "--data-dir", data,
               "--http-port", "0", "--log-level", "debug"]
        p, text = self.run_with(cmd, True, wait=False)
        try:
            self.assertTrue(wait_until(lambda: "serving media requests" in text(), 10), text())
        finally:
            p.terminate()
            p.wait(10)
        line_re = LINE.replace("chat-keyserver", "chat-media")
        seen = set()
        for line in text().splitlines():
            m = re.match(r"<(\d)>" + line_re, line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(1), PRIO[m.group(2)], line)
            seen.add(m.group(2))
        self.assertIn("info", seen)
        p, text = self.run_with([MEDIA, "-h", "h", "-p", "1", "-u", "m", "--token-file", "t",
                                 "--data-dir", "d", "--max-size", "0"], True)
        self.assertEqual(p.returncode, 2)
        self.assertTrue(text().startswith("<3>chat-media: invalid value '0' for --max-size"),
                        text())

    def test_plain_without_journal(self):
        args = [KEYSERVER, "-h", "127.0.0.1", "-p", "1", "-u", "keys", "--token-file",
                "/nonexistent/token", "--data-dir", "/nonexistent"]
        for journal, value in ((False, None), (True, "1:1"), (True, "garbage")):
            with self.subTest(journal_stream=value):
                _, text = self.run_with(args, journal, env_value=value)
                self.assertRegex(text(), r"^" + LINE + r"cannot read a token")


if __name__ == "__main__":
    main()
