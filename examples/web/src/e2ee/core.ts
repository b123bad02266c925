// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The crypto of docs/E2EE.md on libsodium (the sumo build, for HMAC-SHA256):
// X3DH, the Double Ratchet with unencrypted headers, sender keys for groups,
// and the body envelope. No I/O and no storage: state goes in and comes out,
// so the node test drives it from the shared vectors (tests/vectors/e2ee.json)
// exactly as chat-client's unit test does. Decryption works on a copy of the
// state and hands back the new state only when the tag verifies.
import sodium from "libsodium-wrappers-sumo";

export const ready: Promise<void> = sodium.ready;

export const KEY = 32;
export const TAG = 16;
export const SIG = 64;
export const VERSION = 1;
export const KIND_PAIRWISE = 1;
export const KIND_GROUP = 2;
export const PT_TEXT = 1;
export const PT_SENDER_KEY = 2;
export const MAX_SKIP = 200; // message keys one received message may skip
export const SKIPPED_CAP = 64; // skipped keys a session or chain keeps (oldest go)
const PREKEY_PART = 2 * KEY + 8; // ik, ek, spk_id, opk_id
const RHEADER = KEY + 8; // dh, pn, n
const SKHEADER = 8; // key_id, n

const INFO_X3DH = "mosquitto-chat X3DH v1";
const INFO_RATCHET = "mosquitto-chat ratchet v1";
const INFO_MESSAGE = "mosquitto-chat message keys v1";

export class CryptoError extends Error {}

const utf8 = new TextEncoder();

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

export function get32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}

// ---------------------------------------------------------------- primitives

/** HMAC-SHA256 with a key of any length (the one-shot wrapper wants 32 bytes). */
function hmac(key: Uint8Array, m: Uint8Array): Uint8Array {
  const st = sodium.crypto_auth_hmacsha256_init(key);
  sodium.crypto_auth_hmacsha256_update(st, m);
  return sodium.crypto_auth_hmacsha256_final(st);
}

/** RFC 5869 HKDF-SHA256; no salt (or an empty one) means 32 zero bytes. */
export function hkdf(ikm: Uint8Array, info: string | Uint8Array, length: number, salt?: Uint8Array): Uint8Array {
  const prk = hmac(salt && salt.length ? salt : new Uint8Array(KEY), ikm);
  const inf = typeof info === "string" ? utf8.encode(info) : info;
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  for (let i = 1, done = 0; done < length; i++) {
    t = hmac(prk, concat(t, inf, Uint8Array.of(i)));
    out.set(t.subarray(0, Math.min(t.length, length - done)), done);
    done += t.length;
  }
  return out;
}

/** KDF_RK: the next root key and a chain key. */
export function kdfRk(rk: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const okm = hkdf(dhOut, INFO_RATCHET, 2 * KEY, rk);
  return [okm.slice(0, KEY), okm.slice(KEY)];
}

/** KDF_CK: the next chain key and a message key. */
export function kdfCk(ck: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmac(ck, Uint8Array.of(2)), hmac(ck, Uint8Array.of(1))];
}

/** The AEAD key and nonce of a message key. */
export function messageKeys(mk: Uint8Array): [Uint8Array, Uint8Array] {
  const okm = hkdf(mk, INFO_MESSAGE, KEY + 24);
  return [okm.slice(0, KEY), okm.slice(KEY)];
}

export function seal(mk: Uint8Array, pt: Uint8Array, ad: Uint8Array): Uint8Array {
  const [key, nonce] = messageKeys(mk);
  return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, ad, null, nonce, key);
}

export function open(mk: Uint8Array, ct: Uint8Array, ad: Uint8Array): Uint8Array {
  if (ct.length < TAG) throw new CryptoError("message too short");
  const [key, nonce] = messageKeys(mk);
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct, ad, nonce, key);
  } catch {
    throw new CryptoError("authentication failed");
  }
}

export interface KeyPair {
  pk: Uint8Array;
  sk: Uint8Array;
}

export function x25519(sk?: Uint8Array): KeyPair {
  const s = sk ?? sodium.randombytes_buf(KEY);
  return { pk: sodium.crypto_scalarmult_base(s), sk: s };
}

/** Ed25519 from a seed (or a random one); sk is seed || pk, 64 bytes. */
export function ed25519(seed?: Uint8Array): KeyPair {
  const k = sodium.crypto_sign_seed_keypair(seed ?? sodium.randombytes_buf(KEY));
  return { pk: k.publicKey, sk: k.privateKey };
}

