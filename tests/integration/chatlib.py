# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Shared harness for the mosquitto-chat integration tests.

Runs with Debian's /usr/bin/python3 only (python3-paho-mqtt 1.6, python3-cbor2).
Every wait is bounded; every broker started here is stopped at the latest at
interpreter exit.

Environment (set by ctest):
  CHAT_BUILD_DIR   build tree with lib/mosquitto_chat.so and bin/chatctl
  CHAT_SOURCE_DIR  the checkout
  CHAT_KEEP_TMP    if set, broker temp dirs are kept (and printed) for inspection
  CHAT_BROKER      the mosquitto binary to run (default: Debian's /usr/sbin/mosquitto);
                   the `patched` ctest label sets it to the broker-patches build
  CHAT_EXPECT_PATCHED  if set, a broker whose plugin finds no broker-patches
                   events fails to start (instead of the patch-only tests skipping)
  CHAT_BROKER_VALGRIND  if set, every broker runs under valgrind's memcheck;
                   cleanup() fails on an invalid access anywhere or a leak
                   through our code (the plugin, store, common)
"""

import atexit
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import cbor2
import paho.mqtt.client as mqtt
from nacl import bindings as nb

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("CHAT_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
BUILD_DIR = os.path.abspath(os.environ.get("CHAT_BUILD_DIR") or os.path.join(SOURCE_DIR, "build"))
PLUGIN = os.path.join(BUILD_DIR, "lib", "mosquitto_chat.so")
CHATCTL = os.path.join(BUILD_DIR, "bin", "chatctl")
MOSQUITTO = os.environ.get("CHAT_BROKER") or "/usr/sbin/mosquitto"
EXPECT_PATCHED = bool(os.environ.get("CHAT_EXPECT_PATCHED"))
# The plugin's start-up line naming the broker-patches events it found.
EVENTS_RE = re.compile(r"chat: broker events:(.*)")
CBOR_TOOL = os.path.join(SOURCE_DIR, "scripts", "cbor")

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5

_live_brokers = []


def _sanitizer_env():
    """If the plugin was built with -DCHAT_SANITIZE=ON, stock mosquitto must
    preload the sanitizer runtimes (they have to come first)."""
    try:
        out = subprocess.run(["ldd", PLUGIN], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    libs = re.findall(r"^\s*(lib(?:asan|ubsan)\.so[.\d]*) => (\S+)", out, re.M)
    if not libs:
        return {}
    libs.sort(key=lambda l: not l[0].startswith("libasan"))   # asan first
    return {"LD_PRELOAD": " ".join(path for _, path in libs),
            # mosquitto itself is not instrumented: its own exit-time leaks are not ours
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0"),
            "UBSAN_OPTIONS": os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1")}


SANITIZER_ENV = _sanitizer_env() if os.path.exists(PLUGIN) else {}
VALGRIND = bool(os.environ.get("CHAT_BROKER_VALGRIND"))
SLOW = 6.0 if VALGRIND else 1.0     # start and stop take this much longer
# a memcheck report is ours if its stack passes through our code
OUR_CODE_RE = re.compile(r"mosquitto_chat\.so|/(plugin|store|common)/\w+\.c")
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")


def now_ms():
    return int(time.time() * 1000)


_ports_given = set()


def free_port():
    """A loopback TCP port free now and not handed out before in this
    process: the kernel may give the same ephemeral port to two bind(0)s in
    a row once the first socket is closed (seen in CI: test_tls's MQTT and
    WebSockets listeners got one port and the broker could not start)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_until(pred, timeout=5.0, interval=0.02):
    """Polls pred() until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


_uniq = itertools.count(1)


def uniq(prefix="u"):
    """A fresh user id, unique within this process (tests share one broker)."""
    return "%s%d" % (prefix, next(_uniq))


def conv_of(a, b):
    x, y = sorted([a, b], key=lambda s: s.encode())
    return "dm:%s:%s" % (x, y)


# mosquitto settings that every user's configuration has: make run's and the
# installed snippet's (test_install and test_run_script check both carry them).
BROKER_DEFAULT_LINES = ("set_tcp_nodelay true", "max_queued_messages 10000")


class BrokerStartError(Exception):
    pass


class Broker:
    """One stock mosquitto with the chat plugin on a free loopback port."""

    def __init__(self, options=None, extra_lines=(), data_dir=None, with_plugin=True,
                 create_data_dir=True, plugin=None):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="chat-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        if create_data_dir and data_dir is None:
            os.makedirs(self.data_dir, exist_ok=True)
        self.conf = os.path.join(self.tmp, "mosquitto.conf")
        self.log = os.path.join(self.tmp, "mosquitto.log")
        self.stderr_path = os.path.join(self.tmp, "mosquitto.stderr")
        self.token_file = os.path.join(self.data_dir, "admin.token")
        self.options = dict(options or {})
        # The plugin runs with its defaults, as `make run` and the installed
        # snippet give them to a user; a test that needs another value sets it
        # in its own options and says why.
        self.proc = None
        self._removed = False
        self.with_plugin = with_plugin
        # Extra environment for the broker process from the next start on
        # (test_powercut runs one start under its LD_PRELOAD shim).
        self.env = {}
        # The broker-patches events the plugin reported at its last start
        # ("connect", "subscribe", "message_acked"); empty on stock mosquitto.
        self.events = set()
        lines = ["listener %d 127.0.0.1" % self.port]
        if with_plugin:
            lines.append("plugin %s" % (plugin or PLUGIN))
            if "data_dir" not in self.options:
                lines.append("plugin_opt_data_dir %s" % self.data_dir)
            for k, v in self.options.items():
                lines.append("plugin_opt_%s %s" % (k, v))
        # What make run (scripts/run.sh) and the installed snippet
        # (packaging/mosquitto-chat.conf.in) set on the broker itself; a
        # test's extra_lines come after them and win.
        lines.extend(BROKER_DEFAULT_LINES)
        lines.extend(extra_lines)
        # Deliberately unlike make run (stdout; error to information): every
        # log type into a file, which tests read (disconnects, the plugin's
        # start-up line); it changes what is written, not what is done.
        lines.append("log_dest file %s" % self.log)
        lines.append("log_type all")
        if os.geteuid() == 0:
            lines.append("user root")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        _live_brokers.append(self)

    def _move_port(self):
        old = "listener %d 127.0.0.1" % self.port
        self.port = free_port()
        with open(self.conf) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write(text.replace(old, "listener %d 127.0.0.1" % self.port, 1))

    # ---- lifecycle ----
    def start(self, timeout=10.0, _port_tries=3):
        timeout *= SLOW
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                # free_port() cannot reserve the port: under ctest -j another
                # test's client sockets may take it first. Move to a new one.
                if _port_tries > 1 and "Address already in use" in self.log_text():
                    self._move_port()
                    return self.start(timeout / SLOW, _port_tries - 1)
                raise BrokerStartError("mosquitto exited with %s at start\n%s"
                                       % (self.proc.returncode, self.diagnostics()))
            if os.path.exists(self.token_file) and self._port_open():
                self._read_events()
                return self
            time.sleep(0.02)
        self.stop()
        raise BrokerStartError("mosquitto not ready after %.0fs\n%s" % (timeout, self.diagnostics()))

    def _read_events(self):
        # The line is a notice: a log_level above that leaves it out.
        if not self.with_plugin or self.options.get("log_level") in ("warning", "error"):
            return
        def find():  # in this start's log file only
            try:
                with open(self.log, errors="replace") as f:
                    return next((l for l in f if EVENTS_RE.search(l)), None)
            except OSError:
                return None
        line = wait_until(find, 3.0)
        if line is None:
            raise BrokerStartError("the plugin did not log its broker events\n%s"
                                   % self.diagnostics())
        found = EVENTS_RE.search(line).group(1).split(";")[0].split()
        self.events = set(found) - {"none"}
        if EXPECT_PATCHED and "message_acked" not in self.events:
            self.stop()
            raise BrokerStartError("CHAT_EXPECT_PATCHED: %s is not the broker-patches build "
                                   "(plugin found: %s)" % (MOSQUITTO, line.strip()))

    @property
    def auto_replay(self):
        """Whether a subscription to an inbox starts a replay (the default)."""
        return self.with_plugin and str(self.options.get("auto_replay", "true")) != "false"

    @property
    def delivered_on_puback(self):
        """Whether a device's PUBACK delivers (the default on the patched broker)."""
        return self.patched and str(self.options.get("delivered_on_puback", "true")) != "false"

    @property
    def patched(self):
        """Whether the broker reports the broker-patches events."""
        return "message_acked" in self.events

    def start_expect_exit(self, timeout=10.0):
        """Starts the broker expecting it to refuse; returns its exit status
        (None if it is still running after timeout, after stopping it)."""
        self._spawn()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def _spawn(self):
        if os.path.exists(self.log):
            os.rename(self.log, self.log + ".%d" % int(time.time() * 1000))
        self._stderr = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.update(SANITIZER_ENV)
        env.update(self.env)
        prefix = []
        if VALGRIND:
            prefix = ["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite",
                      "--log-file=%s" % os.path.join(self.tmp, "valgrind.%p.log")]
        self.proc = subprocess.Popen(prefix + [MOSQUITTO, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr, env=env)

    def _port_open(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM, wait, SIGKILL. Returns the exit status."""
        timeout *= SLOW
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._stderr.close()

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout)

    def sanitizer_report(self):
        """The sanitizer's complaints in the broker's output, or memcheck's
        reports that count (see OUR_CODE_RE), or ''."""
        text = self.all_output() if os.path.isdir(self.tmp) else ""
        if SANITIZER_RE.search(text):
            return text
        return "\n\n".join(self.memcheck_reports())

    def memcheck_reports(self):
        """Under valgrind: every invalid access or uninitialised use, and every
        leak whose stack passes through our code."""
        out = []
        if not (VALGRIND and os.path.isdir(self.tmp)):
            return out
        for p in sorted(os.listdir(self.tmp)):
            if not p.startswith("valgrind."):
                continue
            with open(os.path.join(self.tmp, p), errors="replace") as f:
                text = f.read()
            for block in re.split(r"\n==\d+== \n", text):
                if " at 0x" not in block:
                    continue    # a notice (an unimplemented fcntl, …), not a report
                leak = "definitely lost" in block or "indirectly lost" in block
                if not leak or OUR_CODE_RE.search(block):
                    out.append(block)
        return out

    def cleanup(self):
        """Stops the broker and removes its dir; raises if a sanitizer complained."""
        self.stop()
        report = "" if self._removed else self.sanitizer_report()
        if self in _live_brokers:
            _live_brokers.remove(self)
        if os.environ.get("CHAT_KEEP_TMP"):
            sys.stderr.write("kept broker dir %s\n" % self.tmp)
        elif not self._removed:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._removed = True
        if report:
            raise AssertionError("sanitizer report from the broker (%s):\n%s"
                                 % (self.tmp, report[-6000:]))

    # ---- logs ----
    def log_text(self):
        parts = []
        for p in sorted(os.listdir(self.tmp)):
            if p.startswith("mosquitto.log"):
                with open(os.path.join(self.tmp, p), errors="replace") as f:
                    parts.append(f.read())
        return "".join(parts)

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def all_output(self):
        return self.log_text() + self.stderr_text()

    def log_mark(self):
        return len(self.log_text())

    def log_since(self, mark):
        return self.log_text()[mark:]

    def wait_log(self, pred, mark=0, timeout=3.0):
        """Waits for a log line (after mark) for which pred(line) holds."""
        def find():
            for line in self.log_since(mark).splitlines():
                if pred(line):
                    return line
            return None
        return wait_until(find, timeout)

    def diagnostics(self, tail=60):
        log = self.all_output().splitlines()[-tail:]
        return "---- broker output (%s) ----\n%s\n---- end ----" % (self.tmp, "\n".join(log))

    # ---- admin ----
    def chatctl(self, *args, token_file=None, timeout=15):
        cmd = [CHATCTL, "-p", str(self.port), "--token-file", token_file or self.token_file]
        cmd += [str(a) for a in args]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def add_device(self, user, dev):
        rc, out, err = self.chatctl("device", "add", user, dev)
        if rc != 0:
            raise AssertionError("chatctl device add %s %s failed rc=%d: %s\n%s"
                                 % (user, dev, rc, err.strip(), self.diagnostics()))
        return out.strip()

    def service_token_file(self, name):
        """Adds the service account name; returns a 0600 file with its token."""
        rc, out, err = self.chatctl("service", "add", name)
        if rc != 0:
            raise AssertionError("chatctl service add %s: %s" % (name, err))
        path = os.path.join(self.tmp, "%s.token" % name)
        with open(path, "w") as f:
            f.write(out.strip() + "\n")
        os.chmod(path, 0o600)
        return path

    def device(self, user, dev, protocol=V311, token=None, **kw):
        """Adds U/D (unless a token is given) and returns a connected Device."""
        if token is None:
            token = self.add_device(user, dev)
        d = Device(self, user, dev, token, protocol=protocol, **kw)
        d.connect()
        return d


def _stop_all():
    for b in list(_live_brokers):
        try:
            b.cleanup()
        except Exception:
            pass


atexit.register(_stop_all)


# ---------------------------------------------------------------- clients

class _Client(mqtt.Client):
    """paho client that records the reason code of PUBACK/PUBREC by mid."""

    def __init__(self, *a, **kw):
        kw.setdefault("reconnect_on_failure", False)  # a test sees every drop
        super().__init__(*a, **kw)
        self.ack_codes = {}
        self.ack_cond = threading.Condition()

    def _record_ack(self):
        pkt = self._in_packet["packet"]
        mid = int.from_bytes(pkt[:2], "big")
        code = pkt[2] if self._protocol == V5 and len(pkt) > 2 else 0
        with self.ack_cond:
            self.ack_codes[mid] = code
            self.ack_cond.notify_all()

    def _handle_pubackcomp(self, cmd):
        if cmd == "PUBACK":
            self._record_ack()
        return super()._handle_pubackcomp(cmd)

    def _handle_pubrec(self):
        self._record_ack()
        return super()._handle_pubrec()


def _rc_value(rc):
    return rc.value if hasattr(rc, "value") else int(rc)


class Client:
    """A plain MQTT client (any identity) with a thread-safe message list."""

    def __init__(self, broker, client_id="", username=None, password=None, protocol=V311,
                 clean=True, will=None, decode=False, port=None):
        self.broker = broker
        self.port = port or broker.port
        self.protocol = protocol
        self.decode = decode
        if protocol == V5:
            self.c = _Client(client_id=client_id, protocol=V5)
        else:
            self.c = _Client(client_id=client_id, clean_session=clean, protocol=protocol)
        self.clean = clean
        if username is not None:
            self.c.username_pw_set(username, password)
        if will:
            self.c.will_set(**will)
        self.cond = threading.Condition()
        self.messages = []          # pending (not yet consumed) messages
        self.connack = None
        self.suback = {}
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect
        self._looping = False

    # callbacks (paho thread)
    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cond:
            self.connack = _rc_value(rc)
            self.cond.notify_all()

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnected.set()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        codes = [_rc_value(g) for g in granted]
        with self.cond:
            self.suback[mid] = codes
            self.cond.notify_all()

    def _on_message(self, c, u, msg):
        item = msg
        if self.decode:
            try:
                item = (msg.topic, cbor2.loads(msg.payload))
            except Exception as e:  # keep undecodable payloads visible
                item = (msg.topic, {"k": "<undecodable>", "raw": msg.payload, "err": str(e)})
        with self.cond:
            self.messages.append(item)
            self.cond.notify_all()

    # connection
    def try_connect(self, timeout=5.0):
        """Connects; returns the CONNACK code (0 = accepted). On success the
        network loop keeps running in a thread; on refusal it is stopped."""
        kw = {}
        if self.protocol == V5:
            kw["clean_start"] = self.clean
        self.c.connect("127.0.0.1", self.port, keepalive=30, **kw)
        deadline = time.monotonic() + timeout
        while self.connack is None and time.monotonic() < deadline:
            rc = self.c.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS and self.connack is None:
                # connection closed without a CONNACK
                break
        if self.connack is None:
            self.c.socket() and self.c.socket().close()
            return None
        if self.connack != 0:
            try:
                self.c.socket() and self.c.socket().close()
            except Exception:
                pass
            return self.connack
        self.c.loop_start()
        self._looping = True
        return 0

    def connect(self, timeout=5.0):
        rc = self.try_connect(timeout)
        if rc != 0:
            raise AssertionError("connect refused: %r\n%s" % (rc, self.broker.diagnostics()))
        return self

    def close(self):
        if self._looping:
            try:
                self.c.disconnect()
            except Exception:
                pass
            self.c.loop_stop()
            self._looping = False

    def drop(self):
        """Closes the TCP connection without DISCONNECT (the will fires)."""
        if self._looping:
            sock = self.c.socket()
            self.c.loop_stop()
            self._looping = False
            if sock:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    # subscribe / publish
    def subscribe(self, topic, qos=1, timeout=5.0):
        """Returns the SUBACK code for the filter (>= 0x80 = refused)."""
        rc, mid = self.c.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("subscribe(%s) failed locally: %d" % (topic, rc))
        with self.cond:
            ok = self.cond.wait_for(lambda: mid in self.suback, timeout)
        if not ok:
            raise AssertionError("no SUBACK for %s within %.1fs" % (topic, timeout))
        return self.suback.pop(mid)[0]

    def publish(self, topic, payload, qos=1, retain=False, timeout=5.0, wait=True):
        """Publishes; for QoS 1/2 waits for the PUBACK/PUBREC and returns its
        reason code (0 for MQTT 3.1.1, which has none). QoS 0 returns 0."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("publish to %s failed locally: %d" % (topic, info.rc))
        if qos == 0 or not wait:
            return 0
        with self.c.ack_cond:
            ok = self.c.ack_cond.wait_for(lambda: info.mid in self.c.ack_codes, timeout)
            if not ok:
                raise AssertionError("no PUBACK/PUBREC for %s within %.1fs\n%s"
                                     % (topic, timeout, self.broker.diagnostics(20)))
            return self.c.ack_codes.pop(info.mid)

    def wait_message(self, pred=lambda m: True, timeout=5.0):
        """Consumes and returns the first pending message for which pred holds,
        or None after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, m in enumerate(self.messages):
                    if pred(m):
                        return self.messages.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def drain(self):
        with self.cond:
            out, self.messages = self.messages, []
        return out


def _matches(ev, match):
    for k, v in match.items():
        if k not in ev or ev[k] != v:
            return False
    return True


class Device(Client):
    """A chat device U/D: username = client id = U/D, password = its token.
    Subscribes to its inbox and collects decoded inbox events.

    caps: protocol v2 (docs/PROTOCOL.md, "Capabilities"): a list of
    capability names declared on every connect() before the inbox
    subscription, as a v2 client does (ctl caps, its PUBACK and reply, then
    SUBSCRIBE); the reply is kept in caps_reply. None (the default): a v1
    device that declares nothing (and keeps what it declared before)."""

    CAPS_RID = 0xCA95

    def __init__(self, broker, user, dev, token, protocol=V311, will=True, subscribe=True,
                 wait_replay=True, caps=None, **kw):
        self.user, self.dev = user, dev
        self.caps = caps
        self.caps_reply = None
        self.wait_replay = wait_replay
        self.replay_pending = False
        self.replay_done = None
        self.addr = "%s/%s" % (user, dev)
        self.token = token
        self.prefix = broker.options.get("topic_prefix", "chat")
        self.inbox = "%s/inbox/%s" % (self.prefix, self.addr)
        self.auto_subscribe = subscribe
        w = None
        if will:
            w = {"topic": "%s/presence/%s" % (self.prefix, self.addr), "payload": b"", "qos": 0, "retain": False}
        super().__init__(broker, client_id=kw.pop("client_id", self.addr),
                         username=kw.pop("username", self.addr), password=token,
                         protocol=protocol, will=w, decode=True, **kw)

    def connect(self, timeout=5.0):
        super().connect(timeout)
        if self.caps is not None:
            self.caps_reply = self.ctl("caps", self.CAPS_RID, timeout=timeout, caps=list(self.caps))
            if not self.caps_reply.get("ok"):
                raise AssertionError("%s: caps refused: %r" % (self.addr, self.caps_reply))
        if self.auto_subscribe:
            code = self.subscribe(self.inbox, 1)
            if code >= 0x80:
                raise AssertionError("own inbox %s refused: 0x%02x" % (self.inbox, code))
            # Subscribing to the inbox starts the device's replay, as it does
            # for every user (plugin_opt_auto_replay, default on): what was
            # queued, then {"k": "sync", "done": true}.
            self.replay_pending = self.broker.auto_replay
            if self.replay_pending and self.wait_replay:
                # Like a client, connect() returns once the replay ended (the
                # end is taken, the replayed events stay pending). A backlog
                # beyond the flow window needs receipts: wait_replay=False,
                # then read it after begin_replay().
                self.replay_done = self.wait_event("sync", done=True, timeout=timeout * SLOW)
                self.replay_pending = False
        return self

    def begin_replay(self):
        """Starts the replay of what is queued for the device: the one its
        subscription started if connect() did not wait for it, else a
        chat/sync. The events follow, ending with sync done."""
        if self.replay_pending:
            self.replay_pending = False
            return
        self.sync()

    def send_raw(self, topic, payload, qos=1, retain=False, timeout=5.0):
        return self.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)

    def send_dm(self, peer, cid, body=None, bodies=None, qos=1, retain=False, timeout=5.0, **extra):
        """Publishes a send to chat/dm/{peer} and waits for its PUBACK (PUBREC
        for QoS 2). Returns the ack's reason code (always 0 on MQTT 3.1.1)."""
        m = {}
        if cid is not None:
            m["cid"] = cid
        if body is not None:
            m["body"] = body
        if bodies is not None:
            m["bodies"] = bodies
        m.update(extra)
        return self.publish("%s/dm/%s" % (self.prefix, peer), cbor2.dumps(m), qos=qos, retain=retain,
                            timeout=timeout)

    def send_group(self, gid, cid, body=None, bodies=None, qos=1, timeout=5.0, **extra):
        """Publishes a send to chat/group/{gid}; returns the ack's reason code."""
        m = {"cid": cid}
        if body is not None:
            m["body"] = body
        if bodies is not None:
            m["bodies"] = bodies
        m.update(extra)
        return self.publish("%s/group/%s" % (self.prefix, gid), cbor2.dumps(m), qos=qos,
                            timeout=timeout)

    def typing(self, conv, on=True):
        """Publishes {on} on chat/typing/{conv} at QoS 0."""
        self.publish("%s/typing/%s" % (self.prefix, conv), cbor2.dumps({"on": on}), qos=0)

    def sync(self, timeout=5.0):
        """Publishes {} on chat/sync; returns the PUBACK's reason code."""
        return self.publish("%s/sync" % self.prefix, cbor2.dumps({}), timeout=timeout)

    def receipt(self, s, conv, seqs, timeout=5.0, wait=True):
        """Publishes {s, conv, seqs} on chat/receipt; returns the PUBACK's
        reason code (0 without waiting)."""
        m = {"s": s, "conv": conv, "seqs": list(seqs)}
        return self.publish("%s/receipt" % self.prefix, cbor2.dumps(m), timeout=timeout,
                            wait=wait)

    def ctl(self, op, rid, timeout=5.0, **fields):
        """Publishes {op, rid, …} on chat/ctl and returns the ctl event with
        that rid."""
        m = {"op": op, "rid": rid}
        m.update(fields)
        self.publish("%s/ctl" % self.prefix, cbor2.dumps(m), timeout=timeout)
        return self.wait_event("ctl", rid=rid, timeout=timeout)

    def events(self):
        return [e for (_, e) in self.drain()]

    def wait_event(self, k=None, timeout=5.0, **match):
        """Consumes and returns the first inbox event with kind k whose fields
        equal match; raises AssertionError after timeout."""
        if k is not None:
            match["k"] = k

        def pred(m):
            topic, ev = m
            return topic == self.inbox and isinstance(ev, dict) and _matches(ev, match)
        m = self.wait_message(pred, timeout)
        if m is None:
            with self.cond:
                seen = [e for (_, e) in self.messages]
            raise AssertionError("%s: no event matching %r within %.1fs; pending: %r"
                                 % (self.addr, match, timeout, seen))
        return m[1]

    def expect_no_event(self, timeout=0.5, **match):
        """Asserts that no event (matching, if match is given) arrives within
        timeout. Returns the pending events that did not match."""
        def pred(m):
            return isinstance(m[1], dict) and _matches(m[1], match)
        m = self.wait_message(pred, timeout)
        if m is not None:
            raise AssertionError("%s: unexpected event %r" % (self.addr, m[1]))



# ---------------------------------------------------------------- key server

KEYSERVER = os.path.join(BUILD_DIR, "bin", "chat-keyserver")
# e.g. CHAT_KEYSERVER_PREFIX="valgrind --error-exitcode=3 --leak-check=full"
KEYSERVER_PREFIX = os.environ.get("CHAT_KEYSERVER_PREFIX", "").split()


class Identity:
    """A device's long-lived keys: Ed25519 identity, X25519 signed pre-key,
    one-time pre-keys (private halves kept, as a client would)."""

    def __init__(self, spk_id=1):
        self.ik_pk, self.ik_sk = nb.crypto_sign_keypair()
        self.spk_id = spk_id
        self.spk_pk, self.spk_sk = nb.crypto_box_keypair()
        self.spk_sig = nb.crypto_sign(self.spk_pk, self.ik_sk)[:64]
        self.opks = {}
        self._next_opk = 1

    def new_opks(self, n):
        out = []
        for _ in range(n):
            pk, sk = nb.crypto_box_keypair()
            self.opks[self._next_opk] = sk
            out.append({"id": self._next_opk, "key": pk})
            self._next_opk += 1
        return out

    def ik_x_pk(self):
        return nb.crypto_sign_ed25519_pk_to_curve25519(self.ik_pk)

    def ik_x_sk(self):
        return nb.crypto_sign_ed25519_sk_to_curve25519(self.ik_sk)

    def upload_req(self, n_opks):
        return {"op": "upload", "ik": self.ik_pk,
                "spk": {"id": self.spk_id, "key": self.spk_pk, "sig": self.spk_sig},
                "opks": self.new_opks(n_opks)}


class Sidecar:
    """One sidecar process (chat-keyserver, chat-media) with its output in a
    file: what every sidecar's test helper does the same way."""
    NAME = "sidecar"

    def _start(self, cmd, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix=self.NAME + "-", suffix=".log", delete=False)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **env) if env else None)

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait_text(self, s, count=1, timeout=10.0):
        if not wait_until(lambda: self.text().count(s) >= count, timeout):
            raise AssertionError("%s never logged %r (x%d):\n%s" % (self.NAME, s, count, self.text()))

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("%s ignored SIGTERM:\n%s" % (self.NAME, self.text()))
        return self.proc.returncode

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        os.unlink(self.log.name)


class KeyServer(Sidecar):
    """One chat-keyserver process with its output in a file."""
    NAME = "keyserver"

    def __init__(self, broker, token_file, data_dir, *args, binary=KEYSERVER, env=None):
        """binary/env: test_keylog runs chat-keyserver-lying with CHAT_KS_LIE."""
        self.broker = broker
        self.token_file, self.data_dir = token_file, data_dir
        self._start(KEYSERVER_PREFIX + [binary, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "keys",
                                        "--token-file", token_file, "--data-dir", data_dir,
                                        "--log-level", "debug"] + list(args), env)

    def wait_serving(self, count=1, timeout=10.0):
        self.wait_text("serving key requests", count, timeout)

    @classmethod
    def for_broker(cls, broker, *args):
        """A key server for the service account `keys` (added here) of broker,
        with its data under the broker's temp dir; not yet waited for."""
        return cls(broker, broker.service_token_file("keys"),
                   os.path.join(broker.tmp, "keys-data"), *args)


# ---------------------------------------------------------------- media service

MEDIA = os.path.join(BUILD_DIR, "bin", "chat-media")
MEDIA_PREFIX = os.environ.get("CHAT_MEDIA_PREFIX", "").split()


class MediaServer(Sidecar):
    """One chat-media process (service account `media`) with its output in a
    file; its HTTP side on a free loopback port, its URL in .url."""
    NAME = "chat-media"

    def __init__(self, broker, token_file, data_dir, *args, user="media", http_port=None):
        self.broker = broker
        self.token_file, self.data_dir = token_file, data_dir
        self.http_port = http_port or free_port()
        scheme = "https" if "--https-cert" in args else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.http_port)
        self._start(MEDIA_PREFIX + [MEDIA, "-h", "127.0.0.1", "-p", str(broker.port), "-u", user,
                                    "--token-file", token_file, "--data-dir", data_dir,
                                    "--http-port", str(self.http_port),
                                    "--log-level", "debug"] + list(args))

    def wait_serving(self, count=1, timeout=10.0):
        # under CHAT_MEDIA_PREFIX (valgrind) start-up takes several times longer
        self.wait_text("serving media requests", count, timeout * (6 if MEDIA_PREFIX else 1))

    def blobs(self):
        """The blob files on disk."""
        d = os.path.join(self.data_dir, "blobs")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    @classmethod
    def for_broker(cls, broker, *args, user="media", data_dir=None):
        """A chat-media for the service account user (added here) of
        broker, with its data under the broker's temp dir (data_dir
        overrides); not yet waited for."""
        return cls(broker, broker.service_token_file(user),
                   data_dir or os.path.join(broker.tmp, user + "-data"), *args, user=user)


