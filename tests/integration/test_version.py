# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""--version on every program prints "<prog> (mosquitto-chat) <version>" with
the version of project(mosquitto-chat VERSION …) in CMakeLists.txt (through
the generated chat_version.h), exits 0 and needs no other option; the
plugin's start-up log line names the same version."""

import os
import re
import subprocess
import unittest

from chatlib import BUILD_DIR, CBOR_TOOL, SOURCE_DIR, Broker, main

PROGRAMS = ("chatctl", "chat-keyserver", "chat-pushgw", "chat-media", "chat-keyaudit", "chat-client",
            "chatbench")


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(mosquitto-chat VERSION ([0-9.]+)", f.read()).group(1)


class VersionTest(unittest.TestCase):

    def test_every_program(self):
        v = project_version()
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                r = subprocess.run([os.path.join(BUILD_DIR, "bin", prog), "--version"],
                                   capture_output=True, text=True, timeout=15)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, "%s (mosquitto-chat) %s\n" % (prog, v))
                self.assertEqual(r.stderr, "")

    def test_help_mentions_version(self):
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                r = subprocess.run([os.path.join(BUILD_DIR, "bin", prog), "--help"],
                                   capture_output=True, text=True, timeout=15)
                self.assertEqual(r.returncode, 0)
                self.assertIn("--version", r.stdout + r.stderr)

    def test_cbor_tool(self):
        r = subprocess.run(["/usr/bin/python3", CBOR_TOOL, "--version"], capture_output=True,
                           text=True, timeout=15)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "cbor (mosquitto-chat) %s\n" % project_version())

    def test_plugin_start_line(self):
        b = Broker()
        self.addCleanup(b.cleanup)
        b.start()
        line = b.wait_log(lambda l: "mosquitto-chat %s ready:" % project_version() in l)
        self.assertIsNotNone(line, b.diagnostics())


if __name__ == "__main__":
    main()