export function sign(m: Uint8Array, sk: Uint8Array): Uint8Array {
  return sodium.crypto_sign_detached(m, sk);
}

export function dh(sk: Uint8Array, pk: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_scalarmult(sk, pk);
  } catch {
    throw new CryptoError("bad public key");
  }
}

export function random(n: number): Uint8Array {
  return sodium.randombytes_buf(n);
}

// ---------------------------------------------------------------- X3DH

export interface Skipped {
  dh: Uint8Array; // the chain's ratchet key (sender keys: empty)
  n: number;
  mk: Uint8Array;
}

/** One Double Ratchet session with one remote device. */
export interface Session {
  ad: Uint8Array; // IK_initiator || IK_responder (Ed25519)
  remoteIk: Uint8Array;
  rk: Uint8Array;
  cks: Uint8Array | null;
  ckr: Uint8Array | null;
  dhsSk: Uint8Array;
  dhsPk: Uint8Array;
  dhr: Uint8Array;
  ns: number;
  nr: number;
  pn: number;
  // The X3DH part the initiator repeats until the first reply; the
  // responder keeps the initiator's ek to recognise repeats.
  prekeyPending: boolean;
  ekPk: Uint8Array;
  spkId: number;
  opkId: number; // 0: no one-time key was used
  skipped: Skipped[];
}

export interface Bundle {
  ik: Uint8Array;
  spkId: number;
  spk: Uint8Array;
  spkSig: Uint8Array;
  opkId: number; // 0: none
  opk?: Uint8Array;
}

export interface Prekey {
  ik: Uint8Array;
  ek: Uint8Array;
  spkId: number;
  opkId: number;
}

function x3dhKdf(dhs: Uint8Array[]): Uint8Array {
  return hkdf(concat(new Uint8Array(KEY).fill(0xff), ...dhs), INFO_X3DH, KEY);
}

function edToX(pk: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_sign_ed25519_pk_to_curve25519(pk);
  } catch {
    throw new CryptoError("bad identity key");
  }
}

/** The initiator's half: verifies the signed pre-key, derives SK, starts the session. */
export function x3dhInitiate(myIk: KeyPair, b: Bundle, injectEk?: Uint8Array, injectRatchet?: Uint8Array):
  { session: Session; sk: Uint8Array } {
  if (!sodium.crypto_sign_verify_detached(b.spkSig, b.spk, b.ik)) throw new CryptoError("bad signed pre-key signature");
  const theirX = edToX(b.ik);
  const myX = sodium.crypto_sign_ed25519_sk_to_curve25519(myIk.sk);
  const ek = x25519(injectEk);
  const dhs = [dh(myX, b.spk), dh(ek.sk, theirX), dh(ek.sk, b.spk)];
  if (b.opkId) dhs.push(dh(ek.sk, b.opk!));
  const sk = x3dhKdf(dhs);
  const ratchet = x25519(injectRatchet);
  const [rk, cks] = kdfRk(sk, dh(ratchet.sk, b.spk));
  return {
    sk,
    session: {
      ad: concat(myIk.pk, b.ik), remoteIk: b.ik, rk, cks, ckr: null,
      dhsSk: ratchet.sk, dhsPk: ratchet.pk, dhr: b.spk, ns: 0, nr: 0, pn: 0,
      prekeyPending: true, ekPk: ek.pk, spkId: b.spkId, opkId: b.opkId, skipped: [],
    },
  };
}

/** The responder's half, from the prekey part and our keys (opkSk null when opkId is 0). */
export function x3dhRespond(myIk: KeyPair, spk: KeyPair, opkSk: Uint8Array | null, pre: Prekey):
  { session: Session; sk: Uint8Array } {
  if ((pre.opkId !== 0) !== (opkSk !== null)) throw new CryptoError("one-time pre-key mismatch");
  const theirX = edToX(pre.ik);
  const myX = sodium.crypto_sign_ed25519_sk_to_curve25519(myIk.sk);
  const dhs = [dh(spk.sk, theirX), dh(myX, pre.ek), dh(spk.sk, pre.ek)];
  if (opkSk) dhs.push(dh(opkSk, pre.ek));
  const sk = x3dhKdf(dhs);
  return {
    sk,
    session: {
      ad: concat(pre.ik, myIk.pk), remoteIk: pre.ik, rk: sk, cks: null, ckr: null,
      dhsSk: spk.sk, dhsPk: spk.pk, dhr: new Uint8Array(KEY), ns: 0, nr: 0, pn: 0,
      prekeyPending: false, ekPk: pre.ek, spkId: pre.spkId, opkId: pre.opkId, skipped: [],
    },
  };
}