class MediaDevice:
    """A device's side of the attachment protocol: requests on
    chat/media/req/U/D, answers on chat/media/resp/U/D (subscribed here)."""

    _rid = itertools.count(1)

    def __init__(self, device):
        self.d = device
        self.resp_topic = "chat/media/resp/%s" % device.addr
        code = device.subscribe(self.resp_topic, 1)
        if code >= 0x80:
            raise AssertionError("own media response topic refused: 0x%02x" % code)

    def request(self, req, timeout=5.0):
        rid = next(self._rid)
        req = dict(req, rid=rid)
        return self.raw(cbor2.dumps(req), rid, timeout)

    def raw(self, payload, rid=None, timeout=5.0):
        """Publishes payload; returns the answer with that rid (or the next
        answer when rid is None)."""
        code = self.d.publish("chat/media/req/%s" % self.d.addr, payload)
        if code >= 0x80:
            raise AssertionError("media request refused by the broker: 0x%02x" % code)
        m = self.d.wait_message(lambda m: m[0] == self.resp_topic and
                                (rid is None or m[1].get("rid") == rid), timeout)
        if m is None:
            raise AssertionError("no media response (rid %r)" % rid)
        return m[1]

    def slot(self, size, to, type="application/octet-stream", **kw):
        return self.request(dict({"op": "slot", "size": size, "type": type, "to": list(to)}, **kw))

    def grant(self, blob_id):
        return self.request({"op": "get", "id": blob_id})


