# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""NATS JetStream clusters for cluster-mode tests (issue 27, docs/CLUSTER.md).

NatsCluster(n) starts n nats-server processes as one JetStream cluster on
free loopback ports (client, cluster route and monitoring port each), every
server with a temporary store dir, waits until the JetStream meta group has
a leader, and stops them by PID. Tests skip when nats-server is missing
(scripts/deps.sh installs it).

    with NatsCluster(3) as nc:
        nc.urls                  # "nats://127.0.0.1:p1,nats://…"
        nc.kill(i) / nc.stop(i, sig) / nc.start(i) / nc.by_name("n2")
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from chatlib import free_port, wait_until

NATS_SERVER = os.environ.get("CHAT_NATS_SERVER", "/usr/sbin/nats-server")


def have_nats():
    return os.access(NATS_SERVER, os.X_OK)


class NatsCluster:
    def __init__(self, n=3, name="chat"):
        self.n = n
        self.dir = tempfile.mkdtemp(prefix="nats-")
        self.client = [free_port() for _ in range(n)]
        self.route = [free_port() for _ in range(n)]
        self.http = [free_port() for _ in range(n)]
        self.names = ["n%d" % (i + 1) for i in range(n)]
        self.procs = [None] * n
        routes = ", ".join("nats-route://127.0.0.1:%d" % p for p in self.route)
        for i in range(n):
            os.makedirs(os.path.join(self.dir, "data%d" % i))
            with open(self.conf(i), "w") as f:
                f.write(
                    "server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
                    "jetstream { store_dir: \"%s\" }\n"
                    "cluster { name: %s; listen: 127.0.0.1:%d; routes: [%s] }\n"
                    % (self.names[i], self.client[i], self.http[i], os.path.join(self.dir, "data%d" % i),
                       name, self.route[i], routes))
        self.urls = ",".join("nats://127.0.0.1:%d" % p for p in self.client)

    def conf(self, i):
        return os.path.join(self.dir, "n%d.conf" % i)

    def start(self, i=None):
        for j in ([i] if i is not None else range(self.n)):
            log = open(os.path.join(self.dir, "n%d.log" % j), "ab")
            self.procs[j] = subprocess.Popen([NATS_SERVER, "-c", self.conf(j)], stdout=log, stderr=log)
            log.close()
        return self

    def jsz(self, i):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/jsz" % self.http[i], timeout=1) as r:
                return json.load(r)
        except OSError:
            return None

    def meta_leader(self, timeout=20):
        """The meta group's leader (a server name) as every live server sees it."""
        def leader():
            seen = set()
            for i in range(self.n):
                if self.procs[i] is None or self.procs[i].poll() is not None:
                    continue
                j = self.jsz(i)
                ml = (j or {}).get("meta_cluster", {}).get("leader")
                if not ml:
                    return None
                seen.add(ml)
            return seen.pop() if len(seen) == 1 else None
        return wait_until(leader, timeout=timeout, interval=0.1)

    def by_name(self, name):
        return self.names.index(name)

    def kill(self, i):
        self.stop(i, signal.SIGKILL)

    def stop(self, i, sig=signal.SIGTERM):
        p = self.procs[i]
        if p is None:
            return
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            os.kill(p.pid, sig)
            return
        os.kill(p.pid, sig)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        self.procs[i] = None

    def close(self):
        for i in range(self.n):
            if self.procs[i] is not None:
                try:
                    os.kill(self.procs[i].pid, signal.SIGCONT)
                except OSError:
                    pass
                self.stop(i)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        if not self.meta_leader():
            self.close()
            raise RuntimeError("no JetStream meta leader within 20 s (logs in %s)" % self.dir)
        return self

    def __exit__(self, *a):
        self.close()
