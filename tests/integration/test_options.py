# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Every plugin_opt_* (the table in plugin/options.c) is documented in
docs/OPERATIONS.md, and an invalid value of each stops the broker with a log
line naming the option and what it accepts. Also the key server's options:
each invalid value exits with a message naming the option."""

import os
import re
import subprocess
import unittest

from chatlib import BUILD_DIR, SOURCE_DIR, Broker, main

KEYSERVER = os.path.join(BUILD_DIR, "bin", "chat-keyserver")
MEDIA = os.path.join(BUILD_DIR, "bin", "chat-media")

# option -> invalid values (each must be refused, naming the option). An empty
# value never reaches the plugin: mosquitto refuses it, naming the option.
BAD = {
    "data_dir": [""],
    "topic_prefix": ["chat/#", "$chat", "/chat", "a//b"],
    "max_body": ["abc", "-5", "63", "16777217", "1e3"],
    "foreign_acl": ["sometimes", "DEFER"],
    "sync_writes": ["maybe", "2"],
    "presence_retained": ["sometimes", "-1"],
    "commit_window_us": ["100001", "-1", "1ms"],
    "offline_ttl": ["0", "soon", "315360001"],
    "max_queue": ["-1", "4294967296"],
    "inflight_window": ["0", "100001"],
    "replay_window": ["0", "100001"],
    "inflight_drain": ["0", "10000001", "fast"],
    "delivered_gather_ms": ["1001", "-1", "10ms"],
    "replay_slice": ["0", "4097"],
    "replay_batch": ["0", "1025", "64k"],
    "expire_slice": ["0", "100001"],
    "max_group_size": ["1", "65536"],
    "presence_grace": ["86401", "x"],
    "push_interval": ["0", "86401"],
    "push_retry": ["0", "86401", "1m"],
    "stats_interval": ["86401", "-1", "ten"],
    "send_rate": ["1000001", "-1", "fast"],
    "send_burst": ["0", "1000001"],
    "min_free_mb": ["1048577", "1G"],
    "log_level": ["loud", "INFO"],
    "delivered_on_puback": ["sometimes", "2"],
    "auto_replay": ["maybe", "TRUE"],
}


def table_options():
    with open(os.path.join(SOURCE_DIR, "plugin", "options.c")) as f:
        src = f.read()
    return re.findall(r'^\s*\{ "([a-z_]+)", OPT_', src, re.M)


def operations_doc():
    with open(os.path.join(SOURCE_DIR, "docs", "OPERATIONS.md")) as f:
        return f.read()


class PluginOptionsTest(unittest.TestCase):

    def test_every_option_is_documented_and_tested(self):
        names = table_options()
        self.assertGreater(len(names), 10)
        doc = operations_doc()
        for n in names:
            self.assertRegex(doc, r"\|\s*`plugin_opt_%s`" % n, "plugin_opt_%s not in the table" % n)
            self.assertIn(n, BAD, "no invalid value tested for plugin_opt_%s" % n)

    def test_every_invalid_value_stops_start_up(self):
        for name, values in BAD.items():
            for v in values:
                with self.subTest(option=name, value=v):
                    b = Broker(options={name: v})
                    try:
                        if name == "data_dir":
                            # no plugin_opt_data_dir line at all
                            with open(b.conf) as f:
                                conf = f.read().replace("plugin_opt_data_dir \n", "")
                            with open(b.conf, "w") as f:
                                f.write(conf)
                        rc = b.start_expect_exit(timeout=10)
                        out = b.all_output()
                        self.assertIsNotNone(rc, "broker kept running:\n" + b.diagnostics())
                        self.assertNotEqual(rc, 0, b.diagnostics())
                        self.assertIn("plugin_opt_%s" % name, out, b.diagnostics())
                    finally:
                        b.cleanup()

    def test_message_says_what_is_accepted(self):
        b = Broker(options={"replay_slice": "0"})
        try:
            b.start_expect_exit(timeout=10)
            self.assertIn("invalid value '0' for plugin_opt_replay_slice: expected an integer "
                          "from 1 to 4096", b.all_output())
        finally:
            b.cleanup()
        b = Broker(options={"log_level": "loud"})
        try:
            b.start_expect_exit(timeout=10)
            self.assertIn("plugin_opt_log_level: expected one of debug, info, notice, warning, "
                          "error", b.all_output())
        finally:
            b.cleanup()

    def test_log_level_filters(self):
        b = Broker(options={"log_level": "warning"})
        try:
            b.start()
            b.add_device("ll", "d")
            b.stop()
            out = b.log_text()
            self.assertNotIn("added device ll/d", out)     # notice: filtered
        finally:
            b.cleanup()
        b = Broker(options={"log_level": "notice"})
        try:
            b.start()
            b.add_device("ll", "d")
            self.assertTrue(b.wait_log(lambda l: "added device ll/d" in l))
        finally:
            b.cleanup()


class KeyserverOptionsTest(unittest.TestCase):
    """Each key-server option with a bad value: exit 2, the option named."""

    BAD_KS = {
        "-p": ["0", "65536", "x"],
        "--share-group": ["a/b", ""],
        "--topic-prefix": ["chat/#"],
        "--rate-burst": ["0", "1000001"],
        "--rate-refill-seconds": ["-1", "2592001"],
        "--low-threshold": ["1000001", "x"],
        "--pool-cap": ["0", "1000001"],
        "--log-level": ["loud"],
        "--stats-interval": ["86401", "x"],
        "--backup-dir": [""],
    }

    def test_every_keyserver_option_is_documented(self):
        out = subprocess.run([KEYSERVER, "--help"], capture_output=True, text=True).stdout
        doc = operations_doc()
        for opt in sorted(set(re.findall(r"--[a-z-]+", out)) - {"--help"}):
            self.assertRegex(doc, r"\|\s*`%s" % re.escape(opt), "%s not in the table" % opt)

    def test_invalid_values(self):
        base = ["-h", "127.0.0.1", "-p", "1883", "-u", "keys", "--token-file", "/nonexistent",
                "--data-dir", "/nonexistent"]
        for opt, values in self.BAD_KS.items():
            for v in values:
                with self.subTest(option=opt, value=v):
                    r = subprocess.run([KEYSERVER] + base + [opt, v], capture_output=True,
                                       text=True, timeout=10)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn(opt, r.stderr)


class MediaOptionsTest(unittest.TestCase):
    """Each chat-media option: in docs/OPERATIONS.md's table; a bad value
    exits 2 naming it."""

    BAD = {
        "-p": ["0", "65536"],
        "--http-port": ["65536", "x"],
        "--public-url": ["ftp://x", "127.0.0.1:8090"],
        "--max-size": ["0", "1T", "-1", "x"],
        "--quota": ["0", "lots"],
        "--ttl": ["0", "316224001"],
        "--url-ttl": ["0", "604801"],
        "--sweep-interval": ["0", "86401"],
        "--http-threads": ["0", "257"],
        "--http-timeout": ["0"],
        "--rate-burst": ["0"],
        "--rate-per-minute": ["1000001"],
        "--cors-origin": ["", "a b"],
        "--share-group": ["a/b"],
        "--topic-prefix": ["chat/#"],
        "--log-level": ["loud"],
        "--secret-file": [""],
    }

    def test_every_media_option_is_documented(self):
        out = subprocess.run([MEDIA, "--help"], capture_output=True, text=True).stdout
        doc = operations_doc()
        for opt in sorted(set(re.findall(r"--[a-z-]+", out)) - {"--help"}):
            self.assertRegex(doc, r"\|\s*`[^|]*%s" % re.escape(opt), "%s not in the table" % opt)

    def test_invalid_values(self):
        base = ["-h", "127.0.0.1", "-p", "1883", "-u", "media", "--token-file", "/nonexistent",
                "--data-dir", "/nonexistent"]
        for opt, values in self.BAD.items():
            for v in values:
                with self.subTest(option=opt, value=v):
                    r = subprocess.run([MEDIA] + base + [opt, v], capture_output=True,
                                       text=True, timeout=10)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn(opt, r.stderr)
        r = subprocess.run([MEDIA] + base + ["--https-cert", "/x"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--https-key", r.stderr)


if __name__ == "__main__":
    main()
