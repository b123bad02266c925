# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The stock broker's wake-up for cluster mode (store/js_wake.c;
docs/CLUSTER.md, "Threads: libnats callbacks and the broker loop").

Debian's mosquitto has no mosquitto_loop_wakeup (patch 0004): a completion
a libnats thread queues waits for the broker's next loop pass, up to the
100 ms epoll_wait timeout. The fallback: a PINGREQ on the plugin's own
connection to its listener wakes the loop, and TICK, at the end of that
pass, drains the FIFO. wake_probe_plugin.c does what the backend will do,
with a worker thread in place of libnats; the test measures the time from
a completion's append to its drain on the broker thread, with the
loopback wake-up and without. Stock broker only: the patched one has the
real wake-up (test_ack_defer)."""

import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from chatlib import MOSQUITTO, SANITIZER_ENV, SANITIZER_RE, free_port, wait_until
from chatlib import BUILD_DIR

PROBE = os.path.join(BUILD_DIR, "lib", "wake_probe_plugin.so")


def probe_env():
    """chatlib's sanitizer preload, found from the probe plugin when the
    chat plugin is not built (a sanitizer build of these targets only)."""
    if SANITIZER_ENV or not os.path.exists(PROBE):
        return SANITIZER_ENV
    out = subprocess.run(["ldd", PROBE], capture_output=True, text=True).stdout
    libs = re.findall(r"^\s*(lib(?:asan|ubsan)\.so[.\d]*) => (\S+)", out, re.M)
    libs.sort(key=lambda l: not l[0].startswith("libasan"))
    if not libs:
        return {}
    return {"LD_PRELOAD": " ".join(p for _, p in libs), "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}


class Probe:
    def __init__(self, wake):
        self.tmp = tempfile.mkdtemp(prefix="chat-wake-")
        self.log = os.path.join(self.tmp, "mosquitto.log")
        self.port = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % self.port, "allow_anonymous true",
                 "plugin %s" % PROBE, "plugin_opt_wake %s" % wake, "plugin_opt_port %d" % self.port,
                 "log_dest file %s" % self.log, "log_type all"]
        if os.geteuid() == 0:
            lines.append("user root")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.stderr = os.path.join(self.tmp, "stderr")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr, "w"), env=dict(os.environ, **probe_env()))
        ok = wait_until(lambda: "Opening ipv4 listen socket" in self.text(), 10)
        if not ok or self.proc.poll() is not None:
            self.proc.kill()
            raise RuntimeError("broker did not start:\n" + self.text())

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def latencies(self, n):
        got, lock, done = [], threading.Lock(), threading.Event()

        def on_message(c, u, m):
            with lock:
                got.append(int(m.payload))
                if len(got) == n:
                    done.set()
        c = mqtt.Client(client_id="wake-test")
        c.on_message = on_message
        c.connect("127.0.0.1", self.port)
        c.subscribe("probe/done")
        c.loop_start()
        time.sleep(0.2)
        for _ in range(n):
            c.publish("probe/go", b"x")
            time.sleep(0.03)  # the broker idle between completions
        done.wait(10)
        c.loop_stop()
        c.disconnect()
        return got

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        with open(self.stderr, errors="replace") as f:
            err = f.read()
        assert not SANITIZER_RE.search(err), err[-6000:]


@unittest.skipUnless(os.path.exists(PROBE), "wake_probe_plugin not built")
class StockWakeTest(unittest.TestCase):

    def measure(self, wake):
        p = Probe(wake)
        try:
            lat = p.latencies(30)
            log = p.text()
        finally:
            p.stop()
        self.assertEqual(len(lat), 30, "completions lost (%s)" % wake)
        return statistics.median(lat) / 1000.0, max(lat) / 1000.0, log

    def test_loopback_pingreq_wakes_the_loop(self):
        med_none, max_none, _ = self.measure("none")
        med_loop, max_loop, log = self.measure("loopback")
        print("append -> drain on the broker thread: without a wake-up median %.1f ms (max %.1f); "
              "with the loopback PINGREQ median %.2f ms (max %.1f)" % (med_none, max_none, med_loop, max_loop))
        self.assertIn("wake-probe: wake-up loopback", log)
        # its connection is a plain client of the listener (keep alive 0)
        self.assertRegex(log, r"New client connected from 127\.0\.0\.1:\d+ as wake-probe")
        # without it a completion waits for the next pass (epoll_wait's
        # 100 ms timeout: about half of it on average); with it, a pass
        self.assertLess(med_loop, 10)
        self.assertLess(med_loop * 3, med_none)


if __name__ == "__main__":
    unittest.main(verbosity=2, warnings="ignore")
