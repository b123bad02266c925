# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Operations: counters that move with traffic ($SYS/broker/chat/… and
chatctl stats, also --prometheus) and backup -> restore -> sync with a live
broker (chatctl backup DIR; a broker on DIR serves every message)."""

import os
import re
import shutil
import stat
import tempfile

from chatlib import (Broker, ChatTestCase, Client, Device, conv_of, main, uniq,
                     wait_until)


def stats(broker, *extra):
    rc, out, err = broker.chatctl("stats", *extra)
    if rc != 0:
        raise AssertionError("chatctl stats failed: %s" % err)
    return out


def counters(broker):
    return {k: int(v) for k, v in (l.split() for l in stats(broker).splitlines())}


class StatsTest(ChatTestCase):
    # counters published every second (default 10) so the test need not wait;
    # an open IoT side (foreign_acl allow, anonymous) for the $SYS reader; a
    # queue of 5 so the quota counter can be reached
    broker_options = {"stats_interval": "1", "foreign_acl": "allow", "max_queue": "5"}
    broker_lines = ("allow_anonymous true",)

    def test_sys_counters_move_with_traffic(self):
        watch = self.client(client_id=uniq("mon"))
        watch.connect()
        watch.subscribe("$SYS/broker/chat/#", 0)
        values = {}

        def latest(name, pred):
            def check():
                for m in watch.drain():
                    values[m.topic.rsplit("/", 1)[1]] = int(m.payload)
                return name in values and pred(values[name])
            return wait_until(check, timeout=8)

        self.assertTrue(latest("devices_online", lambda v: v >= 0))
        # The counters come as separate publishes: one drain may hold only some.
        for t in ("messages_in", "store_sst_bytes", "refused_quota", "queue_entries"):
            self.assertTrue(latest(t, lambda v: v >= 0), (t, values))
        stored0 = counters(self.broker)["messages_stored"]
        self.assertTrue(latest("messages_stored", lambda v: v == stored0), values)
        a, b = uniq("st"), uniq("st")
        da = self.dev(a, "d")
        self.broker.add_device(b, "d")
        self.assertTrue(latest("devices_online", lambda v: v >= 1))
        for i in range(3):
            da.send_dm(b + "x", i + 1, body=b"to nobody")  # unknown peer: refused
        for i in range(7):
            da.send_dm(b, 100 + i, body=b"hi %d" % i)       # b offline: queued, 5 fit
        self.assertTrue(latest("messages_stored", lambda v: v == stored0 + 5), values)
        self.assertTrue(latest("refused_quota", lambda v: v >= 2), values)
        self.assertTrue(latest("refused_peer", lambda v: v >= 3), values)
        self.assertTrue(latest("queue_entries", lambda v: v >= 5), values)

    def test_chatctl_stats_and_prometheus(self):
        before = counters(self.broker)
        a, b = uniq("sp"), uniq("sp")
        da, db = self.dev(a, "d"), self.dev(b, "d")
        da.send_dm(b, 1, body=b"x")
        ev = db.wait_event("msg")
        db.receipt("delivered", ev["conv"], [ev["seq"]])
        da.wait_event("receipt")
        after = counters(self.broker)
        self.assertEqual(after["messages_stored"], before["messages_stored"] + 1)
        self.assertGreaterEqual(after["messages_in"], before["messages_in"] + 1)
        self.assertGreaterEqual(after["receipts_in"], before["receipts_in"] + 1)
        self.assertGreaterEqual(after["devices_online"], 2)
        prom = stats(self.broker, "--prometheus")
        self.assertIn("# TYPE mosquitto_chat_messages_stored_total counter\n", prom)
        self.assertIn("# TYPE mosquitto_chat_devices_online gauge\n", prom)
        m = re.search(r"^mosquitto_chat_messages_stored_total (\d+)$", prom, re.M)
        self.assertGreaterEqual(int(m.group(1)), after["messages_stored"])
        # the format itself: test_prometheus.py, with Prometheus' parser
        for line in prom.splitlines():
            self.assertRegex(line, r"^(# TYPE mosquitto_chat_[a-z_]+ (counter|gauge)|"
                                   r"# HELP mosquitto_chat_[a-z_]+ .+|"
                                   r"mosquitto_chat_[a-z_]+(\{[a-z]+=\"[a-z0-9_.]+\"\})? \d+)$")

    def test_logs_name_device_never_payload_or_token(self):
        a, b = uniq("lg"), uniq("lg")
        tok = self.broker.add_device(a, "d")
        da = Device(self.broker, a, "d", tok).connect()
        self.addCleanup(da.close)
        da.send_dm(b + "nobody", 1, body=b"SECRET-PAYLOAD")
        da.wait_event("error")
        line = self.broker.wait_log(lambda l: "refused a send from %s/d" % a in l)
        self.assertIsNotNone(line, self.broker.diagnostics())
        self.assertIn("peer", line)
        text = self.broker.log_text()
        self.assertNotIn("SECRET-PAYLOAD", text)
        self.assertNotIn(tok, text)


class BackupTest(ChatTestCase):

    def test_backup_restore_sync(self):
        a, b = uniq("bk"), uniq("bk")
        da = self.dev(a, "d")
        tok_b = self.broker.add_device(b, "d")
        sent = []
        for i in range(50):
            da.send_dm(b, i + 1, body=b"backup %d" % i)
            sent.append(b"backup %d" % i)
        tmp = tempfile.mkdtemp(prefix="chat-backup-")
        self.addCleanup(shutil.rmtree, tmp, True)
        target = os.path.join(tmp, "copy")
        rc, out, err = self.broker.chatctl("backup", target, timeout=60)
        self.assertEqual((rc, out), (0, ""), err)
        self.assertTrue(os.path.isdir(os.path.join(target, "store")))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(target, "admin.token")).st_mode), 0o600)
        # the live broker keeps serving, and a second backup into a full dir is refused
        rc, _, err = self.broker.chatctl("backup", target)
        self.assertEqual(rc, 1)
        self.assertIn("not empty", err)
        da.send_dm(b, 999, body=b"after the backup")

        restored = Broker(data_dir=target)
        try:
            restored.start()
            # the admin token came along: chatctl works against the copy
            rc, out, err = restored.chatctl("stats")
            self.assertEqual(rc, 0, err)
            # the replay its subscription starts is read here
            db = Device(restored, b, "d", tok_b, wait_replay=False).connect()
            got = []
            db.begin_replay()
            while True:
                ev = db.wait_event(timeout=10)
                if ev.get("k") == "sync":
                    break
                if ev.get("k") == "msg":
                    got.append(ev["body"])
            db.close()
            self.assertEqual(got, sent)
        finally:
            restored.cleanup()

    def test_backup_refusals(self):
        rc, _, err = self.broker.chatctl("backup", "/proc/no/such/place")
        self.assertEqual(rc, 1)
        self.assertIn("backup failed", err)
        f = tempfile.NamedTemporaryFile(prefix="chat-bk-")
        self.addCleanup(f.close)
        rc, _, err = self.broker.chatctl("backup", f.name)
        self.assertEqual(rc, 1)
        self.assertIn("not a directory", err)
        self.assert_serving()


if __name__ == "__main__":
    main()
