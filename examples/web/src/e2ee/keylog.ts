// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The key directory log (docs/KEYSERVER.md "Key directory log"): the leaf
// encoding, RFC 9162's tree hashes and its inclusion and consistency proof
// verification, and the key server's signed tree heads, as common/keylog.c
// has them. No I/O: test/keylog.test.ts drives it from the shared vectors
// (tests/vectors/keylog.json) that chat-client's unit test checks too.
import sodium from "libsodium-wrappers-sumo";

export const HASH = 32;
export const SIZE_MAX = 2 ** 32;

export interface Head {
  size: number;
  ts: number;
  root: Uint8Array;
  sig: Uint8Array;
}

const utf8 = new TextEncoder();

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A CBOR head of major type `major` with value v (shortest form). */
function cborHead(major: number, v: number): Uint8Array {
  const m = major << 5;
  if (v < 24) return Uint8Array.of(m | v);
  if (v < 0x100) return Uint8Array.of(m | 24, v);
  if (v < 0x10000) return Uint8Array.of(m | 25, v >> 8, v & 0xff);
  if (v < 0x100000000) return Uint8Array.of(m | 26, v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const b = new Uint8Array(9);
  b[0] = m | 27;
  new DataView(b.buffer).setBigUint64(1, BigInt(v));
  return b;
}

const cborText = (s: string) => {
  const b = utf8.encode(s);
  return cat(cborHead(3, b.length), b);
};

/** The leaf: deterministic CBOR {"ik", "ts", "user", "device"}. */
export function leafCbor(ik: Uint8Array, ts: number, user: string, device: string): Uint8Array {
  return cat(cborHead(5, 4), cborText("ik"), cborHead(2, ik.length), ik, cborText("ts"), cborHead(0, ts),
    cborText("user"), cborText(user), cborText("device"), cborText(device));
}

export const leafHash = (leaf: Uint8Array) => sodium.crypto_hash_sha256(cat(Uint8Array.of(0), leaf));
export const nodeHash = (l: Uint8Array, r: Uint8Array) => sodium.crypto_hash_sha256(cat(Uint8Array.of(1), l, r));
export const entryHash = (ik: Uint8Array, ts: number, user: string, device: string) =>
  leafHash(leafCbor(ik, ts, user, device));

function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH of leaf hashes. */
export function root(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sodium.crypto_hash_sha256(new Uint8Array(0));
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return nodeHash(root(leaves.slice(0, k)), root(leaves.slice(k)));
}

const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && sodium.memcmp(a, b);
// fn and sn reach 2^32 - 1: arithmetic, not 32-bit bit operators
const odd = (x: number) => x % 2 === 1;
const half = (x: number) => Math.floor(x / 2);

/** RFC 9162 §2.1.3.2. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: Uint8Array[],
  rootHash: Uint8Array): boolean {
  if (!(index < size) || size > SIZE_MAX) return false;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn); sn = half(sn);
  }
  return sn === 0 && eq(r, rootHash);
}

/** RFC 9162 §2.1.4.2: (size1, root1) is a prefix of (size2, root2). */
export function verifyConsistency(size1: number, size2: number, root1: Uint8Array, root2: Uint8Array,
  proof: Uint8Array[]): boolean {
  if (size1 > size2 || size2 > SIZE_MAX) return false;
  if (size1 === size2) return proof.length === 0 && eq(root1, root2);
  if (size1 === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const pow2 = Number.isInteger(Math.log2(size1)); // exact for powers of two
  const path = pow2 ? [root1, ...proof] : proof;
  let fn = size1 - 1, sn = size2 - 1;
  while (odd(fn)) { fn = half(fn); sn = half(sn); }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn); sn = half(sn);
  }
  return sn === 0 && eq(fr, root1) && eq(sr, root2);
}

/** The signed bytes of a head. */
export function headMessage(h: Head): Uint8Array {
  const m = new Uint8Array(16);
  const v = new DataView(m.buffer);
  v.setBigUint64(0, BigInt(h.size));
  v.setBigUint64(8, BigInt(h.ts));
  return cat(utf8.encode("mosquitto-chat keylog v1\0"), m, h.root);
}

export const verifyHead = (h: Head, pub: Uint8Array) =>
  pub.length === 32 && h.sig.length === 64 && sodium.crypto_sign_verify_detached(h.sig, headMessage(h), pub);

/** A head from a decoded answer, or null when it is malformed. */
export function readHead(x: unknown): Head | null {
  const h = x as Record<string, unknown> | null;
  if (!h || typeof h !== "object") return null;
  const { size, ts, root: r, sig } = h;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0 || size > SIZE_MAX) return null;
  if (typeof ts !== "number" || !Number.isSafeInteger(ts) || ts < 0) return null;
  if (!(r instanceof Uint8Array) || r.length !== HASH || !(sig instanceof Uint8Array) || sig.length !== 64) return null;
  return { size, ts, root: r, sig };
}

/** A proof from a decoded answer, or null when it is malformed. */
export function readProof(x: unknown): Uint8Array[] | null {
  if (!Array.isArray(x) || x.length > 64) return null;
  return x.every((p) => p instanceof Uint8Array && p.length === HASH) ? (x as Uint8Array[]) : null;
}
