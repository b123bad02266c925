// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The chat model of one signed-in device: applies inbox events to the stored
// conversations (dedup by (conv, seq), ✓ / ✓✓ / read ticks, unread counts,
// group membership), sends messages and receipts, and tracks presence and
// typing. The UI renders from it and calls its verbs; the crypto
// (Crypto) turns text into the bodies a send carries and back.
import { Connection, RequestError, type ConnState, type Credentials, type Event, type Reply } from "./client";
import {
  insertMessage,
  loadAccount,
  saveAccount,
  type AccountState,
  type Conversation,
  type Message,
  type Tick,
} from "./store";
import sodium from "libsodium-wrappers-sumo";
import * as A from "./e2ee/attach";
import { audioDuration, download, keep, kept, thumbnail, upload } from "./media";
import { batchEvents, dmConv, dmPeer, groupConv, groupId, rcptsOf, sentsItems, userOf } from "./wire";
import type { KeyChange, SafetyView } from "./e2ee";

/** What a send carries: one body for everyone, or one per device. */
export type Sealed = { body: Uint8Array } | { bodies: Record<string, Uint8Array> };
/** A decrypted message: text, or an attachment's pointer. */
export type Opened = { text: string } | { pointer: A.Pointer };

export interface Crypto {
  /** Makes sure this device's keys are published (called after each connect). */
  prepare(conn: Connection): Promise<void>;
  /** Encrypts text for every other device of the conversation's users. */
  seal(conn: Connection, conv: Conversation, text: string): Promise<Sealed>;
  /** The same for a plaintext of any type (an attachment's pointer). */
  sealPlain(conn: Connection, conv: Conversation, pt: Uint8Array): Promise<Sealed>;
  /** The devices a send to conv goes to (an attachment slot's `to`). */
  devicesFor(conn: Connection, conv: Conversation): Promise<string[]>;
  /** Decrypts a message body from device `from`; throws if it cannot. */
  open(conn: Connection, conv: string, from: string, body: Uint8Array): Promise<Opened>;
  /** A send of conv was refused: forget cached device lists, re-key a group. */
  refused(conv: Conversation): void;
  /** An admin removed a device of user; devices is what the user has left. */
  deviceRemoved(user: string, removed: string, devices: string[]): void;
  /** A membership event of group gid arrived: the next send uses a new sender key. */
  groupChanged(gid: string): void;
  /** This device's identity key fingerprint, for people to compare. */
  fingerprint(): Promise<string>;
  /** The retained pre-key status of this device changed. */
  keyStatus(conn: Connection, doc: Reply): Promise<void>;
  /** The safety number with peer (docs/E2EE.md §8), from fresh device lists. */
  safety(conn: Connection, peer: string): Promise<SafetyView>;
  isVerified(peer: string): boolean;
  setVerified(peer: string, verified: boolean): Promise<void>;
  /** Set by ChatApp: a user's key set changed (after the first one seen). */
  onKeyChange: (c: KeyChange) => void;
}

export interface Presence {
  online: boolean;
  seen?: number;
}

const TYPING_SHOW_MS = 6000;
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
const RECEIPT_BATCH_MS = 50;
const MAX_PAGE_FILE = 512 * 1024 * 1024; // attachments larger than this are not fetched by the page

const b64 = (b: Uint8Array) => sodium.to_base64(b);
const unb64 = (s: string) => sodium.from_base64(s);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function randomCid(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(8));
}

export class ChatApp {
  readonly me: string;
  readonly addr: string;
  readonly conn: Connection;
  state: AccountState;
  connState: ConnState = "connecting";
  connDetail = "";
  synced = false;
  active: string | null = null;
  presence = new Map<string, Presence>();
  typing = new Map<string, Map<string, ReturnType<typeof setTimeout>>>(); // conv -> addr -> expiry
  keyStatus: Reply | null = null;
  pushState = "off"; // Web Push (push.ts): off, unsupported, no-key, denied, subscribed, failed
  notice = ""; // the last problem worth showing
  private listeners = new Set<() => void>();
  private queue: Promise<void> = Promise.resolve(); // inbox events, one at a time
  private sending: Promise<void> = Promise.resolve(); // sends, one at a time
  private pendingReceipts = new Map<string, { delivered: Set<number>; read: Set<number> }>();
  private receiptTimer: ReturnType<typeof setTimeout> | null = null;
  private saveTimer: ReturnType<typeof setTimeout> | null = null;
  private typingSent = new Map<string, { at: number; idle: ReturnType<typeof setTimeout> }>();
  private urls = new Map<string, string>(); // attachment (blob id, or "cid:" + cid) -> object URL
  private localFiles = new Map<string, File>(); // cid -> a file being sent
  private loadingKept = new Set<string>();
  private downloading = new Set<string>(); // blob ids being fetched
  private visible = () => typeof document === "undefined" || document.visibilityState === "visible";

