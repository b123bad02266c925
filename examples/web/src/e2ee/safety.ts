// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Safety numbers (docs/E2EE.md §8), the same construction as chat-client's
// examples/client/safety.c: a user's fingerprint covers the sorted set of
// (device id, Ed25519 identity key) of all the user's devices, hashed 5200
// times with SHA-512; the number is the two users' 30 digits, the smaller
// first, so both sides show the same 60 digits. No I/O: the node test checks
// it against tests/vectors/safety.json.
import sodium from "libsodium-wrappers-sumo";
import { concat } from "./core";

export const SAFETY_VERSION = 1;
export const ITERATIONS = 5200;
const FP = 32; // per-user fingerprint bytes in the QR payload

/** device id -> 32-byte identity key */
export type KeySet = Record<string, Uint8Array>;

const utf8 = new TextEncoder();

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** u8 len(id) || id || ik for each device, sorted by id bytewise. */
export function keysetBytes(keys: KeySet): Uint8Array {
  const ids = Object.keys(keys).map((d) => utf8.encode(d)).sort(cmpBytes);
  if (ids.length === 0) throw new Error("no devices");
  const parts: Uint8Array[] = [];
  for (const id of ids) {
    const ik = keys[new TextDecoder().decode(id)];
    if (id.length === 0 || id.length > 255 || ik.length !== 32) throw new Error("bad device key");
    parts.push(Uint8Array.of(id.length), id, ik);
  }
  return concat(...parts);
}

/** The iterated SHA-512 of one user's key set (64 bytes). */
export function userHash(user: string, keys: KeySet): Uint8Array {
  const ks = keysetBytes(keys);
  const u = utf8.encode(user);
  if (u.length > 255) throw new Error("user id too long");
  let h = concat(Uint8Array.of(0, SAFETY_VERSION), ks, Uint8Array.of(u.length), u);
  for (let i = 0; i < ITERATIONS; i++) h = sodium.crypto_hash_sha512(concat(h, ks));
  return h;
}

/** 30 digits: six 5-byte big-endian chunks of the hash, each mod 100000. */
export function userDigits(h: Uint8Array): string {
  let s = "";
  for (let c = 0; c < 30; c += 5) {
    let v = 0n;
    for (let j = 0; j < 5; j++) v = (v << 8n) | BigInt(h[c + j]);
    s += (v % 100000n).toString().padStart(5, "0");
  }
  return s;
}

export interface Safety {
  number: string; // 60 digits
  qr: Uint8Array; // 0x01 || first user's fingerprint || second's (65 bytes)
}

export function safetyNumber(a: string, ka: KeySet, b: string, kb: KeySet): Safety {
  const sides = [userHash(a, ka), userHash(b, kb)].map((h) => ({ d: userDigits(h), fp: h.slice(0, FP) }));
  sides.sort((x, y) => (x.d < y.d ? -1 : x.d > y.d ? 1 : cmpBytes(x.fp, y.fp)));
  return { number: sides[0].d + sides[1].d, qr: concat(Uint8Array.of(SAFETY_VERSION), sides[0].fp, sides[1].fp) };
}

/** The number in groups of five, as both clients show it. */
export function groups(number: string): string {
  return number.replace(/(\d{5})(?=\d)/g, "$1 ");
}

/** The text a QR code carries: the payload in upper-case hex (QR alphanumeric mode). */
export function qrText(qr: Uint8Array): string {
  return Array.from(qr, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
}
