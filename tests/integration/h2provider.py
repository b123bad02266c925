# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Local stand-ins for FCM HTTP v1, Google's OAuth2 token endpoint and APNs:
one HTTPS server on 127.0.0.1 that speaks only HTTP/2 (ALPN "h2", python3-h2)
behind a test CA made with openssl at test time. They check what the real
services check, and record any deviation in `errors` (a test asserts it
stays empty):

- the token endpoint: the jwt-bearer grant form, the assertion's RS256
  signature against the service account's public key, its header, its
  claims (iss, scope, aud = the token_uri) and its age (iat within a minute,
  exp at most an hour later); it grants an access token that expires after
  `token_lifetime` seconds;
- messages:send: a live access token (401 UNAUTHENTICATED otherwise), the
  JSON content type and the exact message JSON;
- /3/device/<token>: the ES256 provider token (signature, raw r||s, against
  the team's key; kid, iss; not older than `apns_max_age`, else 403
  ExpiredProviderToken), apns-topic, apns-push-type, apns-priority,
  apns-collapse-id, and the exact payload for the push type.

- a Web Push endpoint, /wp/<id>: the VAPID header (ES256 JWT verified
  with the k it carries, which must be the deployment's key; aud = this
  origin, exp within 24 h, sub), TTL, Urgency, Content-Encoding aes128gcm,
  and the body decrypted (RFC 8291) with the browser's key of that
  subscription (`webpush_subscription()` makes one) to the exact JSON.

Every request records the connection it came on: a test can assert that
one HTTP/2 connection carried them all. Tokens script the answers: a token
starting "gone" is unregistered (FCM 404 UNREGISTERED, APNs 410
Unregistered), "bad" is malformed (400), and `script[token]` is a list of
statuses (429, 503, …) answered before a 200.
"""

import base64
import hmac
import itertools
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))


def make_ca(d):
    """ca.crt, and server.crt/.key for 127.0.0.1 signed by it (EC P-256)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=mosquitto-chat test provider CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
            cwd=d)
    return os.path.join(d, "ca.crt")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    h, c, s = token.split(".")
    return json.loads(b64d(h)), json.loads(b64d(c)), (h + "." + c).encode(), b64d(s)


