# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Differential test: what an IoT client sees does not depend on the plugin
(issue 24; shared/PROTOCOL.md §3).

One scenario script of IoT clients (anonymous, no chat account) runs twice:
against mosquitto WITHOUT the plugin (`allow_anonymous true`), and against
mosquitto WITH the plugin configured the way a broker shared with open IoT
traffic is configured: `allow_anonymous true` + `plugin_opt_foreign_acl
allow`, every other plugin option at its default. Both runs use the same
mosquitto binary (CHAT_BROKER, so the `patched` variant compares the
broker-patches build with itself).

The scenario: wildcard filters (`#`, `+/+`, `+/C`, `/#`, `$share/g/#`,
`$CONTROL/#`), QoS 0/1/2 from an MQTT 3.1.1 and an MQTT 5 publisher,
overlapping subscriptions, retained messages set, received through `#` and
cleared from that `#` subscriber's flow (an empty retained publish for each
retained message it got), MQTT 5 retain handling, no_local,
retain_as_published, subscription identifiers, user properties and topic
aliases, wills (3.1.1, and 5 with properties and retain), and a persistent
session of each protocol with QoS 1/2 messages queued while it is offline.

In the plugin run chat traffic runs beside it: two devices exchange dms the
whole time (a thread), a device uploads keys to a key server (a retained key
status), an admin command (chatctl device add) creates a device that comes
and goes (presence, its will), all while the IoT `#` subscribers are
connected or offline with a persistent session. None of it may reach an IoT
client: no topic under chat/ or $CONTROL/chat/.

Compared per client, only what MQTT fixes:
- the SUBACK codes, CONNACK session-present flags and MQTT 5 PUBACK/PUBREC
  reason codes;
- the multiset of messages received (topic, payload, QoS, retain flag, MQTT
  5 properties: user properties, subscription identifiers, …);
- the order of messages from one publisher on one topic at one QoS > 0 for
  one subscription (MQTT's ordered topic; across publishers, topics or
  subscriptions the order is not fixed and is not compared);
- a shared subscription group as one multiset: which member gets which
  message is the broker's choice (and chat messages routed to `$share/g/#`,
  refused at delivery, still turn mosquitto's round robin).
