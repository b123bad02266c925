# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chatctl stats --prometheus, read by Prometheus' own text-format parser
(python3-prometheus-client): every family has HELP and a type, the gauges
(what can go down) are gauges, the rest counters with _total, refusal codes
are one family with a `code` label, build_info carries the version, every
counter of `chatctl stats` is there, and every name is in docs/OPERATIONS.md."""

import os
import re

from prometheus_client.parser import text_string_to_metric_families

from chatlib import SOURCE_DIR, ChatTestCase, main, uniq

# The counters that can go down (docs/OPERATIONS.md, "Counters": kind gauge).
GAUGES = {"users", "devices", "devices_online", "services", "groups", "replays_active",
          "backlogs_active", "queue_entries", "keys_pool_keys", "store_sst_bytes",
          "store_memtable_bytes", "store_pending_compaction_bytes", "store_write_stopped",
          "store_delayed_write_rate", "devices_caps_sents", "devices_caps_batch",
          "devices_caps_rcpts"}


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(mosquitto-chat VERSION ([0-9.]+)", f.read()).group(1)


class PrometheusTest(ChatTestCase):

    def chatctl(self, *args):
        rc, out, err = self.broker.chatctl(*args)
        self.assertEqual(rc, 0, err)
        return out

    def setUp(self):
        super().setUp()
        # a refusal (unknown peer) and a stored message, so both kinds move
        a, b = uniq("pm"), uniq("pm")
        da, db = self.dev(a, "d"), self.dev(b, "d")
        da.send_dm(b + "nobody", 1, body=b"x")
        da.wait_event("error")
        da.send_dm(b, 2, body=b"y")
        db.wait_event("msg")
        self.plain = {k: int(v) for k, v in
                      (l.split() for l in self.chatctl("stats").splitlines())}
        self.text = self.chatctl("stats", "--prometheus")
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}

    def test_parses_with_help_and_types(self):
        self.assertGreater(len(self.families), 30)
        for name, f in self.families.items():
            with self.subTest(family=name):
                self.assertTrue(name.startswith("mosquitto_chat_"), name)
                self.assertIn(f.type, ("counter", "gauge"), name)
                self.assertTrue(f.documentation.strip(), "no HELP for %s" % name)
                self.assertIn("# HELP %s" % (name + ("_total" if f.type == "counter" else "")),
                              self.text)
                for s in f.samples:
                    if f.type == "counter":
                        self.assertEqual(s.name, name + "_total")
                    self.assertGreaterEqual(s.value, 0)

    def test_gauges_and_counters(self):
        for name, value in self.plain.items():
            if name.startswith("refused_"):
                continue
            with self.subTest(counter=name):
                f = self.families.get("mosquitto_chat_" + name)
                self.assertIsNotNone(f, "%s missing from --prometheus" % name)
                self.assertEqual(f.type, "gauge" if name in GAUGES else "counter")
                self.assertEqual(len(f.samples), 1)
        self.assertEqual(self.families["mosquitto_chat_keys_pool_keys"].type, "gauge")
        self.assertEqual(self.families["mosquitto_chat_messages_stored"].type, "counter")
        self.assertGreaterEqual(
            self.families["mosquitto_chat_messages_stored"].samples[0].value,
            self.plain["messages_stored"])

    def test_refusals_are_one_family_with_a_code_label(self):
        f = self.families["mosquitto_chat_refused"]
        self.assertEqual(f.type, "counter")
        codes = {s.labels["code"]: s.value for s in f.samples}
        plain = {k[len("refused_"):]: v for k, v in self.plain.items()
                 if k.startswith("refused_")}
        self.assertEqual(set(codes), set(plain))
        self.assertGreaterEqual(codes["peer"], 1)
        self.assertIn("other", codes)
        for s in f.samples:
            self.assertEqual(set(s.labels), {"code"})
        self.assertFalse([n for n in self.families if n.startswith("mosquitto_chat_refused_")])

    def test_build_info(self):
        f = self.families["mosquitto_chat_build_info"]
        self.assertEqual(f.type, "gauge")
        self.assertEqual(len(f.samples), 1)
        self.assertEqual(f.samples[0].labels, {"version": project_version()})
        self.assertEqual(f.samples[0].value, 1)

    def test_every_metric_documented(self):
        # the table names the counters; the text says how they map to metric
        # names and names the two families that are not one counter each
        with open(os.path.join(SOURCE_DIR, "docs", "OPERATIONS.md")) as f:
            doc = f.read()
        for name in self.plain:
            if not name.startswith("refused_"):
                with self.subTest(counter=name):
                    self.assertTrue("`%s`" % name in doc, name)
        for name in ("mosquitto_chat_<name>_total", "mosquitto_chat_refused_total{code=",
                     "mosquitto_chat_build_info{version="):
            self.assertTrue(name in doc, name)

if __name__ == "__main__":
    main()
