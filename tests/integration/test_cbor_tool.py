# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""scripts/cbor, alone and with mosquitto_pub / mosquitto_sub against a broker."""

import json
import os
import subprocess
import unittest

import cbor2

from chatlib import CBOR_TOOL, ChatTestCase, conv_of, main, uniq, wait_until


def cbor(*args, stdin=b"", check=True):
    r = subprocess.run(["/usr/bin/python3", CBOR_TOOL] + list(args), input=stdin,
                       capture_output=True, timeout=20)
    if check and r.returncode != 0:
        raise AssertionError("cbor %s failed: %s" % (args, r.stderr.decode()))
    return r


class CborToolTest(unittest.TestCase):

    def test_executable_with_debian_python(self):
        self.assertTrue(os.access(CBOR_TOOL, os.X_OK))
        with open(CBOR_TOOL) as f:
            self.assertEqual(f.readline().strip(), "#!/usr/bin/python3")

    def test_help(self):
        r = subprocess.run([CBOR_TOOL, "--help"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0)
        for word in ("encode", "decode", "--hex", "b64:", "hex:"):
            self.assertIn(word, r.stdout)
        r = subprocess.run([CBOR_TOOL, "decode", "--help"], capture_output=True, text=True, timeout=20)
        self.assertIn("--text", r.stdout)

    def test_encode(self):
        out = cbor("encode", '{"cid":1,"body":"b64:aGVsbG8=","h":"hex:00ff","t":"plain",'
                   '"l":[1,-2,true,null,1.5],"m":{"x":"b64:AA"}}').stdout
        self.assertEqual(cbor2.loads(out), {"cid": 1, "body": b"hello", "h": b"\x00\xff",
                                            "t": "plain", "l": [1, -2, True, None, 1.5],
                                            "m": {"x": b"\x00"}})
        # stdin works too; url-safe base64 is accepted
        out = cbor("encode", stdin=b'{"b":"b64:-_8"}').stdout
        self.assertEqual(cbor2.loads(out), {"b": b"\xfb\xff"})

    def test_encode_errors(self):
        for bad in ['{"a":', '{"b":"b64:@@@"}', '{"h":"hex:zz"}']:
            r = cbor("encode", bad, check=False)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertTrue(r.stderr.strip())
            self.assertEqual(r.stdout, b"")

    def test_decode_raw_multiple(self):
        data = cbor2.dumps({"k": "msg", "body": b"\x00\x01", "seq": 1}) + cbor2.dumps([b"hi"])
        lines = cbor("decode", stdin=data).stdout.decode().splitlines()
        self.assertEqual([json.loads(l) for l in lines],
                         [{"k": "msg", "body": "b64:AAE=", "seq": 1}, ["b64:aGk="]])

    def test_decode_hex_and_text(self):
        lines = (cbor2.dumps({"body": b"hello"}).hex() + "\n\n" +
                 cbor2.dumps({"body": b"\xff\xfe"}).hex().upper() + "\n").encode()
        out = cbor("decode", "--hex", stdin=lines).stdout.decode().splitlines()
        self.assertEqual([json.loads(l) for l in out], [{"body": "b64:aGVsbG8="}, {"body": "b64://4="}])
        out = cbor("decode", "--hex", "--text", stdin=lines).stdout.decode().splitlines()
        self.assertEqual([json.loads(l) for l in out], [{"body": "hello"}, {"body": "b64://4="}])

    def test_decode_errors(self):
        r = cbor("decode", stdin=b"\xff", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())
        # a bad hex line is reported, the good ones are still printed
        r = cbor("decode", "--hex", stdin=b"zz\n" + cbor2.dumps(1).hex().encode() + b"\n", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout.decode().strip(), "1")

    def test_roundtrip(self):
        value = '{"cid": 7, "bodies": {"bob/phone": "b64:AQI=", "alice/laptop": "b64:AwQ="}, "type": 1}'
        enc = cbor("encode", value).stdout
        dec = cbor("decode", stdin=enc).stdout.decode()
        self.assertEqual(json.loads(dec), json.loads(value))


class CliSessionTest(ChatTestCase):
    """The README-style session with mosquitto_pub / mosquitto_sub."""

    def test_pub_sub_session(self):
        a, b = uniq("alice"), uniq("bob")
        ta, tb = self.broker.add_device(a, "phone"), self.broker.add_device(b, "phone")
        port = str(self.broker.port)
        mark = self.broker.log_mark()
        sub = subprocess.Popen(
            "mosquitto_sub -p %s -i %s/phone -u %s/phone -P %s -t chat/inbox/%s/phone -q 1 "
            "-F %%x -C 2 -W 10 | %s decode --hex --text" % (port, b, b, tb, b, CBOR_TOOL),
            shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(self.broker.wait_log(lambda l: "chat/inbox/%s/phone" % b in l, mark, 5),
                        self.broker.diagnostics())
        pub = subprocess.run(
            "%s encode '{\"cid\":1,\"body\":\"b64:aGVsbG8=\"}' | mosquitto_pub -p %s -i %s/phone "
            "-u %s/phone -P %s -t chat/dm/%s -q 1 -s" % (CBOR_TOOL, port, a, a, ta, b),
            shell=True, capture_output=True, timeout=20)
        self.assertEqual(pub.returncode, 0, pub.stderr)
        out, err = sub.communicate(timeout=20)
        self.assertEqual(sub.returncode, 0, err)
        lines = out.decode().strip().splitlines()
        self.assertEqual(len(lines), 2, out)
        # the subscription first replays the (empty) inbox, then the message arrives
        self.assertEqual(json.loads(lines[0]), {"k": "sync", "done": True})
        ev = json.loads(lines[1])
        self.assertEqual((ev["k"], ev["conv"], ev["seq"], ev["from"], ev["body"]),
                         ("msg", conv_of(a, b), 1, a + "/phone", "hello"))

    def test_mosquitto_sub_foreign_inbox_refused(self):
        a, b = uniq("alice"), uniq("bob")
        ta = self.broker.add_device(a, "phone")
        self.broker.add_device(b, "phone")
        def sub(topic, version):
            return subprocess.run(["mosquitto_sub", "-p", str(self.broker.port), "-i", a + "/phone",
                                   "-u", a + "/phone", "-P", ta, "-t", topic, "-V", version, "-E"],
                                  capture_output=True, text=True, timeout=20)
        # -E: exit after the SUBACK; mosquitto_sub reports a refused subscription
        for v in ("mqttv311", "mqttv5"):
            r = sub("chat/inbox/%s/phone" % b, v)
            self.assertIn("denied", r.stderr)
            r = sub("chat/inbox/%s/phone" % a, v)
            self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_mosquitto_pub_wrong_token(self):
        a = uniq("alice")
        self.broker.add_device(a, "phone")
        r = subprocess.run(["mosquitto_pub", "-p", str(self.broker.port), "-i", a + "/phone",
                            "-u", a + "/phone", "-P", "x" * 43, "-t", "chat/dm/x", "-m", "x", "-q", "1"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not authori", r.stderr.lower())


if __name__ == "__main__":
    main()