// ---------------------------------------------------------------- Double Ratchet

function skippedAdd(tab: Skipped[], d: Uint8Array, n: number, mk: Uint8Array): void {
  if (tab.length === SKIPPED_CAP) tab.shift(); // forget the oldest
  tab.push({ dh: d, n, mk });
}

function skippedTake(tab: Skipped[], d: Uint8Array | null, n: number): Uint8Array | null {
  const i = tab.findIndex((e) => e.n === n && (d === null || equal(e.dh, d)));
  return i < 0 ? null : tab.splice(i, 1)[0].mk;
}

/** Encrypts pt into a pairwise message (without the envelope); advances s. */
export function pairwiseEncrypt(s: Session, pt: Uint8Array): Uint8Array {
  if (!s.cks) throw new CryptoError("the session cannot send yet");
  const pre = s.prekeyPending ? concat(s.ad.subarray(0, KEY), s.ekPk, u32(s.spkId), u32(s.opkId)) : new Uint8Array(0);
  const head = concat(Uint8Array.of(s.prekeyPending ? 1 : 0), pre, s.dhsPk, u32(s.pn), u32(s.ns));
  const [cks, mk] = kdfCk(s.cks);
  s.cks = cks;
  s.ns++;
  return concat(head, seal(mk, pt, concat(s.ad, head)));
}

/** The prekey part of a pairwise message, null if it has none; throws if malformed. */
export function pairwisePrekey(msg: Uint8Array): Prekey | null {
  if (msg.length < 1 || (msg[0] & ~1) !== 0) throw new CryptoError("malformed message");
  if (!(msg[0] & 1)) {
    if (msg.length < 1 + RHEADER + TAG) throw new CryptoError("malformed message");
    return null;
  }
  if (msg.length < 1 + PREKEY_PART + RHEADER + TAG) throw new CryptoError("malformed message");
  return {
    ik: msg.slice(1, 1 + KEY),
    ek: msg.slice(1 + KEY, 1 + 2 * KEY),
    spkId: get32(msg, 1 + 2 * KEY),
    opkId: get32(msg, 1 + 2 * KEY + 4),
  };
}

function skipKeys(s: Session, until: number): void {
  if (!s.ckr) return;
  if (until > s.nr && until - s.nr > MAX_SKIP) throw new CryptoError("too many skipped messages");
  while (s.nr < until) {
    const [ck, mk] = kdfCk(s.ckr);
    s.ckr = ck;
    skippedAdd(s.skipped, s.dhr, s.nr, mk);
    s.nr++;
  }
}

function dhRatchet(s: Session, d: Uint8Array, inject?: Uint8Array): void {
  s.pn = s.ns;
  s.ns = s.nr = 0;
  s.dhr = d;
  [s.rk, s.ckr] = kdfRk(s.rk, dh(s.dhsSk, s.dhr));
  const next = x25519(inject);
  s.dhsSk = next.sk;
  s.dhsPk = next.pk;
  [s.rk, s.cks] = kdfRk(s.rk, dh(s.dhsSk, s.dhr));
}

/** Decrypts a pairwise message; returns the plaintext and the session after
 *  it (s itself is left untouched). inject: the next ratchet key (tests). */
export function pairwiseDecrypt(s: Session, msg: Uint8Array, inject?: Uint8Array): { pt: Uint8Array; session: Session } {
  const pre = pairwisePrekey(msg);
  const hlen = 1 + (pre ? PREKEY_PART : 0) + RHEADER;
  const h = msg.subarray(hlen - RHEADER, hlen);
  const d = h.slice(0, KEY);
  const pn = get32(h, KEY);
  const n = get32(h, KEY + 4);
  const c = structuredClone(s);
  let mk = skippedTake(c.skipped, d, n);
  if (!mk) {
    if (!c.ckr || !equal(d, c.dhr)) {
      skipKeys(c, pn);
      dhRatchet(c, d, inject);
    }
    skipKeys(c, n);
    [c.ckr, mk] = kdfCk(c.ckr!);
    c.nr++;
  }
  const pt = open(mk, msg.subarray(hlen), concat(c.ad, msg.subarray(0, hlen)));
  c.prekeyPending = false; // the responder has the session: stop repeating X3DH
  return { pt, session: c };
}

// ---------------------------------------------------------------- sender keys

/** A sender-key chain: ours (next n to send) or a peer's (next n expected). */
export interface Chain {
  keyId: number;
  n: number;
  ck: Uint8Array;
  sigPk: Uint8Array; // received chains: the sender's identity key
  skipped: Skipped[];
}