class ChatTestCase(unittest.TestCase):
    """One broker per test file: subclasses set broker_options / broker_lines."""

    broker_options = {}
    broker_lines = ()
    broker = None

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(options=cls.broker_options, extra_lines=cls.broker_lines)
        try:
            cls.broker.start()
        except Exception:
            cls.broker.cleanup()
            raise
        cls._clients = []

    @classmethod
    def tearDownClass(cls):
        for c in cls._clients:
            try:
                c.close()
            except Exception:
                pass
        if cls.broker:
            cls.broker.cleanup()

    def setUp(self):
        if not self.broker.running:
            self.fail("broker not running\n" + self.broker.diagnostics())

    def dev(self, user, dev, protocol=V311, **kw):
        d = self.broker.device(user, dev, protocol=protocol, **kw)
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def client(self, **kw):
        c = Client(self.broker, **kw)
        self._clients.append(c)
        self.addCleanup(c.close)
        return c

    def require_patched(self):
        """Skips a test of what only the broker-patches build does."""
        if not self.broker.patched:
            self.skipTest("needs the broker-patches build (CHAT_BROKER)")

    def require_stock(self):
        """Skips a test of stock mosquitto's behaviour that the patched
        broker improves on (the patched variant is tested beside it)."""
        if self.broker.patched:
            self.skipTest("stock mosquitto only")

    def assert_serving(self):
        """The broker is alive and still delivers chat messages."""
        self.assertTrue(self.broker.running, self.broker.diagnostics())
        a, b = uniq("alive"), uniq("alive")
        da = self.dev(a, "d")
        db = self.dev(b, "d")
        da.send_dm(b, 1, body=b"still here")
        ev = db.wait_event("msg", conv=conv_of(a, b))
        self.assertEqual(ev["body"], b"still here")


def main():
    if not os.path.exists(PLUGIN):
        sys.stderr.write("plugin not built: %s\n" % PLUGIN)
    unittest.main(verbosity=2, warnings="ignore")
