// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The web client's attachments against the shared vectors of docs/E2EE.md
// §4.3/§4.5 (tests/vectors/attachment.json), the same bytes chat-client's
// test_attach checks: the vector files decrypt with their digests, tampered
// ciphertexts fail, pointers encode to the exact bytes and back, malformed
// ones are refused; then round trips around the chunk boundary.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import * as A from "../src/e2ee/attach";
import * as E from "../src/e2ee/core";

const file = process.env.CHAT_ATTACH_VECTORS ??
  path.resolve(process.cwd(), "../../tests/vectors/attachment.json");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const V: any = JSON.parse(readFileSync(file, "utf8"));
const x = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const b64 = (s: string) => Uint8Array.from(Buffer.from(s, "base64"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const cipherOf = (v: any) => (v.ciphertext !== undefined ? x(v.ciphertext) : b64(v.ciphertext_b64));

before(() => E.ready);

test("the vector files decrypt, with their digests and sizes", () => {
  assert.equal(V.chunk, A.CHUNK);
  assert.equal(V.header, A.HEADER);
  assert.equal(V.abytes, A.ABYTES);
  assert.equal(V.files.length, 3);
  for (const v of V.files) {
    const ct = cipherOf(v);
    assert.equal(ct.length, v.size);
    assert.equal(A.cipherSize(v.plain_size), v.size);
    assert.equal(hex(A.digestOf(ct)), v.digest);
    const pt = A.decryptFile(ct, x(v.key));
    if (v.pattern) assert.deepEqual(pt, pattern(v.plain_size));
    else assert.equal(hex(pt), v.plaintext);
  }
});

test("tampered ciphertexts do not decrypt", () => {
  assert.ok(V.tampered.length >= 5);
  for (const t of V.tampered) {
    const v = V.files[t.file];
    const ct = cipherOf(v);
    const parts: Uint8Array[] = t.ranges.map(([off, n]: [number, number]) => ct.subarray(off, off + n));
    const buf = E.concat(...parts, t.append ? x(t.append) : new Uint8Array(0));
    if (t.flip !== undefined) buf[t.flip] ^= 1;
    assert.throws(() => A.decryptFile(buf, x(v.key)), E.CryptoError, t.what);
  }
});

test("pointers encode to the vector bytes and decode back", () => {
  for (const v of V.pointers) {
    const f = v.fields;
    const p: A.Pointer = { id: f.id, key: x(f.key), digest: x(f.digest), size: f.size, type: f.type };
    if (f.name !== undefined) p.name = f.name;
    if (f.duration_ms !== undefined) p.duration_ms = f.duration_ms;
    if (f.thumb !== undefined) p.thumb = x(f.thumb);
    if (f.caption !== undefined) p.caption = f.caption;
    assert.equal(hex(A.encodePointer(p)), v.plaintext);
    assert.deepEqual(A.decodePointer(x(v.plaintext)), p);
  }
});

test("malformed pointers are refused", () => {
  for (const v of V.bad_pointers) assert.throws(() => A.decodePointer(x(v.plaintext)), E.CryptoError, v.what);
});

test("round trips around the chunk boundary; a wrong key or a cut fails", () => {
  for (const n of [0, 1, A.CHUNK - 1, A.CHUNK, A.CHUNK + 1, 3 * A.CHUNK, 300000]) {
    const pt = pattern(n);
    const s = A.encryptFile(pt);
    assert.equal(s.ciphertext.length, A.cipherSize(n));
    assert.deepEqual(s.digest, A.digestOf(s.ciphertext));
    assert.deepEqual(A.decryptFile(s.ciphertext, s.key), pt);
    const wrong = Uint8Array.from(s.key);
    wrong[0] ^= 1;
    assert.throws(() => A.decryptFile(s.ciphertext, wrong), E.CryptoError);
    if (n > A.CHUNK)
      assert.throws(() => A.decryptFile(s.ciphertext.subarray(0, A.HEADER + A.CHUNK + A.ABYTES), s.key), E.CryptoError);
  }
});
