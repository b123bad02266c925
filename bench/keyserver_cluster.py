#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chat-keyserver on NATS JetStream vs on RocksDB (issue 27; docs/CLUSTER.md,
"The key server"): chatbench's keys mode (uploads, then bundle fetches in
flight from several devices) against one broker with

  rocksdb  one key server on its RocksDB store (the default)
  js1      one key server, --cluster-urls on a 3-node JetStream cluster (R3)
  js2      two key servers on that cluster, one $share group

and, with --leader-kill, test_keyserver_cluster's fault test with the kill -9
of the one-time key stream's leader (CHAT_KS_LEADER_KILL=1: the election
takes 5-18 s on nats-server 2.9, too long for the suite).

  /usr/bin/python3 bench/keyserver_cluster.py [--msgs N] [--users N --opks K]
                                              [--reps R] [--window W] [--fetchers F]
                                              [--leader-kill]

Prints one chatbench result line per run (rate = bundles/s, p50_us/p99_us
per bundle). Short by design (about a minute): the machine is shared.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
os.environ.setdefault("CHAT_SOURCE_DIR", SRC)
os.environ.setdefault("CHAT_BUILD_DIR", os.path.join(SRC, "build"))

from chatlib import BUILD_DIR, Broker, KeyServer  # noqa: E402
from clusterlib import NatsCluster  # noqa: E402

BENCH = os.path.join(BUILD_DIR, "bin", "chatbench")
FIELDS = ("mode", "rate", "p50_us", "p99_us", "ok")


def run(label, broker, servers, a):
    cmd = [BENCH, "keys", "-p", str(broker.port), "--ks-pid", str(servers[0].proc.pid),
           "--admin-token-file", broker.token_file, "--msgs", str(a.msgs),
           "--users", str(a.users), "--opks", str(a.opks), "--window", str(a.window),
           "--fetchers", str(a.fetchers), "--timeout", "90",
           "--label", "phase=%s servers=%d" % (label, len(servers))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "mode=error"
    if not r.stdout.strip():
        print("chatbench failed:", r.stderr[-600:], file=sys.stderr)
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    print("%-8s servers=%d %s" % (label, len(servers),
                                 " ".join("%s=%s" % (k, kv.get(k, "?")) for k in FIELDS)))
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--msgs", type=int, default=3000, help="bundle fetches per run")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--opks", type=int, default=200)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--window", type=int, default=16, help="requests in flight per fetcher")
    ap.add_argument("--fetchers", type=int, default=16)
    ap.add_argument("--leader-kill", action="store_true")
    a = ap.parse_args()
    print("# %s; load %s" % (" ".join(sys.argv), os.getloadavg()[0]))
    nats = NatsCluster(3).start()
    try:
        for rep in range(a.reps):
            for label in ("rocksdb", "js1", "js2"):
                broker = Broker()
                broker.start()
                tok = broker.service_token_file("keys")
                servers = []
                try:
                    for i in range(1 if label != "js2" else 2):
                        extra = ["--rate-burst", "1000000", "--rate-refill-seconds", "0",
                                 "--log-level", "info"]
                        if label != "rocksdb":
                            # a prefix per run: fresh streams, and the pool cap of chatbench
                            extra += ["--cluster-urls", nats.urls,
                                      "--cluster-prefix", "b%d%s" % (rep, label)]
                        ks = KeyServer(broker, tok, os.path.join(broker.tmp, "keys%d" % i), *extra)
                        servers.append(ks)
                    for ks in servers:
                        # the first start on a prefix creates six streams (a meta
                        # proposal each, ~0.5 s on this machine)
                        ks.wait_serving(timeout=60)
                    time.sleep(0.3)   # subscribed right after "serving"
                    run(label, broker, servers, a)
                finally:
                    for ks in servers:
                        ks.stop()
                        ks.cleanup()
                    broker.cleanup()
    finally:
        nats.cleanup()
    if a.leader_kill:
        env = dict(os.environ, CHAT_KS_LEADER_KILL="1")
        r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "integration",
                                                             "test_keyserver_cluster.py"),
                            "KeyServerClusterTest.test_kill9_keyserver_and_stream_leader_no_key_twice"],
                           env=env, capture_output=True, text=True, timeout=300)
        print("\n".join(l for l in (r.stdout + r.stderr).splitlines()
                        if "handed out" in l or l.startswith(("OK", "FAIL", "Ran"))))
        if r.returncode:
            print(r.stderr[-3000:])
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
