# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Safety numbers, the verified mark and key-change notices in chat-client
(docs/E2EE.md §8), with a real broker, plugin and key server.

alice has two devices, bob one. Every device prints the same safety number,
and it is the one an independent implementation (tests/vectors/
make_safety.py) computes from the identity keys in the devices' state files.
alice verifies bob (a wrong code is refused). Then an admin removes bob's
phone and it comes back with new keys: both of alice's devices print the
notices (removed, added), keep them in their history and lose the verified
mark, and the new number matches on both sides again. A device bob adds is a
notice too: on alice's next send (bundle) and when it writes to her (X3DH);
and a device alice adds herself is a notice about every number of hers.
"""

import importlib.util
import os
import re
import subprocess

import cbor2

from chatlib import BUILD_DIR, SOURCE_DIR, ChatTestCase, KeyServer, conv_of, main, uniq

CLIENT = os.path.join(BUILD_DIR, "bin", "chat-client")
_spec = importlib.util.spec_from_file_location(
    "make_safety", os.path.join(SOURCE_DIR, "tests", "vectors", "make_safety.py"))
make_safety = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_safety)


class SafetyTest(ChatTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ks = KeyServer.for_broker(cls.broker)
        try:
            cls.ks.wait_serving()
        except Exception:
            cls.ks.cleanup()
            super().tearDownClass()
            raise
        cls.home = os.path.join(cls.broker.tmp, "clients")
        os.makedirs(cls.home)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.ks.cleanup()
        finally:
            super().tearDownClass()

    def device(self, user, dev, state_suffix=""):
        token = self.broker.add_device(user, dev)
        path = os.path.join(self.home, "%s_%s%s.token" % (user, dev, state_suffix))
        with open(path, "w") as f:
            f.write(token + "\n")
        return {"addr": "%s/%s" % (user, dev), "user": user, "dev": dev, "token": path,
                "state": os.path.join(self.home, "%s_%s%s.state" % (user, dev, state_suffix))}

    def run_client(self, d, *args, check=True):
        cmd = [CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", d["addr"],
               "--token-file", d["token"], "--state", d["state"]] + [str(a) for a in args]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s\n%s"
                                 % (" ".join(cmd), r.returncode, r.stdout, r.stderr,
                                    self.ks.text()[-3000:]))
        return r

    def state(self, d):
        with open(os.path.join(d["state"], "state"), "rb") as f:
            return cbor2.loads(f.read())

    def safety(self, d, peer):
        """(60 digits, QR payload hex, verified) as --safety-number prints them."""
        out = self.run_client(d, "--safety-number", peer).stdout
        rows = re.findall(r"^  (\d{5}) (\d{5}) (\d{5}) (\d{5})$", out, re.M)
        self.assertEqual(len(rows), 3, out)
        qr = re.search(r"^qr: ([0-9A-F]{130})$", out, re.M)
        self.assertIsNotNone(qr, out)
        verified = re.search(r"^%s: (verified|not verified)$" % peer, out, re.M)
        self.assertIsNotNone(verified, out)
        return "".join("".join(r) for r in rows), qr.group(1), verified.group(1) == "verified"

    def expected(self, a_user, a_devs, b_user, b_devs):
        """The number from the devices' own identity keys, by the Python implementation."""
        keys = lambda devs: {d["dev"]: bytes(self.state(d)["ik_pk"]) for d in devs}
        _, _, number, qr = make_safety.safety(a_user, keys(a_devs), b_user, keys(b_devs))
        return number, qr.hex().upper()

    def contact(self, d, user):
        for c in self.state(d).get("contacts", []):
            if c[0] == user:
                return {"verified": c[1], "complete": c[2], "keys": dict((k, bytes(v)) for k, v in c[3])}
        return None

    def notices(self, d, conv):
        return [h[5] for h in self.state(d)["hist"] if h[0] == conv and h[2] == ""]

    def test_numbers_verify_and_key_changes(self):
        alice, bob = uniq("alice"), uniq("bob")
        a1, a2, b1 = self.device(alice, "phone"), self.device(alice, "laptop"), self.device(bob, "phone")
        conv = conv_of(alice, bob)
        for d in (a1, a2, b1):
            self.run_client(d, "--recv", "--timeout", 0)
        r = self.run_client(a1, "--send", bob, "hello bob")
        self.assertNotIn("\u26a0", r.stderr)   # first contact: trusted, no notice

        # every device shows the same number, the one computed independently
        want, want_qr = self.expected(alice, [a1, a2], bob, [b1])
        for d, peer in ((a1, bob), (a2, bob), (b1, alice)):
            number, qr, verified = self.safety(d, peer)
            self.assertEqual((number, qr), (want, want_qr), d["addr"])
            self.assertFalse(verified)

        # a wrong code is refused; the right one (as shown, in groups) verifies
        wrong = ("1" if want[0] != "1" else "2") + want[1:]
        r = self.run_client(a1, "--verify", bob, "--code", wrong, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not match", r.stderr)
        self.assertFalse(self.contact(a1, bob)["verified"])
        r = self.run_client(a1, "--verify", bob, "--code", " ".join(re.findall(r"\d{5}", want)))
        self.assertIn("%s: verified" % bob, r.stdout)
        self.run_client(a2, "--verify", bob, "--code", want_qr.lower())   # the QR payload works too
        self.assertTrue(self.safety(a1, bob)[2])
        self.assertTrue(self.contact(a2, bob)["verified"])
        # the interactive mode has the same: /safety for the user chosen with /to
        cmd = [CLIENT, "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", a1["addr"],
               "--token-file", a1["token"], "--state", a1["state"]]
        r = subprocess.run(cmd, input="/to %s\n/safety\n/quit\n" % bob, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = re.findall(r"^  (\d{5}) (\d{5}) (\d{5}) (\d{5})$", r.stdout, re.M)
        self.assertEqual("".join("".join(x) for x in rows), want, r.stdout)
        self.assertIn("%s: verified" % bob, r.stdout)
        old_ik = self.contact(a1, bob)["keys"]["phone"]
        r = self.run_client(a1, "--verify", bob, "--code", "12345", check=False)
        self.assertEqual(r.returncode, 2)

        # an admin removes bob's phone; it comes back with new keys and writes
        rc, _, err = self.broker.chatctl("device", "remove", bob, "phone")
        self.assertEqual(rc, 0, err)
        b1 = self.device(bob, "phone", state_suffix="-new")
        self.run_client(b1, "--recv", "--timeout", 0)
        self.run_client(b1, "--send", alice, "my phone has new keys")
        for d in (a1, a2):
            r = self.run_client(d, "--recv", "--timeout", 1)
            self.assertIn("my phone has new keys", r.stdout)
            self.assertIn("\u26a0 %s: %s's safety number changed: device %s/phone removed; "
                          "no longer verified" % (conv, bob, bob), r.stderr)
            self.assertIn("\u26a0 %s: %s's safety number changed: device %s/phone added"
                          % (conv, bob, bob), r.stderr)
            k = self.contact(d, bob)
            self.assertFalse(k["verified"], d["addr"])
            self.assertNotEqual(k["keys"]["phone"], old_ik)
            self.assertEqual(k["keys"]["phone"], bytes(self.state(b1)["ik_pk"]))
            self.assertEqual(len(self.notices(d, conv)), 2, self.notices(d, conv))
        new, new_qr = self.expected(alice, [a1, a2], bob, [b1])
        self.assertNotEqual(new, want)
        for d, peer in ((a1, bob), (a2, bob), (b1, alice)):
            self.assertEqual(self.safety(d, peer), (new, new_qr, False), d["addr"])

        # bob adds a tablet: alice's phone sees it in the bundle of its next
        # send, her laptop when the tablet writes to her
        self.run_client(a1, "--verify", bob, "--code", new)
        b2 = self.device(bob, "tab")
        self.run_client(b2, "--recv", "--timeout", 0)
        r = self.run_client(a1, "--send", bob, "hello both of you")
        self.assertIn("\u26a0 %s: %s's safety number changed: device %s/tab added; "
                      "no longer verified" % (conv, bob, bob), r.stderr)
        self.run_client(b2, "--send", alice, "tablet here")
        r = self.run_client(a2, "--recv", "--timeout", 1)
        self.assertIn("\u26a0 %s: %s's safety number changed: device %s/tab added"
                      % (conv, bob, bob), r.stderr)
        r = self.run_client(a1, "--recv", "--timeout", 1)
        self.assertIn("tablet here", r.stdout)
        self.assertNotIn("\u26a0", r.stderr)   # the same key again: no second notice
        three, _ = self.expected(alice, [a1, a2], bob, [b1, b2])
        for d, peer in ((a1, bob), (a2, bob), (b2, alice), (b1, alice)):
            self.assertEqual(self.safety(d, peer)[0], three, d["addr"])

        # a device of alice's own changes every number of hers: the notice
        # says so and her verified marks go; bob's side sees alice's change
        self.run_client(a1, "--verify", bob, "--code", three)
        a3 = self.device(alice, "tab")
        self.run_client(a3, "--recv", "--timeout", 0)
        r = self.run_client(a1, "--send", bob, "I have a tablet now")
        self.assertIn("\u26a0 your safety number changed (with everyone): device %s/tab added; "
                      "verified contacts are unverified now" % alice, r.stderr)
        self.assertFalse(self.contact(a1, bob)["verified"])
        # bob's phone is not told of an added device (only removals are
        # announced): it notices on its next send, which fetches the bundle
        r = self.run_client(b1, "--recv", "--timeout", 1)
        self.assertIn("I have a tablet now", r.stdout)
        self.assertNotIn("\u26a0", r.stderr)
        r = self.run_client(b1, "--send", alice, "welcome, tablet")
        self.assertIn("\u26a0 %s: %s's safety number changed: device %s/tab added"
                      % (conv, alice, alice), r.stderr)
        four, _ = self.expected(alice, [a1, a2, a3], bob, [b1, b2])
        self.assertEqual(self.safety(a1, bob)[0], four)
        self.assertEqual(self.safety(b1, alice)[0], four)

    def test_usage(self):
        d = self.device(uniq("carol"), "d")
        for args in (("--verify", "bob"), ("--safety-number", "bob", "--code", "1"),
                     ("--safety-number", "bob", "--recv", "--timeout", "1")):
            r = self.run_client(d, *args, check=False)
            self.assertEqual(r.returncode, 2, args)
        r = self.run_client(d, "--safety-number", d["user"], check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not another user's id", r.stderr)
        r = self.run_client(d, "--safety-number", "no/such", check=False)
        self.assertEqual(r.returncode, 2)
        # a user without devices has no safety number
        r = self.run_client(d, "--safety-number", uniq("nobody"), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no devices", r.stderr)


if __name__ == "__main__":
    main()
