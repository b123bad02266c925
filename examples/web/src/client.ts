// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// One device's MQTT session with the chat server (docs/PROTOCOL.md): connects
// as U/D with its token over WebSockets, declares its capabilities (protocol
// v2), subscribes to its inbox, syncs, and turns requests that have replies
// (chat/ctl, chat/keys) into promises.
import mqtt, { type MqttClient } from "mqtt";
import { CAPS, cborEncode, cborMap, dmPeer, groupId, topics, type Topics } from "./wire";

export interface Credentials {
  url: string;
  user: string;
  device: string;
  token: string;
}

export type Event = Record<string, unknown> & { k: string };
export type Reply = Record<string, unknown>;
export type ConnState = "connecting" | "online" | "offline" | "refused";

export interface Handlers {
  /** Every inbox event but ctl replies, in arrival order. */
  event(ev: Event): void;
  /** A retained presence document of a watched user. */
  presence(user: string, doc: Reply): void;
  /** The retained pre-key status of this device (chat/keys/status). */
  keyStatus(doc: Reply): void;
  state(s: ConnState, detail?: string): void;
  /** The server answered our capabilities (capsInEffect, pubackDelivered). */
  caps?(): void;
}

/** A refused request: the server's code and message. */
export class RequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

const REPLY_TIMEOUT_MS = 10000;

