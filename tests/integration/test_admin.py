# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Admin: chatctl commands, $CONTROL/chat/v1, service accounts."""

import os
import re

import cbor2

from chatlib import V311, V5, ChatTestCase, Client, Device, conv_of, main, uniq

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
CONTROL = "$CONTROL/chat/v1"
RESPONSE = "$CONTROL/chat/v1/response"


class AdminTest(ChatTestCase):

    def admin_client(self, proto=V311):
        with open(self.broker.token_file) as f:
            tok = f.read().strip()
        c = self.client(client_id=uniq("admin-it"), username="$admin", password=tok,
                        protocol=proto, decode=True)
        c.connect()
        return c

    def admin_cmd(self, c, req, timeout=5):
        c.publish(CONTROL, cbor2.dumps(req))
        m = c.wait_message(lambda m: m[0] == RESPONSE and m[1].get("rid") == req.get("rid"),
                           timeout)
        self.assertIsNotNone(m, "no admin response to %r" % req)
        return m[1]

    # ---- chatctl ----
    def test_device_remove_disconnects_and_revokes(self):
        u, p = uniq("rm"), uniq("peer")
        tok = self.broker.add_device(u, "phone")
        d = Device(self.broker, u, "phone", tok).connect()
        self.addCleanup(d.close)
        keep = self.dev(u, "laptop")
        dp = self.dev(p, "phone")
        rc, out, err = self.broker.chatctl("device", "remove", u, "phone")
        self.assertEqual(rc, 0, err)
        self.assertTrue(d.disconnected.wait(3), "removed device still connected")
        again = self.client(client_id=u + "/phone", username=u + "/phone", password=tok)
        self.assertEqual(again.try_connect(), 5)
        # the other device is untouched, and bodies now excludes the removed one
        self.assertFalse(keep.disconnected.is_set())
        dp.send_dm(u, 1, bodies={u + "/laptop": b"only laptop"})
        self.assertEqual(keep.wait_event("msg")["body"], b"only laptop")
        dp.send_dm(u, 2, bodies={u + "/laptop": b"x", u + "/phone": b"y"})
        err_ev = dp.wait_event("error")
        self.assertEqual((err_ev["code"], err_ev.get("extra")), ("devices", [u + "/phone"]))
        # removing again fails; re-adding gives a new token that works
        rc, _, err = self.broker.chatctl("device", "remove", u, "phone")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip())
        tok2 = self.broker.add_device(u, "phone")
        self.assertNotEqual(tok2, tok)
        self.assertEqual(self.dev(u, "phone", token=tok2).connack, 0)

    def test_user_remove(self):
        u, p = uniq("urm"), uniq("peer")
        t1 = self.broker.add_device(u, "a")
        t2 = self.broker.add_device(u, "b")
        d1 = Device(self.broker, u, "a", t1).connect()
        d2 = Device(self.broker, u, "b", t2).connect()
        self.addCleanup(d1.close)
        self.addCleanup(d2.close)
        dp = self.dev(p, "phone")
        dp.send_dm(u, 1, body=b"before")
        d1.wait_event("msg")
        rc, out, err = self.broker.chatctl("user", "remove", u)
        self.assertEqual(rc, 0, err)
        self.assertTrue(d1.disconnected.wait(3))
        self.assertTrue(d2.disconnected.wait(3))
        for dev, tok in (("a", t1), ("b", t2)):
            c = self.client(client_id="%s/%s" % (u, dev), username="%s/%s" % (u, dev), password=tok)
            self.assertEqual(c.try_connect(), 5)
        # the user is gone: sends to it are refused
        dp.send_dm(u, 2, body=b"after")
        self.assertEqual(dp.wait_event("error")["code"], "peer")
        rc, _, err = self.broker.chatctl("user", "remove", u)
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip())

    def test_service_add(self):
        name = uniq("keysvc")
        rc, out, err = self.broker.chatctl("service", "add", name)
        self.assertEqual(rc, 0, err)
        tok = out.strip()
        self.assertRegex(tok, TOKEN_RE)
        for proto in (V311, V5):
            c = self.client(client_id=uniq("ks"), username=name, password=tok, protocol=proto)
            self.assertEqual(c.try_connect(), 0)
            self.assertLess(c.subscribe("chat/keys/req/+/+"), 0x80)
            self.assertLess(c.subscribe("$share/ks/chat/keys/req/+/+"), 0x80)
            self.assertGreaterEqual(c.subscribe("chat/inbox/+/+"), 0x80)
            self.assertGreaterEqual(c.subscribe("chat/#"), 0x80)
        wrong = ("x" if tok[0] != "x" else "y") + tok[1:]   # never the token itself
        bad = self.client(client_id=uniq("ks"), username=name, password=wrong)
        self.assertEqual(bad.try_connect(), 5)
        rc, _, err = self.broker.chatctl("service", "add", name)
        self.assertNotEqual(rc, 0, "service add twice")

    def test_service_receives_key_requests(self):
        name = uniq("keysvc")
        rc, tok, err = self.broker.chatctl("service", "add", name)
        self.assertEqual(rc, 0, err)
        svc = self.client(client_id=uniq("ks"), username=name, password=tok.strip(), decode=True)
        svc.connect()
        self.assertLess(svc.subscribe("chat/keys/req/+/+"), 0x80)
        u = uniq("k")
        d = self.dev(u, "phone", subscribe=False)
        self.assertLess(d.subscribe("chat/keys/resp/%s/phone" % u), 0x80)
        d.publish("chat/keys/req/%s/phone" % u, cbor2.dumps({"op": "count", "rid": 1}))
        m = svc.wait_message(lambda m: m[0] == "chat/keys/req/%s/phone" % u)
        self.assertEqual(m[1], {"op": "count", "rid": 1})
        svc.publish("chat/keys/resp/%s/phone" % u, cbor2.dumps({"rid": 1, "ok": True, "opks": 0}))
        m = d.wait_message(lambda m: m[0] == "chat/keys/resp/%s/phone" % u)
        self.assertEqual(m[1], {"rid": 1, "ok": True, "opks": 0})

    def test_stats(self):
        rc, out, err = self.broker.chatctl("stats")
        self.assertEqual(rc, 0, err)
        lines = out.strip().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^\S+ \d+$")

    def test_chatctl_bad_token_and_usage(self):
        bad = os.path.join(self.broker.tmp, "bad.token")
        with open(bad, "w") as f:
            f.write("A" * 43 + "\n")
        rc, out, err = self.broker.chatctl("device", "add", uniq("x"), "d", token_file=bad)
        self.assertNotEqual(rc, 0)
        self.assertEqual(out, "")
        self.assertTrue(err.strip())
        rc, out, err = self.broker.chatctl("device", "add", uniq("x"), "d",
                                           token_file="/nonexistent/admin.token")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip())
        rc, out, err = self.broker.chatctl("frobnicate")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip())

    def test_chatctl_no_broker(self):
        import subprocess
        from chatlib import CHATCTL, free_port
        r = subprocess.run([CHATCTL, "-p", str(free_port()), "--token-file", self.broker.token_file,
                            "stats"], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    # ---- $CONTROL/chat/v1 directly ----
    def test_control_protocol(self):
        c = self.admin_client(V5)
        self.assertLess(c.subscribe(RESPONSE), 0x80)
        u = uniq("ctl")
        r = self.admin_cmd(c, {"cmd": "device.add", "rid": 1, "user": u, "device": "d"})
        self.assertEqual((r["cmd"], r["ok"]), ("device.add", True), r)
        self.assertRegex(r["token"], TOKEN_RE)
        d = Device(self.broker, u, "d", r["token"]).connect()
        self.addCleanup(d.close)
        r = self.admin_cmd(c, {"cmd": "device.add", "rid": 2, "user": u, "device": "d"})
        self.assertEqual((r["ok"], r["code"]), (False, "exists"), r)
        r = self.admin_cmd(c, {"cmd": "nope", "rid": 3})
        self.assertEqual((r["ok"], r["code"]), (False, "unknown"), r)
        r = self.admin_cmd(c, {"cmd": "device.add", "rid": 4, "user": u})
        self.assertEqual((r["ok"], r["code"]), (False, "field"), r)
        r = self.admin_cmd(c, {"cmd": "device.remove", "rid": 5, "user": u, "device": "zz"})
        self.assertEqual((r["ok"], r["code"]), (False, "notfound"), r)
        r = self.admin_cmd(c, {"cmd": "stats", "rid": 6})
        self.assertTrue(r["ok"])
        self.assertIsInstance(r["counters"], dict)
        c.publish(CONTROL, b"\xff\xff")
        r = c.wait_message(lambda m: m[0] == RESPONSE)
        self.assertIsNotNone(r)
        self.assertEqual((r[1]["ok"], r[1]["code"]), (False, "cbor"))
        r = self.admin_cmd(c, {"cmd": "user.remove", "rid": 7, "user": u})
        self.assertEqual((r["ok"], r.get("devices")), (True, 1), r)
        self.assertTrue(d.disconnected.wait(3))

    def test_non_admin_control_ignored(self):
        u = uniq("sneak")
        target = uniq("victim")
        d5 = self.dev(u, "v5", protocol=V5)
        d3 = self.dev(u, "v3")
        req = cbor2.dumps({"cmd": "device.add", "rid": 1, "user": target, "device": "d"})
        self.assertGreaterEqual(d5.subscribe(RESPONSE), 0x80)
        self.assertEqual(d5.publish(CONTROL, req), 0x87)
        d3.subscribe(RESPONSE)
        d3.publish(CONTROL, req)
        # a service account is not an admin either
        name = uniq("svc")
        rc, tok, _ = self.broker.chatctl("service", "add", name)
        svc = self.client(client_id=uniq("s"), username=name, password=tok.strip(), protocol=V5)
        svc.connect()
        self.assertEqual(svc.publish(CONTROL, req), 0x87)
        # no response reaches anyone; the devices are told in their inbox why
        # their publish was refused (3.1.1 cannot see it in the PUBACK)
        for d in (d5, d3):
            m = d.wait_message(lambda m: True, timeout=2)
            self.assertIsNotNone(m)
            self.assertEqual(m[0], "chat/inbox/%s/%s" % (u, "v5" if d is d5 else "v3"))
            self.assertEqual((m[1]["k"], m[1]["code"]), ("error", "topic"))
        for c in (d5, d3, svc):
            self.assertIsNone(c.wait_message(lambda m: True, timeout=0.3 if c is not svc else 0.1))
        # the command was not executed: the device does not exist yet
        rc, out, err = self.broker.chatctl("device", "add", target, "d")
        self.assertEqual(rc, 0, "device was created by a non-admin: " + err)

    def test_admin_and_service_kept_out_of_chat(self):
        adm = self.admin_client(V5)
        name = uniq("svc")
        rc, tok, _ = self.broker.chatctl("service", "add", name)
        svc = self.client(client_id=uniq("s"), username=name, password=tok.strip(), protocol=V5)
        svc.connect()
        b = uniq("b")
        db = self.dev(b, "phone")
        for c in (adm, svc):
            for f in ["chat/inbox/%s/phone" % b, "chat/#", "#", "+/dm/+"]:
                self.assertGreaterEqual(c.subscribe(f), 0x80, f)
            self.assertEqual(c.publish("chat/dm/" + b, cbor2.dumps({"cid": 1, "body": b"x"})), 0x87)
            self.assertEqual(c.publish(db.inbox, cbor2.dumps({"k": "msg"})), 0x87)
        db.expect_no_event(0.3)

    def test_admin_token_mode(self):
        self.assertEqual(os.stat(self.broker.token_file).st_mode & 0o777, 0o600)


if __name__ == "__main__":
    main()
