# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The operator's admin surface through chatctl against a real broker:
listings (paged), token rotation, service accounts' removal and roles,
group operator commands, --json on every command."""

import json
import os

import cbor2

from chatlib import ChatTestCase, Device, main, uniq

CONTROL = "$CONTROL/chat/v1"
RESPONSE = "$CONTROL/chat/v1/response"


class AdminSurfaceTest(ChatTestCase):

    def ctl(self, *args, **kw):
        rc, out, err = self.broker.chatctl(*args, **kw)
        self.assertEqual(rc, 0, "chatctl %s: %s" % (" ".join(map(str, args)), err))
        return out

    def ctl_json(self, *args, **kw):
        return json.loads(self.ctl("--json", *args, **kw))

    def admin_cmd(self, req):
        with open(self.broker.token_file) as f:
            tok = f.read().strip()
        c = self.client(client_id=uniq("admin"), username="$admin", password=tok, decode=True)
        c.connect()
        c.subscribe(RESPONSE)
        c.publish(CONTROL, cbor2.dumps(req))
        m = c.wait_message(lambda m: m[0] == RESPONSE and m[1].get("rid") == req["rid"])
        c.close()
        self.assertIsNotNone(m)
        return m[1]

    # ---- listings ----

    def test_device_and_user_list_paged(self):
        p = uniq("pg")
        users = ["%s%d" % (p, i) for i in range(3)]
        for u in users:
            for d in ("a", "b"):
                self.broker.add_device(u, d)
        d = self.dev(users[1], "c")  # connected: online
        # every device, a page of 2 at a time: many pages, nothing twice
        out = self.ctl("device", "list", "--page-size", "2")
        lines = [ln for ln in out.splitlines() if ln.startswith(p)]
        self.assertEqual(lines, ["%s0/a offline" % p, "%s0/b offline" % p,
                                 "%s1/a offline" % p, "%s1/b offline" % p, "%s1/c online" % p,
                                 "%s2/a offline" % p, "%s2/b offline" % p])
        all_lines = out.splitlines()
        self.assertEqual(len(all_lines), len(set(all_lines)))
        js = self.ctl_json("--page-size", "3", "device", "list")
        self.assertEqual([x for x in js["devices"] if x["user"] == users[1]],
                         [{"user": users[1], "device": "a", "online": False},
                          {"user": users[1], "device": "b", "online": False},
                          {"user": users[1], "device": "c", "online": True}])
        self.assertEqual(len(js["devices"]), len(all_lines))
        # one user's devices, pages of 1
        self.assertEqual(self.ctl("device", "list", users[1], "--page-size", "1").splitlines(),
                         ["%s1/a offline" % p, "%s1/b offline" % p, "%s1/c online" % p])
        self.assertEqual(self.ctl("device", "list", uniq("nobody")), "")
        # users, a page of 1 at a time
        out = self.ctl("user", "list", "--page-size", "1")
        self.assertEqual([ln for ln in out.splitlines() if ln.startswith(p)],
                         ["%s0 2 0" % p, "%s1 3 1" % p, "%s2 2 0" % p])
        js = self.ctl_json("user", "list")
        self.assertIn({"user": users[1], "devices": 3, "online": 1}, js["users"])
        d.close()

    def test_list_protocol_cursor(self):
        p = uniq("cur")
        for i in range(5):
            self.broker.add_device(p, "d%d" % i)
        r = self.admin_cmd({"cmd": "device.list", "rid": 1, "user": p, "limit": 2})
        self.assertTrue(r["ok"], r)
        self.assertEqual([x["device"] for x in r["devices"]], ["d0", "d1"])
        self.assertEqual(r["next"], p + "/d1")
        r = self.admin_cmd({"cmd": "device.list", "rid": 2, "user": p, "limit": 2,
                            "after": r["next"]})
        self.assertEqual([x["device"] for x in r["devices"]], ["d2", "d3"])
        r = self.admin_cmd({"cmd": "device.list", "rid": 3, "user": p, "limit": 2,
                            "after": r["next"]})
        self.assertEqual([x["device"] for x in r["devices"]], ["d4"])
        self.assertNotIn("next", r)
        for bad in (0, 1001):
            r = self.admin_cmd({"cmd": "user.list", "rid": 4, "limit": bad})
            self.assertEqual((r["ok"], r["code"]), (False, "field"))
        r = self.admin_cmd({"cmd": "device.list", "rid": 5, "after": "not-an-address"})
        self.assertEqual((r["ok"], r["code"]), (False, "field"))

    # ---- rotation ----

    def test_device_rotate_keeps_queue_and_kicks(self):
        u, peer = uniq("rot"), uniq("peer")
        old = self.broker.add_device(u, "phone")
        d = Device(self.broker, u, "phone", old).connect()
        dp = self.dev(peer, "p")
        new = self.ctl("device", "rotate", u, "phone").strip()
        self.assertRegex(new, r"^[A-Za-z0-9_-]{43}$")
        self.assertNotEqual(new, old)
        self.assertTrue(d.disconnected.wait(3), "the old connection was not kicked")
        # queued while it is away, delivered once it is back with the new token
        dp.send_dm(u, 1, body=b"while rotated")
        again = self.client(client_id=u + "/phone", username=u + "/phone", password=old)
        self.assertEqual(again.try_connect(), 5, "the old token still works")
        d2 = Device(self.broker, u, "phone", new).connect()
        d2.sync()
        self.assertEqual(d2.wait_event("msg")["body"], b"while rotated")
        # the new connection stays (no leftover kick)
        self.assertFalse(d2.disconnected.wait(1.0))
        d2.close()
        dp.close()
        js = self.ctl_json("device", "rotate", u, "phone")
        self.assertRegex(js["token"], r"^[A-Za-z0-9_-]{43}$")
        rc, _, err = self.broker.chatctl("device", "rotate", u, "nosuch")
        self.assertEqual(rc, 1)
        self.assertIn("notfound", err)

    def test_device_rotate_keeps_keys(self):
        # the key server's notice goes out only for a removal: a rotation
        # leaves no retained chat/keys/removed/U/D behind
        u = uniq("rk")
        self.broker.add_device(u, "d")
        name = uniq("ks")
        tok = self.broker.service_token_file(name)
        with open(tok) as f:
            t = f.read().strip()
        svc = self.client(client_id=uniq("svc"), username=name, password=t, decode=False)
        svc.connect()
        self.ctl("device", "rotate", u, "d")
        svc.subscribe("chat/keys/removed/+/+")
        self.assertIsNone(svc.wait_message(lambda m: m[0] == "chat/keys/removed/%s/d" % u, 1.0))
        svc.close()

    # ---- services ----

    def test_service_list_remove_rotate(self):
        a, b = uniq("svca"), uniq("svcb")
        ta = self.ctl("service", "add", a).strip()
        tb = self.ctl("service", "add", b, "--role", "provisioner").strip()
        lines = self.ctl("service", "list", "--page-size", "1").splitlines()
        self.assertIn("%s service" % a, lines)
        self.assertIn("%s provisioner" % b, lines)
        js = self.ctl_json("service", "list")
        self.assertIn({"name": b, "role": "provisioner"}, js["services"])
        # rotate: a connection made with the old token (it may have leaked)
        # is closed at the next tick, the old token is refused, the new one works
        old = self.client(client_id=uniq("s"), username=a, password=ta)
        self.assertEqual(old.try_connect(), 0)
        na = self.ctl("service", "rotate", a).strip()
        self.assertNotEqual(na, ta)
        self.assertTrue(old.disconnected.wait(5), "the old token's connection stayed")
        old.close()
        c = self.client(client_id=uniq("s"), username=a, password=ta)
        self.assertEqual(c.try_connect(), 5)
        c = self.client(client_id=uniq("s"), username=a, password=na)
        self.assertEqual(c.try_connect(), 0)
        c.close()
        # remove: its connections closed, gone from the list, its token refused
        live = self.client(client_id=uniq("s"), username=b, password=tb)
        self.assertEqual(live.try_connect(), 0)
        self.assertEqual(self.ctl_json("service", "remove", b), {})
        self.assertTrue(live.disconnected.wait(5), "the removed service's connection stayed")
        live.close()
        self.assertNotIn(b, self.ctl("service", "list"))
        c = self.client(client_id=uniq("s"), username=b, password=tb)
        self.assertNotEqual(c.try_connect(), 0)
        rc, _, err = self.broker.chatctl("service", "remove", b)
        self.assertEqual(rc, 1)
        self.assertIn("notfound", err)
        rc, _, err = self.broker.chatctl("service", "add", uniq("x"), "--role", "root")
        self.assertEqual(rc, 2)

    def test_service_survives_restart_with_role(self):
        name = uniq("prov")
        self.ctl("service", "add", name, "--role", "provisioner")
        self.broker.restart()
        self.assertIn("%s provisioner" % name, self.ctl("service", "list").splitlines())

    # ---- the provisioner role ----

    def test_provisioner_limits(self):
        name = uniq("app")
        tokfile = os.path.join(self.broker.tmp, name + ".token")
        with open(tokfile, "w") as f:
            f.write(self.ctl("service", "add", name, "--role", "provisioner"))
        u = uniq("pu")

        def as_prov(*args):
            return self.broker.chatctl("-u", name, *args, token_file=tokfile)

        rc, tok, err = as_prov("device", "add", u, "phone")
        self.assertEqual(rc, 0, err)
        self.assertEqual(Device(self.broker, u, "phone", tok.strip()).connect().connack, 0)
        rc, out, err = as_prov("stats")
        self.assertEqual(rc, 0, err)
        self.assertIn("devices ", out)
        rc, out, err = as_prov("--json", "stats")
        self.assertEqual(rc, 0, err)
        self.assertIn("counters", json.loads(out))
        for cmd in (("device", "list"), ("user", "list"), ("device", "rotate", u, "phone"),
                    ("user", "remove", u), ("service", "add", uniq("x")),
                    ("service", "list"), ("service", "rotate", name), ("service", "remove", name),
                    ("group", "create", uniq("g"), "--owner", u), ("group", "list"),
                    ("group", "delete", "g"), ("backup", "/tmp/x")):
            rc, out, err = as_prov(*cmd)
            self.assertEqual(rc, 1, cmd)
            self.assertIn("denied", err, cmd)
        rc, _, err = as_prov("device", "remove", u, "phone")
        self.assertEqual(rc, 0, err)
        # a provisioner is no key server
        with open(tokfile) as f:
            t = f.read().strip()
        c = self.client(client_id=uniq("p"), username=name, password=t)
        c.connect()
        self.assertGreaterEqual(c.subscribe("chat/keys/req/+/+"), 0x80)
        c.close()

    # ---- groups ----

    def test_group_operator_commands(self):
        p = uniq("gop")
        owner, m1, m2 = p + "o", p + "a", p + "b"
        do = self.dev(owner, "d")
        d1 = self.dev(m1, "d")
        self.broker.add_device(m2, "d")
        g1, g2 = p + "g1", p + "g2"
        self.ctl("group", "create", g1, "--owner", owner, "--members", m1)
        self.ctl("group", "create", g2, "--owner", owner)
        do.wait_event("group", op="created", gid=g1)
        out = self.ctl("group", "list", "--page-size", "1")
        self.assertIn("%s 2" % g1, out.splitlines())
        self.assertIn("%s 1" % g2, out.splitlines())
        js = self.ctl_json("group", "list")
        self.assertIn({"gid": g1, "name": "", "members": 2}, js["groups"])
        self.assertEqual(self.ctl("group", "show", g1).splitlines(),
                         ["gid " + g1, "name ", "members %s %s" % (owner, m1), "admins " + owner])
        # add (by the operator: "by" is $admin), promote, remove
        self.ctl("group", "add", g1, m2)
        ev = d1.wait_event("group", op="added", gid=g1)
        self.assertEqual((ev["by"], ev["members"]), ("$admin", [m2]))
        self.ctl("group", "promote", g1, m1)
        js = self.ctl_json("group", "show", g1)
        self.assertEqual(js["admins"], [owner, m1])
        self.assertEqual(js["members"], [owner, m1, m2])
        js = self.ctl_json("group", "remove", g1, owner)
        self.assertEqual(js["gid"], g1)
        self.assertIn("seq", js)
        self.assertEqual(self.ctl_json("group", "show", g1)["members"], [m1, m2])
        rc, _, err = self.broker.chatctl("group", "promote", g1, owner)
        self.assertEqual(rc, 1)
        self.assertIn("user", err)
        rc, _, err = self.broker.chatctl("group", "add", g1, uniq("ghost"))
        self.assertEqual(rc, 1)
        # delete: every member gets the removal, the group is gone
        self.ctl("group", "delete", g1)
        ev = d1.wait_event("group", op="removed", gid=g1, members=[m1, m2])
        self.assertEqual(ev["by"], "$admin")
        rc, _, err = self.broker.chatctl("group", "show", g1)
        self.assertEqual(rc, 1)
        self.assertIn("notfound", err)
        self.assertNotIn(g1, self.ctl("group", "list"))
        # a device cannot delete a group through chat/ctl
        r = do.ctl("group.delete", 7, gid=g2)
        self.assertEqual((r["ok"], r["code"]), (False, "op"))
        do.close()
        d1.close()

    # ---- --json on the older commands ----

    def test_json_everywhere(self):
        u = uniq("js")
        js = self.ctl_json("device", "add", u, "d")
        self.assertRegex(js["token"], r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(self.ctl_json("device", "remove", u, "d"), {})
        self.broker.add_device(u, "e")
        self.assertEqual(self.ctl_json("user", "remove", u), {"devices": 1})
        self.assertIsInstance(self.ctl_json("stats")["counters"]["devices"], int)
        self.assertRegex(self.ctl_json("service", "add", uniq("jss"))["token"], r"^[A-Za-z0-9_-]{43}$")
        o = uniq("jo")
        self.broker.add_device(o, "d")
        js = self.ctl_json("group", "create", uniq("jg"), "--owner", o)
        self.assertIn("seq", js)
        dest = os.path.join(self.broker.tmp, uniq("bk"))
        js = self.ctl_json("backup", dest)
        self.assertEqual(js["dir"], dest)


if __name__ == "__main__":
    main()
