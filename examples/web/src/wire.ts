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
