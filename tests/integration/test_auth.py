# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Connecting: device tokens, refusals and their log lines."""

import os
import re
import stat

from chatlib import V311, V5, ChatTestCase, Device, main, uniq

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class AuthTest(ChatTestCase):

    def test_device_add_prints_token_only(self):
        u = uniq("tok")
        rc, out, err = self.broker.chatctl("device", "add", u, "phone")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.strip(), TOKEN_RE)
        self.assertEqual(len(out.strip().splitlines()), 1, "stdout has more than the token: %r" % out)
        rc2, out2, _ = self.broker.chatctl("device", "add", u, "laptop")
        self.assertEqual(rc2, 0)
        self.assertNotEqual(out.strip(), out2.strip(), "two devices got the same token")

    def test_device_add_twice_fails(self):
        u = uniq("dup")
        self.broker.add_device(u, "phone")
        rc, out, err = self.broker.chatctl("device", "add", u, "phone")
        self.assertNotEqual(rc, 0)
        self.assertEqual(out.strip(), "")
        self.assertEqual(len(err.strip().splitlines()), 1, "want a one-line reason: %r" % err)

    def test_device_add_invalid_ids_fail(self):
        for user, dev in [("bad/user", "d"), ("u" * 65, "d"), ("ok", "d" * 33), ("", "d"),
                          ("sp ace", "d"), ("ok", "bad!")]:
            rc, out, err = self.broker.chatctl("device", "add", user, dev)
            self.assertNotEqual(rc, 0, "device add %r %r accepted" % (user, dev))
            self.assertTrue(err.strip(), "no reason on stderr for %r %r" % (user, dev))

    def test_connect_ok_both_protocols(self):
        u = uniq("ok")
        for proto, dev in [(V311, "v3"), (V5, "v5")]:
            d = self.dev(u, dev, protocol=proto)
            self.assertEqual(d.connack, 0)

    def test_max_length_ids(self):
        u = "A" + "z" * 62 + "."
        d = self.dev(u, "D-_.x" + "9" * 27)
        self.assertEqual(d.connack, 0)

    def _refused(self, proto, username, client_id, password, reason_re):
        mark = self.broker.log_mark()
        c = self.client(client_id=client_id, username=username, password=password, protocol=proto)
        rc = c.try_connect()
        want = 0x87 if proto == V5 else 5
        self.assertEqual(rc, want, "CONNACK for %s/%s" % (username, client_id))
        line = self.broker.wait_log(
            lambda l: username in l and re.search(reason_re, l, re.I) is not None
            and "disconnected, not authorised" not in l, mark)
        self.assertTrue(line, "no log line naming %s and matching /%s/:\n%s"
                        % (username, reason_re, self.broker.log_since(mark)))

    def test_wrong_token_refused(self):
        u = uniq("wt")
        tok = self.broker.add_device(u, "phone")
        bad = ("A" if tok[0] != "A" else "B") + tok[1:]
        for proto in (V311, V5):
            self._refused(proto, u + "/phone", u + "/phone", bad, r"token|password|credential")
        # empty / missing password
        self._refused(V311, u + "/phone", u + "/phone", "", r"token|password|credential")
        self._refused(V311, u + "/phone", u + "/phone", None, r"token|password|credential")
        # the right token still works afterwards
        self.assertEqual(self.dev(u, "phone", token=tok).connack, 0)

    def test_token_of_other_device_refused(self):
        u = uniq("ot")
        tok_a = self.broker.add_device(u, "a")
        self.broker.add_device(u, "b")
        self._refused(V311, u + "/b", u + "/b", tok_a, r"token|password|credential")

    def test_unknown_device_refused(self):
        u = uniq("unk")
        tok = self.broker.add_device(u, "phone")
        for proto in (V311, V5):
            self._refused(proto, u + "/tablet", u + "/tablet", tok, r"unknown|not found|no such|not registered")
            self._refused(proto, "nobody/x", "nobody/x", tok, r"unknown|not found|no such|not registered")

    def test_clientid_mismatch_refused(self):
        u = uniq("cid")
        tok = self.broker.add_device(u, "phone")
        for proto in (V311, V5):
            self._refused(proto, u + "/phone", "someone-else", tok, r"client.?id")
            self._refused(proto, u + "/phone", u + "/phone2", tok, r"client.?id")
        # an empty client id (the broker would assign one) is not the username either
        for proto in (V311, V5):
            c = self.client(client_id="", username=u + "/phone", password=tok, protocol=proto)
            self.assertEqual(c.try_connect(), 0x87 if proto == V5 else 5)

    def test_malformed_address_refused(self):
        # A username with '/' is always a chat device; invalid ids are refused.
        for username in ["a/b/c", "/x", "x/", "bad!/d"]:
            c = self.client(client_id=username, username=username, password="x" * 43)
            self.assertEqual(c.try_connect(), 5, username)

    def test_admin_token_file_mode(self):
        st = os.stat(self.broker.token_file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(self.broker.token_file) as f:
            self.assertTrue(f.read().strip())

    def test_admin_username_needs_token(self):
        c = self.client(client_id="adm-x", username="$admin", password="wrong")
        self.assertEqual(c.try_connect(), 5)

    def test_second_connection_same_device(self):
        # A device reconnecting (e.g. after a network change) takes over.
        u = uniq("take")
        tok = self.broker.add_device(u, "phone")
        d1 = self.dev(u, "phone", token=tok)
        d2 = Device(self.broker, u, "phone", tok)
        d2.connect()
        self.addCleanup(d2.close)
        self.assertTrue(d1.disconnected.wait(5))
        peer = uniq("take")
        p = self.dev(peer, "x")
        p.send_dm(u, 1, body=b"to the new one")
        self.assertEqual(d2.wait_event("msg")["body"], b"to the new one")


if __name__ == "__main__":
    main()