  /** caps: the capabilities to declare (Connection); [] keeps to protocol v1. */
  constructor(readonly creds: Credentials, private crypto: Crypto, caps?: string[]) {
    this.me = creds.user;
    this.addr = `${creds.user}/${creds.device}`;
    this.state = loadAccount(this.addr);
    crypto.onKeyChange = (c) => this.keyNotice(c);
    this.conn = new Connection(creds, {
      event: (ev) => {
        this.queue = this.queue.then(() => this.onEvent(ev)).catch((e) => this.warn(String(e)));
      },
      presence: (user, doc) => this.onPresence(user, doc),
      keyStatus: (doc) => {
        this.keyStatus = doc;
        this.changed(false);
        this.crypto.keyStatus(this.conn, doc).catch((e) => this.warn(`keys: ${String((e as Error).message ?? e)}`));
      },
      state: (s, detail) => void this.onState(s, detail),
      caps: () => this.changed(false),
    }, "chat", caps);
  }

  // Web Push: the browser's subscription becomes this device's push target
  async registerPush(token: string): Promise<void> {
    await this.conn.ctl("push.register", { platform: "webpush", token });
  }

  setPushState(state: string, detail: string): void {
    this.pushState = state;
    if (state === "failed") this.warn(`notifications: ${detail}`);
    this.changed(false);
  }

  start(): void {
    for (const c of Object.values(this.state.convs)) if (c.peer) void this.conn.watchPresence(c.peer);
    this.conn.open();
  }

