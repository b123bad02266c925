# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Plugin start: a bad option or an unusable data dir stops the broker with a
clear log line; a good config starts and creates admin.token (0600)."""

import os
import re
import stat
import unittest

from chatlib import Broker, Device, main, uniq


class StartupTest(unittest.TestCase):

    def broker(self, **kw):
        b = Broker(**kw)
        self.addCleanup(b.cleanup)
        return b

    def assert_refuses(self, b, pattern):
        rc = b.start_expect_exit(timeout=10)
        out = b.all_output()
        self.assertIsNotNone(rc, "broker kept running:\n" + b.diagnostics())
        self.assertNotEqual(rc, 0, "broker exited 0:\n" + b.diagnostics())
        self.assertRegex(out, re.compile(pattern, re.I | re.M),
                         "no clear log line:\n" + b.diagnostics())

    def test_bad_max_body(self):
        for v in ("abc", "-5", "12x", "99999999999999999999"):
            with self.subTest(max_body=v):
                self.assert_refuses(self.broker(options={"max_body": v}), r"max_body.*%s|%s.*max_body" % (re.escape(v), re.escape(v)))

    def test_max_body_range(self):
        # README: 64 ... 16777216
        for v in ("0", "63", "16777217"):
            with self.subTest(max_body=v):
                self.assert_refuses(self.broker(options={"max_body": v}), r"max_body")
        for v in ("64", "16777216"):
            with self.subTest(max_body=v):
                b = self.broker(options={"max_body": v})
                b.start()
                self.assertTrue(b.running)
                b.cleanup()

    def test_unknown_option(self):
        # README: an unknown option stops the broker with a line naming it
        self.assert_refuses(self.broker(options={"max_bdoy": "100"}), r"max_bdoy")

    def test_bad_other_options(self):
        for k, v in [("sync_writes", "maybe"), ("offline_ttl", "soon"), ("max_queue", "-1"),
                     ("topic_prefix", "chat/#"), ("topic_prefix", "$chat"), ("topic_prefix", "")]:
            with self.subTest(option=k, value=v):
                self.assert_refuses(self.broker(options={k: v}), k)

    def test_bad_foreign_acl(self):
        self.assert_refuses(self.broker(options={"foreign_acl": "sometimes"}), r"foreign_acl")

    def test_missing_data_dir_option(self):
        b = self.broker(options={"data_dir": ""})  # suppresses the default line
        with open(b.conf) as f:
            conf = f.read()
        conf = "\n".join(l for l in conf.splitlines() if not l.startswith("plugin_opt_data_dir")) + "\n"
        with open(b.conf, "w") as f:
            f.write(conf)
        self.assert_refuses(b, r"data_dir")

    def test_data_dir_is_a_file(self):
        b = self.broker()
        os.rmdir(b.data_dir)
        with open(b.data_dir, "w") as f:
            f.write("not a directory\n")
        self.assert_refuses(b, re.escape(b.data_dir))

    def test_data_dir_unwritable_parent(self):
        b = self.broker(create_data_dir=False)
        blocker = os.path.join(b.tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("x")
        b2 = self.broker(options={"data_dir": os.path.join(blocker, "data")})
        self.assert_refuses(b2, re.escape(blocker))

    def test_creates_missing_data_dir_and_token(self):
        b = self.broker(create_data_dir=False)
        self.assertFalse(os.path.exists(b.data_dir))
        b.start()
        self.assertTrue(os.path.isdir(b.data_dir))
        st = os.stat(b.token_file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        u = uniq("s")
        d = Device(b, u, "d", b.add_device(u, "d")).connect()
        d.close()
        self.assertEqual(b.stop(), 0, "broker did not exit cleanly on SIGTERM:\n" + b.diagnostics())

    def test_defaults_documented_options_accepted(self):
        b = self.broker(options={"max_body": "1024", "foreign_acl": "defer", "topic_prefix": "chat"})
        b.start()
        self.assertTrue(b.running)


if __name__ == "__main__":
    main()
