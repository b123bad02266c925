# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""cmake --install into a temporary prefix: the plugin, chatctl,
chat-keyserver, chat-pushgw, the example mosquitto.conf snippet, the
/etc/default examples, the man pages and the systemd units are where
docs/OPERATIONS.md says; the snippet names the installed plugin; a broker
loading the plugin from there serves chat, driven by the installed chatctl.

NoTestingInstallTest: a build configured as docs/OPERATIONS.md says
(-DCMAKE_INSTALL_PREFIX=/usr) with -DBUILD_TESTING=OFF, installed with
DESTDIR: every path of OPERATIONS.md's install table is there (the plugin
in Debian's multiarch libdir), and the installed snippet's settings with the
installed plugin start a broker that serves chat — over its commented TLS
listener too, uncommented with a test CA made at test time (test_tls.py's
helpers), to a TLS device and the installed chatctl over TLS."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from chatlib import (BROKER_DEFAULT_LINES, BUILD_DIR, SOURCE_DIR, Broker, Device, free_port, main,
                     uniq)
from test_tls import make_pki, snippet_tls_lines


def dm_through(test, broker, ctl, prefix, body):
    """Two devices added with the installed chatctl (`ctl`: its command line
    for `broker`) exchange one dm through the broker."""
    toks, users = [], (uniq(prefix), uniq(prefix))
    for user in users:
        r = subprocess.run(ctl + ["device", "add", user, "d"], capture_output=True, text=True,
                           timeout=15)
        test.assertEqual(r.returncode, 0, r.stderr)
        toks.append(r.stdout.strip())
    du = Device(broker, users[0], "d", toks[0]).connect()
    dv = Device(broker, users[1], "d", toks[1]).connect()
    du.send_dm(users[1], 1, body=body)
    test.assertEqual(dv.wait_event("msg")["body"], body)
    du.close()
    dv.close()


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

    def verify(self, unit):
        # the units' Documentation=man:… pages, found where they were installed
        return subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                              text=True, timeout=60,
                              env=dict(os.environ, MANPATH=self.path("share/man")))

    def test_files_in_place(self):
        for rel, executable in (("bin/chatctl", True), ("sbin/chat-keyserver", True),
                                ("sbin/chat-pushgw", True), ("sbin/chat-media", True),
                                (self.libdir + "/mosquitto_chat.so", False),
                                ("share/doc/mosquitto-chat/examples/chat.conf", False),
                                ("share/doc/mosquitto-chat/OPERATIONS.md", False),
                                ("share/mosquitto-chat/web/index.html", False),
                                ("share/mosquitto-chat/web/app.js", False),
                                ("share/mosquitto-chat/web/sw.js", False),
                                ("lib/systemd/system/chat-keyserver.service", False),
                                ("lib/systemd/system/chat-pushgw.service", False),
                                ("lib/systemd/system/chat-media.service", False),
                                ("share/doc/mosquitto-chat/examples/chat-media", False),
                                ("share/man/man8/chat-media.8", False),
                                ("share/doc/mosquitto-chat/examples/chat-keyserver", False),
                                ("share/doc/mosquitto-chat/examples/chat-pushgw", False),
                                ("share/man/man1/chatctl.1", False),
                                ("share/man/man5/mosquitto-chat.5", False),
                                ("share/man/man8/chat-keyserver.8", False),
                                ("share/man/man8/chat-pushgw.8", False),
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
            r = self.verify(unit)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_pushgw_unit(self):
        unit = self.path("lib/systemd/system/chat-pushgw.service")
        with open(unit) as f:
            text = f.read()
        self.assertIn("ExecStart=%s " % self.path("sbin/chat-pushgw"), text)
        for opt in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                    "LoadCredential=token:/etc/mosquitto-chat/pushgw.token",
                    "EnvironmentFile=-/etc/default/chat-pushgw", "$PUSHGW_OPTS"):
            self.assertIn(opt, text)
        if shutil.which("systemd-analyze"):
            r = self.verify(unit)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_media_unit(self):
        unit = self.path("lib/systemd/system/chat-media.service")
        with open(unit) as f:
            text = f.read()
        self.assertIn("ExecStart=%s " % self.path("sbin/chat-media"), text)
        for opt in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                    "LoadCredential=token:/etc/mosquitto-chat/media.token",
                    "EnvironmentFile=-/etc/default/chat-media", "$MEDIA_OPTS",
                    "StateDirectory=chat-media", "RestartPreventExitStatus=2"):
            self.assertIn(opt, text)
        if shutil.which("systemd-analyze"):
            r = self.verify(unit)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_bad_config_stops_restarts(self):
        # both sidecars exit 2 on a bad option: systemd must not restart them
        for name in ("chat-keyserver", "chat-pushgw", "chat-media"):
            with self.subTest(unit=name):
                with open(self.path("lib/systemd/system/%s.service" % name)) as f:
                    text = f.read()
                self.assertIn("Restart=on-failure\n", text)
                self.assertIn("\nRestartPreventExitStatus=2\n", text)
                r = subprocess.run([self.path("sbin", name), "-h", "h", "-p", "0", "-u", "x",
                                    "--token-file", "t", "--data-dir", "d"],
                                   capture_output=True, text=True, timeout=15)
                self.assertEqual(r.returncode, 2, r.stderr)

    def test_broker_loads_installed_plugin(self):
        b = Broker(plugin=self.path(self.libdir, "mosquitto_chat.so"))
        self.addCleanup(b.cleanup)
        b.start()
        self.assertIn("plugin %s" % self.path(self.libdir, "mosquitto_chat.so"),
                      open(b.conf).read())
        ctl = [self.path("bin/chatctl"), "-p", str(b.port), "--token-file", b.token_file]
        dm_through(self, b, ctl, "inst", b"installed")
        r = subprocess.run(ctl + ["stats"], capture_output=True, text=True, timeout=15)
        self.assertRegex(r.stdout, r"(?m)^messages_stored 1$")

    def test_installed_keyserver_runs(self):
        r = subprocess.run([self.path("sbin/chat-keyserver"), "--help"], capture_output=True,
                           text=True, timeout=15)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--backup-dir", r.stdout)


