#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The KV watchers' initial load (store/js_watch.c) on a 3-node nats-server
cluster on loopback (tests/integration/clusterlib.py): N device records
written (256 in flight), then a new process starts its five watchers and
loads every bucket into its caches; the time and the rate.

    bench/js-watch-load.py [N]        (build/ must have js_store_check)

docs/CLUSTER.md, "What landed: the KV watchers and the node's caches", has
the figures."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from clusterlib import NatsCluster  # noqa: E402

BUILD = os.environ.get("CHAT_BUILD_DIR") or os.path.join(HERE, "..", "build")
CHECK = os.path.join(BUILD, "bin", "js_store_check")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


def ask(p, cmd):
    p.stdin.write(cmd + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()


def peer(urls, node):
    return subprocess.Popen([CHECK, "watch", urls, node], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


with NatsCluster(3) as nc:
    subprocess.run([CHECK, "layout", nc.urls], capture_output=True, check=True)
    w = peer(nc.urls, "writer")
    r = ask(w, "fill load %d" % n).split()
    print("%s of %d device records written in %s ms" % (r[1], n, r[2]))
    ask(w, "quit")
    w.wait()
    for i in range(3):
        p = peer(nc.urls, "reader%d" % i)
        r = ask(p, "start").split()
        entries = int(ask(p, "stats").split()[5])
        ms = float(r[1])
        print("load %d: %d entries in %.0f ms (consumers created in %s ms): %.0f values/s"
              % (i + 1, entries, ms, r[2], entries / ms * 1000))
        ask(p, "quit")
        p.wait()
