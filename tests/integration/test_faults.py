# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Faults: the store's disk fills up under a real broker.

The data dir lives on a size-limited tmpfs (mounted here; needs root, the
test is skipped with the reason otherwise). A filler file leaves a little
room over plugin_opt_min_free_mb, then a device sends large messages until
the store stops writing: each send
is either acknowledged (stored) or refused with an `error` event (`store`)
and, for MQTT 5, a failure code on its PUBACK — never a success for an
unstored message. The broker keeps running and answering, and stores again
once the space comes back. After a restart, every acknowledged message is there, in
order, with no gaps, and sends work again.
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

import cbor2

from chatlib import V5, Broker, Device, conv_of, main, uniq

from test_crash import replay

BODY = 60000          # under the default max_body of 65536 with the CBOR around it
FS_SIZE_MB = 200
MIN_FREE_MB = 80      # plugin_opt_min_free_mb: over the memtables a flush writes out


def _mount_tmpfs(path, size_mb):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


class StoreFullTest(unittest.TestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a size-limited tmpfs needs root")
        self.mnt = tempfile.mkdtemp(prefix="chat-full-")
        ok, err = _mount_tmpfs(self.mnt, FS_SIZE_MB)
        if not ok:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount tmpfs here: %s" % err)
        self.addCleanup(self._unmount)
        self.broker = Broker(data_dir=os.path.join(self.mnt, "data"),
                             options={"min_free_mb": MIN_FREE_MB})
        self.addCleanup(self.broker.cleanup)
        self.broker.start()

    def _unmount(self):
        self.broker.stop()
        subprocess.run(["umount", self.mnt], capture_output=True)
        os.rmdir(self.mnt)

    def free_bytes(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def fill(self, leave):
        """A filler file that leaves about `leave` bytes free."""
        path = os.path.join(self.mnt, "filler")
        with open(path, "ab") as f:
            chunk = b"\0" * (1 << 20)
            while self.free_bytes() > leave + len(chunk):
                f.write(chunk)
                f.flush()
            rest = self.free_bytes() - leave
            if rest > 0:
                f.write(b"\0" * rest)
        return path

    def test_disk_full_refuses_sends_keeps_what_was_stored(self):
        b = self.broker
        a, r = uniq("writer"), uniq("reader")
        ta = b.add_device(a, "phone")
        tr = b.add_device(r, "phone")          # offline: everything is queued for it
        o = uniq("other")
        to = b.add_device(o, "phone")
        da = Device(b, a, "phone", ta, protocol=V5).connect()
        self.addCleanup(da.close)
        conv = conv_of(a, r)
        for cid in range(1, 6):                # stored before the disk fills
            self.assertLess(da.send_dm(r, cid, body=b"%d:early" % cid), 0x80)
        da.events()
        filler = self.fill(leave=(MIN_FREE_MB << 20) + (3 << 19))

        acked, refused, cid = [], [], 5
        deadline = time.monotonic() + 60
        while len(refused) < 5 and time.monotonic() < deadline:
            cid += 1
            body = (b"%d:" % cid) + os.urandom(BODY)   # incompressible
            code = da.send_dm(r, cid, body=body, timeout=15)
            (acked if code < 0x80 else refused).append(cid)
            self.assertTrue(b.running, "the broker died on a full disk\n" + b.diagnostics())
        self.assertTrue(refused, "the disk never filled: %d sends acknowledged\n%s"
                        % (len(acked), b.diagnostics(20)))
        errs = {}
        for _ in refused:
            ev = da.wait_event("error", timeout=5)
            errs[ev["cid"]] = ev["code"]
        self.assertEqual(sorted(errs), refused)
        self.assertEqual(set(errs.values()), {"store"}, errs)
        # still answering: a new connection, a ctl request (adding a device
        # is a write: refused with a reason)
        rc, _, err = b.chatctl("device", "add", uniq("late"), "phone")
        self.assertNotEqual(rc, 0)
        self.assertIn("store", err)
        other = b.device(o, "phone", token=to)
        self.addCleanup(other.close)
        self.assertTrue(other.ctl("devices", 1, user=a)["ok"])
        self.assertTrue(b.running)
        
        # space comes back: sends are stored again, without a restart
        os.unlink(filler)
        cid += 1
        self.assertLess(da.send_dm(r, cid, body=b"%d:back" % cid), 0x80)
        acked.append(cid)
        # the broker restarts on the same store
        da.close()
        other.close()
        self.assertTrue(b.stop() is not None)
        b.start()
        # replay() reads the replay the subscription starts, acknowledging as
        # it goes (the backlog may exceed the flow window); a chat/sync after
        # it would replay everything again
        dr = Device(b, r, "phone", tr, wait_replay=False).connect()
        self.addCleanup(dr.close)
        got = replay(dr, timeout=20)
        msgs = [e for e in got if e.get("k") == "msg" and e["conv"] == conv]
        self.assertEqual([e["seq"] for e in msgs], list(range(1, len(msgs) + 1)), "seq gaps")
        cids = [int(e["body"].split(b":")[0]) for e in msgs]
        n_acked = 5 + len(acked)
        self.assertEqual(cids, list(range(1, 6)) + acked,
                         "an acknowledged message lost, or a refused one stored")
        # and sends work again
        da = Device(b, a, "phone", ta, protocol=V5).connect()
        self.addCleanup(da.close)
        self.assertLess(da.send_dm(r, cid + 1, body=b"after"), 0x80)
        self.assertEqual(dr.wait_event("msg", timeout=10)["body"], b"after")
        sys.stderr.write("[disk full: %d acknowledged, %d refused, all acknowledged kept] "
                         % (n_acked, len(refused)))


if __name__ == "__main__":
    main()
