# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""NATS JetStream clusters for the cluster-mode tests (docs/CLUSTER.md).

    with NatsCluster(3) as nc:          # 3 nodes, JetStream, on free loopback ports
        nc.urls                         # "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..."
        nc.stream_leader("chat_KS_OPK") # the node index leading a stream (monitor port)
        nc.kill9(i); nc.restart(i)      # a node by PID, its store dir kept

Each node: client, cluster and monitor ports chosen free on 127.0.0.1, its
own store dir under one temp dir, a config file there, its output in a log
file. start() waits until every node answers /healthz and the JetStream
meta group has a leader. Stopped by PID (SIGTERM, then SIGKILL), at the
latest at interpreter exit. nats-server 2.9.10 (Debian 12) is what the
design was measured on; a leader election takes 5-18 s on it.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from chatlib import free_port, wait_until

NATS_SERVER = os.environ.get("CHAT_NATS_SERVER") or shutil.which("nats-server") or "/usr/bin/nats-server"

_live = []


def have_nats():
    return os.access(NATS_SERVER, os.X_OK)


class NatsNode:
    def __init__(self, cluster, i):
        self.cluster, self.i = cluster, i
        self.name = "n%d" % (i + 1)
        self.port, self.cport, self.mport = free_port(), free_port(), free_port()
        self.store = os.path.join(cluster.tmp, self.name)
        self.conf = os.path.join(cluster.tmp, self.name + ".conf")
        self.logfile = os.path.join(cluster.tmp, self.name + ".log")
        self.proc = None

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def write_conf(self):
        routes = ", ".join("nats-route://127.0.0.1:%d" % n.cport for n in self.cluster.nodes)
        with open(self.conf, "w") as f:
            f.write("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
                    "jetstream { store_dir: %s }\n"
                    "cluster { name: %s\n listen: 127.0.0.1:%d\n routes: [%s] }\n"
                    % (self.name, self.port, self.mport, json.dumps(self.store),
                       self.cluster.name, self.cport, routes))

    def start(self):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def monitor(self, path, timeout=1.0):
        """GET of the monitoring endpoint path (e.g. "jsz?streams=true"): parsed JSON or None."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (self.mport, path),
                                        timeout=timeout) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def stop(self, timeout=10.0):
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill9(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(5)

    def text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class NatsCluster:
    """n nats-server JetStream nodes clustered on loopback (n = 1: a single
    JetStream server, no cluster block)."""

    def __init__(self, n=3, name="chat"):
        self.tmp = tempfile.mkdtemp(prefix="nats-")
        self.name = name
        self.nodes = []
        self.nodes = [NatsNode(self, i) for i in range(n)]
        for node in self.nodes:
            node.write_conf()
            if n == 1:  # no routes to itself
                with open(node.conf) as f:
                    conf = f.read()
                with open(node.conf, "w") as f:
                    f.write(conf[:conf.index("cluster {")])

    @property
    def urls(self):
        return ",".join(n.url for n in self.nodes)

    def start(self, timeout=30.0):
        _live.append(self)
        for node in self.nodes:
            node.start()
        if not self.wait_meta_leader(timeout):
            raise AssertionError("no JetStream meta leader after %.0f s:\n%s"
                                 % (timeout, self.diagnostics()))
        return self

    def meta_leader(self):
        """The name of the JetStream meta leader as the live nodes see it, or None."""
        for node in self.nodes:
            if not node.running():
                continue
            j = node.monitor("jsz")
            if j and j.get("meta_cluster", {}).get("leader"):
                return j["meta_cluster"]["leader"]
            if j and len(self.nodes) == 1 and j.get("config"):
                return node.name
        return None

    def wait_meta_leader(self, timeout=30.0):
        def ready():
            return all(n.monitor("healthz") is not None for n in self.nodes if n.running()) \
                and self.meta_leader() is not None
        return wait_until(ready, timeout, 0.1)

    def stream_leader(self, stream):
        """The index of the node leading stream, or None (no leader now)."""
        for node in self.nodes:
            if not node.running():
                continue
            j = node.monitor("jsz?streams=true") or {}
            for acc in j.get("account_details") or []:
                for s in acc.get("stream_detail") or []:
                    if s.get("name") == stream and (s.get("cluster") or {}).get("leader"):
                        leader = s["cluster"]["leader"]
                        for k, n in enumerate(self.nodes):
                            if n.name == leader:
                                return k
        return None

    def kill9(self, i):
        self.nodes[i].kill9()

    def restart(self, i):
        self.nodes[i].start()

    def stop(self):
        for node in self.nodes:
            node.stop()
        if self in _live:
            _live.remove(self)

    def cleanup(self):
        self.stop()
        if os.environ.get("CHAT_KEEP_TMP"):
            print("nats data kept in", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def diagnostics(self, tail=30):
        return "\n".join("--- %s (%s)\n%s" % (n.name, "up" if n.running() else "down",
                                               "\n".join(n.text().splitlines()[-tail:]))
                         for n in self.nodes)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _stop_all():
    for c in list(_live):
        for node in c.nodes:
            node.kill9()


atexit.register(_stop_all)