def service_account(path, project, email, token_uri):
    """Writes a service-account JSON file with a new RSA key; its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    doc = {"type": "service_account", "project_id": project, "private_key_id": "k" + email[:6],
           "private_key": pem, "client_email": email, "client_id": "1234",
           "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    os.chmod(path, 0o600)
    return key.public_key()


def apns_key(path):
    """Writes an APNs-style .p8 (PKCS#8 PEM, P-256); its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key.public_key()


def p256_raw(pub):
    return pub.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


class H2Provider:
    def __init__(self, d, project="chat-test", topic="com.example.chat"):
        self.dir = d
        self.cafile = make_ca(d)
        self.project = project
        self.topic = topic
        self.lock = threading.Lock()
        self.requests = []
        self.errors = []
        self.grants = []             # (access token, client_email, time)
        self.sa_keys = {}            # client_email -> RSA public key
        self.apns_keys = {}          # key id -> (team id, EC public key)
        self.token_lifetime = 3600
        self.apns_max_age = 3600
        self.tokens = {}             # access token -> expiry (monotonic)
        self.script = {}             # device token -> statuses before a 200
        self.fcm_always_401 = False
        self.apns_reject = 0         # next N APNs requests: 403 InvalidProviderToken
        self.connections = 0
        self.vapid_public = None     # raw 65 bytes of the deployment's VAPID key
        self.wp_subs = {}            # id -> (browser's private key, auth secret)
        self._ids = itertools.count(1)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
        self.ctx.set_alpn_protocols(["h2"])
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base = "https://127.0.0.1:%d" % self.port
        self.token_uri = self.base + "/token"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- what tests read ----

    def of(self, kind=None, token=None):
        with self.lock:
            return [r for r in self.requests if (kind is None or r["kind"] == kind)
                    and (token is None or r.get("token") == token)]

    def error(self, msg):
        with self.lock:
            self.errors.append(msg)

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- HTTP/2 ----

    def _accept(self):
        while not self.closed:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, raw):
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.error("TLS handshake failed: %s" % e)
            raw.close()
            return
        with self.lock:
            self.connections += 1
            cid = self.connections
        if tls.selected_alpn_protocol() != "h2":
            self.error("connection %d did not negotiate h2" % cid)
            tls.close()
            return
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        streams = {}
        try:
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = {"headers": dict(ev.headers), "body": b""}
                    elif isinstance(ev, h2.events.DataReceived):
                        streams[ev.stream_id]["body"] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        req = streams.pop(ev.stream_id)
                        status, hdrs, body = self._handle(cid, req)
                        conn.send_headers(ev.stream_id, [
                            (":status", str(status)), ("content-type", "application/json"),
                            ("content-length", str(len(body)))] + hdrs)
                        conn.send_data(ev.stream_id, body, end_stream=True)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        raise EOFError
                out = conn.data_to_send()
                if out:
                    tls.sendall(out)
        except (EOFError, OSError, ssl.SSLError):
            pass
        finally:
            tls.close()

    def _handle(self, cid, req):
        h = req["headers"]
        path = h.get(":path", "")
        rec = {"cid": cid, "t": time.monotonic(), "path": path, "headers": h,
               "raw": req["body"], "kind": "?"}
        if h.get(":method") != "POST":
            self.error("%s %s" % (h.get(":method"), path))
        if path == "/token":
            rec["kind"] = "token"
            status, body = self._token(h, req["body"], rec)
            hdrs = []
        elif path == "/v1/projects/%s/messages:send" % self.project:
            rec["kind"] = "fcm"
            status, body = self._fcm(h, req["body"], rec)
            hdrs = []
        elif path.startswith("/wp/"):
            rec["kind"] = "webpush"
            status, body = self._webpush(h, req["body"], rec)
            hdrs = []
        elif path.startswith("/3/device/"):
            rec["kind"] = "apns"
            status, body = self._apns(h, req["body"], rec)
            hdrs = [("apns-id", "00000000-0000-0000-0000-%012d" % next(self._ids))]
        else:
            self.error("unexpected path %s" % path)
            status, body = 404, {}
        rec["status"] = status
        with self.lock:
            self.requests.append(rec)
        return status, hdrs, json.dumps(body).encode()

    def _scripted(self, token):
        with self.lock:
            s = self.script.get(token)
            return s.pop(0) if s else None

    # ---- the OAuth2 token endpoint ----

    def _token(self, h, raw, rec):
        if h.get("content-type") != "application/x-www-form-urlencoded":
            self.error("token request content-type %r" % h.get("content-type"))
        form = urllib.parse.parse_qs(raw.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            self.error("grant_type %r" % form.get("grant_type"))
            return 400, {"error": "unsupported_grant_type"}
        try:
            hdr, claims, signed, sig = jwt_parts(form["assertion"][0])
        except (KeyError, ValueError) as e:
            self.error("assertion unreadable: %s" % e)
            return 400, {"error": "invalid_grant"}
        rec["jwt"] = (hdr, claims)
        pub = self.sa_keys.get(claims.get("iss"))
        now = time.time()
        why = None
        if hdr.get("alg") != "RS256" or hdr.get("typ") != "JWT":
            why = "header %r" % hdr
        elif pub is None:
            why = "unknown iss %r" % claims.get("iss")
        elif claims.get("aud") != self.token_uri:
            why = "aud %r" % claims.get("aud")
        elif "https://www.googleapis.com/auth/firebase.messaging" not in claims.get("scope", "").split():
            why = "scope %r" % claims.get("scope")
        elif not (abs(claims.get("iat", 0) - now) <= 60 and 0 < claims.get("exp", 0) - claims["iat"] <= 3600):
            why = "iat/exp %r" % claims
        else:
            try:
                pub.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
            except Exception:
                why = "bad RS256 signature"
        if why:
            self.error("token request refused: " + why)
            return 400, {"error": "invalid_grant", "error_description": why}
        tok = "ya29.test-%d" % next(self._ids)
        with self.lock:
            self.tokens[tok] = time.monotonic() + self.token_lifetime
            self.grants.append((tok, claims["iss"], time.monotonic()))
        return 200, {"access_token": tok, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def revoke_tokens(self):
        with self.lock:
            self.tokens.clear()

    # ---- FCM HTTP v1 ----

    def _fcm(self, h, raw, rec):
        auth = h.get("authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        with self.lock:
            live = tok in self.tokens and self.tokens[tok] > time.monotonic()
        rec["access_token"] = tok
        if h.get("content-type") != "application/json":
            self.error("fcm content-type %r" % h.get("content-type"))
        try:
            body = json.loads(raw)
            token = body["message"]["token"]
        except (ValueError, KeyError, TypeError):
            self.error("fcm body %r" % raw)
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}
        rec["token"] = token
        rec["body"] = body
        if self.fcm_always_401 or not live:
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                   "message": "Request had invalid authentication credentials."}}
        want = {"message": {"token": token, "data": {"pending": body["message"].get("data", {}).get("pending")},
                            "android": {"priority": "high"}}}
        if body != want or not body["message"]["data"]["pending"].isdigit():
            self.error("fcm body %r" % body)
        s = self._scripted(token)
        if s:
            return s, {"error": {"code": s, "status": "UNAVAILABLE" if s >= 500 else "RESOURCE_EXHAUSTED"}}
        if token.startswith("gone"):
            return 404, {"error": {"code": 404, "message": "Requested entity was not found.",
                                   "status": "NOT_FOUND", "details": [{
                                       "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                       "errorCode": "UNREGISTERED"}]}}
        if token.startswith("bad"):
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "INVALID_ARGUMENT"}]}}
        return 200, {"name": "projects/%s/messages/%d" % (self.project, next(self._ids))}

    # ---- Web Push ----

    def webpush_subscription(self, sid):
        """A browser's subscription JSON for endpoint /wp/<sid> (its keys kept here)."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.wp_subs[sid] = (key, auth)
        pub = key.public_key().public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
        e = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
        return json.dumps({"endpoint": self.base + "/wp/" + sid, "expirationTime": None,
                           "keys": {"p256dh": e(pub), "auth": e(auth)}}, separators=(",", ":"))

    def _webpush(self, h, raw, rec):
        sid = h[":path"][len("/wp/"):]
        rec["token"] = sid
        try:
            auth = h.get("authorization", "")
            assert auth.startswith("vapid t="), auth
            t, k = auth[8:].split(", k=")
            kraw = b64d(k)
            assert kraw == self.vapid_public, "not the deployment's VAPID key"
            hdr, claims, signed, sig = jwt_parts(t)
            rec["jwt"] = (hdr, claims)
            assert hdr == {"typ": "JWT", "alg": "ES256"}, hdr
            assert claims["aud"] == self.base, claims
            assert 0 < claims["exp"] - time.time() <= 86400, claims
            assert claims["sub"].startswith("mailto:"), claims
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), kraw)
            assert len(sig) == 64
            pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                            int.from_bytes(sig[32:], "big")),
                       signed, ec.ECDSA(hashes.SHA256()))
        except Exception as e:
            self.error("webpush VAPID refused: %r" % e)
            return 403, {}
        for k, v in (("content-encoding", "aes128gcm"), ("ttl", "86400"), ("urgency", "high")):
            if h.get(k) != v:
                self.error("webpush %s: %r" % (k, h.get(k)))
        if sid.startswith("gone"):
            return 410, {}
        key, secret = self.wp_subs[sid]
        try:
            rec["body"] = json.loads(self._decrypt(raw, key, secret))
        except Exception as e:
            self.error("webpush body does not decrypt: %r" % e)
            return 400, {}
        if set(rec["body"]) != {"pending"} or not isinstance(rec["body"]["pending"], int):
            self.error("webpush payload %r" % rec["body"])
        return 201, {}

    @staticmethod
    def _decrypt(raw, key, secret):
        """RFC 8291 §3.4 / RFC 8188, one record, as a browser does it."""
        salt, rs, idlen = raw[:16], int.from_bytes(raw[16:20], "big"), raw[20]
        as_pub = raw[21:21 + idlen]
        ct = raw[21 + idlen:]
        assert rs >= 18 and len(ct) <= rs and idlen == 65
        ua_pub = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        shared = key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), as_pub))
        hm = lambda k, m: hmac.new(k, m, "sha256").digest()
        ikm = hm(hm(secret, shared), b"WebPush: info\0" + ua_pub + as_pub + b"\1")
        prk = hm(salt, ikm)
        cek = hm(prk, b"Content-Encoding: aes128gcm\0\1")[:16]
        nonce = hm(prk, b"Content-Encoding: nonce\0\1")[:12]
        pt = AESGCM(cek).decrypt(nonce, ct, None)
        pt = pt.rstrip(b"\0")
        assert pt.endswith(b"\2"), "not the last record"
        return pt[:-1]

    # ---- APNs ----

    def _apns(self, h, raw, rec):
        token = h[":path"][len("/3/device/"):]
        rec["token"] = token
        try:
            rec["body"] = json.loads(raw)
        except ValueError:
            self.error("apns body %r" % raw)
            return 400, {"reason": "PayloadEmpty"}
        auth = h.get("authorization", "")
        why = None
        try:
            assert auth.startswith("bearer ")
            hdr, claims, signed, sig = jwt_parts(auth[7:])
            rec["jwt"] = (hdr, claims)
            team, pub = self.apns_keys[hdr["kid"]]
            assert hdr.get("alg") == "ES256", hdr
            assert claims.get("iss") == team, claims
            assert len(sig) == 64, "signature of %d bytes (DER?)" % len(sig)
            pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                            int.from_bytes(sig[32:], "big")),
                       signed, ec.ECDSA(hashes.SHA256()))
        except Exception as e:
            why = repr(e)
        if why:
            self.error("apns provider token refused: %s" % why)
            return 403, {"reason": "InvalidProviderToken"}
        with self.lock:
            reject = self.apns_reject > 0
            self.apns_reject -= reject
        if reject:
            return 403, {"reason": "InvalidProviderToken"}
        if time.time() - claims["iat"] > self.apns_max_age:
            return 403, {"reason": "ExpiredProviderToken"}
        kind = h.get("apns-push-type")
        want_hdrs = {"apns-topic": self.topic, "apns-priority": "10" if kind == "alert" else "5"}
        for k, v in want_hdrs.items():
            if h.get(k) != v:
                self.error("apns %s: %r, want %r" % (k, h.get(k), v))
        if kind not in ("alert", "background") or not h.get("apns-collapse-id"):
            self.error("apns headers %r" % h)
        b = rec["body"]
        pending = b.get("pending")
        want = ({"aps": {"alert": {"loc-key": "CHAT_NEW_MESSAGES"}, "mutable-content": 1,
                         "sound": "default"}, "pending": pending} if kind == "alert"
                else {"aps": {"content-available": 1}, "pending": pending})
        if b != want or not isinstance(pending, int):
            self.error("apns %s payload %r" % (kind, b))
        s = self._scripted(token)
        if s:
            return s, {"reason": "TooManyRequests" if s == 429 else "ServiceUnavailable"}
        if token.startswith("dead"):
            return 410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)}
        if token.startswith("bad"):
            return 400, {"reason": "BadDeviceToken"}
        return 200, {}
