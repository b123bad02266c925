// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The web client's key directory log checks against the shared vectors
// tests/vectors/keylog.json (RFC 6962's reference roots and an independent
// Python tree), the same bytes chat-client's unit test checks: leaves,
// roots, every inclusion and consistency proof of a 13-leaf log, the signed
// head; then tampering.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import sodium from "libsodium-wrappers-sumo";
import * as K from "../src/e2ee/keylog";

const file = process.env.CHAT_KEYLOG_VECTORS ??
  path.resolve(process.cwd(), "../../tests/vectors/keylog.json");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const V: any = JSON.parse(readFileSync(file, "utf8"));
const x = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
let leaves: Uint8Array[] = [];

before(async () => {
  await sodium.ready;
  leaves = V.log.entries.map((e: { ik: string; ts: number; user: string; device: string }) =>
    K.entryHash(x(e.ik), e.ts, e.user, e.device));
});

test("RFC 6962's reference roots", () => {
  const lh = V.ct.leaves.map((l: string) => K.leafHash(x(l)));
  for (let n = 1; n <= 8; n++) assert.equal(hex(K.root(lh.slice(0, n))), V.ct.known_roots[n - 1]);
  assert.equal(hex(K.root([])), hex(sodium.crypto_hash_sha256(new Uint8Array(0))));
});

test("leaves and roots", () => {
  V.log.entries.forEach((e: { ik: string; ts: number; user: string; device: string }, i: number) =>
    assert.equal(hex(K.leafCbor(x(e.ik), e.ts, e.user, e.device)), V.log.leaf_cbor[i]));
  for (let s = 0; s <= leaves.length; s++) assert.equal(hex(K.root(leaves.slice(0, s))), V.log.roots[s]);
});

test("every inclusion proof verifies, and tampered ones do not", () => {
  for (const v of V.log.inclusion) {
    const proof = v.proof.map(x), r = x(V.log.roots[v.size]);
    assert.ok(K.verifyInclusion(v.index, v.size, leaves[v.index], proof, r), `${v.index}/${v.size}`);
    if (v.size > 1) assert.ok(!K.verifyInclusion((v.index + 1) % v.size, v.size, leaves[v.index], proof, r));
    assert.ok(!K.verifyInclusion(v.size, v.size, leaves[v.index], proof, r));
    if (proof.length) {
      proof[0] = Uint8Array.from(proof[0]);
      proof[0][0] ^= 1;
      assert.ok(!K.verifyInclusion(v.index, v.size, leaves[v.index], proof, r));
    }
  }
});

test("every consistency proof verifies, and forks do not", () => {
  for (const v of V.log.consistency) {
    const proof = v.proof.map(x), r1 = x(V.log.roots[v.from]), r2 = x(V.log.roots[v.to]);
    assert.ok(K.verifyConsistency(v.from, v.to, r1, r2, proof), `${v.from}..${v.to}`);
    if (v.from > 0 && v.from < v.to) {
      const forked = leaves.slice(0, v.from);
      forked[v.from - 1] = Uint8Array.from(forked[v.from - 1]);
      forked[v.from - 1][0] ^= 1;
      assert.ok(!K.verifyConsistency(v.from, v.to, K.root(forked), r2, proof));
      assert.ok(!K.verifyConsistency(v.to, v.from, r2, r1, proof));
      assert.ok(!K.verifyConsistency(v.from, v.to, r1, r2, proof.slice(1)));
    }
  }
});

test("the signed head", () => {
  const h = V.log.head;
  const head = K.readHead({ size: h.size, ts: h.ts, root: x(h.root), sig: x(h.sig) });
  assert.ok(head);
  assert.ok(K.verifyHead(head, x(h.pub)));
  assert.ok(!K.verifyHead({ ...head, size: head.size + 1 }, x(h.pub)));
  assert.ok(!K.verifyHead({ ...head, ts: head.ts + 1 }, x(h.pub)));
  assert.equal(K.readHead({ ...head, root: new Uint8Array(31) }), null);
  assert.equal(K.readHead({ ...head, size: -1 }), null);
  assert.equal(K.readProof([new Uint8Array(32), new Uint8Array(3)]), null);
  assert.equal(K.readProof(new Array(65).fill(new Uint8Array(32))), null);
});