interface Pending {
  resolve(r: Reply): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Connection {
  readonly addr: string;
  readonly t: Topics;
  private client: MqttClient | null = null;
  private nextRid = 1 + Math.floor(Math.random() * 1e6);
  private ctlWaits = new Map<number, Pending>();
  private keyWaits = new Map<number, Pending>();
  private mediaWaits = new Map<number, Pending>();
  private mediaSubscribed: Promise<void> | null = null; // chat/media/resp, on first use
  private watched = new Set<string>();
  private capsRid = 0; // the caps request whose reply is awaited
  /** The server counts our PUBACK of a msg as its delivered receipt (the
   *  reply to caps says so): no delivered receipts are sent, only read. */
  pubackDelivered = false;
  /** The capabilities in effect (the server's reply to ours). */
  capsInEffect: string[] = [];

  /** caps: what to declare on every connect; [] keeps to the v1 forms. */
  constructor(readonly creds: Credentials, private h: Handlers, prefix = "chat", readonly caps: string[] = CAPS) {
    this.addr = `${creds.user}/${creds.device}`;
    this.t = topics(prefix, creds.user, creds.device);
  }

  open(): void {
    this.h.state("connecting");
    const c = mqtt.connect(this.creds.url, {
      clientId: this.addr,
      username: this.addr,
      password: this.creds.token,
      protocolVersion: 4,
      clean: true, // the server's queue, not the broker's session, holds what we missed
      keepalive: 30,
      reconnectPeriod: 2000,
      connectTimeout: 10000,
      resubscribe: false, // every (re)connect subscribes and syncs itself
      will: { topic: this.t.will, payload: new Uint8Array(0) as never, qos: 0, retain: false },
    });
    this.client = c;
    c.on("connect", () => void this.onConnect());
    c.on("message", (topic, payload) => this.onMessage(topic, payload));
    c.on("close", () => this.client === c && this.h.state("offline"));
    if (typeof window !== "undefined") {
      window.addEventListener("offline", this.onNetworkLost);
      window.addEventListener("online", this.onNetworkBack);
    }
    c.on("error", (err) => {
      const code = (err as { code?: number }).code;
      if (code === 4 || code === 5) {
        // bad token or unknown device: retrying cannot help
        c.end(true);
        this.h.state("refused", "the server refused this device and token");
      }
    });
  }

  // The browser knows about a lost network long before a keepalive would:
  // drop the socket at once (messages written meanwhile wait as pending) and
  // connect again as soon as the network is back.
  private onNetworkLost = () => {
    const c = this.client;
    if (c?.connected) c.end(true, () => this.client === c && this.h.state("offline"));
  };

  private onNetworkBack = () => {
    const c = this.client;
    if (c && !c.connected) c.reconnect();
  };

  close(): void {
    if (typeof window !== "undefined") {
      window.removeEventListener("offline", this.onNetworkLost);
      window.removeEventListener("online", this.onNetworkBack);
    }
    const c = this.client;
    this.client = null;
    c?.end(false);
    for (const waits of [this.ctlWaits, this.keyWaits, this.mediaWaits]) {
      for (const p of waits.values()) {
        clearTimeout(p.timer);
        p.reject(new Error("closed"));
      }
      waits.clear();
    }
  }

  get online(): boolean {
    return !!this.client?.connected;
  }

  private async onConnect(): Promise<void> {
    const c = this.client!;
    this.mediaSubscribed = null; // a new session: subscribe again when needed
    try {
      // v2: the capabilities first, acknowledged, then the inbox: the replay
      // that the inbox subscription starts already uses them. Their reply
      // comes whenever it comes (behind a backlog, if there is one).
      if (this.caps.length) {
        this.capsRid = this.nextRid++;
        await this.publish(this.t.ctl, { op: "caps", rid: this.capsRid, caps: this.caps });
      }
      await c.subscribeAsync(
        { [this.t.inbox]: { qos: 1 }, [this.t.keysResp]: { qos: 1 }, [this.t.keysStatus]: { qos: 1 } },
      );
      for (const u of this.watched) void this.subscribePresence(u);
      this.h.state("online");
      await this.publish(this.t.sync, {});
    } catch (e) {
      this.h.state("offline", String(e));
    }
  }

  private onMessage(topic: string, payload: Uint8Array): void {
    const m = cborMap(payload);
    if (topic === this.t.inbox) {
      if (!m || typeof m.k !== "string") return;
      if ((m.k === "ctl" || m.k === "error") && this.capsRid && m.rid === this.capsRid) return this.onCaps(m);
      if (m.k === "ctl" && typeof m.rid === "number") return this.settle(this.ctlWaits, m);
      if (m.k === "error" && typeof m.rid === "number" && this.ctlWaits.has(m.rid))
        return this.settle(this.ctlWaits, { ...m, ok: false });
      this.h.event(m as Event);
    } else if (topic === this.t.keysResp) {
      if (m && typeof m.rid === "number") this.settle(this.keyWaits, m);
    } else if (topic === this.t.mediaResp) {
      if (m && typeof m.rid === "number") this.settle(this.mediaWaits, m);
    } else if (topic === this.t.keysStatus) {
      if (m) this.h.keyStatus(m);
    } else {
      const prefix = this.t.presence("");
      if (topic.startsWith(prefix) && m) this.h.presence(topic.slice(prefix.length), m);
    }
  }

  private onCaps(m: Reply): void {
    this.capsRid = 0;
    const server = m.server as Reply | undefined;
    // an older server refuses the op: it sends the v1 forms, we send every receipt
    this.pubackDelivered = m.ok === true && server?.puback_delivered === true;
    this.capsInEffect = m.ok === true && Array.isArray(m.caps) ? (m.caps as string[]) : [];
    this.h.caps?.();
  }

  private settle(waits: Map<number, Pending>, m: Reply): void {
    const p = waits.get(m.rid as number);
    if (!p) return;
    waits.delete(m.rid as number);
    clearTimeout(p.timer);
    if (m.ok === true) p.resolve(m);
    else p.reject(new RequestError(String(m.code ?? "error"), String(m.msg ?? "refused")));
  }

  /** Publishes a CBOR payload at QoS 1; resolves on the PUBACK (= stored, for sends). */
  async publish(topic: string, body: unknown, qos: 0 | 1 = 1): Promise<void> {
    const c = this.client;
    if (!c || !c.connected) throw new Error("not connected");
    await c.publishAsync(topic, cborEncode(body) as never, { qos });
  }

  private request(waits: Map<number, Pending>, topic: string, body: Reply): Promise<Reply> {
    const rid = this.nextRid++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        waits.delete(rid);
        reject(new Error(`no reply to ${String(body.op)} within ${REPLY_TIMEOUT_MS / 1000} s`));
      }, REPLY_TIMEOUT_MS);
      waits.set(rid, { resolve, reject, timer });
      this.publish(topic, { ...body, rid }).catch((e) => {
        waits.delete(rid);
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** A chat/ctl request (§6); rejects with RequestError when refused. */
  ctl(op: string, fields: Reply = {}): Promise<Reply> {
    return this.request(this.ctlWaits, this.t.ctl, { ...fields, op });
  }

  /** A key server request (§7); rejects with RequestError when refused. */
  keys(op: string, fields: Reply = {}): Promise<Reply> {
    return this.request(this.keyWaits, this.t.keysReq, { ...fields, op });
  }

  /** A chat-media request (docs/PROTOCOL.md "Attachments"); its answers
   *  are subscribed on first use. Rejects with RequestError when refused. */
  async media(op: string, fields: Reply = {}): Promise<Reply> {
    const c = this.client;
    if (!c || !c.connected) throw new Error("not connected");
    this.mediaSubscribed ??= c.subscribeAsync(this.t.mediaResp, { qos: 1 }).then((granted) => {
      if (!granted.every((g) => g.qos < 0x80)) throw new Error("the broker refused the media answers' topic");
    });
    try {
      await this.mediaSubscribed;
    } catch (e) {
      this.mediaSubscribed = null;
      throw e;
    }
    return this.request(this.mediaWaits, this.t.mediaReq, { ...fields, op });
  }

  /** A send (§3, §9) to conversation conv; resolves when it is stored. */
  send(conv: string, payload: Reply): Promise<void> {
    const gid = groupId(conv);
    const topic = gid !== null ? this.t.group(gid) : this.t.dm(dmPeer(conv, this.creds.user)!);
    return this.publish(topic, payload);
  }

  receipt(s: "delivered" | "read", conv: string, seqs: number[]): Promise<void> {
    return this.publish(this.t.receipt, { s, conv, seqs });
  }

  typing(conv: string, on: boolean): void {
    if (this.online) void this.publish(this.t.typing(conv), { on }, 0).catch(() => {});
  }

  /** Follows a user's presence from now on (again after every reconnect).
   *  Resolves false when the server refuses (no conversation in common yet). */
  watchPresence(user: string): Promise<boolean> {
    this.watched.add(user);
    return this.subscribePresence(user);
  }

  private async subscribePresence(user: string): Promise<boolean> {
    const c = this.client;
    if (!c || !c.connected) return false;
    try {
      const granted = await c.subscribeAsync(this.t.presence(user), { qos: 1 });
      return granted.every((g) => g.qos < 0x80);
    } catch {
      return false;
    }
  }
}
