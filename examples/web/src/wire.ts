// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The wire format of docs/PROTOCOL.md as the browser sees it: CBOR maps with
// text keys and byte strings as Uint8Array, topic names, conversation ids.
import { decode, encode } from "cborg";

// Maps with text keys become objects, byte strings Uint8Array; integers are
// written in their shortest form, as the plugin's and key server's decoders
// expect.
export function cborEncode(value: unknown): Uint8Array {
  return encode(value);
}

export function cborDecode(bytes: Uint8Array): unknown {
  return decode(bytes);
}

/** A CBOR map decoded to an object, or null for anything else. */
export function cborMap(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const v = cborDecode(bytes);
    return v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array)
      ? (v as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

export const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
export const DEVICE_RE = /^[A-Za-z0-9._-]{1,32}$/;

/** "dm:A:B" with A < B bytewise (ids are ASCII, so code units compare the same). */
export function dmConv(a: string, b: string): string {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

export function groupConv(gid: string): string {
  return `g:${gid}`;
}

/** The other user of a dm conversation, or null for a group. */
export function dmPeer(conv: string, me: string): string | null {
  if (!conv.startsWith("dm:")) return null;
  const [, a, b] = conv.split(":");
  return a === me ? b : a;
}

export function groupId(conv: string): string | null {
  return conv.startsWith("g:") ? conv.slice(2) : null;
}

export function userOf(addr: string): string {
  const i = addr.indexOf("/");
  return i < 0 ? addr : addr.slice(0, i);
}

export const topics = (prefix: string, user: string, device: string) => {
  const addr = `${user}/${device}`;
  return {
    inbox: `${prefix}/inbox/${addr}`,
    will: `${prefix}/presence/${addr}`,
    presence: (u: string) => `${prefix}/presence/${u}`,
    dm: (peer: string) => `${prefix}/dm/${peer}`,
    group: (gid: string) => `${prefix}/group/${gid}`,
    receipt: `${prefix}/receipt`,
    sync: `${prefix}/sync`,
    ctl: `${prefix}/ctl`,
    typing: (conv: string) => `${prefix}/typing/${conv}`,
    keysReq: `${prefix}/keys/req/${addr}`,
    keysResp: `${prefix}/keys/resp/${addr}`,
    keysStatus: `${prefix}/keys/status/${addr}`,
    mediaReq: `${prefix}/media/req/${addr}`,
    mediaResp: `${prefix}/media/resp/${addr}`,
  };
};
export type Topics = ReturnType<typeof topics>;

// ------------------------------------------------------------ protocol v2
// docs/PROTOCOL.md "Capabilities (v2)": what this client declares before it
// subscribes to its inbox, and the three events it then receives. Each
// reader checks a whole event and returns null for a malformed one, so
// nothing of it is applied.

/** The capabilities this client declares (ctl `caps`). */
export const CAPS = ["sents", "rcpts", "batch"];

const isSeq = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v > 0;
const isUid = (v: unknown): v is string => typeof v === "string" && ID_RE.test(v);
const isConv = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 80;
const isMap = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);

export interface SentItem {
  cid: Uint8Array | number;
  conv: string;
  seq: number;
  ts?: number;
  /** users it was delivered to before the confirmation went out */
  dl: string[];
}

/** The items of a `sents` event (gathered confirmations), in order. */
export function sentsItems(ev: Record<string, unknown>): SentItem[] | null {
  if (ev.k !== "sents" || !Array.isArray(ev.items) || !ev.items.length) return null;
  const out: SentItem[] = [];
  for (const it of ev.items as unknown[]) {
    if (!isMap(it)) return null;
    const { cid, conv, seq, ts, dl } = it;
    const cidOk = (cid instanceof Uint8Array && cid.length >= 1 && cid.length <= 16) ||
      (typeof cid === "number" && Number.isInteger(cid) && cid >= 0);
    if (!cidOk || !isConv(conv) || !isSeq(seq)) return null;
    if (ts !== undefined && typeof ts !== "number") return null;
    if (dl !== undefined && !(Array.isArray(dl) && dl.every(isUid))) return null;
    out.push({ cid: cid as Uint8Array | number, conv, seq, ts: ts as number | undefined, dl: (dl as string[]) ?? [] });
  }
  return out;
}

export interface Rcpts {
  conv: string;
  s: "delivered" | "read" | "expired";
  ts?: number;
  sets: { seqs: number[]; by: string[] }[];
}

/** A `rcpts` event (coalesced receipts): per set, the seqs each listed user has. */
export function rcptsOf(ev: Record<string, unknown>): Rcpts | null {
  const { conv, s, ts, sets } = ev;
  if (ev.k !== "rcpts" || !isConv(conv) || !Array.isArray(sets) || !sets.length) return null;
  if (s !== "delivered" && s !== "read" && s !== "expired") return null;
  if (ts !== undefined && typeof ts !== "number") return null;
  const out: Rcpts = { conv, s, ts: ts as number | undefined, sets: [] };
  for (const set of sets as unknown[]) {
    if (!isMap(set)) return null;
    const { seqs, by } = set;
    if (!Array.isArray(seqs) || !seqs.length || !seqs.every(isSeq)) return null;
    if (!Array.isArray(by) || !by.length || !by.every(isUid)) return null;
    out.sets.push({ seqs: seqs as number[], by: by as string[] });
  }
  return out;
}

/** The events of a replay `batch`, in order; each is an inbox event of its own. */
export function batchEvents(ev: Record<string, unknown>): (Record<string, unknown> & { k: string })[] | null {
  if (ev.k !== "batch" || !Array.isArray(ev.evs) || !ev.evs.length) return null;
  const evs = ev.evs as unknown[];
  return evs.every((e) => isMap(e) && typeof e.k === "string" && e.k !== "batch")
    ? (evs as (Record<string, unknown> & { k: string })[])
    : null;
}