"""

import os
import socket
import threading
import time
import unittest

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from chatlib import V311, V5, Broker, Device, Identity, KeyServer, _Client, main, wait_until

# MQTT 5 properties that travel with a message unchanged (message expiry
# counts down, so it is left out).
KEPT_PROPS = ("UserProperty", "SubscriptionIdentifier", "ContentType", "ResponseTopic",
              "CorrelationData", "PayloadFormatIndicator")
CHAT_ROOTS = ("chat/", "$CONTROL/chat/")


def props(kind, **kw):
    p = Properties(kind)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


class Iot:
    """One IoT client (no username): records every message with what MQTT
    lets a subscriber observe, and the codes the broker answered."""

    def __init__(self, run, name, proto=V311, client_id=None, clean=True, will=None,
                 session_expiry=None):
        self.run, self.name, self.proto = run, name, proto
        cid = client_id or name
        if proto == V5:
            self.c = _Client(client_id=cid, protocol=V5)
        else:
            self.c = _Client(client_id=cid, clean_session=clean, protocol=V311)
        self.clean, self.session_expiry = clean, session_expiry
        if will:
            self.c.will_set(**will)
        self.cond = threading.Condition()
        self.got = []
        self.connack = None
        self.subacks = {}
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe

    def _on_connect(self, c, u, flags, rc, p=None):
        with self.cond:
            self.connack = (int(getattr(rc, "value", rc)), bool(flags.get("session present")))
            self.cond.notify_all()

    def _on_subscribe(self, c, u, mid, granted, p=None):
        with self.cond:
            self.subacks[mid] = [int(getattr(g, "value", g)) for g in granted]
            self.cond.notify_all()

    def _on_message(self, c, u, m):
        extra = ()
        if self.proto == V5 and m.properties is not None:
            extra = tuple((k, repr(getattr(m.properties, k))) for k in KEPT_PROPS
                          if hasattr(m.properties, k))
        with self.cond:
            self.got.append((m.topic, bytes(m.payload), m.qos, int(m.retain), extra))
            self.cond.notify_all()

    def connect(self):
        kw = {}
        if self.proto == V5:
            kw["clean_start"] = self.clean
            if self.session_expiry is not None:
                kw["properties"] = props(PacketTypes.CONNECT,
                                         SessionExpiryInterval=self.session_expiry)
        self.c.connect("127.0.0.1", self.run.port, keepalive=30, **kw)
        self.c.loop_start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.connack is not None, 5):
                raise AssertionError("%s: no CONNACK" % self.name)
        self.run.note(self.name, "connack", self.connack)
        if self.connack[0] != 0:
            raise AssertionError("%s: CONNACK %r" % (self.name, self.connack))
        return self

    def subscribe(self, topic, qos, **v5):
        """v5 keys: no_local, rap, rh, sub_id."""
        if self.proto == V5:
            opts = SubscribeOptions(qos=qos, noLocal=v5.get("no_local", False),
                                    retainAsPublished=v5.get("rap", False),
                                    retainHandling=v5.get("rh", 0))
            p = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=v5["sub_id"]) \
                if "sub_id" in v5 else None
            rc, mid = self.c.subscribe(topic, options=opts, properties=p)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        with self.cond:
            if not self.cond.wait_for(lambda: mid in self.subacks, 5):
                raise AssertionError("%s: no SUBACK for %s" % (self.name, topic))
            codes = self.subacks.pop(mid)
        self.run.note(self.name, "suback " + topic, codes)
        return codes

    def publish(self, topic, payload, qos=0, retain=False, p=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=p)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, (topic, info.rc)
        if qos:
            info.wait_for_publish(5)
            if not info.is_published():
                raise AssertionError("%s: publish to %r not completed" % (self.name, topic))
            with self.c.ack_cond:
                code = self.c.ack_codes.pop(info.mid, None)
            if self.proto == V5:
                self.run.note(self.name, "ack %s %r" % (topic, payload), code)

    def received(self):
        with self.cond:
            return list(self.got)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (the will fires)."""
        sock = self.c.socket()
        self.c.loop_stop()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class Run:
    """One run of the scenario on one broker. hooks(point) lets the plugin
    run put chat traffic beside the IoT traffic at fixed points."""

    def __init__(self, broker, hook=lambda point: None):
        self.broker, self.port, self.hook = broker, broker.port, hook
        self.clients = {}   # record name -> Iot (a resumed session is a new record)
        self.meta = []      # (client, what, value) in script order
        self.cleared = []

    def note(self, name, what, value):
        self.meta.append((name, what, value))

    def client(self, name, proto=V311, **kw):
        c = Iot(self, name, proto, **kw)
        self.clients[name] = c
        return c

    def settle(self, quiet=0.3, limit=5.0):
        """Waits until no client has received anything for `quiet` seconds
        (chat topics, should any leak, do not count: the chat side never
        stops, and the leak is reported by its own test)."""
        def total():
            return sum(1 for c in self.clients.values() for m in c.received()
                       if not m[0].startswith(CHAT_ROOTS))
        deadline = time.monotonic() + limit
        last, since = total(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            n = total()
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise AssertionError("traffic did not settle within %.0f s" % limit)

    # ---- the scenario ----
    def play(self):
        self.hook("start")
        subs = [
            ("hash3", V311, [("#", 2, {})]),
            ("hash5", V5, [("#", 1, {"rap": True})]),
            ("pp", V311, [("+/+", 1, {})]),
            ("plusC", V5, [("+/C", 2, {})]),
            ("slash", V311, [("/#", 1, {})]),
            ("shareA", V5, [("$share/g/#", 1, {})]),
            ("shareB", V5, [("$share/g/#", 1, {})]),
            ("share3a", V311, [("$share/g3/+/+", 2, {})]),
            ("share3b", V311, [("$share/g3/+/+", 2, {})]),
            ("overlap5", V5, [("a/#", 0, {"sub_id": 3}), ("a/+", 2, {"sub_id": 7}),
                              ("#", 1, {"sub_id": 9})]),
            ("overlap3", V311, [("a/#", 1, {}), ("a/+", 2, {}), ("+/C", 0, {})]),
            ("control", V311, [("$CONTROL/#", 1, {}), ("$CONTROL/+/v1", 1, {})]),
        ]
        live = []
        for name, proto, filters in subs:
            c = self.client(name, proto).connect()
            for f, q, o in filters:
                c.subscribe(f, q, **o)
            live.append(c)
        p3 = self.client("persist3", V311, client_id="persist3", clean=False).connect()
        p3.subscribe("#", 2)
        p5 = self.client("persist5", V5, client_id="persist5", clean=False,
                         session_expiry=300).connect()
        p5.subscribe("+/+", 1, sub_id=5)
        p5.subscribe("a/b/#", 2)

        pub3 = self.client("pub3", V311).connect()
        pub5 = self.client("pub5", V5).connect()
        pub5.subscribe("#", 2, no_local=True)   # everyone's messages but its own

        # ---- live traffic: every QoS from both protocols
        topics = ["a/b", "a/C", "sensors/C", "/x/y", "/C", "x", "a/b/c/d/e", "home/kitchen/temp",
                  "chatter/C", "Chat/inbox/u/d", "x/chat/dm/u", "chat2", "$CONTROL/iot/x"]
        n = 0
        for qos in (0, 1, 2):
            for t in topics:
                n += 1
                pub3.publish(t, b"pub3|%d" % n, qos)
                pub5.publish(t, b"pub5|%d" % n, qos,
                             p=props(PacketTypes.PUBLISH, UserProperty=[("n", str(n)), ("src", "pub5")],
                                     ContentType="text/plain", ResponseTopic="reply/" + t,
                                     CorrelationData=b"c%d" % n))
        self.hook("live")
        # topic aliases: the first publish sets alias 1, the next ones use it alone
        pub5.publish("alias/C", b"pub5|alias-1", 1, p=props(PacketTypes.PUBLISH, TopicAlias=1))
        for i in range(2, 5):
            pub5.publish("", b"pub5|alias-%d" % i, i % 3, p=props(PacketTypes.PUBLISH, TopicAlias=1))
        pub3.publish("r/live", b"pub3|retained-live", 1, retain=True)
        self.settle()

        # ---- retained messages
        pub3.publish("r/1", b"pub3|r1", 0, retain=True)
        pub3.publish("r/2/x", b"pub3|r2", 1, retain=True)
        pub3.publish("/r3", b"pub3|r3", 2, retain=True)
        pub5.publish("r/C", b"pub5|rC", 1, retain=True,
                     p=props(PacketTypes.PUBLISH, UserProperty=[("kind", "retained")]))
        self.settle()
        rh = self.client("rh", V5).connect()
        rh.subscribe("r/#", 1, rh=2)      # never the retained ones
        rh.subscribe("r/+", 2, rh=1)      # new subscription: the retained ones
        rh.subscribe("r/+", 2, rh=1)      # not new: none
        rh.subscribe("/#", 0, rh=0)
        self.hook("retained")
        late = self.client("late", V311).connect()
        late.subscribe("#", 2)
        late.subscribe("+/C", 1)
        self.settle()

        # ---- wills
        will3 = self.client("will3", V311, will={"topic": "dev/will3/status",
                                                 "payload": b"will3|gone", "qos": 1}).connect()
        will5 = self.client("will5", V5, will={
            "topic": "dev/will5/status", "payload": b"will5|gone", "qos": 2, "retain": True,
            "properties": props(PacketTypes.WILLMESSAGE, UserProperty=[("why", "lost")],
                                ContentType="text/plain")}).connect()
        polite = self.client("polite", V311, will={"topic": "dev/polite/status",
                                                   "payload": b"polite|gone", "qos": 1}).connect()
        polite.close()
        will3.drop()
        will5.drop()
        self.settle()

        # ---- persistent sessions: messages queued while they are offline
        p3.close()
        p5.close()
        time.sleep(0.1)
        self.hook("offline")
        for qos in (0, 1, 2):
            for t in ("a/b", "off/C", "a/b/c", "deep/x/y/z"):
                n += 1
                pub3.publish(t, b"pub3|%d" % n, qos)
                pub5.publish(t, b"pub5|%d" % n, qos,
                             p=props(PacketTypes.PUBLISH, UserProperty=[("n", str(n))]))
        self.settle()
        self.client("persist3+", V311, client_id="persist3", clean=False).connect()
        self.client("persist5+", V5, client_id="persist5", clean=False,
                    session_expiry=300).connect()
        self.settle()

        # ---- clear every retained message a "#" subscriber is given
        clearer = self.client("clearer", V5).connect()
        clearer.subscribe("#", 1)
        clearer.subscribe("/#", 1)
        self.settle()
        for topic in sorted({m[0] for m in clearer.received() if m[3]}):
            self.cleared.append(topic)
            clearer.publish(topic, b"", 1, retain=True)
        self.settle()
        late2 = self.client("late2", V311).connect()
        late2.subscribe("#", 2)
        late2.subscribe("/#", 2)
        self.hook("end")
        self.settle()
        for c in self.clients.values():
            try:
                c.close()
            except Exception:
                pass
        return self


class ChatBeside:
    """The plugin run's chat side: devices, a key server and an admin, busy
    at the scenario's hook points and in a thread throughout."""

    def __init__(self, broker):
        self.broker = broker
        self.devices = []
        self.ks = None
        self.dms = 0
        self.keys_ok = False
        self.presence_seen = False
        self.error = None
        self.stop = threading.Event()
        self.thread = None

    def dev(self, user, d="phone"):
        x = self.broker.device(user, d)
        self.devices.append(x)
        return x

    def __call__(self, point):
        getattr(self, "at_" + point)()

    def at_start(self):
        self.ks = KeyServer.for_broker(self.broker)
        self.ks.wait_serving()
        self.alice, self.bob = self.dev("alice"), self.dev("bob")
        self.kate = self.dev("kate")
        self.thread = threading.Thread(target=self.chatter, daemon=True)
        self.thread.start()
        wait_until(lambda: self.dms >= 2 or self.error, 5)

    def chatter(self):
        i = 0
        try:
            while not self.stop.is_set() and i < 2000:
                i += 1
                src, dst = (self.alice, self.bob) if i % 2 else (self.bob, self.alice)
                src.send_dm(dst.user, i, body=b"secret %d" % i)
                dst.wait_event("msg", body=b"secret %d" % i)
                self.dms += 1
                time.sleep(0.01)
        except Exception as e:   # reported by the test
            self.error = e

    def keys(self, rid, req):
        k = self.kate
        for kind in ("resp", "status"):
            assert k.subscribe("chat/keys/%s/kate/phone" % kind) < 0x80
        k.publish("chat/keys/req/kate/phone", cbor2.dumps(dict(req, rid=rid)))
        m = k.wait_message(lambda m: m[0] == "chat/keys/resp/kate/phone" and m[1].get("rid") == rid)
        return m is not None and m[1].get("ok") is True

    def at_live(self):
        self.keys_ok = self.keys(1, Identity().upload_req(5))   # leaves a retained key status

    def at_retained(self):
        # a presence document (retained, routed) for a user who shares a conversation
        self.bob.subscribe("chat/presence/alice")
        self.presence_seen = self.bob.wait_message(
            lambda m: m[0] == "chat/presence/alice", 5) is not None

    def at_offline(self):
        rc, out, err = self.broker.chatctl("device", "add", "carol", "phone")
        assert rc == 0, err
        carol = Device(self.broker, "carol", "phone", out.strip()).connect()
        carol.send_dm("alice", 1, body=b"hello from carol")
        carol.drop()     # its will: chat/presence/carol/phone
        self.keys_ok = self.keys(2, {"op": "count"}) and self.keys_ok

    def at_end(self):
        self.alice.typing("dm:alice:bob")

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join(10)
        for d in self.devices:
            d.close()
        if self.ks:
            self.ks.stop()
            self.ks.cleanup()


# ---------------------------------------------------------------- comparison

def payload_source(payload):
    return payload.split(b"|", 1)[0]


def streams(got):
    """(publisher, topic, qos, properties) -> payloads in arrival order,
    repeats dropped (overlapping subscriptions deliver copies), QoS > 0."""
    out = {}
    for topic, payload, qos, retain, extra in got:
        if qos == 0:
            continue
        key = (payload_source(payload), topic, qos, tuple(e for e in extra if e[0] == "SubscriptionIdentifier"))
        seq = out.setdefault(key, [])
        if payload not in seq:
            seq.append(payload)
    return out


SHARE_GROUPS = {"shareA": "$share/g", "shareB": "$share/g", "share3a": "$share/g3",
                "share3b": "$share/g3"}


def per_subscriber(run):
    """Record name -> received messages; the members of a shared group as one."""
    out = {}
    for name, c in run.clients.items():
        out.setdefault(SHARE_GROUPS.get(name, name), []).extend(c.received())
    return out


class IotDiffTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.brokers = []
        stock = Broker(with_plugin=False, extra_lines=["allow_anonymous true"])
        cls.brokers.append(stock)
        open(stock.token_file, "w").close()   # Broker.start() waits for this file
        stock.start()
        cls.stock_run = Run(stock).play()
        # How a shared IoT broker is configured (docs/OPERATIONS.md); the
        # plugin's defaults otherwise.
        chat = Broker(options={"foreign_acl": "allow"}, extra_lines=["allow_anonymous true"])
        cls.brokers.append(chat)
        chat.start()
        cls.chat_side = ChatBeside(chat)
        try:
            cls.chat_run = Run(chat, cls.chat_side).play()
        finally:
            cls.chat_side.close()

    @classmethod
    def tearDownClass(cls):
        for b in cls.brokers:
            b.cleanup()

    def test_chat_traffic_ran_beside(self):
        side = self.chat_side
        self.assertIsNone(side.error, "chat traffic failed: %r" % side.error)
        self.assertGreaterEqual(side.dms, 10, "too few dms beside the scenario")
        self.assertTrue(side.keys_ok, "key server requests failed")
        self.assertTrue(side.presence_seen, "no presence document")

    def test_no_chat_topic_reached_an_iot_client(self):
        for name, got in per_subscriber(self.chat_run).items():
            leaked = [m[0] for m in got if m[0].startswith(CHAT_ROOTS) or m[0] in ("chat",)]
            self.assertEqual(leaked, [], "%s received chat topics" % name)
        self.assertFalse([t for t in self.chat_run.cleared if t.startswith(CHAT_ROOTS)])

    def test_scenario_is_not_empty(self):
        got = per_subscriber(self.stock_run)
        self.assertGreater(len(got["hash3"]), 80)
        self.assertGreater(len(got["persist3+"]), 10, "nothing was queued for the offline session")
        self.assertTrue(any(m[3] for m in got["late"]), "the late subscriber got no retained message")
        self.assertGreaterEqual(len(self.stock_run.cleared), 5)
        self.assertFalse(any(m[3] for m in got["late2"]), "retained messages were not cleared")
        self.assertTrue(any(m[0] == "dev/will5/status" for m in got["hash3"]))
        self.assertFalse(any(m[0] == "dev/polite/status" for m in got["hash3"]))

    def test_same_codes(self):
        """SUBACKs (every filter granted at the QoS asked), CONNACKs with the
        session-present flag, MQTT 5 PUBACK/PUBREC reason codes."""
        self.assertEqual(self.chat_run.meta, self.stock_run.meta)
        refused = [m for m in self.stock_run.meta if m[1].startswith("suback") and
                   any(c >= 0x80 for c in m[2])]
        self.assertEqual(refused, [])

    def test_same_retained_cleared(self):
        self.assertEqual(self.chat_run.cleared, self.stock_run.cleared)

    def test_same_messages(self):
        stock, chat = per_subscriber(self.stock_run), per_subscriber(self.chat_run)
        self.assertEqual(sorted(chat), sorted(stock))
        for name in sorted(stock):
            s, c = sorted(stock[name]), sorted(chat[name])
            if s != c:
                missing = [m for m in s if m not in c]
                extra = [m for m in c if m not in s]
                self.fail("%s: %d vs %d messages; only without the plugin: %r; only with it: %r"
                          % (name, len(s), len(c), missing[:5], extra[:5]))

    def test_same_order_where_mqtt_fixes_it(self):
        for name, c in self.stock_run.clients.items():
            if name in SHARE_GROUPS:
                continue
            s_streams = streams(c.received())
            c_streams = streams(self.chat_run.clients[name].received())
            self.assertEqual(sorted(c_streams), sorted(s_streams), name)
            for key, seq in s_streams.items():
                self.assertEqual(c_streams[key], seq, "%s %r" % (name, key))


if __name__ == "__main__":
    main()