  stop(): void {
    this.flushSave();
    this.conn.close();
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(persist = true): void {
    if (persist && !this.saveTimer) this.saveTimer = setTimeout(() => this.flushSave(), 200);
    for (const fn of this.listeners) fn();
  }

  private flushSave(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    saveAccount(this.addr, this.state);
  }

  private warn(text: string): void {
    this.notice = text;
    this.changed(false);
  }

  // ------------------------------------------------------------ connection

  private async onState(s: ConnState, detail?: string): Promise<void> {
    this.connState = s;
    this.connDetail = detail ?? "";
    if (s !== "online") this.synced = false;
    this.changed(false);
    if (s !== "online") return;
    try {
      await this.crypto.prepare(this.conn);
    } catch (e) {
      this.warn(`keys: ${String((e as Error).message ?? e)}`);
    }
    // what was typed while offline goes out now (same cid: never stored twice)
    for (const c of Object.values(this.state.convs))
      for (const m of c.messages) {
        if (m.mine && m.tick === "pending" && !m.event) void this.transmit(c, m);
        // a download a reload interrupted starts again (the part is gone with the page)
        else if (m.att?.state === "downloading" && !this.downloading.has(m.att.id)) void this.fetchFile(m);
      }
  }

  // ------------------------------------------------------------ conversations

  conv(id: string): Conversation | undefined {
    return this.state.convs[id];
  }

  private ensureConv(id: string): Conversation {
    let c = this.state.convs[id];
    if (!c) {
      const peer = dmPeer(id, this.me) ?? undefined;
      const gid = groupId(id);
      c = {
        id,
        kind: peer ? "dm" : "group",
        title: peer ?? gid ?? id,
        peer,
        members: peer ? [this.me, peer] : [],
        admins: [],
        messages: [],
        unread: 0,
        readUpTo: 0,
        receipts: {},
      };
      this.state.convs[id] = c;
      if (peer) void this.conn.watchPresence(peer);
    }
    return c;
  }

  /** Opens (creating if needed) the 1:1 conversation with user; refuses unknown users. */
  async startDm(user: string): Promise<string> {
    if (user === this.me) throw new Error("that is you");
    const r = await this.conn.ctl("devices", { user });
    if (!Array.isArray(r.devices) || r.devices.length === 0) throw new Error(`no user "${user}"`);
    const id = dmConv(this.me, user);
    this.ensureConv(id);
    this.changed();
    return id;
  }

  async createGroup(gid: string, name: string, members: string[]): Promise<string> {
    await this.conn.ctl("group.create", { gid, name, members });
    const c = this.ensureConv(groupConv(gid));
    c.title = name || gid;
    await this.refreshGroup(c.id);
    return c.id;
  }

  async refreshGroup(id: string): Promise<void> {
    const c = this.conv(id);
    const gid = groupId(id);
    if (!c || gid === null || c.left) return;
    try {
      const r = await this.conn.ctl("group.info", { gid });
      c.title = (r.name as string) || gid;
      c.members = (r.members as string[]) ?? [];
      c.admins = (r.admins as string[]) ?? [];
      this.changed();
    } catch (e) {
      if (e instanceof RequestError && (e.code === "member" || e.code === "notfound")) {
        c.left = true;
        this.changed();
      } else throw e;
    }
  }

  addMembers(id: string, members: string[]): Promise<Reply> {
    return this.conn.ctl("group.add", { gid: groupId(id), members });
  }

  removeMember(id: string, user: string): Promise<Reply> {
    return this.conn.ctl("group.remove", { gid: groupId(id), members: [user] });
  }

  makeAdmin(id: string, user: string): Promise<Reply> {
    return this.conn.ctl("group.admin", { gid: groupId(id), user });
  }

  leaveGroup(id: string): Promise<Reply> {
    return this.conn.ctl("group.leave", { gid: groupId(id) });
  }

  fingerprint(): Promise<string> {
    return this.crypto.fingerprint();
  }

  safety(peer: string): Promise<SafetyView> {
    return this.crypto.safety(this.conn, peer);
  }

  isVerified(peer: string): boolean {
    return this.crypto.isVerified(peer);
  }

  async setVerified(peer: string, verified: boolean): Promise<void> {
    await this.crypto.setVerified(peer, verified);
    this.changed(false);
  }

  /** A notice in the conversation with the user whose key set changed (every
   *  1:1 conversation for a change of our own): after the last message, before
   *  any that comes later (a fractional seq, never sent anywhere). */
  private keyNotice(k: KeyChange): void {
    const own = k.user === this.me;
    const text = own
      ? `Your safety number changed (with everyone): ${k.what}${k.wasVerified ? "; verified contacts are unverified now" : ""}`
      : `${k.user}'s safety number changed: ${k.what}${k.wasVerified ? "; no longer verified" : ""}`;
    const convs = own ? Object.values(this.state.convs).filter((c) => c.kind === "dm")
      : [this.ensureConv(dmConv(this.me, k.user))];
    for (const c of convs) {
      const top = c.messages.reduce((n, m) => Math.max(n, m.seq), 0);
      insertMessage(c, { seq: top + 0.001, cid: "", from: "", ts: Date.now(), text, mine: false, event: true, notice: true });
    }
    this.changed();
  }

  async devices(user: string): Promise<string[]> {
    const r = await this.conn.ctl("devices", { user });
    return (r.devices as string[]) ?? [];
  }

  open(id: string | null): void {
    this.active = id;
    if (id) this.markRead(id);
    this.changed(false);
  }

  /** Sends read receipts for everything unread in conversation id (if it is on screen). */
  markRead(id: string): void {
    const c = this.conv(id);
    if (!c || id !== this.active || !this.visible()) return;
    const seqs = c.messages.filter((m) => !m.mine && !m.event && m.seq > c.readUpTo).map((m) => m.seq);
    c.unread = 0;
    if (seqs.length) {
      c.readUpTo = Math.max(c.readUpTo, ...seqs);
      for (const s of seqs) this.queueReceipt(id, "read", s);
    }
    this.changed();
  }

  // ------------------------------------------------------------ sending

  async sendText(id: string, text: string): Promise<void> {
    const c = this.conv(id);
    if (!c || !text.trim()) return;
    const m: Message = {
      seq: 0,
      cid: hex(randomCid()),
      from: this.addr,
      ts: Date.now(),
      text,
      mine: true,
      tick: "pending",
    };
    c.messages.push(m);
    this.stopTyping(id);
    this.changed();
    await this.transmit(c, m);
  }

  /** Sends a message that failed again (same cid: stored at most once). */
  retry(id: string, m: Message): void {
    const c = this.conv(id);
    if (!c || m.tick !== "failed") return;
    m.tick = "pending";
    m.error = undefined;
    m.retries = 0;
    this.changed();
    void this.transmit(c, m);
  }

  /** Sends one message at a time, in the order they were written: each
   *  may wait for device lists and bundles, and must not overtake another. */
  private transmit(c: Conversation, m: Message): Promise<void> {
    const next = this.sending.then(() => this.transmitNow(c, m));
    this.sending = next;
    return next;
  }

  private async transmitNow(c: Conversation, m: Message): Promise<void> {
    if (!this.conn.online || m.tick !== "pending") return; // sent again on reconnect
    const cid = Uint8Array.from(m.cid.match(/../g)!.map((x) => parseInt(x, 16)));
    try {
      if (m.att) return await this.transmitFile(c, m, cid);
      const sealed = await this.crypto.seal(this.conn, c, m.text);
      await this.conn.send(c.id, { cid, ...sealed });
      // the tick turns to ✓ with the `sent` event, which carries the seq
    } catch (e) {
      m.tick = "failed";
      m.error = String((e as Error).message ?? e);
      if (m.att) m.att.state = "failed"; // retry uploads again, or (uploaded) sends the pointer again
      this.changed();
    }
  }

  // ------------------------------------------------------------ attachments

  /** Sends a file (docs/E2EE.md §4.5): encrypted here, uploaded to
   *  chat-media, then its pointer as an E2EE message; caption optional. */
  async sendFile(id: string, file: File, caption?: string): Promise<void> {
    const c = this.conv(id);
    if (!c) return;
    const m: Message = {
      seq: 0, cid: hex(randomCid()), from: this.addr, ts: Date.now(), text: caption ?? "", mine: true, tick: "pending",
      att: { id: "", key: "", digest: "", size: 0, type: file.type || "application/octet-stream", name: file.name || undefined,
        plainSize: file.size, state: "uploading", progress: 0 },
    };
    this.localFiles.set(m.cid, file);
    this.urls.set(`cid:${m.cid}`, URL.createObjectURL(file));
    c.messages.push(m);
    this.changed();
    await this.transmit(c, m);
  }

  private async transmitFile(c: Conversation, m: Message, cid: Uint8Array): Promise<void> {
    const att = m.att!;
    if (!att.id) {
      const file = this.localFiles.get(m.cid);
      if (!file) throw new Error("the file is no longer on this page: attach it again");
      att.state = "uploading";
      const sealed = A.encryptFile(new Uint8Array(await file.arrayBuffer()));
      if (att.type.startsWith("image/")) {
        const t = await thumbnail(file);
        if (t) att.thumb = b64(t);
      } else if (att.type.startsWith("audio/")) {
        att.duration_ms = await audioDuration(this.urls.get(`cid:${m.cid}`)!);
      }
      const to = await this.crypto.devicesFor(this.conn, c);
      const slot = await this.conn.media("slot", { size: sealed.ciphertext.length, type: att.type, to });
      await upload(slot.put as string, sealed.ciphertext, (f) => {
        att.progress = f;
        this.changed(false);
      });
      Object.assign(att, { id: slot.id as string, key: b64(sealed.key), digest: b64(sealed.digest),
        size: sealed.ciphertext.length, progress: 1 });
      this.urls.set(att.id, this.urls.get(`cid:${m.cid}`)!);
      void keep(`${this.addr} ${att.id}`, file).catch(() => {});
      this.changed();
    }
    const p: A.Pointer = { id: att.id, key: unb64(att.key), digest: unb64(att.digest), size: att.size, type: att.type };
    if (att.name) p.name = att.name.slice(0, 200);
    if (att.duration_ms !== undefined) p.duration_ms = att.duration_ms;
    if (att.thumb) p.thumb = unb64(att.thumb);
    if (m.text) p.caption = m.text;
    const sealed = await this.crypto.sealPlain(this.conn, c, A.encodePointer(p));
    await this.conn.send(c.id, { cid, ...sealed });
    att.state = "ready";
    this.localFiles.delete(m.cid);
    this.changed();
  }

  /** The object URL of an attachment's file, when this page has it (loaded
   *  from IndexedDB after a reload). */
  fileUrl(m: Message): string | undefined {
    const att = m.att;
    if (!att) return undefined;
    const u = (att.id && this.urls.get(att.id)) || this.urls.get(`cid:${m.cid}`);
    if (u || att.state !== "ready" || !att.id || this.loadingKept.has(att.id)) return u;
    this.loadingKept.add(att.id);
    void kept(`${this.addr} ${att.id}`).then((b) => {
      if (!b) return;
      this.urls.set(att.id, URL.createObjectURL(b));
      this.changed(false);
    }).catch(() => {});
    return undefined;
  }

  /** Downloads, checks and decrypts a received attachment. */
  private async fetchFile(m: Message): Promise<void> {
    const att = m.att!;
    if (this.downloading.has(att.id)) return;
    this.downloading.add(att.id);
    try {
      // the page holds a file in memory, twice (ciphertext and plaintext)
      if (att.size > MAX_PAGE_FILE) throw new Error(`too large for the page (${att.size} bytes)`);
      let attempt = 0;
      const ct = await download(async () => {
        if (attempt++) await new Promise((r) => setTimeout(r, 500 * attempt));
        const g = await this.conn.media("get", { id: att.id });
        if (g.size !== att.size) throw new Error("chat-media's blob has another size than the pointer says");
        return g.url as string;
      }, att.size, (f) => {
        att.progress = f;
        this.changed(false);
      });
      if (!sodium.memcmp(A.digestOf(ct), unb64(att.digest))) throw new Error("the file does not match its digest");
      const pt = A.decryptFile(ct, unb64(att.key));
      const blob = new Blob([pt as Uint8Array<ArrayBuffer>], { type: att.type });
      att.plainSize = pt.length;
      this.urls.set(att.id, URL.createObjectURL(blob));
      await keep(`${this.addr} ${att.id}`, blob).catch(() => {});
      att.state = "ready";
    } catch (e) {
      att.state = "failed";
      att.error = String((e as Error).message ?? e);
    } finally {
      this.downloading.delete(att.id);
    }
    this.changed();
  }

  typingInput(id: string): void {
    const now = Date.now();
    const t = this.typingSent.get(id);
    if (t) clearTimeout(t.idle);
    const idle = setTimeout(() => this.stopTyping(id), TYPING_IDLE_MS);
    if (!t || now - t.at > TYPING_SEND_EVERY_MS) {
      this.conn.typing(id, true);
      this.typingSent.set(id, { at: now, idle });
    } else t.idle = idle;
  }

  stopTyping(id: string): void {
    const t = this.typingSent.get(id);
    if (!t) return;
    clearTimeout(t.idle);
    this.typingSent.delete(id);
    this.conn.typing(id, false);
  }

  // ------------------------------------------------------------ receipts out

  private queueReceipt(conv: string, s: "delivered" | "read", seq: number): void {
    // v2 on a broker that takes our PUBACK of the msg as its delivered receipt
    if (s === "delivered" && this.conn.pubackDelivered) return;
    let p = this.pendingReceipts.get(conv);
    if (!p) this.pendingReceipts.set(conv, (p = { delivered: new Set(), read: new Set() }));
    p[s].add(seq);
    if (!this.receiptTimer) this.receiptTimer = setTimeout(() => this.flushReceipts(), RECEIPT_BATCH_MS);
  }

  private flushReceipts(): void {
    this.receiptTimer = null;
    const all = this.pendingReceipts;
    this.pendingReceipts = new Map();
    for (const [conv, p] of all) {
      // read implies delivered: one receipt per seq
      const delivered = [...p.delivered].filter((s) => !p.read.has(s));
      for (const [s, seqs] of [["delivered", delivered], ["read", [...p.read]]] as const)
        for (let i = 0; i < seqs.length; i += 1000)
          void this.conn.receipt(s, conv, seqs.slice(i, i + 1000)).catch(() => {
            // not sent: the message stays queued and comes back with the next sync
          });
    }
  }

  // ------------------------------------------------------------ events in

  private async onEvent(ev: Event): Promise<void> {
    switch (ev.k) {
      case "msg":
        return this.onMsg(ev);
      case "sent":
        return this.onSent(ev);
      case "receipt":
        return this.onReceipt(ev);
      // protocol v2 (docs/PROTOCOL.md "Capabilities (v2)")
      case "sents":
        return this.onSents(ev);
      case "rcpts":
        return this.onRcpts(ev);
      case "batch": {
        // a replay's events, each as the event it is, in order
        const evs = batchEvents(ev);
        if (!evs) return this.warn("a malformed batch event was ignored");
        for (const e of evs) await this.onEvent(e as Event);
        return;
      }
      case "group":
        return this.onGroup(ev);
      case "typing":
        return this.onTyping(ev);
      case "devices":
        if (typeof ev.user === "string" && typeof ev.removed === "string" && Array.isArray(ev.devices))
          this.crypto.deviceRemoved(ev.user, ev.removed, ev.devices as string[]);
        return;
      case "sync":
        this.synced = true;
        this.changed(false);
        return;
      case "error":
        return this.onError(ev);
    }
  }

  private async onMsg(ev: Event): Promise<void> {
    const conv = ev.conv as string;
    const seq = ev.seq as number;
    const from = ev.from as string;
    const c = this.ensureConv(conv);
    this.queueReceipt(conv, "delivered", seq);
    if (c.messages.some((m) => m.seq === seq)) return; // a repeat (at least once)
    const mine = userOf(from) === this.me;
    let text: string;
    let error: string | undefined;
    let att: Message["att"];
    try {
      const o = await this.crypto.open(this.conn, conv, from, ev.body as Uint8Array);
      if ("pointer" in o) {
        const p = o.pointer;
        text = p.caption ?? "";
        att = { id: p.id, key: b64(p.key), digest: b64(p.digest), size: p.size, type: p.type, name: p.name,
          duration_ms: p.duration_ms, thumb: p.thumb && b64(p.thumb), state: "downloading", progress: 0 };
      } else text = o.text;
    } catch (e) {
      text = "";
      error = `cannot decrypt: ${String((e as Error).message ?? e)}`;
    }
    const m: Message = {
      seq,
      cid: ev.cid instanceof Uint8Array ? hex(ev.cid) : "",
      from,
      ts: ev.ts as number,
      text,
      mine,
      error,
      att,
    };
    if (mine) m.tick = this.tickOf(c, seq);
    insertMessage(c, m);
    if (att) void this.fetchFile(m);
    this.rewatch(c);
    if (!mine) {
      this.typingOff(conv, from);
      if (conv === this.active && this.visible()) this.markRead(conv);
      else if (seq > c.readUpTo) c.unread++;
    }
    this.changed();
  }

  private onSent(ev: Event): void {
    const cid = ev.cid instanceof Uint8Array ? hex(ev.cid) : "";
    const c = this.conv(ev.conv as string);
    const m = c?.messages.find((x) => x.mine && x.cid === cid);
    if (!c || !m) return;
    if (m.seq === 0) {
      c.messages.splice(c.messages.indexOf(m), 1);
      m.seq = ev.seq as number;
      m.ts = ev.ts as number;
      insertMessage(c, m);
    }
    m.tick = this.tickOf(c, m.seq);
    this.rewatch(c);
    this.changed();
  }

  /** Gathered confirmations: each a `sent`, and who had it delivered already. */
  private onSents(ev: Event): void {
    const items = sentsItems(ev);
    if (!items) return this.warn("a malformed sents event was ignored");
    for (const it of items) {
      this.onSent({ k: "sent", cid: it.cid, conv: it.conv, seq: it.seq, ts: it.ts ?? Date.now() });
      for (const by of it.dl) this.onReceipt({ k: "receipt", conv: it.conv, seqs: [it.seq], s: "delivered", by });
    }
  }

  /** Coalesced receipts: per set, the same as one receipt per listed user. */
  private onRcpts(ev: Event): void {
    const r = rcptsOf(ev);
    if (!r) return this.warn("a malformed rcpts event was ignored");
    for (const set of r.sets)
      for (const by of set.by) this.onReceipt({ k: "receipt", conv: r.conv, seqs: set.seqs, s: r.s, by });
  }

  /** Presence of a dm peer is readable once the conversation has a message. */
  private rewatch(c: Conversation): void {
    if (c.peer && !this.presence.has(c.peer)) void this.conn.watchPresence(c.peer);
  }

  private onReceipt(ev: Event): void {
    const c = this.conv(ev.conv as string);
    const s = ev.s as string;
    const by = ev.by as string;
    if (!c || !Array.isArray(ev.seqs)) return;
    for (const seq of ev.seqs as number[]) {
      if (s === "expired") {
        const m = c.messages.find((x) => x.seq === seq && x.mine);
        if (m) m.error = `expired before ${by} got it`;
        continue;
      }
      const r = (c.receipts[seq] ??= {});
      if (r[by] !== "read") r[by] = s as "delivered" | "read";
      const m = c.messages.find((x) => x.seq === seq && x.mine);
      if (m) m.tick = this.tickOf(c, seq);
    }
    this.changed();
  }

  /** ✓ stored, ✓✓ every recipient user has it, read: every one read it. */
  private tickOf(c: Conversation, seq: number): Tick {
    const others = c.members.filter((u) => u !== this.me);
    const r = c.receipts[seq] ?? {};
    if (others.length && others.every((u) => r[u] === "read")) return "read";
    if (others.length && others.every((u) => r[u])) return "delivered";
    return "sent";
  }

  private onGroup(ev: Event): void {
    const conv = ev.conv as string;
    const c = this.ensureConv(conv);
    this.queueReceipt(conv, "delivered", ev.seq as number);
    this.crypto.groupChanged(groupId(conv)!);
    const op = ev.op as string;
    const who = (ev.members as string[]) ?? [];
    if (typeof ev.name === "string" && ev.name) c.title = ev.name;
    if (op === "created") c.members = [...who];
    else if (op === "added") c.members = [...new Set([...c.members, ...who])];
    else if (op === "removed" || op === "left") c.members = c.members.filter((u) => !who.includes(u));
    else if (op === "admin") c.admins = [...new Set([...c.admins, ...who])];
    if ((op === "removed" || op === "left") && who.includes(this.me)) c.left = true;
    if (op === "added" && who.includes(this.me)) c.left = false;
    const by = ev.by as string;
    const names = who.map((u) => (u === this.me ? "you" : u)).join(", ");
    const actor = by === this.me ? "You" : by;
    const text =
      op === "created"
        ? `${actor} created the group`
        : op === "added"
          ? `${actor} added ${names}`
          : op === "removed"
            ? `${actor} removed ${names}`
            : op === "left"
              ? `${names === "you" ? "You" : names} left`
              : `${names} ${names === "you" ? "are" : "is"} now an admin`;
    insertMessage(c, { seq: ev.seq as number, cid: "", from: "", ts: ev.ts as number, text, mine: false, event: true });
    if (!c.left && op !== "admin") void this.refreshGroup(conv).catch(() => {});
    this.changed();
  }

  private onTyping(ev: Event): void {
    const conv = ev.conv as string;
    const from = ev.from as string;
    if (ev.on !== true) return this.typingOff(conv, from);
    let t = this.typing.get(conv);
    if (!t) this.typing.set(conv, (t = new Map()));
    clearTimeout(t.get(from));
    t.set(from, setTimeout(() => this.typingOff(conv, from), TYPING_SHOW_MS));
    this.changed(false);
  }

  private typingOff(conv: string, from: string): void {
    const t = this.typing.get(conv);
    if (!t?.has(from)) return;
    clearTimeout(t.get(from));
    t.delete(from);
    this.changed(false);
  }

  /** Users typing in conv right now. */
  typers(conv: string): string[] {
    return [...new Set([...(this.typing.get(conv)?.keys() ?? [])].map(userOf))];
  }

  private onError(ev: Event): void {
    const cid = ev.cid instanceof Uint8Array ? hex(ev.cid) : null;
    const text = `${String(ev.code)}: ${String(ev.msg)}`;
    if (cid) {
      for (const c of Object.values(this.state.convs)) {
        const m = c.messages.find((x) => x.mine && x.cid === cid && x.seq === 0);
        if (!m) continue;
        this.crypto.refused(c);
        if (ev.code === "devices" && (m.retries ?? 0) < 3) {
          // someone added or removed a device: encrypt again for the right set
          m.retries = (m.retries ?? 0) + 1;
          void this.transmit(c, m);
        } else {
          m.tick = "failed";
          m.error = text;
          this.changed();
        }
        return;
      }
    }
    this.warn(text);
  }

  private onPresence(user: string, doc: Reply): void {
    this.presence.set(user, { online: doc.s === "online", seen: typeof doc.seen === "number" ? doc.seen : undefined });
    this.changed(false);
  }
}
