// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Attachments (docs/E2EE.md §4.3 type 3, §4.5): the file encryption and the
// pointer plaintext, as chat-client's attach.c does them. A file is sealed
// with a fresh random key by libsodium's secretstream (XChaCha20-Poly1305):
// the 24-byte header, then 64 KiB plaintext chunks, the one that ends the
// file tagged FINAL; the digest is SHA-256 over the whole ciphertext. The
// pointer is 0x03 || a canonical CBOR map. No I/O: bytes in, bytes out, so
// the node test checks it against tests/vectors/attachment.json.
import { decode, encode } from "cborg";
import sodium from "libsodium-wrappers-sumo";
import { CryptoError } from "./core";

export const PT_ATTACHMENT = 3;
export const CHUNK = 65536;
export const HEADER = 24;
export const ABYTES = 17;
export const KEY = 32;
export const THUMB_MAX = 8192;
const ID_RE = /^[A-Za-z0-9_-]{1,128}$/;
const SIZE_MAX = 2 ** 40;

export interface Pointer {
  id: string;
  key: Uint8Array;
  digest: Uint8Array;
  size: number; // ciphertext bytes
  type: string;
  name?: string;
  duration_ms?: number;
  thumb?: Uint8Array;
  caption?: string;
}

export interface Sealed {
  key: Uint8Array;
  ciphertext: Uint8Array;
  digest: Uint8Array;
}

export function cipherSize(n: number): number {
  return HEADER + Math.max(1, Math.ceil(n / CHUNK)) * ABYTES + n;
}

export function newKey(): Uint8Array {
  return sodium.crypto_secretstream_xchacha20poly1305_keygen();
}

/** Encrypts a whole file under key (a fresh random one when not given). */
export function encryptFile(pt: Uint8Array, key: Uint8Array = newKey()): Sealed {
  const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(key);
  const out = new Uint8Array(cipherSize(pt.length));
  out.set(header, 0);
  let o = HEADER;
  const n = Math.max(1, Math.ceil(pt.length / CHUNK));
  for (let i = 0; i < n; i++) {
    const final = i === n - 1;
    const c = sodium.crypto_secretstream_xchacha20poly1305_push(state, pt.subarray(i * CHUNK, (i + 1) * CHUNK), null,
      final ? sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL : sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    out.set(c, o);
    o += c.length;
  }
  return { key, ciphertext: out, digest: sodium.crypto_hash_sha256(out) };
}

export function digestOf(ct: Uint8Array): Uint8Array {
  return sodium.crypto_hash_sha256(ct);
}

/** Decrypts a whole ciphertext; throws CryptoError if it is truncated,
 *  reordered, extended or does not authenticate. */
export function decryptFile(ct: Uint8Array, key: Uint8Array): Uint8Array {
  if (ct.length < HEADER + ABYTES || key.length !== KEY) throw new CryptoError("attachment too short");
  let state;
  try {
    state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(ct.subarray(0, HEADER), key);
  } catch {
    throw new CryptoError("bad attachment header");
  }
  const out = new Uint8Array(ct.length);
  let o = 0;
  for (let at = HEADER; ; ) {
    const part = ct.subarray(at, at + CHUNK + ABYTES);
    at += part.length;
    const r = part.length >= ABYTES ? sodium.crypto_secretstream_xchacha20poly1305_pull(state, part, null) : false;
    if (!r) throw new CryptoError("the attachment does not decrypt");
    const final = r.tag === sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (!final && (r.tag !== sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE || part.length !== CHUNK + ABYTES))
      throw new CryptoError("the attachment does not decrypt");
    out.set(r.message, o);
    o += r.message.length;
    if (final) {
      if (at !== ct.length) throw new CryptoError("bytes after the attachment's final chunk");
      return out.subarray(0, o);
    }
    if (at >= ct.length) throw new CryptoError("the attachment is truncated");
  }
}

/** 0x03 || the pointer as canonical CBOR (cborg sorts keys length-first). */
export function encodePointer(p: Pointer): Uint8Array {
  const m: Record<string, unknown> = { id: p.id, key: p.key, digest: p.digest, size: p.size, type: p.type };
  if (p.name !== undefined) m.name = p.name;
  if (p.duration_ms !== undefined) m.duration_ms = p.duration_ms;
  if (p.thumb !== undefined) m.thumb = p.thumb;
  if (p.caption !== undefined) m.caption = p.caption;
  const body = encode(m);
  const out = new Uint8Array(1 + body.length);
  out[0] = PT_ATTACHMENT;
  out.set(body, 1);
  return out;
}

const utf8len = (s: string) => new TextEncoder().encode(s).length;

/** Decodes a pointer plaintext (with its type byte); throws CryptoError saying what is wrong. */
export function decodePointer(pt: Uint8Array): Pointer {
  if (pt.length < 1 || pt[0] !== PT_ATTACHMENT) throw new CryptoError("not an attachment pointer");
  let m: unknown;
  try {
    m = decode(pt.subarray(1), { useMaps: false, rejectDuplicateMapKeys: true });
  } catch (e) {
    throw new CryptoError(`the pointer is not CBOR: ${String((e as Error).message ?? e)}`);
  }
  if (!m || typeof m !== "object" || Array.isArray(m) || m instanceof Uint8Array)
    throw new CryptoError("the pointer is not a CBOR map");
  const o = m as Record<string, unknown>;
  const bad = (what: string): never => {
    throw new CryptoError(what);
  };
  const isBytes = (v: unknown, n?: number) => v instanceof Uint8Array && (n === undefined || v.length === n);
  const isText = (v: unknown, min: number, max: number) =>
    typeof v === "string" && utf8len(v) >= min && utf8len(v) <= max;
  const isUint = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0;
  if (o.id === undefined || o.key === undefined || o.digest === undefined || o.size === undefined || o.type === undefined)
    bad("a required field (id, key, digest, size, type) is missing");
  if (typeof o.id !== "string" || !ID_RE.test(o.id)) bad("id: not a blob id");
  if (!isBytes(o.key, 32)) bad("key: not 32 bytes");
  if (!isBytes(o.digest, 32)) bad("digest: not 32 bytes");
  if (!isUint(o.size) || (o.size as number) < HEADER + ABYTES || (o.size as number) > SIZE_MAX) bad("size: out of range");
  if (!isText(o.type, 1, 255)) bad("type: not text of 1-255 bytes");
  if (o.name !== undefined && !isText(o.name, 1, 255)) bad("name: not text of 1-255 bytes");
  if (o.caption !== undefined && !isText(o.caption, 0, 4096)) bad("caption: not text of at most 4096 bytes");
  if (o.duration_ms !== undefined && !isUint(o.duration_ms)) bad("duration_ms: not an unsigned integer");
  if (o.thumb !== undefined && !(isBytes(o.thumb) && (o.thumb as Uint8Array).length <= THUMB_MAX))
    bad("thumb: not bytes of at most 8 KB");
  const p: Pointer = { id: o.id as string, key: o.key as Uint8Array, digest: o.digest as Uint8Array,
    size: o.size as number, type: o.type as string };
  if (o.name !== undefined) p.name = o.name as string;
  if (o.duration_ms !== undefined) p.duration_ms = o.duration_ms as number;
  if (o.thumb !== undefined) p.thumb = o.thumb as Uint8Array;
  if (o.caption !== undefined) p.caption = o.caption as string;
  return p;
}
