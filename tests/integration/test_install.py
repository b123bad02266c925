"""cmake --install into a temporary prefix: the plugin, chatctl,
chat-keyserver, the example mosquitto.conf snippet and the systemd units are
where docs/OPERATIONS.md says; the snippet names the installed plugin; a
broker loading the plugin from there serves chat, driven by the installed
chatctl."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

from chatlib import BROKER_DEFAULT_LINES, BUILD_DIR, Broker, Device, main, uniq


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="chat-install-")
        r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", cls.prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)
        libdir = subprocess.run(["cmake", "-L", "-N", BUILD_DIR], capture_output=True,
                                text=True).stdout
        m = re.search(r"^CMAKE_INSTALL_LIBDIR:PATH=(.*)$", libdir, re.M)
        cls.libdir = m.group(1) if m else "lib"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_files_in_place(self):
        for rel, executable in (("bin/chatctl", True), ("sbin/chat-keyserver", True),
                                ("sbin/chat-pushgw", True),
                                (self.libdir + "/mosquitto_chat.so", False),
                                ("share/doc/mosquitto-chat/examples/chat.conf", False),
                                ("share/doc/mosquitto-chat/OPERATIONS.md", False),
                                ("share/mosquitto-chat/web/index.html", False),
                                ("share/mosquitto-chat/web/app.js", False),
                                ("lib/systemd/system/chat-keyserver.service", False),
                                ("lib/systemd/system/mosquitto.service.d/mosquitto-chat.conf",
                                 False)):
            with self.subTest(file=rel):
                p = self.path(rel)
                self.assertTrue(os.path.isfile(p), p)
                if executable:
                    self.assertTrue(os.stat(p).st_mode & stat.S_IXUSR, p)

    def test_units_name_installed_paths_and_harden(self):
        with open(self.path("share/doc/mosquitto-chat/examples/chat.conf")) as f:
            conf = f.read()
        self.assertIn("plugin %s\n" % self.path(self.libdir, "mosquitto_chat.so"), conf)
        self.assertIn("#http_dir %s\n" % self.path("share/mosquitto-chat/web"), conf)
        # the broker settings the test brokers mirror (chatlib.BROKER_DEFAULT_LINES)
        for line in BROKER_DEFAULT_LINES:
            self.assertIn("\n%s\n" % line, conf)
        unit = self.path("lib/systemd/system/chat-keyserver.service")
        with open(unit) as f:
            text = f.read()
        self.assertIn("ExecStart=%s " % self.path("sbin/chat-keyserver"), text)
        for opt in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                    "LoadCredential=token:"):
            self.assertIn(opt, text)
        if shutil.which("systemd-analyze"):
            r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_broker_loads_installed_plugin(self):
        b = Broker(plugin=self.path(self.libdir, "mosquitto_chat.so"))
        self.addCleanup(b.cleanup)
        b.start()
        self.assertIn("plugin %s" % self.path(self.libdir, "mosquitto_chat.so"),
                      open(b.conf).read())
        ctl = [self.path("bin/chatctl"), "-p", str(b.port), "--token-file", b.token_file]
        u, v = uniq("inst"), uniq("inst")
        toks = []
        for user in (u, v):
            r = subprocess.run(ctl + ["device", "add", user, "d"], capture_output=True,
                               text=True, timeout=15)
            self.assertEqual(r.returncode, 0, r.stderr)
            toks.append(r.stdout.strip())
        du = Device(b, u, "d", toks[0]).connect()
        dv = Device(b, v, "d", toks[1]).connect()
        du.send_dm(v, 1, body=b"installed")
        self.assertEqual(dv.wait_event("msg")["body"], b"installed")
        du.close()
        dv.close()
        r = subprocess.run(ctl + ["stats"], capture_output=True, text=True, timeout=15)
        self.assertRegex(r.stdout, r"(?m)^messages_stored 1$")

    def test_installed_keyserver_runs(self):
        r = subprocess.run([self.path("sbin/chat-keyserver"), "--help"], capture_output=True,
                           text=True, timeout=15)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--backup-dir", r.stdout)


if __name__ == "__main__":
    main()
