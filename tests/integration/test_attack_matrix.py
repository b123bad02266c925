# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The ACL and abuse matrix: a real broker with the plugin, a real key server
and a shared IoT side (allow_anonymous, plugin_opt_foreign_acl allow: the
most open setting a deployment can choose). Every attempt below is something
a hostile client would try; each must be refused, and refused in effect:
a subscription needs a failure SUBACK and no message reaching it, a publish
an MQTT 5 failure code (or a refusal event) and no effect on anyone else.
An IoT client's wildcard filter ("#", "+/presence/#") is standard MQTT and
granted; it counts as refused when nothing of chat/ or $CONTROL/chat/
arrives through it, live or retained (filtered at delivery).

Each attempt is tallied; the summary line "attack matrix: N attempts, M
refused" is printed at the end and every test fails if one of its attempts
was not refused.
"""

import itertools
import sys

import cbor2

import http.client
import os
import time
import urllib.parse

from chatlib import (V311, V5, ChatTestCase, Client, Device, Identity, KeyServer, MediaDevice,
                     MediaServer, conv_of, main, uniq, wait_until)

# Filters that could reach another device's private topics.
WILDCARDS = ["#", "chat/#", "chat/+/+/+", "+/inbox/#", "$share/x/chat/inbox/#", "chat/inbox/#",
             "chat/inbox/+/+", "chat/inbox/{v}/+", "chat/keys/#", "chat/keys/resp/+/+",
             "chat/keys/status/+/+", "chat/keys/+/{v}/phone", "+/+/{v}/phone", "+/+/+/+",
             "$share/x/chat/keys/resp/+/+", "$share/x/#", "chat/dm/#", "chat/presence/+/+",
             "chat/media/#", "chat/media/resp/+/+", "chat/media/req/+/+",
             "$share/x/chat/media/req/+/+", "chat/media/+/{v}/phone"]
KS_BURST = 3
# chat-media's PUT/GET URLs live 3 s here (default 600 s), so that an
# expired one can be tried without a long wait.
MEDIA_URL_TTL = 3
CIDS = itertools.count(1000)


class AttackMatrixTest(ChatTestCase):
    broker_options = {"foreign_acl": "allow"}
    broker_lines = ("allow_anonymous true",)
    attempts = 0
    refusals = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ks = KeyServer.for_broker(cls.broker, "--rate-burst", str(KS_BURST))
        cls.media = MediaServer.for_broker(cls.broker, "--url-ttl", str(MEDIA_URL_TTL))
        try:
            cls.ks.wait_serving()
            cls.media.wait_serving()
        except Exception:
            cls.ks.cleanup()
            cls.media.cleanup()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        sys.stderr.write("\nattack matrix: %d attempts, %d refused\n" % (cls.attempts, cls.refusals))
        try:
            cls.ks.stop()
            cls.media.stop()
        finally:
            cls.ks.cleanup()
            cls.media.cleanup()
            super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.not_refused = []

    def tearDown(self):
        self.assertEqual(self.not_refused, [], "attempts that were not refused")

    def attempt(self, what, refused):
        """Tallies one attempt; refused must be true."""
        AttackMatrixTest.attempts += 1
        if refused:
            AttackMatrixTest.refusals += 1
        else:
            self.not_refused.append(what)

    # ---- helpers ----

    def victim(self, keys=True):
        """A victim V/phone with its inbox, key response and key status topics
        subscribed, keys uploaded (a retained status exists) and a peer P."""
        v, p = uniq("victim"), uniq("peer")
        dv = self.dev(v, "phone", protocol=V5)
        dp = self.dev(p, "phone")
        if keys:
            for kind in ("resp", "status"):
                self.assertLess(dv.subscribe("chat/keys/%s/%s/phone" % (kind, v)), 0x80)
            self.key_request(dv, Identity().upload_req(20))
            self.assertIsNotNone(dv.wait_message(lambda m: m[0].startswith("chat/keys/status/")))
        return v, dv, p, dp

    _rid = 0

    def key_request(self, d, req, timeout=5.0):
        AttackMatrixTest._rid += 1
        rid = AttackMatrixTest._rid
        self.assertLess(d.publish("chat/keys/req/%s" % d.addr, cbor2.dumps(dict(req, rid=rid))), 0x80)
        topic = "chat/keys/resp/%s" % d.addr
        m = d.wait_message(lambda m: m[0] == topic and m[1].get("rid") == rid, timeout)
        self.assertIsNotNone(m, "no key response\n" + self.ks.text()[-2000:])
        return m[1]

    def traffic(self, v, dv, p, dp):
        """What a spy could catch: a dm to the victim, a key response and a
        fresh retained key status for it, presence changes."""
        dp.send_dm(v, next(CIDS), body=b"private")
        dv.wait_event("msg", conv=conv_of(v, p))
        self.key_request(dv, {"op": "count"})
        self.key_request(dv, Identity().upload_req(1))
        extra = self.dev(v, uniq("t"))
        extra.drop()

    def anon(self, proto=V311, client_id=None, **kw):
        c = self.client(client_id=client_id or uniq("iot"), protocol=proto, **kw)
        c.connect()
        return c

    # ---- reading what is not one's own ----

    def test_subscriptions_refused_and_silent(self):
        v, dv, p, dp = self.victim()
        spies = []
        for proto in (V311, V5):
            a = uniq("spy")
            spy = self.dev(a, "phone", protocol=proto, subscribe=False)
            spies.append(spy)
            filters = ["chat/inbox/%s/phone" % v, "chat/keys/resp/%s/phone" % v,
                       "chat/media/resp/%s/phone" % v,
                       "chat/keys/status/%s/phone" % v, "$CONTROL/chat/v1/response",
                       "$CONTROL/#"] + [f.format(v=v) for f in WILDCARDS]
            for f in filters:
                code = spy.subscribe(f)
                self.attempt("device subscribe %s (v%d): 0x%02x" % (f, proto, code), code >= 0x80)
        iot = self.anon(V5)
        spies.append(iot)
        for f in ["chat/#", "chat/inbox/%s/phone" % v, "chat/inbox/+/+", "chat/+/+/+",
                  "chat/keys/status/%s/phone" % v, "$share/x/chat/inbox/#", "$CONTROL/chat/#",
                  "$CONTROL/chat/v1/response"]:
            code = iot.subscribe(f)
            self.attempt("iot subscribe %s: 0x%02x" % (f, code), code >= 0x80)
        # "#" and "+/inbox/#" could be meant for IoT topics: granted or not,
        # they must carry nothing of chat/ (checked below).
        for f in ["#", "+/inbox/#", "+/+/+/+", "$share/x/#"]:
            iot.subscribe(f)
        self.traffic(v, dv, p, dp)
        wait_until(lambda: False, 0.5)
        for spy in spies:
            got = [m[0] if isinstance(m, tuple) else m.topic for m in spy.drain()]
            leaked = [t for t in got if t.startswith("chat/") or t.startswith("$CONTROL")]
            self.attempt("%s received nothing of chat/: %r" % (spy.c._client_id, leaked[:5]),
                         not leaked)

    def test_iot_wildcard_subscriber(self):
        """An IoT wildcard subscriber tries to see chat inboxes, presence,
        keys and control topics. Filters rooted in the namespace are refused;
        wildcard filters are granted (standard MQTT for IoT clients,
        PROTOCOL.md §3) and must carry nothing of it, live or retained: each
        is one attempt, refused if nothing of chat/ or $CONTROL/chat/
        arrives through it. A positive IoT publish per filter shows the
        subscription was live."""
        v, dv, p, dp = self.victim()     # its presence and key status are retained now
        dp.subscribe("chat/presence/%s" % v)
        pos = uniq("iot")
        granted = {   # filter -> an IoT topic it must still deliver (None: $CONTROL is never routed)
            "#": pos + "/any", "+/+": pos + "/any", "+/inbox/+/+": pos + "/inbox/a/b",
            "+/presence/#": pos + "/presence/x", "+/presence/+": pos + "/presence/x",
            "+/keys/#": pos + "/keys/status/a/b", "+/+/+/+/+": pos + "/keys/status/a/b",
            "+/+/%s/phone" % v: pos + "/x/%s/phone" % v, "$share/spy{p}/#": pos + "/any",
            "$share/spy{p}/+/presence/+": pos + "/presence/x", "$CONTROL/#": None,
            "$CONTROL/+/v1/response": None,
        }
        rooted = ["chat/inbox/%s/phone" % v, "chat/inbox/+/+", "chat/presence/%s" % v,
                  "chat/presence/+", "chat/keys/status/%s/phone" % v, "chat/keys/+/+/+",
                  "$share/spy/chat/presence/#", "$CONTROL/chat/#", "$CONTROL/chat/v1/response"]
        spies = []   # (client, filter, positive topic)

        def spy_on(proto, f, topic):
            c = self.anon(proto)
            code = c.subscribe(f.format(p=proto), 2)
            self.assertLess(code, 0x80, "IoT filter %s refused" % f)   # stock MQTT grants it
            spies.append((c, "%s (v%d)" % (f, proto), topic))

        for proto in (V311, V5):
            c = self.anon(proto)
            for f in rooted:
                code = c.subscribe(f)
                self.attempt("iot subscribe %s (v%d): 0x%02x" % (f, proto, code), code >= 0x80)
            for f, topic in granted.items():
                spy_on(proto, f, topic)          # retained chat documents exist already
        self.traffic(v, dv, p, dp)               # dm, key response, fresh key status, presence
        rc, _, err = self.broker.chatctl("stats")
        self.assertEqual(rc, 0, err)
        for proto in (V311, V5):                  # after the traffic: the retained ones again
            for f in ("#", "+/presence/#", "+/keys/#", "+/+/+/+/+"):
                spy_on(proto, f, granted[f])
        pub = self.anon(V5)
        for topic in sorted({t for t in granted.values() if t}):
            self.assertLess(pub.publish(topic, b"iot", qos=1), 0x80)
        wait_until(lambda: False, 0.5)
        for c, what, topic in spies:
            got = [m.topic for m in c.drain()]
            leaked = [t for t in got if t.startswith(("chat/", "$CONTROL/chat"))]
            self.attempt("iot wildcard %s received nothing of chat/: %r" % (what, leaked[:5]),
                         not leaked)
            if topic:
                self.assertIn(topic, got, "%s: the IoT publish did not arrive" % what)

    def test_iot_client_reaching_chat(self):
        v, dv, p, dp = self.victim(keys=False)
        for proto in (V311, V5):
            iot = self.anon(proto)
            topics = ["chat/dm/%s" % v, "chat/inbox/%s/phone" % v, "chat/receipt", "chat/sync",
                      "chat/ctl", "chat/keys/req/%s/phone" % v, "chat/presence/%s" % v,
                      "chat/typing/%s" % conv_of(v, p), "$CONTROL/chat/v1"]
            for t in topics:
                payload = cbor2.dumps({"cid": 1, "body": b"x", "k": "msg", "op": "count",
                                       "cmd": "user.remove", "user": v, "rid": 1})
                code = iot.publish(t, payload, retain=t.startswith("chat/presence"))
                if proto == V5:
                    self.attempt("iot publish %s: 0x%02x" % (t, code), code >= 0x80)
        dv.expect_no_event(0.4)
        self.attempt("victim saw no iot publish", True)
        # an anonymous client taking a chat device's client id would end its session
        for proto in (V311, V5):
            c = Client(self.broker, client_id="%s/phone" % v, protocol=proto)
            rc = c.try_connect()
            if rc == 0:
                c.close()
            self.attempt("anonymous connect as client id %s/phone: %r" % (v, rc), rc != 0)
        self.attempt("victim still connected", not dv.disconnected.is_set())
        self.assert_serving()

    # ---- acting as someone else ----

    def test_publishing_as_another_device(self):
        v, dv, p, dp = self.victim()
        dv.drain()
        a = uniq("mallory")
        m5 = self.dev(a, "phone", protocol=V5)
        forged_status = cbor2.dumps({"opks": 0, "low": True})
        cases = [
            ("chat/keys/req/%s/phone" % v, {"op": "count", "rid": 7}, False),
            ("chat/keys/req/%s/phone" % v, {"op": "upload", "rid": 8, **{
                k: x for k, x in Identity().upload_req(3).items() if k != "op"}}, False),
            ("chat/keys/resp/%s/phone" % v, {"rid": 9, "ok": True, "opks": 0}, False),
            ("chat/keys/status/%s/phone" % v, None, True),
            ("chat/media/req/%s/phone" % v, {"op": "slot", "rid": 10, "size": 1, "type": "a/b",
                                             "to": ["%s/phone" % a]}, False),
            ("chat/media/resp/%s/phone" % v, {"rid": 11, "ok": True, "url": "http://evil/"}, False),
            ("chat/inbox/%s/phone" % v, {"k": "msg", "conv": conv_of(a, v), "seq": 1,
                                         "from": "%s/phone" % p, "ts": 1, "body": b"forged"}, False),
            ("chat/sync/%s/phone" % v, {}, False),
            ("chat/receipt/%s/phone" % v, {"s": "read", "conv": conv_of(v, p), "seqs": [1]}, False),
            ("chat/presence/%s" % v, {"s": "offline"}, True),
            ("chat/presence/%s/phone" % v, None, False),
            ("chat/ctl/%s/phone" % v, {"op": "privacy", "rid": 1, "read_receipts": False}, False),
            ("chat/dm/%s/phone" % v, {"cid": 1, "body": b"x"}, False),
        ]
        for topic, payload, retain in cases:
            data = forged_status if payload is None else cbor2.dumps(payload)
            code = m5.publish(topic, data, retain=retain)
            self.attempt("publish %s as %s: 0x%02x" % (topic, m5.addr, code), code >= 0x80)
        # nothing reached the victim: no event, no key response, no status
        wait_until(lambda: False, 0.5)
        got = dv.drain()
        self.attempt("victim received nothing forged: %r" % got[:3], got == [])
        r = self.key_request(dv, {"op": "count"})
        self.attempt("victim's key pool untouched (%r)" % r, r.get("opks") == 20)
        # a receipt or a sync that names someone else in its payload acts for its sender only
        dp.send_dm(v, 1, body=b"one")
        dv.wait_event("msg")
        if self.broker.delivered_on_puback:   # the victim's PUBACK: its real ✓✓
            dp.wait_event("receipt", s="delivered", by=v)
        m5.events()
        m5.publish("chat/receipt", cbor2.dumps({"s": "read", "conv": conv_of(v, p), "seqs": [1],
                                                "by": v, "from": "%s/phone" % v}))
        err = m5.wait_event("error")
        self.attempt("receipt naming the victim: %r" % err.get("code"), err.get("code") == "conv")
        dp.expect_no_event(0.3, k="receipt")
        self.attempt("the peer got no forged receipt", True)
        m5.sync()
        m5.wait_event("sync")
        vis = [e for e in m5.events() if e.get("conv") == conv_of(v, p)]
        self.attempt("sync as another device replays nothing of it", vis == [])
        # impersonating the device at CONNECT
        tok_a = m5.token
        for user, cid, pw in [("%s/phone" % v, "%s/phone" % v, tok_a),
                              ("%s/phone" % a, "%s/phone" % v, tok_a),
                              ("%s/phone" % v, "%s/phone" % a, tok_a),
                              ("$admin", uniq("adm"), tok_a),
                              ("keys", uniq("k"), tok_a),
                              ("%s/phone" % v, "%s/phone" % v, "")]:
            c = Client(self.broker, client_id=cid, username=user, password=pw, protocol=V5)
            rc = c.try_connect()
            if rc == 0:
                c.close()
            self.attempt("connect user=%s client=%s with another's token: %r" % (user, cid, rc),
                         rc != 0)
        self.attempt("victim still connected", not dv.disconnected.is_set())

    def test_group_one_is_not_in(self):
        o, m, x = uniq("owner"), uniq("member"), uniq("outsider")
        do, dm = self.dev(o, "phone"), self.dev(m, "phone")
        dx = self.dev(x, "phone", protocol=V5)
        gid = uniq("grp")
        r = do.ctl("group.create", 1, gid=gid, members=[m])
        self.assertTrue(r["ok"], r)
        for d in (do, dm):
            d.wait_event("group", op="created", gid=gid)
        code = dx.send_group(gid, 1, body=b"intrude")
        err = dx.wait_event("error")
        self.attempt("send to a group one is not in: 0x%02x %s" % (code, err.get("code")),
                     code >= 0x80 and err.get("code") == "member")
        dx.typing("g:%s" % gid)
        r = dx.ctl("group.add", 2, gid=gid, members=[x])
        self.attempt("group.add by an outsider: %r" % r, r.get("ok") is False)
        r = dx.ctl("group.remove", 3, gid=gid, members=[m])
        self.attempt("group.remove by an outsider: %r" % r, r.get("ok") is False)
        r = dx.ctl("group.admin", 4, gid=gid, user=x)
        self.attempt("group.admin by an outsider: %r" % r, r.get("ok") is False)
        r = dm.ctl("group.add", 5, gid=gid, members=[x])
        self.attempt("group.add by a non-admin member: %r" % r, r.get("ok") is False)
        code = dx.publish("chat/group/%s" % gid, cbor2.dumps({"cid": 2, "body": b"x"}), qos=2)
        self.attempt("QoS 2 send to the group: 0x%02x" % code, code >= 0x80)
        wait_until(lambda: False, 0.3)
        got = do.events() + dm.events()
        self.attempt("members saw nothing from the outsider: %r" % got[:3], got == [])

    # ---- receipts for what one never received ----

    def test_receipts_for_messages_never_received(self):
        a, b, c = uniq("a"), uniq("b"), uniq("c")
        da, db, dc = self.dev(a, "phone"), self.dev(b, "phone"), self.dev(c, "phone")
        conv = conv_of(a, b)
        da.send_dm(b, 1, body=b"m1")
        db.wait_event("msg", seq=1)
        da.events()
        # an outsider reads a's message
        dc.receipt("read", conv, [1])
        err = dc.wait_event("error")
        self.attempt("outsider receipt: %s" % err.get("code"), err.get("code") == "conv")
        # b reads a message that does not exist yet, a reads its own message
        db.receipt("read", conv, [2, 3])
        da.receipt("read", conv, [1])
        # a group member reads what was said before it joined
        g = uniq("g")
        self.assertTrue(da.ctl("group.create", 1, gid=g, members=[b])["ok"])
        da.send_group(g, 2, body=b"before c")
        seq_before = db.wait_event("msg", conv="g:" + g)["seq"]
        r = da.ctl("group.add", 2, gid=g, members=[c])
        self.assertTrue(r["ok"], r)
        dc.events()
        dc.receipt("read", "g:" + g, [seq_before])
        wait_until(lambda: False, 0.5)
        got = [e for e in da.events() if e.get("k") == "receipt"]
        if self.broker.delivered_on_puback:
            # the patched broker: b's PUBACKs of seq 1 and of the group message
            # are b's real ✓✓, and the only receipts; seq 1 moved to delivered
            # and no further
            real = [e for e in got if (e["s"], e["by"]) == ("delivered", b)]
            got = [e for e in got if e not in real]
            self.attempt("state of seq 1 unchanged by the forgeries: %r" % real,
                         sorted((e["conv"], e["seqs"]) for e in real)
                         == sorted([(conv, [1]), ("g:" + g, [seq_before])]))
        self.attempt("no receipt reached the sender: %r" % got, got == [])
        if not self.broker.delivered_on_puback:
            # the sender's state did not move: b's real receipts arrive as the first ones
            db.receipt("delivered", conv, [1])
            ev = da.wait_event("receipt", conv=conv)
            self.attempt("state of seq 1 unchanged by the forgeries: %r" % ev,
                         (ev["s"], ev["seqs"], ev["by"]) == ("delivered", [1], b))
        da.send_dm(b, 3, body=b"m2")
        db.wait_event("msg", seq=2)
        db.receipt("delivered", conv, [2])
        ev = da.wait_event("receipt", conv=conv)
        self.attempt("a receipt before the message did not count: %r" % ev,
                     (ev["s"], ev["seqs"]) == ("delivered", [2]))
        da.send_group(g, 4, body=b"after c")
        seq_after = dc.wait_event("msg", conv="g:" + g)["seq"]
        dc.receipt("read", "g:" + g, [seq_before, seq_after])
        ev = da.wait_event("receipt", conv="g:" + g, s="read")
        self.attempt("late joiner's receipt counts only what it got: %r" % ev,
                     (ev["s"], ev["seqs"], ev["by"]) == ("read", [seq_after], c))

    # ---- admin, revoked devices, key pools ----

    def test_control_from_non_admin(self):
        v, dv, p, dp = self.victim(keys=False)
        cmds = [{"cmd": "user.remove", "user": v}, {"cmd": "device.remove", "user": v, "device": "phone"},
                {"cmd": "device.add", "user": v, "device": "evil"}, {"cmd": "service.add", "name": "keys"},
                {"cmd": "stats"}]
        d5 = self.dev(uniq("mallory"), "phone", protocol=V5)
        for i, cmd in enumerate(cmds):
            code = d5.publish("$CONTROL/chat/v1", cbor2.dumps(dict(cmd, rid=i + 1)))
            self.attempt("device publishes %s on $CONTROL: 0x%02x" % (cmd["cmd"], code), code >= 0x80)
        svc = Client(self.broker, client_id=uniq("svc"), username="keys",
                     password=open(self.ks.token_file).read().strip(), protocol=V5).connect()
        self.addCleanup(svc.close)
        code = svc.publish("$CONTROL/chat/v1", cbor2.dumps(dict(cmds[0], rid=9)))
        self.attempt("service account on $CONTROL: 0x%02x" % code, code >= 0x80)
        code = svc.subscribe("chat/inbox/%s/phone" % v)
        self.attempt("service account reads an inbox: 0x%02x" % code, code >= 0x80)
        wait_until(lambda: False, 0.3)
        self.attempt("victim still connected", not dv.disconnected.is_set())
        rc, out, _ = self.broker.chatctl("device", "add", v, "evil")
        self.attempt("no device was added (chatctl device add now works: %d)" % rc, rc == 0)
        dp.send_dm(v, 1, body=b"still there")
        self.attempt("victim still a user", dv.wait_event("msg")["body"] == b"still there")

    def test_provisioner_refused_everything_else(self):
        """A provisioner service (an app backend's account) may add and remove
        devices and read the counters; every other admin command and every
        chat topic is refused it."""
        v, dv, p, dp = self.victim(keys=False)
        name = uniq("prov")
        rc, tok, err = self.broker.chatctl("service", "add", name, "--role", "provisioner")
        self.assertEqual(rc, 0, err)
        c = Client(self.broker, client_id=uniq("prov"), username=name, password=tok.strip(),
                   protocol=V5, decode=True).connect()
        self.addCleanup(c.close)
        self.assertLess(c.subscribe("$CONTROL/chat/v1/response"), 0x80)
        g = uniq("g")
        forbidden = [
            {"cmd": "user.remove", "user": v}, {"cmd": "device.rotate", "user": v, "device": "phone"},
            {"cmd": "device.list"}, {"cmd": "device.list", "user": v}, {"cmd": "user.list"},
            {"cmd": "service.add", "name": uniq("evil")},
            {"cmd": "service.add", "name": uniq("evil"), "role": "provisioner"},
            {"cmd": "service.list"}, {"cmd": "service.remove", "name": "keys"},
            {"cmd": "service.rotate", "name": "keys"}, {"cmd": "service.rotate", "name": name},
            {"cmd": "group.create", "gid": g, "owner": v}, {"cmd": "group.list"},
            {"cmd": "group.show", "gid": g}, {"cmd": "group.add", "gid": g, "members": [p]},
            {"cmd": "group.remove", "gid": g, "members": [v]},
            {"cmd": "group.promote", "gid": g, "user": p}, {"cmd": "group.delete", "gid": g},
            {"cmd": "backup", "dir": "/tmp/" + uniq("steal")},
        ]
        for i, cmd in enumerate(forbidden):
            c.publish("$CONTROL/chat/v1", cbor2.dumps(dict(cmd, rid=i + 1)))
            m = c.wait_message(lambda m, i=i: m[0] == "$CONTROL/chat/v1/response"
                               and m[1].get("rid") == i + 1)
            self.attempt("provisioner runs %s: %r" % (cmd["cmd"], m and m[1]),
                         m is not None and m[1]["ok"] is False and m[1]["code"] == "denied")
        for topic in ("chat/inbox/%s/phone" % v, "chat/keys/req/+/+", "chat/push/wake",
                      "chat/presence/" + v, "chat/keys/removed/+/+", "$CONTROL/chat/v1"):
            code = c.subscribe(topic)
            self.attempt("provisioner subscribes %s: 0x%02x" % (topic, code), code >= 0x80)
        for topic in ("chat/dm/" + v, "chat/keys/resp/%s/phone" % v, "chat/push/ack",
                      "chat/keys/status/%s/phone" % v, "chat/keys/stats"):
            code = c.publish(topic, cbor2.dumps({"x": 1}))
            self.attempt("provisioner publishes %s: 0x%02x" % (topic, code), code >= 0x80)
        wait_until(lambda: False, 0.3)
        self.attempt("victim still connected", not dv.disconnected.is_set())
        rc, out, _ = self.broker.chatctl("service", "list")
        self.attempt("no service was added by it", "evil" not in out)
        rc, out, _ = self.broker.chatctl("group", "list")
        self.attempt("no group was created by it", g not in out)
        dp.send_dm(v, 1, body=b"still there")
        self.attempt("victim still a user", dv.wait_event("msg")["body"] == b"still there")

    def test_rotated_device_token(self):
        u = uniq("rot")
        old = self.broker.add_device(u, "phone")
        d = Device(self.broker, u, "phone", old).connect()
        self.addCleanup(d.close)
        rc, new, err = self.broker.chatctl("device", "rotate", u, "phone")
        self.assertEqual(rc, 0, err)
        self.attempt("the connection with the rotated token is closed", d.disconnected.wait(5))
        for proto in (V311, V5):
            c = Device(self.broker, u, "phone", old, protocol=proto)
            rc = c.try_connect()
            if rc == 0:
                c.close()
            self.attempt("rotated-out token connects (v%d): %r" % (proto, rc), rc != 0)

    def test_revoked_device_token(self):
        u = uniq("rev")
        tok = self.broker.add_device(u, "phone")
        tok2 = self.broker.add_device(u, "tab")
        d = Device(self.broker, u, "phone", tok).connect()
        self.addCleanup(d.close)
        rc, _, err = self.broker.chatctl("device", "remove", u, "phone")
        self.assertEqual(rc, 0, err)
        self.attempt("the live connection of a revoked device is closed", d.disconnected.wait(5))
        for proto in (V311, V5):
            c = Device(self.broker, u, "phone", tok, protocol=proto)
            rc = c.try_connect()
            if rc == 0:
                c.close()
            self.attempt("revoked token connects (v%d): %r" % (proto, rc), rc != 0)
        rc, _, err = self.broker.chatctl("user", "remove", u)
        self.assertEqual(rc, 0, err)
        c = Device(self.broker, u, "tab", tok2)
        rc = c.try_connect()
        if rc == 0:
            c.close()
        self.attempt("token of a removed user connects: %r" % rc, rc != 0)

    def test_draining_one_time_keys(self):
        v, dv, p, dp = self.victim()
        a = uniq("drain")
        da = self.dev(a, "phone", protocol=V5)
        self.assertLess(da.subscribe("chat/keys/resp/%s/phone" % a), 0x80)
        handed = []
        for i in range(KS_BURST + 5):
            r = self.key_request(da, {"op": "bundle", "user": v})
            if r.get("ok"):
                handed += [e["opk"]["id"] for e in r["devices"] if "opk" in e]
            else:
                self.attempt("bundle %d past the burst of %d: %r" % (i + 1, KS_BURST, r.get("code")),
                             i >= KS_BURST and r.get("code") == "rate" and r.get("retry_after", 0) > 0)
        self.assertEqual(len(handed), KS_BURST)
        self.attempt("no one-time key handed out twice", len(set(handed)) == len(handed))
        r = self.key_request(dv, {"op": "count"})
        self.attempt("the pool lost only the burst: %r" % r, r.get("opks") == 20 - KS_BURST)

    # ---- malformed ids ----

    def test_bad_ids(self):
        long_u, long_d, long_g = "u" * 65, "d" * 33, "g" * 65
        bad_users = ["a+b", "a#b", "a/b", "a\0b", "", long_u, "a b", "$SYS", "é"]
        for u in bad_users:
            if "\0" in u:
                continue   # argv cannot carry NUL; the MQTT cases below do
            rc, _, _ = self.broker.chatctl("device", "add", u, "phone")
            self.attempt("chatctl device add %r" % u, rc != 0)
        for dev in ["x+y", "x#", "x/y", long_d, ""]:
            rc, _, _ = self.broker.chatctl("device", "add", uniq("ok"), dev)
            self.attempt("chatctl device add device %r" % dev, rc != 0)
        a = uniq("ids")
        da = self.dev(a, "phone", protocol=V5)
        for u in bad_users:
            if not u or any(ch in u for ch in "+#\0"):
                continue   # not valid in an MQTT topic name at all
            code = da.publish("chat/dm/%s" % u, cbor2.dumps({"cid": next(CIDS), "body": b"x"}))
            self.attempt("send to chat/dm/%r: 0x%02x" % (u, code), code >= 0x80)
        for g in ["g/x", long_g, "a b"]:
            code = da.publish("chat/group/%s" % g, cbor2.dumps({"cid": next(CIDS), "body": b"x"}))
            self.attempt("send to chat/group/%r: 0x%02x" % (g, code), code >= 0x80)
        da.events()
        for i, u in enumerate(bad_users):
            r = da.ctl("devices", 100 + i, user=u)
            self.attempt("ctl devices %r: %r" % (u, r.get("ok")), r.get("ok") is False)
        for i, g in enumerate(["g+", "g#", "g/x", "g\0x", long_g, ""]):
            r = da.ctl("group.create", 200 + i, gid=g, members=[])
            self.attempt("ctl group.create %r: %r" % (g, r.get("ok")), r.get("ok") is False)
        da.events()
        for i, conv in enumerate(["dm:%s:x+y" % a, "dm:%s\0:b" % a, "g:" + long_g, "dm:%s" % a, "x"]):
            da.receipt("read", conv, [1])
            err = da.wait_event("error")
            self.attempt("receipt on conv %r: %s" % (conv, err.get("code")), err.get("code") in ("conv", "field"))
        self.assertLess(da.subscribe("chat/keys/resp/%s/phone" % a), 0x80)
        for u in bad_users:
            r = self.key_request(da, {"op": "bundle", "user": u})
            self.attempt("key bundle for %r: %r" % (u, r.get("code")), r.get("ok") is False)
        for user, cid in [("a+b/phone", "a+b/phone"), ("a#/phone", "a#/phone"), ("a/b/c", "a/b/c"),
                          ("%s/%s" % (long_u, "p"), "%s/p" % long_u), ("%s/%s" % (a, long_d),) * 2,
                          ("a\0b/phone", "a\0b/phone")]:
            c = Client(self.broker, client_id=cid, username=user, password="x" * 20, protocol=V5)
            try:
                rc = c.try_connect()
            except ValueError:
                rc = "refused by the client library"
            if rc == 0:
                c.close()
            self.attempt("connect as %r: %r" % (user, rc), rc != 0)
        self.assert_serving()


    # ---- attachments (chat-media) ----

    def test_attachments(self):
        """Issue 32's refusals: an expired slot, an oversized upload, a
        forged or replayed URL, another user's blob, listing."""
        a, b, eve = uniq("a"), uniq("b"), uniq("eve")
        ma, mb = MediaDevice(self.dev(a, "d", protocol=V5)), MediaDevice(self.dev(b, "d", protocol=V5))
        me = MediaDevice(self.dev(eve, "d", protocol=V5))

        def call(method, url, body=None, headers=None):
            u = urllib.parse.urlsplit(url)
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            try:
                c.request(method, u.path + ("?" + u.query if u.query else ""), body=body,
                          headers=headers or {})
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()

        def q(url, **kw):
            u = urllib.parse.urlsplit(url)
            d = dict(urllib.parse.parse_qsl(u.query))
            d.update(kw)
            return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(d)))

        body = os.urandom(20000)
        stale = ma.slot(len(body), [b + "/d"])  # its URL is tried once expired, below
        # oversized: declared too large, or a body over the declared size
        big = ma.slot(100 * 2**20 + 1, [b + "/d"])
        self.attempt("slot over the size limit: %r" % big.get("code"), big.get("code") == "too_large")
        r = ma.slot(len(body), [b + "/d"])
        st, _ = call("PUT", r["put"], body + b"x")
        self.attempt("PUT over the declared size: %d" % st, st == 413)
        st, _ = call("PUT", r["put"], body[:-1])
        self.attempt("PUT under the declared size: %d" % st, st == 400)
        # forged: another signature, a later expiry, another blob's id
        sig = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r["put"]).query))["sig"]
        for what, url in [("sig", q(r["put"], sig=("A" if sig[0] != "A" else "B") + sig[1:])),
                          ("exp", q(r["put"], exp=str(int(time.time()) + 86400))),
                          ("no sig", r["put"].split("?")[0])]:
            st, _ = call("PUT", url, body)
            self.attempt("PUT with a forged %s: %d" % (what, st), st == 403)
        st, _ = call("PUT", r["put"], body)
        self.assertEqual(st, 201)
        st, _ = call("PUT", r["put"], os.urandom(len(body)))
        self.attempt("replayed PUT: %d" % st, st == 409)
        # another user's blob: no grant, and b's URL does not open for others
        for md in (me, ma):
            g = md.grant(r["id"])
            self.attempt("grant of another's blob to %s: %r" % (md.d.addr, g.get("code")),
                         g.get("code") == "not_found")
        g = mb.grant(r["id"])
        self.assertTrue(g["ok"], g)
        for what, url in [("dev=eve", q(g["url"], dev=eve + "/d")),
                          ("forged sig", q(g["url"], sig="A" * 43)),
                          ("later exp", q(g["url"], exp=str(int(time.time()) + 86400)))]:
            st, data = call("GET", url)
            self.attempt("GET with %s: %d" % (what, st), st == 403 and body not in data)
        other = ma.slot(5, [eve + "/d"])
        self.assertEqual(call("PUT", other["put"], b"hello")[0], 201)
        st, data = call("GET", g["url"].replace(r["id"], other["id"]))
        self.attempt("b's GET URL on eve's blob: %d" % st, st == 403 and data != b"hello")
        # listing, and paths outside /v1/blob/{id}
        for path in ["/", "/v1/blob/", "/v1/blob", "/v1/", "/v1/blob/..%2Fmeta",
                     "/v1/blob/" + r["id"] + "/..", "/../../etc/passwd"]:
            st, _ = call("GET", self.media.url + path)
            self.attempt("GET %s: %d" % (path, st), st == 404)
        st, _ = call("DELETE", self.media.url + "/v1/blob/" + r["id"])
        self.attempt("DELETE a blob: %d" % st, st == 405)
        # an expired slot's PUT URL, an expired GET URL (one wait for both)
        time.sleep(max(0, stale["expires"] + 1.1 - time.time()))
        st, _ = call("PUT", stale["put"], body)
        self.attempt("PUT on an expired slot URL: %d" % st, st == 403)
        time.sleep(max(0, g["expires"] + 1.1 - time.time()))
        st, _ = call("GET", g["url"])
        self.attempt("GET on an expired URL: %d" % st, st == 403)
        # the real recipient still gets it, once
        g = mb.grant(r["id"])
        self.assertEqual(call("GET", g["url"]), (200, body))
        wait_until(lambda: r["id"] not in self.media.blobs(), 3)
        st, _ = call("GET", g["url"])
        self.attempt("GET after the last download: %d" % st, st in (404, 410))


if __name__ == "__main__":
    main()
