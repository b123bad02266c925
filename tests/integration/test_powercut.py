# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""A power cut, not only kill -9: the broker runs on its data dir under the
tests/powercut shim (LD_PRELOAD), which records what the process made
durable (per file the length at its last fsync/fdatasync, per directory its
entries at its last fsync). A sender bursts QoS 1 dms to an offline
recipient; the broker is killed with SIGKILL mid-burst, powercut.py drops
from the data dir everything that was never made durable (what losing the
page cache does; the model is the top comment of tests/powercut/powercut.c),
and the broker restarts normally on what is left: RocksDB must recover
(the store keeps RocksDB 7.8's default WAL recovery, kPointInTimeRecovery,
which stops at the first bad or missing record: a cut tail is what it is
made for).

 - sync_writes true: every send whose PUBACK the sender got, and every
   `sent` event it read, is in the recipient's replay. Only the public
   behaviour is tested (PUBACK received => survives), so a broker that
   defers PUBACKs behind a group commit is tested unchanged. On the
   broker-patches build that is what runs (plugin/commit.c: writes without
   a sync, one fsync for many, the PUBACK after it): the test checks the
   plugin said so at start, and that no `sent` came before its PUBACK.
 - sync_writes false (the default): the PUBACKed sends the cut took are
   counted and printed; there must be some, since the WAL is written but
   never fsync'd (the test checks the cut dropped bytes of it, and that
   what survives is a consistent prefix: seqs 1..n, no gaps).
 - the *Torn variants cut each unsynced tail in its middle instead (part
   of it was written back), so the WAL ends in a torn record.
 - PowercutFirstStartTest: a device added just after a first start with
   sync writes on survives a cut (the directories that hold the names a
   first start creates are fsync'd: common/durable.h).

PowercutModelTest checks the model itself on a small child process.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

import cbor2

from chatlib import BUILD_DIR, SANITIZER_ENV, Broker, ChatTestCase, Device, conv_of, main, uniq
import powercut

SHIM = os.path.join(BUILD_DIR, "lib", "powercut.so")


def shim_missing():
    if SANITIZER_ENV:
        return "sanitizer build: the broker preloads the sanitizer runtimes, not the shim"
    if not os.path.exists(SHIM):
        return "power-cut shim not built: %s" % SHIM
    return None


# ---------------------------------------------------------------- the model

CHILD_PRELUDE = textwrap.dedent("""\
    import ctypes, os, signal
    d = os.environ["POWERCUT_DIR"]
    def put(name, data, sync=False, flags=0):
        fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY | os.O_APPEND | flags, 0o644)
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        return fd
    def dsync(sub="."):
        fd = os.open(os.path.join(d, sub), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    """)


@unittest.skipIf(shim_missing(), shim_missing())
class PowercutModelTest(unittest.TestCase):
    """A child under the shim does a few writes and syncs, kills itself with
    SIGKILL; after the cut exactly what it synced is left."""

    def cut(self, script, before=None):
        tmp = tempfile.mkdtemp(prefix="chat-powercut-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d, log = os.path.join(tmp, "d"), os.path.join(tmp, "log")
        os.mkdir(d)
        for name, data in (before or {}).items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        os.sync()   # the baseline is durable
        env = dict(os.environ, LD_PRELOAD=SHIM, POWERCUT_DIR=d, POWERCUT_LOG=log)
        code = CHILD_PRELUDE + textwrap.dedent(script) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr.decode(errors="replace"))
        self.report = powercut.apply(d, log)
        out = {}
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isdir(p):
                out[n + "/"] = {m: open(os.path.join(p, m), "rb").read() for m in os.listdir(p)}
            else:
                with open(p, "rb") as f:
                    out[n] = f.read()
        return out

    def test_synced_prefix_kept_unsynced_tail_dropped(self):
        got = self.cut("""
            fd = put("wal", b"A" * 100, sync=True)
            os.write(fd, b"B" * 50)                  # written, never synced
            dsync()
            fd = put("data", b"C" * 10)
            os.fdatasync(fd)                         # fdatasync counts
            os.write(fd, b"D" * 4096)
            dsync()
            os.write(fd, b"E")
        """)
        self.assertEqual(got, {"wal": b"A" * 100, "data": b"C" * 10})
        self.assertEqual(self.report["cut"], {"wal": 50, "data": 4097})

    def test_file_never_synced_comes_back_empty(self):
        # its name was made durable by the directory fsync, its data never
        self.assertEqual(self.cut("""
            put("f", b"x" * 1000)
            dsync()
        """), {"f": b""})

    def test_sync_file_range_makes_nothing_durable(self):
        # RocksDB 7.8 calls it; it writes pages back but not the size
        self.assertEqual(self.cut("""
            libc = ctypes.CDLL(None, use_errno=True)
            fd = put("f", b"x" * 8192)
            dsync()
            WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4
            assert libc.sync_file_range(fd, ctypes.c_long(0), ctypes.c_long(0),
                                        WAIT_BEFORE | WRITE | WAIT_AFTER) == 0
        """), {"f": b""})

    def test_o_sync_writes_are_durable(self):
        self.assertEqual(self.cut("""
            put("f", b"s" * 10, flags=os.O_SYNC)
            dsync()
        """), {"f": b"s" * 10})

    def test_create_without_directory_fsync_is_undone(self):
        self.assertEqual(self.cut("""
            put("new", b"n" * 10, sync=True)          # data synced, entry not
        """, before={"old": b"o"}), {"old": b"o"})

    def test_rename_over_a_file_undone_unless_directory_synced(self):
        # RocksDB's CURRENT: a temp file, fdatasync, rename, fsync the dir
        script = textwrap.dedent("""
            put("CURRENT.tmp", b"MANIFEST-2", sync=True)
            os.rename(os.path.join(d, "CURRENT.tmp"), os.path.join(d, "CURRENT"))
        """)
        self.assertEqual(self.cut(script, before={"CURRENT": b"MANIFEST-1"}),
                         {"CURRENT": b"MANIFEST-1"})
        self.assertEqual(self.report["restored"], ["CURRENT"])
        self.assertEqual(self.cut(script + "dsync()\n", before={"CURRENT": b"MANIFEST-1"}),
                         {"CURRENT": b"MANIFEST-2"})

    def test_unlink_undone_unless_directory_synced(self):
        self.assertEqual(self.cut("""
            os.unlink(os.path.join(d, "a"))
        """, before={"a": b"kept"}), {"a": b"kept"})
        self.assertEqual(self.cut("""
            os.unlink(os.path.join(d, "a"))
            dsync()
        """, before={"a": b"kept"}), {})

    def test_new_directory_needs_its_parent_synced(self):
        script = textwrap.dedent("""
            os.mkdir(os.path.join(d, "sub"))
            put("sub/f", b"x", sync=True)
            dsync("sub")
        """)
        self.assertEqual(self.cut(script), {})
        self.assertEqual(self.cut(script + "dsync()\n"), {"sub/": {"f": b"x"}})

    def test_overwrite_of_synced_bytes_is_refused(self):
        with self.assertRaisesRegex(powercut.ModelError, "cannot undo"):
            self.cut("""
                fd = os.open(os.path.join(d, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
                os.write(fd, b"x" * 10)
                os.fsync(fd)
                os.pwrite(fd, b"y", 0)
            """)


# ---------------------------------------------------------------- the broker

def replay(dev, timeout=15.0):
    """The recipient's sync: its msg events up to sync done, acknowledged
    with delivered receipts in batches."""
    dev.begin_replay()
    got, seqs = [], []
    while True:
        ev = dev.wait_event(timeout=timeout)
        if ev.get("k") == "sync" and ev.get("done") is True:
            break
        got.append(ev)
        if ev.get("k") == "msg":
            seqs.append(ev["seq"])
            if len(seqs) >= 100:
                dev.receipt("delivered", ev["conv"], seqs)
                seqs = []
    if seqs:
        dev.receipt("delivered", got[-1]["conv"], seqs)
    return got


@unittest.skipIf(shim_missing(), shim_missing())
class PowercutSyncWritesTest(ChatTestCase):
    # Queues must hold messages until the recipient's receipt; the recipient
    # is offline throughout the burst anyway.
    broker_options = {"sync_writes": "true", "delivered_on_puback": "false"}
    expect_loss = False
    torn = False        # powercut.apply(torn=...): keep part of unsynced tails
    BURST, KILL_AFTER = 2000, 150     # paho sends 20 at a time; the cut comes long before the end

    def connect(self, user, dev, token):
        d = Device(self.broker, user, dev, token, wait_replay=False).connect()
        self._clients.append(d)
        self.addCleanup(d.close)
        return d

    def test_power_cut_mid_burst(self):
        a, b = uniq("a"), uniq("b")
        conv = conv_of(a, b)
        ta, tb = self.broker.add_device(a, "phone"), self.broker.add_device(b, "phone")
        # The devices were written with this test's sync setting; the cut is
        # about the burst, so the start of the run is made durable first.
        self.broker.stop()
        os.sync()
        log = os.path.join(self.broker.tmp, "powercut.log")
        self.broker.env = {"LD_PRELOAD": SHIM, "POWERCUT_DIR": self.broker.data_dir,
                           "POWERCUT_LOG": log}
        self.broker.start()
        self.broker.env = {}
        if self.broker.options["sync_writes"] == "true":
            mode = "group commit" if self.broker.patched else "one fsync per write"
            self.assertIn("sync writes: " + mode, self.broker.log_text())

        da = self.connect(a, "phone", ta)
        mid_cid = {}
        for cid in range(1, self.BURST + 1):
            info = da.c.publish("chat/dm/%s" % b, cbor2.dumps({"cid": cid, "body": b"%d" % cid}),
                                qos=1)
            mid_cid[info.mid] = cid
        with da.c.ack_cond:
            self.assertTrue(da.c.ack_cond.wait_for(
                lambda: len(da.c.ack_codes) >= self.KILL_AFTER, 30), self.broker.diagnostics())
        self.broker.kill9()                   # the power goes now
        self.assertTrue(da.disconnected.wait(5), "the sender did not see the broker go")
        da.c.loop_stop()
        da._looping = False
        with da.c.ack_cond:
            acked = {mid_cid[m] for m, code in da.c.ack_codes.items() if code < 0x80}
        sent = {e["cid"] for e in da.events() if e.get("k") == "sent"}
        self.assertLess(len(acked), self.BURST, "the burst finished before the cut")
        # one socket, read in order: a `sent` never overtakes its PUBACK
        self.assertEqual(sorted(sent - acked), [], "sent events before their PUBACK")

        report = powercut.apply(self.broker.data_dir, log, torn=self.torn)
        sys.stderr.write("[%s] " % powercut.summary(report))
        wal_cut = sum(n for p, n in report["cut"].items() if p.endswith(".log"))

        self.broker.start()   # RocksDB recovers from what the cut left
        db = self.connect(b, "phone", tb)
        got = replay(db)
        self.assertTrue(all(e["k"] == "msg" and e["conv"] == conv for e in got), got[:3])
        cids = [int(e["body"]) for e in got]
        # what survives is a prefix of the sends, in order, with no gaps
        self.assertEqual([e["seq"] for e in got], list(range(1, len(got) + 1)))
        self.assertEqual(cids, list(range(1, len(cids) + 1)))
        lost = sorted(acked - set(cids))
        sys.stderr.write("[sync_writes %s%s: %d sends PUBACKed (%d sent events) before the cut, "
                         "%d survived, %d PUBACKed lost, %d WAL bytes cut] "
                         % (self.broker_options["sync_writes"], ", torn" if self.torn else "",
                            len(acked), len(sent), len(cids),
                            len(lost), wal_cut))
        if not self.expect_loss:
            self.assertEqual(lost, [], "PUBACKed sends lost by the power cut")
            self.assertEqual(sorted(sent - set(cids)), [], "sent events for lost sends")
        else:
            # Nothing fsyncs the WAL with sync writes off (its memtable
            # never fills in a burst this small): the cut drops the WAL's
            # whole tail (torn: half of it), and with it what was PUBACKed.
            self.assertGreater(wal_cut, 0, "nothing of the WAL was unsynced")
            self.assertGreater(len(lost), 0, "sync writes off, yet the cut lost nothing")


class PowercutAsyncWritesTest(PowercutSyncWritesTest):
    """The default, sync_writes false: a PUBACK survives kill -9 only."""
    broker_options = {"sync_writes": "false", "delivered_on_puback": "false"}
    expect_loss = True


class PowercutSyncWritesTornTest(PowercutSyncWritesTest):
    """Write-back had reached the middle of the unsynced tails: the WAL ends
    in a torn record, which recovery must take as its end."""
    torn = True


class PowercutAsyncWritesTornTest(PowercutAsyncWritesTest):
    torn = True


@unittest.skipIf(shim_missing(), shim_missing())
class PowercutFirstStartTest(unittest.TestCase):
    """A power cut just after a first start with sync writes on."""

    # The names a first start creates (<data_dir>/store, admin.token) are
    # durable only once their directory is fsync'd: under the POSIX model a
    # cut would otherwise take the whole store and the token with it, though
    # the device add was acknowledged with sync writes on. The plugin and the
    # store fsync the parent after each (common/durable.h).
    def test_acknowledged_device_add_survives(self):
        b = Broker(options={"sync_writes": "true"})
        self.addCleanup(b.cleanup)
        log = os.path.join(b.tmp, "powercut.log")
        os.sync()
        b.env = {"LD_PRELOAD": SHIM, "POWERCUT_DIR": b.data_dir, "POWERCUT_LOG": log}
        b.start()
        b.env = {}
        token = b.add_device("first", "phone")
        b.kill9()
        sys.stderr.write("[%s] " % powercut.summary(powercut.apply(b.data_dir, log)))
        b.start()
        d = Device(b, "first", "phone", token)
        self.assertEqual(d.try_connect(), 0, "the device added before the cut is gone")
        d.close()


if __name__ == "__main__":
    main()
