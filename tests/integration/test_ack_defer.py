#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""broker-patches/0004: deferred PUBACK/PUBREC, against the patched broker.

Not the chat plugin: a test plugin (ack_defer_plugin.c, built beside it)
defers the acknowledgement of every QoS 1/2 publish on `defer/<ms>/…` and
`deny/<ms>/…`, and completes it from a worker thread after <ms> through
mosquitto_loop_wakeup() and MOSQ_EVT_LOOP_WAKEUP. The clients are written by
hand (raw MQTT packets), so the test sees the exact packets, their order and
their timing, and can resend a publish with DUP as a reconnecting client does.

Checked: a PUBACK comes only after the completion, and soon after it (the
wakeup, not the loop's 100 ms timeout); a QoS 1 message reaches subscribers
only then; the PUBACKs/PUBRECs of one client keep the order of its publishes
with deferred and immediate ones mixed; QoS 2 with PUBREC deferred, then
PUBREL/PUBCOMP; a refusal's reason code (MQTT 5) or plain ack (3.1.1); a
client that disconnects with acks held gets none, its late completions are
no-ops, and its DUP resend after reconnecting is answered; the broker stops
cleanly with acks held. On stock mosquitto the test skips (CHAT_EXPECT_PATCHED:
fails).
"""

import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from chatlib import (BUILD_DIR, EXPECT_PATCHED, MOSQUITTO, SANITIZER_ENV, SANITIZER_RE, free_port,
                     wait_until)

TEST_PLUGIN = os.path.join(BUILD_DIR, "lib", "ack_defer_plugin.so")
NOT_FOUND = 6  # MOSQ_ERR_NOT_FOUND

CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK = 2, 3, 4, 5, 6, 7, 8, 9


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


class Raw:
    """A hand-written MQTT 3.1.1 / 5 client: one packet at a time."""

    def __init__(self, port, client_id, proto=4, clean=True):
        self.proto = proto
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        flags = 0x02 if clean else 0
        body = _str("MQTT") + bytes([proto, flags]) + struct.pack("!H", 60)
        if proto == 5:
            body += b"\x00"
        body += _str(client_id)
        self.send(0x10, body)
        ptype, _, data = self.read()
        assert ptype == CONNACK and data[1] == 0, (ptype, data)

    def send(self, first, body):
        self.sock.sendall(bytes([first]) + _varint(len(body)) + body)

    def publish(self, topic, payload, qos, mid, dup=False):
        body = _str(topic) + (struct.pack("!H", mid) if qos else b"")
        if self.proto == 5:
            body += b"\x00"
        self.send(0x30 | (0x08 if dup else 0) | (qos << 1), body + payload)

    def pubrel(self, mid):
        self.send(0x62, struct.pack("!H", mid))

    def subscribe(self, topic, qos, mid=1):
        body = struct.pack("!H", mid) + (b"\x00" if self.proto == 5 else b"") + _str(topic) + bytes([qos])
        self.send(0x82, body)
        ptype, _, data = self.read()
        assert ptype == SUBACK, ptype

    def read(self, timeout=5.0):
        """(type, flags, body), or None after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7f) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n:
                    first, body = self.buf[0], self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return first >> 4, first & 0x0f, body
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise ConnectionError("closed by the broker")
            self.buf += data

    def ack(self, timeout=5.0):
        """The next packet, which must be an acknowledgement: (type, mid,
        reason or None when the packet has none, monotonic time)."""
        p = self.read(timeout)
        if p is None:
            return None
        ptype, _, body = p
        assert ptype in (PUBACK, PUBREC, PUBCOMP), p
        mid = struct.unpack("!H", body[:2])[0]
        return ptype, mid, (body[2] if len(body) > 2 else None), time.monotonic()

    def message(self, timeout=5.0):
        """The next PUBLISH: (topic, payload, monotonic time); QoS 1 acked."""
        p = self.read(timeout)
        if p is None:
            return None
        ptype, flags, body = p
        assert ptype == PUBLISH, p
        tl = struct.unpack("!H", body[:2])[0]
        topic, pos = body[2:2 + tl].decode(), 2 + tl
        qos = (flags >> 1) & 3
        if qos:
            mid = struct.unpack("!H", body[pos:pos + 2])[0]
            pos += 2
            if qos == 1:
                self.send(0x40, struct.pack("!H", mid))
        if self.proto == 5:
            plen = body[pos]  # our tests' properties are short
            pos += 1 + plen
        return topic, body[pos:], time.monotonic()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class AckDeferTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chat-ackdefer-")
        cls.log = os.path.join(cls.tmp, "mosquitto.log")
        cls.port = free_port()
        conf = os.path.join(cls.tmp, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % cls.port, "allow_anonymous true",
                 "plugin %s" % TEST_PLUGIN, "log_dest file %s" % cls.log, "log_type all"]
        if os.geteuid() == 0:
            lines.append("user root")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        # In a sanitizer build the test plugin needs the sanitizer runtimes
        # preloaded into an uninstrumented broker, as chatlib's Broker does.
        cls.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(cls.tmp, "stderr"), "w"),
                                    env=dict(os.environ, **SANITIZER_ENV))
        ok = wait_until(lambda: "ack-defer: deferred acks" in cls.log_text()
                        and "Opening ipv4 listen socket" in cls.log_text(), 10)
        if not ok or cls.proc.poll() is not None:
            cls.proc.kill()
            raise RuntimeError("broker did not start:\n" + cls.log_text())
        cls.patched = "ack-defer: deferred acks available" in cls.log_text()
        time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        rc = cls.proc.wait(20)
        with open(os.path.join(cls.tmp, "stderr"), errors="replace") as f:
            err = f.read()
        # a broker built with -fsanitize (see docs/BROKER-PATCHES.md) reports here
        assert not SANITIZER_RE.search(err), err[-6000:]
        if cls.patched:
            # stopped with acks held (test_held_at_shutdown): a clean exit
            assert rc == 0, "broker exit status %s\n%s" % (rc, cls.log_text()[-3000:])

    @classmethod
    def log_text(cls):
        try:
            with open(cls.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def setUp(self):
        if not self.patched:
            if EXPECT_PATCHED:
                self.fail("CHAT_EXPECT_PATCHED: %s has no deferred acks" % MOSQUITTO)
            self.skipTest("needs the broker-patches build (CHAT_BROKER)")
        self.assertIsNone(self.proc.poll(), "broker died\n" + self.log_text()[-3000:])
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.assertIsNone(self.proc.poll(), "broker died\n" + self.log_text()[-3000:])

    def raw(self, cid, proto=4, clean=True):
        c = Raw(self.port, cid, proto, clean)
        self.clients.append(c)
        return c

    # ---- QoS 1 ----

    def test_puback_after_completion_and_routing_then(self):
        sub = self.raw("sub1")
        sub.subscribe("defer/300/t1", 1)
        c = self.raw("pub1")
        t0 = time.monotonic()
        c.publish("defer/300/t1", b"hello", 1, 1)
        self.assertIsNone(c.ack(0.2), "PUBACK before the completion")
        ptype, mid, _, t = c.ack(2)
        self.assertEqual((ptype, mid), (PUBACK, 1))
        self.assertGreaterEqual(t - t0, 0.29)
        topic, payload, tm = sub.message(2)
        self.assertEqual(payload, b"hello")
        self.assertGreaterEqual(tm - t0, 0.29, "routed before the completion")

    def test_wakeup_is_prompt(self):
        # Completed by a worker thread; without the wakeup the broker would
        # see it at its next pass, up to 100 ms later. One at a time.
        c = self.raw("prompt")
        late = []
        for i in range(10):
            t0 = time.monotonic()
            c.publish("defer/20/p", b"x", 1, i + 1)
            ptype, mid, _, t = c.ack(2)
            self.assertEqual((ptype, mid), (PUBACK, i + 1))
            late.append(t - t0 - 0.020)
        late.sort()
        self.assertLess(late[len(late) // 2], 0.030, late)

    def test_order_kept_with_deferred_and_immediate_mixed(self):
        sub = self.raw("sub2")
        sub.subscribe("+/+/o", 1)
        sub.subscribe("now/o", 1, mid=2)
        c = self.raw("pub2")
        t0 = time.monotonic()
        c.publish("defer/300/o", b"1", 1, 1)
        c.publish("now/o", b"2", 1, 2)
        c.publish("defer/50/o", b"3", 1, 3)
        c.publish("now/o", b"4", 1, 4)
        acks = [c.ack(2) for _ in range(4)]
        self.assertEqual([a[1] for a in acks], [1, 2, 3, 4])
        self.assertGreaterEqual(acks[0][3] - t0, 0.29)
        self.assertEqual([sub.message(2)[1] for _ in range(4)], [b"1", b"2", b"3", b"4"])
        self.assertIsNone(c.ack(0.1))

    # ---- QoS 2 ----

    def test_qos2_pubrec_deferred_then_pubrel_pubcomp(self):
        sub = self.raw("sub3")
        sub.subscribe("defer/200/q2", 2)
        c = self.raw("pub3", proto=5)
        t0 = time.monotonic()
        c.publish("defer/200/q2", b"two", 2, 10)
        c.publish("now/q2", b"x", 1, 11)
        self.assertIsNone(c.ack(0.15))
        ptype, mid, reason, t = c.ack(2)
        self.assertEqual((ptype, mid), (PUBREC, 10))
        self.assertIn(reason, (None, 0))
        self.assertGreaterEqual(t - t0, 0.19)
        self.assertEqual(c.ack(2)[:2], (PUBACK, 11))  # behind the held PUBREC
        self.assertIsNone(sub.read(0.1), "routed before PUBREL")
        c.pubrel(10)
        self.assertEqual(c.ack(2)[:2], (PUBCOMP, 10))
        p = sub.read(2)
        self.assertEqual(p[0], PUBLISH)
        self.assertIn(b"two", p[2])

    # ---- refusals ----

    def test_refusal_v5_reason_code(self):
        sub = self.raw("sub4")
        sub.subscribe("deny/#", 1)
        c = self.raw("pub4", proto=5)
        c.publish("deny/50/r", b"no", 1, 1)
        self.assertEqual(c.ack(2)[:3], (PUBACK, 1, 0x87))
        c.publish("deny/50/r", b"no", 2, 2)
        self.assertEqual(c.ack(2)[:3], (PUBREC, 2, 0x87))
        self.assertIsNone(sub.read(0.2), "a refused message was routed")

    def test_refusal_v311_plain_ack(self):
        sub = self.raw("sub5")
        sub.subscribe("deny/#", 1)
        c = self.raw("pub5", proto=4)
        c.publish("deny/50/r", b"no", 1, 1)
        self.assertEqual(c.ack(2)[:3], (PUBACK, 1, None))
        self.assertIsNone(sub.read(0.2), "a refused message was routed")

    # ---- disconnect with acks held ----

    def test_disconnect_with_held_acks_then_dup_resend(self):
        c = self.raw("dupc", clean=False)
        c.publish("defer/300/d", b"q1", 1, 5)
        c.publish("defer/300/d", b"q2", 2, 6)
        time.sleep(0.05)
        c.close()  # no PUBACK, no PUBREC: gone with both held
        time.sleep(0.05)
        c = self.raw("dupc", clean=False)
        t0 = time.monotonic()
        c.publish("defer/700/d", b"q1", 1, 5, dup=True)
        c.publish("defer/700/d", b"q2", 2, 6, dup=True)
        # the first connection's completions (~0.2 s from now) must not
        # answer the second's publishes with the same packet ids
        self.assertIsNone(c.ack(0.5), "an ack for the old connection's completion")
        self.assertEqual(c.ack(2)[:2], (PUBACK, 5))
        ptype, mid, _, t = c.ack(2)
        self.assertEqual((ptype, mid), (PUBREC, 6))
        self.assertGreaterEqual(t - t0, 0.69)
        c.pubrel(6)
        self.assertEqual(c.ack(2)[:2], (PUBCOMP, 6))
        done = re.findall(r"ack-defer: complete c\d+ m[56] -> (-?\d+)", self.log_text())
        self.assertEqual(sorted(done), sorted(["0", "0", str(NOT_FOUND), str(NOT_FOUND)]), done)

    def test_kill_with_many_held(self):
        for round_ in range(3):
            c = self.raw("many%d" % round_)
            for i in range(1, 21):
                c.publish("defer/%d/m" % (30 + i * 5), b"m%d" % i, 1 + (i % 2), i)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        time.sleep(0.3)
        # still serving
        c = self.raw("after")
        c.publish("defer/10/a", b"a", 1, 1)
        self.assertEqual(c.ack(2)[:2], (PUBACK, 1))

    def test_held_at_shutdown(self):
        # Still held (and the client connected) when tearDownClass stops the
        # broker: it frees them and exits 0.
        c = Raw(self.port, "held-at-exit", 4, True)
        type(self).kept = c
        c.publish("defer/60000/z", b"z", 1, 1)
        c.publish("defer/60000/z", b"z", 2, 2)
        self.assertIsNone(c.ack(0.1))


if __name__ == "__main__":
    if not os.path.exists(TEST_PLUGIN):
        sys.stderr.write("test plugin not built: %s\n" % TEST_PLUGIN)
    unittest.main(verbosity=2, warnings="ignore")