class NoTestingInstallTest(unittest.TestCase):
    """-DBUILD_TESTING=OFF, prefix /usr, installed with DESTDIR."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chat-notest-")
        cls.build = os.path.join(cls.tmp, "build")
        cls.dest = os.path.join(cls.tmp, "dest")
        started = time.monotonic()
        for cmd in (["cmake", "-S", SOURCE_DIR, "-B", cls.build, "-DBUILD_TESTING=OFF",
                     "-DCMAKE_INSTALL_PREFIX=/usr", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                    ["cmake", "--build", cls.build, "-j", "2"],
                    ["cmake", "--install", cls.build]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, DESTDIR=cls.dest))
            if r.returncode != 0:
                shutil.rmtree(cls.tmp, ignore_errors=True)
                raise AssertionError("%s failed:\n%s%s" % (" ".join(cmd), r.stdout[-4000:],
                                                           r.stderr[-4000:]))
        cls.seconds = time.monotonic() - started
        with open(os.path.join(cls.build, "CMakeCache.txt")) as f:
            cls.cache = f.read()
        r = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True)
        cls.multiarch = r.stdout.strip() or "x86_64-linux-gnu"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def installed(self, path):
        return os.path.join(self.dest, path.lstrip("/"))

    def test_no_tests_configured(self):
        self.assertIn("BUILD_TESTING:BOOL=OFF", self.cache)
        # nothing of the test suite: no check, no test binaries, no ctest file
        self.assertNotIn("CHECK_FOUND", self.cache)
        self.assertFalse(os.path.exists(os.path.join(self.build, "bin", "test_core")))
        self.assertFalse(os.path.exists(os.path.join(self.build, "tests")))
        self.assertTrue(os.path.exists(os.path.join(self.build, "bin", "chatctl")))

    def test_operations_install_table_matches(self):
        # every path in docs/OPERATIONS.md's "Install" table is installed
        with open(os.path.join(SOURCE_DIR, "docs", "OPERATIONS.md")) as f:
            doc = f.read()
        section = doc[doc.index("## Install"):doc.index("## Configuration")]
        paths = re.findall(r"^\| `(/usr/[^`]+)`", section, re.M)
        self.assertGreater(len(paths), 10)
        for p in paths:
            with self.subTest(path=p):
                if p.endswith("*.md"):
                    d = self.installed(os.path.dirname(p))
                    self.assertTrue([n for n in os.listdir(d) if n.endswith(".md")], p)
                else:
                    self.assertTrue(os.path.exists(self.installed(p)), p)
        self.assertIn("`/usr/lib/%s/mosquitto_chat.so`" % self.multiarch, section)

    def test_snippet_and_plugin_start(self):
        plugin = "/usr/lib/%s/mosquitto_chat.so" % self.multiarch
        self.assertTrue(os.path.isfile(self.installed(plugin)))
        with open(self.installed("/usr/share/doc/mosquitto-chat/examples/chat.conf")) as f:
            snippet = f.read()
        self.assertIn("\nplugin %s\n" % plugin, snippet)
        # the snippet's own settings, with the broker's test listener and data dir
        lines = [l for l in snippet.splitlines() if l and not l.startswith("#") and
                 not l.startswith(("listener ", "plugin ", "plugin_opt_data_dir "))]
        self.assertIn("max_queued_messages 10000", lines)
        b = Broker(plugin=self.installed(plugin), extra_lines=lines)
        self.addCleanup(b.cleanup)
        b.start()
        ctl = [self.installed("/usr/bin/chatctl"), "-p", str(b.port), "--token-file",
               b.token_file]
        dm_through(self, b, ctl, "nt", b"no tests built")
        r = subprocess.run([self.installed("/usr/sbin/chat-keyserver"), "--version"],
                           capture_output=True, text=True, timeout=15)
        self.assertRegex(r.stdout, r"^chat-keyserver \(mosquitto-chat\) [0-9.]+\n$")

    def test_snippet_tls_serves_tls_client(self):
        """The installed snippet's TLS listener (uncommented, with a test CA's
        certificates) and the installed plugin serve a device over TLS, and
        the installed chatctl administers over it; a wrong CA is refused."""
        plugin = "/usr/lib/%s/mosquitto_chat.so" % self.multiarch
        snippet = self.installed("/usr/share/doc/mosquitto-chat/examples/chat.conf")
        pki = tempfile.mkdtemp(prefix="chat-notest-pki-")
        self.addCleanup(shutil.rmtree, pki, True)
        make_pki(pki)
        ports = {8883: free_port(), 8884: free_port(), 8443: free_port()}
        tls = snippet_tls_lines(pki, ports, None, snippet=snippet)
        self.assertIn("listener %d" % ports[8883], tls)
        lines = [l for l in open(snippet).read().splitlines() if l and not l.startswith("#") and
                 not l.startswith(("listener ", "plugin ", "plugin_opt_data_dir "))]
        b = Broker(plugin=self.installed(plugin), extra_lines=lines + tls)
        self.addCleanup(b.cleanup)
        b.start()
        ctl = [self.installed("/usr/bin/chatctl"), "-p", str(ports[8883]), "--cafile",
               os.path.join(pki, "ca.crt"), "--token-file", b.token_file]
        u, v = uniq("ntls"), uniq("ntls")
        toks = []
        for user in (u, v):
            r = subprocess.run(ctl + ["device", "add", user, "d"], capture_output=True,
                               text=True, timeout=15)
            self.assertEqual(r.returncode, 0, r.stderr)
            toks.append(r.stdout.strip())
        du = Device(b, u, "d", toks[0], port=ports[8883])
        du.c.tls_set(ca_certs=os.path.join(pki, "ca.crt"))
        du.connect()
        dv = Device(b, v, "d", toks[1]).connect()
        du.send_dm(v, 1, body=b"over TLS")
        self.assertEqual(dv.wait_event("msg")["body"], b"over TLS")
        du.close()
        dv.close()
        r = subprocess.run(ctl[:3] + ["--cafile", os.path.join(pki, "other-ca.crt"),
                                      "--token-file", b.token_file, "stats"],
                           capture_output=True, text=True, timeout=15)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("chatctl: ", r.stderr)


if __name__ == "__main__":
    main()
