# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""chat-media through a real broker and real HTTP: slots and grants over
MQTT, signed PUT and GET URLs, ranged (resumed) downloads, deletion once
every recipient device is done, TTL expiry, quotas and every refusal of
docs/PROTOCOL.md § "Attachments".

The bodies are random bytes standing in for the ciphertext a client
uploads (the service never sees anything else); the tests check that they
come back byte-identical and that nothing of them reaches the log.
"""

import hashlib
import http.client
import os
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import cbor2

from chatlib import (MEDIA, V5, ChatTestCase, MediaDevice, MediaServer, main, uniq,
                     wait_until)

MiB = 1 << 20


def req(method, url, body=None, headers=None, timeout=10.0, context=None):
    """One request on a fresh connection: (status, headers dict, body)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        c = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=context)
    else:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def with_query(url, **changes):
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    q.update(changes)
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


class MediaTest(ChatTestCase):

    # --cors-origin as make run gives it (the web client's page is on the
    # broker's WebSockets port, another origin).
    media_args = ("--cors-origin", "*")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.media = MediaServer.for_broker(cls.broker, *cls.media_args)
        try:
            cls.media.wait_serving()
        except Exception:
            cls.media.cleanup()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.media.stop()
            if rc != 0:
                raise AssertionError("chat-media exited %r:\n%s" % (rc, cls.media.text()))
        finally:
            cls.media.cleanup()
            super().tearDownClass()

    def mdev(self, user, dev):
        return MediaDevice(self.dev(user, dev, protocol=V5))

    def upload(self, sender, to, body, type="application/octet-stream"):
        r = sender.slot(len(body), to, type=type)
        self.assertTrue(r["ok"], r)
        st, _, txt = req("PUT", r["put"], body)
        self.assertEqual(st, 201, txt)
        return r["id"]

    def answer_of(self, server, md, req, n=2):
        """The answer of `server` (a second chat-media on its own share
        group; both answer every request) to req from md."""
        rid = next(MediaDevice._rid)
        md.d.publish("chat/media/req/%s" % md.d.addr, cbor2.dumps(dict(req, rid=rid)))
        mine = lambda m: m[0] == md.resp_topic and m[1].get("rid") == rid
        self.assertTrue(wait_until(lambda: len([m for m in md.d.messages if mine(m)]) >= n, 5))
        got = [m[1] for m in md.d.drain() if mine(m)]
        ours = [r for r in got if r.get("put", r.get("url", "")).startswith(server.url)]
        self.assertEqual(len(ours), 1, got)
        return ours[0]

    def grant_url(self, md, blob_id):
        g = md.grant(blob_id)
        self.assertTrue(g["ok"], g)
        return g

    # ---- the whole flow ----

    def test_upload_resume_and_delete_after_last_device(self):
        a, b = uniq("alice"), uniq("bob")
        ma = self.mdev(a, "phone")
        b1, b2 = self.mdev(b, "phone"), self.mdev(b, "laptop")
        body = os.urandom(5 * MiB + 12345)
        r = ma.slot(len(body), [b + "/phone", b + "/laptop"], type="audio/ogg")
        self.assertEqual(set(r), {"rid", "ok", "id", "put", "expires"})
        self.assertTrue(r["put"].startswith(self.media.url + "/v1/blob/" + r["id"] + "?"))
        self.assertAlmostEqual(r["expires"], time.time() + 600, delta=30)  # 10 min default
        blob_id = r["id"]

        g = b1.grant(blob_id)  # before the upload
        self.assertEqual((g["ok"], g["code"]), (False, "not_ready"), g)

        st, _, _ = req("PUT", r["put"], body)
        self.assertEqual(st, 201)
        self.assertIn(blob_id, self.media.blobs())

        # b1: the first 2 MiB, then (an interruption) resume from there
        g = self.grant_url(b1, blob_id)
        self.assertEqual(g["size"], len(body))
        st, h, part1 = req("GET", g["url"], headers={"Range": "bytes=0-%d" % (2 * MiB - 1)})
        self.assertEqual(st, 206)
        self.assertEqual(h["content-range"], "bytes 0-%d/%d" % (2 * MiB - 1, len(body)))
        self.assertEqual(part1, body[:2 * MiB])
        st, h, part2 = req("GET", g["url"], headers={"Range": "bytes=%d-" % (2 * MiB)})
        self.assertEqual(st, 206)
        self.assertEqual(h["content-range"], "bytes %d-%d/%d" % (2 * MiB, len(body) - 1, len(body)))
        self.assertEqual(hashlib.sha256(part1 + part2).digest(), hashlib.sha256(body).digest())

        # b1 is done: its URL now answers 410; the blob stays for b2
        self.assertTrue(wait_until(lambda: req("GET", g["url"])[0] == 410, 3))
        self.assertIn(blob_id, self.media.blobs())
        g1 = b1.grant(blob_id)
        self.assertEqual(g1["code"], "not_found", g1)

        # b2 fetches it whole: 200, identical; then it is gone from disk
        g2 = self.grant_url(b2, blob_id)
        st, h, whole = req("GET", g2["url"])
        self.assertEqual(st, 200)
        self.assertEqual(h["accept-ranges"], "bytes")
        self.assertEqual(whole, body)
        self.assertTrue(wait_until(lambda: blob_id not in self.media.blobs(), 3),
                        self.media.blobs())
        self.assertEqual(b2.grant(blob_id)["code"], "not_found")
        self.assertEqual(req("GET", g2["url"])[0], 404)
        # nothing of the body in the log (a random 16-byte window of it)
        self.assertNotIn(body[1000:1016].hex(), self.media.text())

    def test_kept_while_one_device_is_missing(self):
        a, b = uniq("alice"), uniq("bob")
        ma, mb = self.mdev(a, "phone"), self.mdev(b, "phone")
        body = os.urandom(300 * 1024)
        blob_id = self.upload(ma, [b + "/phone", b + "/tablet", a + "/laptop"], body)
        g = self.grant_url(mb, blob_id)
        st, _, got = req("GET", g["url"])
        self.assertEqual((st, got), (200, body))
        time.sleep(0.3)
        self.assertIn(blob_id, self.media.blobs())  # b/tablet and a/laptop have not fetched it

    def test_removed_device_holds_nothing_back(self):
        a, b = uniq("alice"), uniq("bob")
        ma, mb = self.mdev(a, "phone"), self.mdev(b, "phone")
        self.broker.add_device(b, "old")
        body = os.urandom(5000)
        blob_id = self.upload(ma, [b + "/phone", b + "/old"], body)
        self.assertEqual(req("GET", self.grant_url(mb, blob_id)["url"])[2], body)
        time.sleep(0.2)
        self.assertIn(blob_id, self.media.blobs())  # b/old has not fetched it
        # the admin removes b/old: it will never fetch it, the blob goes
        out = self.broker.chatctl("device", "remove", b, "old")
        self.assertTrue(wait_until(lambda: blob_id not in self.media.blobs(), 5),
                        (out, self.media.text()[-2000:]))
        self.assertTrue(wait_until(lambda: "device %s/old was removed" % b in self.media.text(), 3))

    # ---- refusals over MQTT ----

    def test_bad_requests(self):
        ma = self.mdev(uniq("u"), "d")
        to = ["x/y"]
        cases = [
            (b"\xff", "CBOR map"),
            (cbor2.dumps([1, 2]), "CBOR map"),
            (cbor2.dumps({"op": "slot", "rid": 1}), "size"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": -1, "type": "a/b", "to": to}), "size"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 0, "type": "a/b", "to": to}), "size"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 5, "type": "", "to": to}), "type"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 5, "type": "a\nb", "to": to}), "type"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 5, "type": "a/b", "to": []}), "at least"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 5, "type": "a/b", "to": ["nobody"]}), "U/D"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 5, "type": "a/b", "to": ["a/b", "a/b"]}),
             "twice"),
            (cbor2.dumps({"op": "slot", "rid": 1, "size": 5, "type": "a/b",
                          "to": ["u/d%d" % i for i in range(1025)]}), "1024"),
            (cbor2.dumps({"op": "get", "rid": 1, "id": "../../etc/passwd"}), "id"),
            (cbor2.dumps({"op": "get", "rid": 1}), "id"),
            (cbor2.dumps({"op": "list", "rid": 1}), "op"),
            (cbor2.dumps({"op": "get", "rid": "x", "id": "A" * 22}), "rid"),
            (cbor2.dumps({"op": "get", "rid": 1, "id": "A" * 22}) + b"\x00", "trailing"),
        ]
        for payload, word in cases:
            r = ma.raw(payload)
            self.assertEqual((r["ok"], r["code"]), (False, "bad_request"), (payload[:40], r))
            self.assertIn(word, r["msg"], r)
        # a valid rid is echoed even when the rest is wrong
        r = ma.raw(cbor2.dumps({"op": "slot", "rid": 77}), rid=77)
        self.assertEqual(r["rid"], 77)

    def test_too_large_and_quota(self):
        ma = self.mdev(uniq("u"), "d")
        r = ma.slot(100 * MiB + 1, ["x/y"])
        self.assertEqual(r["code"], "too_large", r)
        # the quota (1 GiB default) counts reserved slots: ten 100 MiB
        # slots fit, the eleventh does not
        for _ in range(10):
            self.assertTrue(ma.slot(100 * MiB, ["x/y"])["ok"])
        r = ma.slot(100 * MiB, ["x/y"])
        self.assertEqual(r["code"], "quota", r)
        self.assertTrue(ma.slot(1024 * 1024 * 24, ["x/y"])["ok"])  # what is left still fits
        # another user has a quota of their own
        mo = self.mdev(uniq("u"), "d")
        self.assertTrue(mo.slot(100 * MiB, ["x/y"])["ok"])

    # ---- refusals over HTTP ----

    def test_put_refusals(self):
        a, b = uniq("a"), uniq("b")
        ma = self.mdev(a, "d")
        r = ma.slot(1000, [b + "/d"])
        put = r["put"]
        self.assertEqual(req("PUT", put, b"x" * 1001)[0], 413)       # oversize
        self.assertEqual(req("PUT", put, b"x" * 999)[0], 400)        # undersize
        st, _, txt = req("PUT", put, None)                             # no body at all
        self.assertIn(st, (400,), txt)
        # chunked: no Content-Length
        u = urllib.parse.urlsplit(put)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        c.putrequest("PUT", u.path + "?" + u.query)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        c.send(b"3e8\r\n" + b"x" * 1000 + b"\r\n0\r\n\r\n")
        self.assertEqual(c.getresponse().status, 400)
        c.close()
        # forged signature, forged expiry, no signature
        sig = dict(urllib.parse.parse_qsl(u.query))["sig"]
        forged = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
        self.assertEqual(req("PUT", with_query(put, sig=forged), b"x" * 1000)[0], 403)
        exp = int(dict(urllib.parse.parse_qsl(u.query))["exp"])
        self.assertEqual(req("PUT", with_query(put, exp=str(exp + 3600)), b"x" * 1000)[0], 403)
        self.assertEqual(req("PUT", put.split("?")[0], b"x" * 1000)[0], 403)
        # unknown id
        other = put.replace(r["id"], "A" * 22)
        self.assertEqual(req("PUT", other, b"x" * 1000)[0], 404)
        # none of that stored anything; the real upload works, once
        self.assertNotIn(r["id"], self.media.blobs())
        self.assertEqual(req("PUT", put, b"y" * 1000)[0], 201)
        self.assertEqual(req("PUT", put, b"z" * 1000)[0], 409)         # replayed
        g = MediaDevice(self.dev(b, "d", protocol=V5)).grant(r["id"])
        self.assertEqual(req("GET", g["url"])[2], b"y" * 1000)
        self.assertEqual(os.listdir(os.path.join(self.media.data_dir, "tmp")), [])

    def test_expired_slot(self):
        # A second chat-media whose URLs live 1 s (default 600 s): the slot's
        # URL has expired when the PUT comes 2 s later.
        broker = self.broker
        short = MediaServer.for_broker(broker, "--url-ttl", "1", "--share-group", "mediashort",
                                       user="media2")
        try:
            short.wait_serving()
            ma = self.mdev(uniq("a"), "d")
            # both servers answer this device (two share groups); take
            # the short one's answer by its URL
            rid = 9001
            ma.d.publish("chat/media/req/%s" % ma.d.addr,
                         cbor2.dumps({"op": "slot", "rid": rid, "size": 10, "type": "a/b",
                                      "to": ["x/y"]}))
            answers = []
            wait_until(lambda: len([m for m in ma.d.messages if m[0] == ma.resp_topic]) >= 2, 5)
            for m in ma.d.drain():
                if m[0] == ma.resp_topic and m[1].get("rid") == rid:
                    answers.append(m[1])
            r = [x for x in answers if x["put"].startswith(short.url)][0]
            time.sleep(2.1)
            st, _, txt = req("PUT", r["put"], b"0123456789")
            self.assertEqual(st, 403, txt)
            self.assertIn(b"expired", txt)
        finally:
            self.assertEqual(short.stop(), 0, short.text())
            short.cleanup()

    def test_another_users_blob(self):
        a, b, eve = uniq("a"), uniq("b"), uniq("eve")
        ma, mb = self.mdev(a, "d"), self.mdev(b, "d")
        me = self.mdev(eve, "d")
        mb2 = self.mdev(b, "other")
        body = os.urandom(4096)
        blob_id = self.upload(ma, [b + "/d"], body)
        # a device not in `to` learns nothing: not_found, as for no blob
        for md in (me, mb2, ma):
            g = md.grant(blob_id)
            self.assertEqual((g["ok"], g["code"]), (False, "not_found"), g)
        g = self.grant_url(mb, blob_id)
        # b/d's URL with dev= another device: the signature no longer holds
        for dev in (eve + "/d", b + "/other"):
            st, _, _ = req("GET", with_query(g["url"], dev=dev))
            self.assertEqual(st, 403)
        # without a signature, with a forged one, expired
        self.assertEqual(req("GET", g["url"].split("?")[0])[0], 403)
        self.assertEqual(req("GET", with_query(g["url"], sig="A" * 43))[0], 403)
        self.assertEqual(req("GET", with_query(g["url"], exp="1"))[0], 403)
        # a URL for blob X does not open blob Y
        other = self.upload(ma, [b + "/d"], b"other blob")
        self.assertEqual(req("GET", g["url"].replace(blob_id, other))[0], 403)
        self.assertEqual(req("GET", g["url"])[2], body)

    def test_nothing_listable(self):
        for method, path in [("GET", "/"), ("GET", "/v1/blob/"), ("GET", "/v1/blob"),
                             ("GET", "/v1/"), ("GET", "/v1/blob/../meta"),
                             ("GET", "/v1/blob/%s/x" % ("A" * 22)), ("GET", "/index.html"),
                             ("PUT", "/v1/blob/"), ("POST", "/v1/blob/"), ("GET", "/metrics")]:
            st, _, body = req(method, self.media.url + path)
            self.assertEqual(st, 404, (method, path))
            self.assertEqual(body, b"not found\n")
        for method in ("DELETE", "POST", "HEAD", "PATCH"):
            st, h, _ = req(method, self.media.url + "/v1/blob/" + "A" * 22)
            self.assertEqual(st, 405, method)
            self.assertEqual(h.get("allow"), "GET, PUT")

    def test_cors_for_the_web_client(self):
        a, b = uniq("a"), uniq("b")
        ma, mb = self.mdev(a, "d"), self.mdev(b, "d")
        r = ma.slot(3, [b + "/d"])
        st, h, _ = req("OPTIONS", r["put"], headers={"Origin": "http://127.0.0.1:9001",
                                                     "Access-Control-Request-Method": "PUT"})
        self.assertEqual(st, 204)
        self.assertEqual(h["access-control-allow-origin"], "*")
        self.assertIn("PUT", h["access-control-allow-methods"])
        self.assertIn("Range", h["access-control-allow-headers"])
        st, h, _ = req("PUT", r["put"], b"abc", headers={"Origin": "http://127.0.0.1:9001"})
        self.assertEqual((st, h["access-control-allow-origin"]), (201, "*"))
        url = self.grant_url(mb, r["id"])["url"]
        st, h, got = req("GET", url, headers={"Range": "bytes=1-", "Origin": "x"})
        self.assertEqual((st, got, h["access-control-allow-origin"]), (206, b"bc", "*"))
        self.assertIn("Content-Range", h["access-control-expose-headers"])

    def test_range_edges(self):
        a, b = uniq("a"), uniq("b")
        ma, mb = self.mdev(a, "d"), self.mdev(b, "d")
        body = os.urandom(10000)
        blob_id = self.upload(ma, [b + "/d"], body)
        url = self.grant_url(mb, blob_id)["url"]
        st, h, got = req("GET", url, headers={"Range": "bytes=10000-"})
        self.assertEqual((st, h["content-range"]), (416, "bytes */10000"))
        st, _, got = req("GET", url, headers={"Range": "bytes=100-199"})
        self.assertEqual((st, got), (206, body[100:200]))
        st, _, got = req("GET", url, headers={"Range": "bytes=0-1,5-6"})  # several: all of it
        self.assertEqual((st, got), (200, body))
        self.assertTrue(wait_until(lambda: blob_id not in self.media.blobs(), 3))

    def test_ttl_expiry_and_quota_release(self):
        # A chat-media with a 2 s TTL (default 30 days), a 1 s sweep and a
        # 1 MiB quota (default 1 GiB): a blob nobody fetched is gone from
        # disk a few seconds after upload, and its bytes go back to the
        # owner's quota, as do those of a blob every recipient fetched.
        short = MediaServer.for_broker(self.broker, "--ttl", "2", "--sweep-interval", "1",
                                       "--quota", "1M", "--share-group", "mediattl",
                                       user="media3")
        try:
            short.wait_serving()
            a, b = uniq("a"), uniq("b")
            ma, mb = self.mdev(a, "d"), self.mdev(b, "d")

            def short_slot(md, size):
                rid = next(MediaDevice._rid)
                md.d.publish("chat/media/req/%s" % md.d.addr,
                             cbor2.dumps({"op": "slot", "rid": rid, "size": size,
                                          "type": "a/b", "to": [b + "/d"]}))
                mine = lambda m: m[0] == md.resp_topic and m[1].get("rid") == rid
                self.assertTrue(wait_until(lambda: len([m for m in md.d.messages if mine(m)]) >= 2, 5))
                got = [m[1] for m in md.d.drain() if mine(m)]
                # the default server (1 GiB quota) says ok; ours is the other answer
                ours = [r for r in got if not r["ok"] or r["put"].startswith(short.url)]
                self.assertEqual(len(ours), 1, got)
                return ours[0]

            body = os.urandom(600 * 1024)
            r = short_slot(ma, len(body))
            self.assertEqual(req("PUT", r["put"], body)[0], 201)
            self.assertEqual(short.blobs(), [r["id"]])
            self.assertEqual(short_slot(ma, len(body))["code"], "quota")
            self.assertTrue(wait_until(lambda: short.blobs() == [], 6), short.text())
            # logged just after the file goes
            self.assertTrue(wait_until(lambda: "its TTL passed" in short.text(), 3), short.text())
            r = short_slot(ma, len(body))  # the quota is free again
            self.assertTrue(r["ok"], r)
            self.assertEqual(req("PUT", r["put"], body)[0], 201)
            # fetched by its one recipient: deleted, the quota free again
            g = self.answer_of(short, mb, {"op": "get", "id": r["id"]})
            self.assertEqual(req("GET", g["url"])[2], body)
            self.assertTrue(wait_until(lambda: short.blobs() == [], 3))
            self.assertTrue(short_slot(ma, len(body))["ok"])
        finally:
            self.assertEqual(short.stop(), 0, short.text())
            short.cleanup()

    def test_https(self):
        # chat-media serving HTTPS itself (--https-cert/--https-key) with a
        # test CA's certificate for 127.0.0.1 (test_tls's): the URLs it hands
        # out are https, a client trusting the CA uploads and downloads, one
        # that does not is refused in the handshake.
        from test_tls import make_pki
        pki = tempfile.mkdtemp(prefix="chat-media-pki-")
        self.addCleanup(subprocess.run, ["rm", "-rf", pki])
        make_pki(pki)
        secure = MediaServer.for_broker(self.broker, "--https-cert", os.path.join(pki, "server.crt"),
                                        "--https-key", os.path.join(pki, "server.key"),
                                        "--share-group", "mediatls", user="media5")
        try:
            secure.wait_serving()
            self.assertTrue(secure.url.startswith("https://"))
            a, b = uniq("a"), uniq("b")
            ma, mb = self.mdev(a, "d"), self.mdev(b, "d")
            body = os.urandom(200 * 1024)
            r = self.answer_of(secure, ma, {"op": "slot", "size": len(body), "type": "a/b",
                                            "to": [b + "/d"]})
            self.assertTrue(r["put"].startswith("https://127.0.0.1:"), r)
            ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
            self.assertEqual(req("PUT", r["put"], body, context=ctx)[0], 201)
            g = self.answer_of(secure, mb, {"op": "get", "id": r["id"]}, n=2)
            st, _, got = req("GET", g["url"], headers={"Range": "bytes=1000-4999"}, context=ctx)
            self.assertEqual((st, got), (206, body[1000:5000]))
            other = ssl.create_default_context(cafile=os.path.join(pki, "other-ca.crt"))
            with self.assertRaises(ssl.SSLError):
                req("GET", g["url"], context=other)
            # plain HTTP on the HTTPS port gets no blob
            try:
                st = req("GET", g["url"].replace("https://", "http://"))[0]
            except (ConnectionError, http.client.HTTPException):
                st = None
            self.assertNotEqual(st, 200)
            st, _, got = req("GET", g["url"], context=ctx)
            self.assertEqual((st, got), (200, body))
        finally:
            self.assertEqual(secure.stop(), 0, secure.text())
            secure.cleanup()

    def test_restart_keeps_blobs_and_urls(self):
        # A second chat-media on its own directory: stopped and started
        # again, its blobs, records and secret stay (a URL handed out before
        # still works); what an upload left in tmp/ is removed.
        data = os.path.join(self.broker.tmp, "media-restart")
        first = MediaServer.for_broker(self.broker, "--share-group", "mediarestart",
                                       user="media6", data_dir=data)
        second = None
        try:
            first.wait_serving()
            a, b = uniq("a"), uniq("b")
            ma, mb = self.mdev(a, "d"), self.mdev(b, "d")
            body = os.urandom(70000)
            r = self.answer_of(first, ma, {"op": "slot", "size": len(body), "type": "a/b",
                                           "to": [b + "/d"]})
            self.assertEqual(req("PUT", r["put"], body)[0], 201)
            g = self.answer_of(first, mb, {"op": "get", "id": r["id"]})
            self.assertEqual(first.stop(), 0, first.text())
            with open(os.path.join(data, "tmp", r["id"] + ".deadbeef"), "wb") as f:
                f.write(b"half an upload")
            second = MediaServer(self.broker, first.token_file, data, "--share-group",
                                 "mediarestart", user="media6", http_port=first.http_port)
            second.wait_serving()
            self.assertEqual(os.listdir(os.path.join(data, "tmp")), [])
            st, _, got = req("GET", g["url"])
            self.assertEqual((st, got), (200, body))
            self.assertTrue(wait_until(lambda: second.blobs() == [], 3))
        finally:
            first.cleanup()
            if second:
                self.assertEqual(second.stop(), 0, second.text())
                second.cleanup()

    def test_secret_file_version_and_bad_option(self):
        secret = os.path.join(self.media.data_dir, "media.secret")
        self.assertEqual(os.stat(secret).st_mode & 0o777, 0o600)
        self.assertEqual(os.path.getsize(secret), 32)
        out = subprocess.run([MEDIA, "--version"], capture_output=True, text=True)
        self.assertTrue(out.stdout.startswith("chat-media "), out.stdout)
        out = subprocess.run([MEDIA, "-h", "x", "-p", "1", "-u", "m", "--token-file", "t",
                              "--data-dir", "d", "--quota", "lots"], capture_output=True,
                             text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--quota", out.stderr)


if __name__ == "__main__":
    main()
