# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Attachments end to end (issue 32; docs/E2EE.md §4.5): a real broker and
plugin, the real chat-keyserver and chat-media, and chat-client processes.

A 5 MB file and a voice note (a WAV file made here) go 1:1 and to a group;
every recipient device (the peer's two, the sender's other one, the group's
members) saves a byte-identical copy. One download is cut midway (the
client's test hook drops the connection) and resumes with a Range request
that chat-media answers 206. Once every recipient device has its copy the
blob is gone from chat-media's data dir. A blob altered on the server's
disk is refused by its digest and never saved. A download that fails
while chat-media's HTTP side is unreachable stays pending in the recipient's
state and is saved by its next run once chat-media is back (same data dir);
a pending one whose blob is gone (not_found) is dropped. Neither chat-media's data
dir nor its log, nor the broker's, holds a byte of the files in clear (a
marker inside each file is searched for).

The web client's side (the page sends and receives attachments, chat-client
reads them) is test_web.py's `attachment` scenario.
"""

import hashlib
import math
import os
import struct
import subprocess

import urllib.request

from chatlib import (BUILD_DIR, V5, ChatTestCase, KeyServer, MediaDevice, MediaServer, free_port,
                     main, uniq, wait_until)

CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
MARKER = b"PLAINTEXT-MARKER-of-test_attachments-7c1e"
MiB = 1 << 20


def big_file(path, size=5 * MiB):
    """size bytes: random, with the marker every 256 KiB."""
    data = bytearray(os.urandom(size))
    for at in range(1000, size - len(MARKER), 256 * 1024):
        data[at:at + len(MARKER)] = MARKER
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def voice_note(path, seconds=1.5, rate=8000):
    """A mono 16-bit WAV: a 440 Hz tone, and the marker in a LIST chunk."""
    n = int(seconds * rate)
    pcm = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate)))
                   for i in range(n))
    comment = MARKER + b"\0" * (2 - len(MARKER) % 2)   # a zstr, even: RIFF chunks are word-aligned
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt +
            b"LIST" + struct.pack("<I", len(info)) + info +
            b"data" + struct.pack("<I", len(pcm)) + pcm)
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    with open(path, "wb") as f:
        f.write(data)
    return data


class AttachmentTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ks = KeyServer.for_broker(cls.broker)
        cls.media = MediaServer.for_broker(cls.broker)
        try:
            cls.ks.wait_serving()
            cls.media.wait_serving()
        except Exception:
            cls.media.cleanup()
            cls.ks.cleanup()
            super().tearDownClass()
            raise
        cls.home = os.path.join(cls.broker.tmp, "clients")
        os.makedirs(cls.home)
        cls.files = {}   # name -> bytes, for the plaintext search at the end

    @classmethod
    def tearDownClass(cls):
        try:
            # chat-media never saw a byte of the files in clear
            media_log = cls.media.text()
            rc = cls.media.stop()
            assert rc == 0, "chat-media exited %r:\n%s" % (rc, media_log)
            assert cls.files, "no file was sent"
            blobs = [("chat-media log", media_log.encode()),
                     ("broker log", cls.broker.all_output().encode())]
            for root in (cls.media.data_dir, cls.broker.data_dir):
                for d, _, names in os.walk(root):
                    for name in names:
                        with open(os.path.join(d, name), "rb") as f:
                            blobs.append((os.path.join(d, name), f.read()))
            for where, data in blobs:
                assert MARKER not in data, "the files' marker is in %s" % where
                for name, plain in cls.files.items():
                    mid = len(plain) // 2
                    assert plain[mid:mid + 64] not in data, "%s's bytes are in %s" % (name, where)
        finally:
            cls.media.cleanup()
            cls.ks.cleanup()
            super().tearDownClass()

    # ---- helpers ----

    def device(self, user, dev):
        token = self.broker.add_device(user, dev)
        path = os.path.join(self.home, "%s_%s.token" % (user, dev))
        with open(path, "w") as f:
            f.write(token + "\n")
        return {"addr": "%s/%s" % (user, dev), "token": path,
                "state": os.path.join(self.home, "%s_%s.state" % (user, dev))}

    def run_client(self, d, *args, env=None, timeout=60):
        cmd = [CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", d["addr"],
               "--token-file", d["token"], "--state", d["state"]] + [str(a) for a in args]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ, **(env or {})))
        if r.returncode != 0:
            raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s\nchat-media:\n%s"
                                 % (" ".join(cmd), r.returncode, r.stdout, r.stderr,
                                    self.media.text()[-3000:]))
        return r

    def received(self, d, env=None):
        """Runs --recv: the attachment lines (conv, seq, from, path, caption) and stderr."""
        r = self.run_client(d, "--recv", "--timeout", 1, env=env)
        got = []
        for line in r.stdout.splitlines():
            f = line.split("\t")
            if len(f) >= 4 and f[3].startswith("file:"):
                got.append((f[0], int(f[1]), f[2], f[3][5:], f[4] if len(f) > 4 else None))
        return got, r.stderr

    def assert_saved(self, d, got, want, name, sender, conv, caption=None):
        self.assertEqual(len(got), 1, "%s: %r" % (d["addr"], got))
        c, seq, frm, path, cap = got[0]
        self.assertEqual((c, frm, cap), (conv, sender["addr"], caption))
        self.assertGreater(seq, 0)
        self.assertEqual(os.path.basename(path), name)
        self.assertTrue(path.startswith(os.path.join(d["state"], "files") + "/"), path)
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(hashlib.sha256(data).hexdigest(), hashlib.sha256(want).hexdigest(),
                         "%s's copy of %s differs" % (d["addr"], name))
        # nothing half-done is left next to it
        left = [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".")]
        self.assertEqual(left, [], left)

    def restart_media(self, *args):
        """Stops chat-media and starts another on the same data dir with args."""
        old = type(self).media
        rc = old.stop()
        log = old.text()
        old.cleanup()
        self.assertEqual(rc, 0, log)
        type(self).media = MediaServer(self.broker, old.token_file, old.data_dir, *args)
        self.media.wait_serving()

    def blob_ids(self, stderr):
        return [l.rsplit(" as ", 1)[1] for l in stderr.splitlines() if "uploaded" in l]

    # ---- tests ----

    def test_files_one_to_one_and_to_a_group(self):
        alice, bob, carol = uniq("alice"), uniq("bob"), uniq("carol")
        a1, a2 = self.device(alice, "phone"), self.device(alice, "laptop")
        b1, b2 = self.device(bob, "phone"), self.device(bob, "laptop")
        c1 = self.device(carol, "phone")
        for d in (a1, a2, b1, b2, c1):   # registers each device's keys
            self.run_client(d, "--recv", "--timeout", 0)
        big = big_file(os.path.join(self.home, "report.bin"))
        voice = voice_note(os.path.join(self.home, "voice note.wav"))
        self.files.update({"report.bin": big, "voice note.wav": voice})
        dm = "dm:%s:%s" % tuple(sorted((alice, bob)))

        # 1:1: the 5 MB file with a caption, then the voice note
        r = self.run_client(a1, "--send-file", bob, os.path.join(self.home, "report.bin"),
                            "--caption", "the report, as promised")
        self.assertIn("sent", r.stderr)
        r = self.run_client(a1, "--send-file", bob, os.path.join(self.home, "voice note.wav"))
        ids = self.blob_ids(r.stderr)
        self.assertEqual(len(ids), 1, r.stderr)
        self.assertEqual(len(self.media.blobs()), 2, self.media.blobs())

        # bob's phone: its first download is cut after 1 MB (a dropped
        # connection) and resumes with a Range request, answered 206
        got, err = self.received(b1, env={"CHAT_CLIENT_TEST_CUT_GET": str(MiB)})
        self.assertIn("download interrupted after %d bytes" % MiB, err)
        self.assertIn("resuming the download at byte %d" % MiB, err)
        self.assertRegex(err, r"resumed download: HTTP 206, Content-Range bytes %d-\d+/\d+" % MiB)
        self.assertEqual(len(got), 2, got)
        self.assert_saved(b1, got[:1], big, "report.bin", a1, dm, "the report, as promised")
        self.assert_saved(b1, got[1:], voice, "voice note.wav", a1, dm)
        # the blobs stay until every recipient device has them
        self.assertEqual(len(self.media.blobs()), 2)
        for d in (b2, a2):
            got, _ = self.received(d)
            self.assertEqual(len(got), 2, got)
            self.assert_saved(d, got[:1], big, "report.bin", a1, dm, "the report, as promised")
            self.assert_saved(d, got[1:], voice, "voice note.wav", a1, dm)
        self.assertTrue(wait_until(lambda: self.media.blobs() == [], 5), self.media.blobs())

        # a group: the voice note and the 5 MB file to alice, bob and carol
        gid = uniq("team")
        rc, out, err = self.broker.chatctl("group", "create", gid, "--owner", alice,
                                           "--members", "%s,%s" % (bob, carol))
        self.assertEqual(rc, 0, err)
        self.run_client(a1, "--group", gid, "--send-file", os.path.join(self.home, "voice note.wav"),
                        "--caption", "listen")
        self.run_client(a1, "--group", gid, "--send-file", os.path.join(self.home, "report.bin"))
        for d in (b1, b2, c1, a2):
            got, _ = self.received(d)
            self.assertEqual(len(got), 2, "%s: %r" % (d["addr"], got))
            self.assert_saved(d, got[:1], voice, "1-voice note.wav" if d is not c1 else
                              "voice note.wav", a1, "g:" + gid, "listen")
            self.assert_saved(d, got[1:], big, "1-report.bin" if d is not c1 else "report.bin",
                              a1, "g:" + gid)
        self.assertTrue(wait_until(lambda: self.media.blobs() == [], 5), self.media.blobs())

    def test_altered_blob_is_refused_and_not_saved(self):
        alice, bob = uniq("alice"), uniq("bob")
        a, b = self.device(alice, "phone"), self.device(bob, "phone")
        for d in (a, b):
            self.run_client(d, "--recv", "--timeout", 0)
        path = os.path.join(self.home, "notes.txt")
        plain = b"meeting notes\n" + MARKER + b"\n" + os.urandom(3000)
        with open(path, "wb") as f:
            f.write(plain)
        self.files["notes.txt"] = plain
        r = self.run_client(a, "--send-file", bob, path)
        (blob,) = self.blob_ids(r.stderr)
        # someone with the server's disk flips a byte of the stored ciphertext
        stored = os.path.join(self.media.data_dir, "blobs", blob)
        with open(stored, "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 1]))
        got, err = self.received(b)
        self.assertEqual(got, [])
        self.assertIn("does not match its digest; not saved", err)
        files = os.path.join(b["state"], "files")
        self.assertEqual(os.listdir(files) if os.path.isdir(files) else [], [])

    def test_download_kept_pending_until_chat_media_is_back(self):
        alice, bob = uniq("alice"), uniq("bob")
        a, b = self.device(alice, "phone"), self.device(bob, "phone")
        for d in (a, b):
            self.run_client(d, "--recv", "--timeout", 0)
        blobs = {}
        for name, size in (("kept.bin", 200000), ("gone.bin", 3000)):
            plain = MARKER + os.urandom(size)
            with open(os.path.join(self.home, name), "wb") as f:
                f.write(plain)
            self.files[name] = plain
            r = self.run_client(a, "--send-file", bob, os.path.join(self.home, name))
            (blobs[name],) = self.blob_ids(r.stderr)

        # chat-media answers, but the URLs it grants lead to a closed port
        self.restart_media("--public-url", "http://127.0.0.1:%d" % free_port())
        got, err = self.received(b)
        self.assertEqual(got, [])
        for blob in blobs.values():
            self.assertIn("the attachment %s could not be downloaded now" % blob, err)
        self.assertIn("2 attachment download(s) pending", err)
        files = os.path.join(b["state"], "files")
        saved = [n for n in os.listdir(files) if not n.startswith(".")] if os.path.isdir(files) else []
        self.assertEqual(saved, [])
        self.assertEqual(sorted(self.media.blobs()), sorted(blobs.values()))

        # chat-media back as it was; meanwhile gone.bin's blob was fetched for
        # bob's phone (by another client with its credentials): not_found now
        self.restart_media()
        with open(b["token"]) as f:
            token = f.read().strip()
        dev = self.broker.device(bob, "phone", protocol=V5, token=token, subscribe=False)
        try:
            grant = MediaDevice(dev).grant(blobs["gone.bin"])
            self.assertTrue(grant.get("ok"), grant)
            with urllib.request.urlopen(grant["url"], timeout=5) as resp:
                self.assertEqual(len(resp.read()), grant["size"])
        finally:
            dev.close()
        got, err = self.received(b)
        self.assertIn("retrying 2 pending attachment download(s)", err)
        self.assertIn("chat-media no longer has it", err)
        self.assertIn("dropped from the pending downloads", err)
        self.assertIn("no attachment download pending", err)
        self.assert_saved(b, got, self.files["kept.bin"], "kept.bin", a,
                          "dm:%s:%s" % tuple(sorted((alice, bob))))
        self.assertTrue(wait_until(lambda: self.media.blobs() == [], 5), self.media.blobs())
        # nothing left to retry
        _, err = self.received(b)
        self.assertNotIn("pending attachment", err)


if __name__ == "__main__":
    main()
