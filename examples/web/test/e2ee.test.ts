// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The web client's crypto against the shared vectors of docs/E2EE.md
// (tests/vectors/e2ee.json), the same bytes chat-client's unit test checks:
// primitives, X3DH from both sides, a Double Ratchet conversation replayed
// step by step, sender keys and the body envelope; then tampering.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import * as E from "../src/e2ee/core";

const file = process.env.CHAT_E2EE_VECTORS ??
  path.resolve(process.cwd(), "../../tests/vectors/e2ee.json");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const V: any = JSON.parse(readFileSync(file, "utf8"));
const x = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

before(() => E.ready);

test("HKDF-SHA256 matches RFC 5869", () => {
  for (const v of V.hkdf_rfc5869)
    assert.equal(hex(E.hkdf(x(v.ikm), x(v.info), v.length, v.salt ? x(v.salt) : undefined)), v.okm);
});

test("X25519 matches RFC 7748", () => {
  const v = V.x25519_rfc7748[0];
  assert.equal(hex(E.dh(x(v.scalar), x(v.u))), v.out);
});

test("KDF_RK, KDF_CK and the message keys", () => {
  const [rk, ck] = E.kdfRk(x(V.kdf_rk.rk), x(V.kdf_rk.dh_out));
  assert.equal(hex(rk), V.kdf_rk.rk_out);
  assert.equal(hex(ck), V.kdf_rk.ck_out);
  const [ck2, mk] = E.kdfCk(x(V.kdf_ck.ck));
  assert.equal(hex(ck2), V.kdf_ck.ck_out);
  assert.equal(hex(mk), V.kdf_ck.mk);
  const [key, nonce] = E.messageKeys(x(V.message_keys.mk));
  assert.equal(hex(key), V.message_keys.key);
  assert.equal(hex(nonce), V.message_keys.nonce);
});

function parties() {
  const S = V.session;
  const alice = E.ed25519(x(S.alice_ik_seed));
  const bob = E.ed25519(x(S.bob_ik_seed));
  assert.equal(hex(alice.pk), S.alice_ik_pk);
  assert.equal(hex(bob.pk), S.bob_ik_pk);
  const spk = E.x25519(x(S.bob_spk_sk));
  assert.equal(hex(spk.pk), S.bob_spk_pk);
  const bundle: E.Bundle = {
    ik: bob.pk, spkId: S.bob_spk_id, spk: spk.pk, spkSig: x(S.bob_spk_sig),
    opkId: S.bob_opk_id, opk: x(S.bob_opk_pk),
  };
  return { S, alice, bob, spk, bundle };
}

test("X3DH: both sides derive the vector's SK", () => {
  const { S, alice, bob, spk, bundle } = parties();
  assert.equal(hex(E.sign(spk.pk, bob.sk)), S.bob_spk_sig);
  const a = E.x3dhInitiate(alice, bundle, x(S.alice_ek_sk), x(S.alice_first_ratchet_sk));
  assert.equal(hex(a.sk), S.x3dh_sk);
  assert.equal(hex(a.session.ad), S.ad);
  assert.equal(hex(a.session.ekPk), S.alice_ek_pk);
  const first = E.bodyParse(x(S.steps[0].body));
  const pre = E.pairwisePrekey(first.pairwise!)!;
  assert.equal(hex(pre.ik), S.alice_ik_pk);
  assert.equal(pre.opkId, S.bob_opk_id);
  const b = E.x3dhRespond(bob, spk, x(S.bob_opk_sk), pre);
  assert.equal(hex(b.sk), S.x3dh_sk);
});

test("X3DH refuses a bundle whose signed pre-key signature is wrong", () => {
  const { alice, bundle } = parties();
  const bad = { ...bundle, spkSig: bundle.spkSig.slice() };
  bad.spkSig[0] ^= 1;
  assert.throws(() => E.x3dhInitiate(alice, bad), E.CryptoError);
});

