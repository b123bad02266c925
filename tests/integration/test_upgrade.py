# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Schema versions: the plugin's store and the key server's store record the
version they were written with; a store of a version this build does not
read (newer, or older than anything it migrates) is refused at start with a
clear message, never misread; versions 1 and 2 are migrated to 3 at start."""

import os
import signal
import subprocess
import tempfile
import shutil
import unittest

from chatlib import BUILD_DIR, Broker, Device, main, uniq, wait_until

POKE = os.path.join(BUILD_DIR, "bin", "store_poke")
KEYSERVER = os.path.join(BUILD_DIR, "bin", "chat-keyserver")


def poke(dbdir, cf, key, hexval):
    r = subprocess.run([POKE, dbdir, cf, key, hexval], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise AssertionError("store_poke failed: %s" % r.stderr)


class PluginSchemaTest(unittest.TestCase):

    def test_unknown_versions_refused(self):
        b = Broker()
        self.addCleanup(b.cleanup)
        b.start()
        u = uniq("up")
        tok = b.add_device(u, "d")
        b.stop()
        store = os.path.join(b.data_dir, "store")
        for ver, pattern in (("00000004", "schema version 4 is newer than this build's 3"),
                             ("00000000", "schema version 0 is unknown to this build"),
                             ("0000ffff", "schema version 65535 is newer")):
            with self.subTest(version=ver):
                poke(store, "meta", "schema_version", ver)
                rc = b.start_expect_exit(timeout=10)
                self.assertIsNotNone(rc, "broker kept running:\n" + b.diagnostics())
                self.assertNotEqual(rc, 0)
                self.assertIn(pattern, b.all_output(), b.diagnostics())
        # version 1 (before the contacts index) and version 2 (a refcount
        # record for every message) are migrated at start
        for old in (1, 2):
            with self.subTest(migrate_from=old):
                poke(store, "meta", "schema_version", "%08x" % old)
                b.start()
                self.assertTrue(b.wait_log(lambda l: "migrated" in l and
                                           "schema version %d to 3" % old in l),
                                b.diagnostics())
                d = Device(b, u, "d", tok).connect()
                d.close()
                b.stop()


class KeyserverFormatTest(unittest.TestCase):

    def run_ks(self, data, token):
        return subprocess.Popen([KEYSERVER, "-h", "127.0.0.1", "-p", "1", "-u", "keys",
                                 "--token-file", token, "--data-dir", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def test_unknown_format_refused(self):
        tmp = tempfile.mkdtemp(prefix="chat-ks-up-")
        self.addCleanup(shutil.rmtree, tmp, True)
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write("x\n")
        data = os.path.join(tmp, "keys")
        p = self.run_ks(data, token)
        # it opens (and stamps) the store, then keeps trying to reach port 1
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(data, "CURRENT")),
                                   timeout=10))
        line = ""
        while "key store" not in line:
            line = p.stderr.readline()
            self.assertTrue(line, "key server ended before opening its store")
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=10)
        poke(data, "default", "F", "03")
        p = self.run_ks(data, token)
        _, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("holds key store format 3", err)


if __name__ == "__main__":
    main()
