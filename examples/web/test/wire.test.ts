// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The web client's readers of the protocol v2 events (src/wire.ts), fed
// through the same CBOR decoder the client uses: a well-formed sents, rcpts
// and batch read back entry by entry, and a malformed one anywhere is
// refused whole (null), so nothing of it is applied.
import assert from "node:assert/strict";
import { test } from "node:test";
import { encode } from "cborg";
import { batchEvents, cborMap, rcptsOf, sentsItems } from "../src/wire";

const ev = (v: unknown) => cborMap(encode(v))!;
const cid = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

test("sents: every item, dl optional", () => {
  const items = sentsItems(ev({ k: "sents", items: [
    { cid, conv: "dm:a:b", seq: 7, ts: 1700000000000, dl: ["b"] },
    { cid: 42, conv: "g:team", seq: 3, ts: 1700000000001 },
  ] }));
  assert.deepEqual(items, [
    { cid, conv: "dm:a:b", seq: 7, ts: 1700000000000, dl: ["b"] },
    { cid: 42, conv: "g:team", seq: 3, ts: 1700000000001, dl: [] },
  ]);
});

test("sents: one bad item refuses the event", () => {
  const good = { cid, conv: "dm:a:b", seq: 1 };
  for (const bad of [
    { ...good, seq: 0 }, { ...good, seq: "1" }, { ...good, conv: "" }, { ...good, cid: new Uint8Array(17) },
    { ...good, cid: "x" }, { ...good, dl: "b" }, { ...good, dl: ["b/phone"] }, { conv: "dm:a:b", seq: 1 }, 5,
  ])
    assert.equal(sentsItems(ev({ k: "sents", items: [good, bad] })), null, JSON.stringify(bad));
  assert.equal(sentsItems(ev({ k: "sents", items: [] })), null);
  assert.equal(sentsItems(ev({ k: "sent", items: [good] })), null);
});

test("rcpts: sets of seqs and users", () => {
  const r = rcptsOf(ev({ k: "rcpts", conv: "g:team", s: "read", ts: 5, sets: [
    { seqs: [4, 5], by: ["bob", "carol"] }, { seqs: [4], by: ["dave"] },
  ] }));
  assert.deepEqual(r, { conv: "g:team", s: "read", ts: 5, sets: [
    { seqs: [4, 5], by: ["bob", "carol"] }, { seqs: [4], by: ["dave"] },
  ] });
  const good = { seqs: [1], by: ["bob"] };
  for (const bad of [
    { k: "rcpts", conv: "g:t", s: "seen", sets: [good] },
    { k: "rcpts", conv: "g:t", s: "read", sets: [] },
    { k: "rcpts", s: "read", sets: [good] },
    { k: "rcpts", conv: "g:t", s: "read", sets: [good, { seqs: [], by: ["bob"] }] },
    { k: "rcpts", conv: "g:t", s: "read", sets: [good, { seqs: [1], by: [] }] },
    { k: "rcpts", conv: "g:t", s: "read", sets: [good, { seqs: [-1], by: ["bob"] }] },
    { k: "rcpts", conv: "g:t", s: "read", sets: [good, { seqs: [1], by: [""] }] },
  ])
    assert.equal(rcptsOf(ev(bad)), null, JSON.stringify(bad));
});

test("batch: its events in order, no batch inside a batch", () => {
  const evs = batchEvents(ev({ k: "batch", evs: [
    { k: "msg", conv: "dm:a:b", seq: 1, from: "a/d", ts: 1, body: new Uint8Array([1]) },
    { k: "group", gid: "t", conv: "g:t", seq: 1, ts: 1, op: "created", by: "a", members: ["a"] },
    { k: "rcpts", conv: "dm:a:b", s: "delivered", ts: 1, sets: [{ seqs: [2], by: ["b"] }] },
  ] }));
  assert.deepEqual(evs!.map((e) => [e.k, e.seq ?? null]), [["msg", 1], ["group", 1], ["rcpts", null]]);
  assert.equal(batchEvents(ev({ k: "batch", evs: [] })), null);
  assert.equal(batchEvents(ev({ k: "batch", evs: [{ k: "msg" }, 3] })), null);
  assert.equal(batchEvents(ev({ k: "batch", evs: [{ k: "batch", evs: [{ k: "msg" }] }] })), null);
  assert.equal(batchEvents(ev({ k: "batch", evs: [{ seq: 1 }] })), null);
});