/** Replays the vector's conversation; returns both sessions after it. */
function conversation() {
  const { S, alice, bob, spk, bundle } = parties();
  const sess: Record<string, E.Session> = {
    alice: E.x3dhInitiate(alice, bundle, x(S.alice_ek_sk), x(S.alice_first_ratchet_sk)).session,
  };
  for (const st of S.steps) {
    const receiver = st.sender === "alice" ? "bob" : "alice";
    // the sender's bytes are deterministic: encrypt and compare with the vector
    const body = E.bodyParse(x(st.body));
    const out = E.pairwiseEncrypt(sess[st.sender], x(st.plaintext));
    assert.deepEqual(hex(out), hex(body.pairwise!), `body of step ${st.plaintext}`);
    if (!sess[receiver]) sess[receiver] = E.x3dhRespond(bob, spk, x(S.bob_opk_sk), E.pairwisePrekey(body.pairwise!)!).session;
    const r = E.pairwiseDecrypt(sess[receiver], body.pairwise!, st.receiver_ratchet_sk ? x(st.receiver_ratchet_sk) : undefined);
    assert.equal(hex(r.pt), st.plaintext);
    sess[receiver] = r.session;
  }
  return { S, sess };
}

test("Double Ratchet: every step's body is the vector's, and decrypts", () => {
  const { S } = conversation();
  const kinds = S.steps.map((st: { body: string }) => E.bodyParse(x(st.body)).kind);
  assert.deepEqual(kinds.slice(0, 3), [E.KIND_PAIRWISE, E.KIND_PAIRWISE, E.KIND_PAIRWISE]);
});

test("Double Ratchet: a replayed or altered message is refused and changes nothing", () => {
  const { S, sess } = conversation();
  const last = E.bodyParse(x(S.steps[S.steps.length - 1].body)).pairwise!;
  const before = structuredClone(sess.bob);
  assert.throws(() => E.pairwiseDecrypt(sess.bob, last), E.CryptoError);
  const bent = last.slice();
  bent[bent.length - 1] ^= 1;
  assert.throws(() => E.pairwiseDecrypt(sess.bob, bent), E.CryptoError);
  assert.deepEqual(sess.bob, before);
  assert.throws(() => E.pairwisePrekey(Uint8Array.of(2, 0, 0)), E.CryptoError);
});

test("Double Ratchet: out-of-order messages use skipped keys", () => {
  const { sess } = conversation();
  const m1 = E.pairwiseEncrypt(sess.alice, E.textPlaintext("one"));
  const m2 = E.pairwiseEncrypt(sess.alice, E.textPlaintext("two"));
  const r2 = E.pairwiseDecrypt(sess.bob, m2);
  const r1 = E.pairwiseDecrypt(r2.session, m1);
  assert.equal(Buffer.from(r2.pt.subarray(1)).toString(), "two");
  assert.equal(Buffer.from(r1.pt.subarray(1)).toString(), "one");
});

test("sender keys: the distribution and group messages of the vector", () => {
  const { S } = conversation();
  const K = V.sender_key;
  const alice = E.ed25519(x(S.alice_ik_seed));
  const chain = E.chainNew(K.key_id, x(K.chain_key));
  assert.equal(hex(E.distributionPlaintext(chain, K.gid)), K.distribution_plaintext);
  const body = E.bodyParse(x(K.group_body));
  assert.equal(body.kind, E.KIND_GROUP);
  for (const m of K.messages) assert.equal(hex(E.senderEncrypt(chain, x(m.plaintext), K.conv, alice.sk)), m.message);
  assert.equal(hex(body.sender!), K.messages[0].message);
  assert.equal(hex(E.bodyGroup(body.pairwise, body.sender!)), K.group_body);

  const d = E.parseDistribution(x(K.distribution_plaintext));
  assert.equal(d.gid, K.gid);
  let recv: E.Chain = { ...E.chainNew(d.keyId, d.ck), n: d.n, sigPk: alice.pk };
  // the second arrives first: the first is decrypted with a skipped key
  const r1 = E.senderDecrypt(recv, x(K.messages[1].message), K.conv);
  assert.equal(hex(r1.pt), K.messages[1].plaintext);
  const r0 = E.senderDecrypt(r1.chain, x(K.messages[0].message), K.conv);
  assert.equal(hex(r0.pt), K.messages[0].plaintext);
  recv = r0.chain;
  assert.throws(() => E.senderDecrypt(recv, x(K.messages[0].message), K.conv), E.CryptoError);
  assert.throws(() => E.senderDecrypt({ ...E.chainNew(d.keyId, d.ck), sigPk: alice.pk }, x(K.messages[0].message), "g:other"), E.CryptoError);
});

test("the body envelope refuses unknown versions, kinds and lengths", () => {
  assert.throws(() => E.bodyParse(Uint8Array.of(2, 1)), E.CryptoError);
  assert.throws(() => E.bodyParse(Uint8Array.of(1, 3)), E.CryptoError);
  assert.throws(() => E.bodyParse(Uint8Array.of(1, 2, 0, 9, 1)), E.CryptoError);
});