export function chainNew(keyId: number, ck?: Uint8Array): Chain {
  return { keyId, n: 0, ck: ck ?? random(KEY), sigPk: new Uint8Array(0), skipped: [] };
}

export function senderEncrypt(c: Chain, pt: Uint8Array, conv: string, sigSk: Uint8Array): Uint8Array {
  const head = concat(u32(c.keyId), u32(c.n));
  const [ck, mk] = kdfCk(c.ck);
  c.ck = ck;
  c.n++;
  const body = concat(head, seal(mk, pt, concat(head, utf8.encode(conv))));
  return concat(body, sign(body, sigSk));
}

export function senderKeyId(msg: Uint8Array): number | null {
  return msg.length < SKHEADER + TAG + SIG ? null : get32(msg, 0);
}

/** Verifies and decrypts with a received chain; returns the chain after it. */
export function senderDecrypt(c: Chain, msg: Uint8Array, conv: string): { pt: Uint8Array; chain: Chain } {
  if (senderKeyId(msg) !== c.keyId) throw new CryptoError("unknown sender key");
  const body = msg.subarray(0, msg.length - SIG);
  if (c.sigPk.length !== KEY || !sodium.crypto_sign_verify_detached(msg.subarray(body.length), body, c.sigPk))
    throw new CryptoError("bad sender signature");
  const n = get32(msg, 4);
  const k = structuredClone(c);
  let mk: Uint8Array | null;
  if (n < k.n) {
    mk = skippedTake(k.skipped, null, n);
    if (!mk) throw new CryptoError("message key already used");
  } else {
    if (n - k.n > MAX_SKIP) throw new CryptoError("too many skipped messages");
    while (k.n < n) {
      const [ck, skip] = kdfCk(k.ck);
      k.ck = ck;
      skippedAdd(k.skipped, new Uint8Array(0), k.n, skip);
      k.n++;
    }
    [k.ck, mk] = kdfCk(k.ck);
    k.n++;
  }
  const pt = open(mk, body.subarray(SKHEADER), concat(body.subarray(0, SKHEADER), utf8.encode(conv)));
  return { pt, chain: k };
}

// ---------------------------------------------------------------- the body envelope

export interface Body {
  kind: number;
  pairwise: Uint8Array | null; // kind 1: the message; kind 2: the distribution, if any
  sender: Uint8Array | null; // kind 2: the sender-key message
}

export function bodyPairwise(pairwise: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(VERSION, KIND_PAIRWISE), pairwise);
}

export function bodyGroup(dist: Uint8Array | null, sender: Uint8Array): Uint8Array {
  const dl = dist?.length ?? 0;
  if (dl > 0xffff) throw new CryptoError("distribution too long");
  return concat(Uint8Array.of(VERSION, KIND_GROUP, dl >> 8, dl & 0xff), dist ?? new Uint8Array(0), sender);
}

export function bodyParse(b: Uint8Array): Body {
  if (b.length < 2 || b[0] !== VERSION) throw new CryptoError("unknown body version");
  if (b[1] === KIND_PAIRWISE) return { kind: KIND_PAIRWISE, pairwise: b.subarray(2), sender: null };
  if (b[1] !== KIND_GROUP || b.length < 4) throw new CryptoError("unknown body kind");
  const dl = (b[2] << 8) | b[3];
  if (dl > b.length - 4) throw new CryptoError("malformed body");
  return { kind: KIND_GROUP, pairwise: dl ? b.subarray(4, 4 + dl) : null, sender: b.subarray(4 + dl) };
}

// ---------------------------------------------------------------- plaintexts

export function textPlaintext(text: string): Uint8Array {
  return concat(Uint8Array.of(PT_TEXT), utf8.encode(text));
}

/** A sender-key distribution: type, key_id, n, chain key, group id. */
export function distributionPlaintext(c: Chain, gid: string): Uint8Array {
  return concat(Uint8Array.of(PT_SENDER_KEY), u32(c.keyId), u32(c.n), c.ck, utf8.encode(gid));
}

export function parseDistribution(pt: Uint8Array): { keyId: number; n: number; ck: Uint8Array; gid: string } {
  if (pt.length < 1 + 8 + KEY || pt[0] !== PT_SENDER_KEY) throw new CryptoError("malformed distribution");
  return {
    keyId: get32(pt, 1),
    n: get32(pt, 5),
    ck: pt.slice(9, 9 + KEY),
    gid: new TextDecoder("utf-8", { fatal: true }).decode(pt.subarray(9 + KEY)),
  };
}
