#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The JetStream backend's primitives from C (store/js.h), on a 3-node
nats-server cluster on loopback (tests/integration/clusterlib.py): the
per-conversation seq assignment (a create-only log entry, warm head) and
the dedup claim (a KV create), one at a time, p50/p99 and rate; the whole
send (jstore_send: a dm to 2 devices — the claim and 2 reservations, then
the log entry), p50/p99 and sends/s; then 2 and 4 processes appending to
one conversation (conflicts).

    bench/js-store-prims.py [N]        (build/ must have js_store_check)

docs/CLUSTER.md, "Measured from the backend's code", has the figures."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from clusterlib import NatsCluster  # noqa: E402

BUILD = os.environ.get("CHAT_BUILD_DIR") or os.path.join(HERE, "..", "build")
CHECK = os.path.join(BUILD, "bin", "js_store_check")
n = sys.argv[1] if len(sys.argv) > 1 else "1000"

with NatsCluster(3) as nc:
    t = time.monotonic()
    r = subprocess.run([CHECK, "layout", nc.urls], capture_output=True, text=True)
    print("layout: %s (%.1f s, 16 streams and buckets created)" % (r.stdout.strip(), time.monotonic() - t))
    r = subprocess.run([CHECK, "bench", nc.urls, n], capture_output=True, text=True)
    print(r.stdout.strip() or r.stderr)
    r = subprocess.run([CHECK, "sendbench", nc.urls, n], capture_output=True, text=True)
    print(r.stdout.strip() or r.stderr)
    for w in (2, 4):
        # all start together once connected (JS_START_AT), as in test_js_store
        env = dict(os.environ, JS_START_AT="%d" % ((time.time() + 1.5) * 1000))
        ps = [subprocess.Popen([CHECK, "seq", nc.urls, "b%d" % i, "g:bench%d" % w, str(int(n) // 4)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for i in range(w)]
        time.sleep(1.5)
        t = time.monotonic()
        outs = [p.communicate() for p in ps]
        el = time.monotonic() - t
        total = sum(len(o.splitlines()) for o, _ in outs)
        conflicts = sum(int(e.split("conflicts ")[1].split()[0]) for _, e in outs)
        print("%d processes appending to one conversation: %d appends in %.2f s: %.0f/s, %.2f conflicts an append"
              % (w, total, el, total / el, conflicts / total))
