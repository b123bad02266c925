// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// What a device remembers between page loads, in localStorage: the signed-in
// credentials and, per account, the conversations with their decrypted
// history, receipts and unread counts. Messages are kept in (conv, seq) order
// and deduplicated by it (delivery is at least once).
import type { Credentials } from "./client";

export type Tick = "pending" | "sent" | "delivered" | "read" | "failed";

/** An attachment (docs/E2EE.md §4.3): the pointer, bytes in base64 so the
 *  record stays JSON, and how far its transfer is. */
export interface Attachment {
  id: string; // blob id ("" until the upload has a slot)
  key: string;
  digest: string;
  size: number; // ciphertext bytes
  type: string;
  name?: string;
  duration_ms?: number;
  thumb?: string;
  plainSize?: number; // the file's own size, once known
  state: "uploading" | "downloading" | "ready" | "failed";
  progress?: number; // 0..1 while transferring
  error?: string;
}

export interface Message {
  seq: number; // 0 until the server assigned one
  cid: string; // hex of the 8 random bytes sent as cid (unique per device across reinstalls)
  from: string; // sender's address U/D; "" for group events
  ts: number;
  text: string;
  mine: boolean;
  event?: boolean; // a group membership change, shown as a note
  notice?: boolean; // with event: a safety-number change (docs/E2EE.md §8); seq is fractional
  tick?: Tick; // own messages only
  error?: string;
  retries?: number; // sends answered with `devices` and sealed again
  att?: Attachment; // an attachment; text is its caption
}

export interface Conversation {
  id: string;
  kind: "dm" | "group";
  title: string;
  peer?: string; // dm
  members: string[]; // groups: from group events and group.info
  admins: string[];
  messages: Message[];
  unread: number;
  readUpTo: number; // highest seq we sent a read receipt for
  // receipt state of own messages: seq -> user -> state
  receipts: Record<number, Record<string, "delivered" | "read">>;
  left?: boolean;
}

export interface AccountState {
  convs: Record<string, Conversation>;

}

const SESSION_KEY = "mchat.session";
const accountKey = (addr: string) => `mchat.account.${addr}`;

export function loadSession(): Credentials | null {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null");
    return s && s.url && s.user && s.device && s.token ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(c: Credentials | null): void {
  if (c) localStorage.setItem(SESSION_KEY, JSON.stringify(c));
  else localStorage.removeItem(SESSION_KEY);
}

export function loadAccount(addr: string): AccountState {
  try {
    const s = JSON.parse(localStorage.getItem(accountKey(addr)) ?? "null");
    if (s && s.convs) return s;
  } catch {
    /* a damaged record starts over */
  }
  return { convs: {} };
}

export function saveAccount(addr: string, a: AccountState): void {
  localStorage.setItem(accountKey(addr), JSON.stringify(a));
}

const HISTORY_CAP = 1000; // messages kept per conversation (localStorage is small)

/** Inserts m in seq order; false if (conv, seq) is already there. */
export function insertMessage(c: Conversation, m: Message): boolean {
  const list = c.messages;
  if (m.seq > 0 && list.some((x) => x.seq === m.seq)) return false;
  let i = list.length;
  if (m.seq > 0) while (i > 0 && (list[i - 1].seq === 0 || list[i - 1].seq > m.seq)) i--;
  list.splice(i, 0, m);
  if (list.length > HISTORY_CAP) list.splice(0, list.length - HISTORY_CAP);
  return true;
}

export function lastActivity(c: Conversation): number {
  return c.messages.length ? c.messages[c.messages.length - 1].ts : 0;
}
