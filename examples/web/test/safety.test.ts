// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The web client's safety numbers against the shared vectors
// (tests/vectors/safety.json), the same ones chat-client's unit test checks:
// each user's digits and fingerprint, the 60 digits and QR payload from both
// sides, and the refusals.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import * as E from "../src/e2ee/core";
import * as S from "../src/e2ee/safety";

const file = process.env.CHAT_SAFETY_VECTORS ??
  path.resolve(process.cwd(), "../../tests/vectors/safety.json");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const V: any = JSON.parse(readFileSync(file, "utf8"));
const x = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const keys = (u: any): S.KeySet => Object.fromEntries(u.devices.map((d: any) => [d.device, x(d.ik)]));

before(() => E.ready);

test("the construction's constants match the vectors", () => {
  assert.equal(V.version, S.SAFETY_VERSION);
  assert.equal(V.iterations, S.ITERATIONS);
  assert.ok(V.cases.length >= 4);
});

test("each user's digits and fingerprint, the number and QR payload from both sides", () => {
  for (const c of V.cases) {
    const [a, b] = c.users;
    for (const u of c.users) {
      assert.equal(hex(S.keysetBytes(keys(u))), u.keyset, c.name);
      const h = S.userHash(u.user, keys(u));
      assert.equal(S.userDigits(h), u.digits, c.name);
      assert.equal(hex(h.slice(0, 32)), u.fingerprint, c.name);
    }
    const ab = S.safetyNumber(a.user, keys(a), b.user, keys(b));
    const ba = S.safetyNumber(b.user, keys(b), a.user, keys(a));
    assert.equal(ab.number, c.number, c.name);
    assert.equal(ba.number, c.number, c.name);
    assert.equal(hex(ab.qr), c.qr, c.name);
    assert.equal(hex(ba.qr), c.qr, c.name);
    assert.equal(S.groups(c.number).split(" ").length, 12);
    assert.equal(S.qrText(ab.qr), c.qr.toUpperCase());
  }
});

test("refusals: no devices, an empty or overlong id, a short key", () => {
  const ik = new Uint8Array(32).fill(7);
  assert.throws(() => S.userHash("alice", {}));
  assert.throws(() => S.userHash("alice", { "": ik }));
  assert.throws(() => S.userHash("alice", { ["d".repeat(256)]: ik }));
  assert.throws(() => S.userHash("alice", { phone: ik.slice(0, 31) }));
  assert.throws(() => S.userHash("u".repeat(256), { phone: ik }));
});
