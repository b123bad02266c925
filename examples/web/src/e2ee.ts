// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The device side of docs/E2EE.md §1 and §5: this device's keys on the key
// server, one Double Ratchet session per remote device (two while a
// simultaneous start settles), our sender key per group with who already has
// it, and the sender keys others distributed to us. It turns text into the
// `bodies` of a send and bodies back into text. State lives in localStorage
// and is written after every change, before the receipt goes out.
import sodium from "libsodium-wrappers-sumo";
import type { Crypto, Opened, Sealed } from "./app";
import { RequestError, type Connection, type Credentials, type Reply } from "./client";
import * as A from "./e2ee/attach";
import * as E from "./e2ee/core";
import * as S from "./e2ee/safety";
import * as K from "./e2ee/keylog";
import type { Conversation } from "./store";
import { groupId, userOf } from "./wire";

const OPK_BATCH = 100; // one-time keys per upload (the key server's maximum)
const SESSIONS_PER_DEVICE = 2;
const CHAINS_KEPT = 3; // received sender keys kept per (device, group)

interface OurChain {
  chain: E.Chain;
  holders: string[]; // devices that have this key
  stale: boolean; // a group event arrived: rotate before the next send
}

/** A user's key set (docs/E2EE.md §8): what the safety number covers. */
interface Contact {
  verified: boolean; // the user compared the safety number; cleared on any change
  complete: boolean; // the set has held every listed device once (else: partial, from X3DH)
  keys: Record<string, Uint8Array>; // device id -> identity key
}

/** A change in a key set: user's safety number changed. */
export interface KeyChange {
  user: string;
  what: string; // "device bob/tab added", "key of bob/phone changed", "device bob/phone removed"
  wasVerified: boolean;
}

export interface SafetyView {
  number: string; // 60 digits
  qr: string; // the QR payload in upper-case hex
  verified: boolean;
}

interface KeyState {
  ik: E.KeyPair;
  spk: E.KeyPair & { id: number };
  opks: Record<number, Uint8Array>; // private halves of uploaded one-time keys
  nextOpk: number;
  uploaded: boolean;
  sessions: Record<string, E.Session[]>; // remote device -> newest first
  ours: Record<string, OurChain>; // gid -> our sender key
  theirs: Record<string, E.Chain[]>; // "U/D g:G" -> newest first
  contacts?: Record<string, Contact>; // user -> key set (ours too); absent in older states
  // the key directory log (docs/KEYSERVER.md): its key (trusted on first use)
  // and the last head seen, which every later head must extend
  log?: { pub: Uint8Array; size: number; root: Uint8Array };
}

/** A key directory check failed: the bundle is not used. */
export class KeyDirectoryError extends Error {}

// JSON with byte strings as {"$b": base64}
const toJson = (v: unknown) => JSON.stringify(v, (_k, x) =>
  x instanceof Uint8Array ? { $b: sodium.to_base64(x) } : x);
const fromJson = (s: string) => JSON.parse(s, (_k, x) =>
  x && typeof x === "object" && typeof x.$b === "string" ? sodium.from_base64(x.$b) : x);

export class E2EE implements Crypto {
  private st: KeyState | null = null;
  private loading: Promise<KeyState> | null = null;
  private readonly addr: string;
  private readonly storeKey: string;
  private devicesCache = new Map<string, string[]>(); // user -> device ids
  private uploading = false;
  /** Told of every change of a key set after the first (ChatApp shows a notice). */
  onKeyChange: (c: KeyChange) => void = () => {};

  constructor(readonly creds: Credentials) {
    this.addr = `${creds.user}/${creds.device}`;
    this.storeKey = `mchat.keys.${this.addr}`;
  }

  /** The state, loaded (or made) once: concurrent callers share one object. */
  private state(): Promise<KeyState> {
    this.loading ??= E.ready.then(() => {
      const saved = localStorage.getItem(this.storeKey);
      if (saved) this.st = fromJson(saved) as KeyState;
      else {
        const spk = E.x25519();
        this.st = { ik: E.ed25519(), spk: { ...spk, id: 1 }, opks: {}, nextOpk: 1, uploaded: false,
          sessions: {}, ours: {}, theirs: {} };
        this.save();
      }
      return this.st;
    });
    return this.loading;
  }

  private save(): void {
    if (this.st) localStorage.setItem(this.storeKey, toJson(this.st));
  }

  /** The identity key's fingerprint, for people to compare (safety number). */
  async fingerprint(): Promise<string> {
    const st = await this.state();
    const h = sodium.crypto_hash_sha256(st.ik.pk).slice(0, 10);
    return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("").replace(/(.{4})/g, "$1 ").trim();
  }

  // ------------------------------------------------------------ keys on the key server

  async prepare(conn: Connection): Promise<void> {
    const st = await this.state();
    let match = false;
    if (st.uploaded) {
      const digest = sodium.crypto_hash_sha256(E.concat(st.ik.pk, st.spk.pk));
      const r = await conn.keys("check", { digest });
      match = r.match === true;
    }
    if (!match) await this.upload(conn, true);
    await this.checkOwnHistory(conn);
  }

  /** This device's own entries in the key directory log: every identity key
   *  logged in its name since its own first one must be its own. */
  private async checkOwnHistory(conn: Connection): Promise<void> {
    const st = await this.state();
    const since = st.log?.size;
    const fields = { user: this.creds.user, device: this.creds.device };
    const r = await conn.keys("history", since ? { ...fields, since } : fields);
    const head = await this.acceptHead(conn, r);
    let mine = false;
    for (const e of (r.entries as Reply[]) ?? []) {
      const proof = K.readProof(e.proof);
      if (!proof || typeof e.index !== "number" || typeof e.ts !== "number" || !(e.ik instanceof Uint8Array) ||
          !K.verifyInclusion(e.index, head.size, K.entryHash(e.ik, e.ts, this.creds.user, this.creds.device),
            proof, head.root))
        throw new KeyDirectoryError("key directory check failed: this device's key history does not match the log");
      if (e.ik.length === st.ik.pk.length && sodium.memcmp(e.ik, st.ik.pk)) mine = true;
      else if (mine)
        throw new KeyDirectoryError(`key directory check failed: the key server logged a key in this device's ` +
          `name that it never published (log index ${e.index}); others may be writing to an impostor`);
    }
    if (!mine) throw new KeyDirectoryError("key directory check failed: this device's identity key is not in the log");
  }

  /** The retained key status said the pool runs low: top it up. */
  async keyStatus(conn: Connection, doc: Reply): Promise<void> {
    const st = await this.state();
    if (doc.low === true && st.uploaded) await this.upload(conn, false);
  }

  private async upload(conn: Connection, fresh: boolean): Promise<void> {
    if (this.uploading) return;
    this.uploading = true;
    try {
      const st = await this.state();
      if (fresh) st.opks = {}; // the key server dropped or never had them
      const batch: { id: number; key: Uint8Array }[] = [];
      for (let i = 0; i < OPK_BATCH; i++) {
        const k = E.x25519();
        const id = st.nextOpk++;
        st.opks[id] = k.sk;
        batch.push({ id, key: k.pk });
      }
      this.save();
      await conn.keys("upload", {
        ik: st.ik.pk,
        spk: { id: st.spk.id, key: st.spk.pk, sig: E.sign(st.spk.pk, st.ik.sk) },
        opks: batch,
      });
      st.uploaded = true;
      this.save();
    } catch (e) {
      if (!(e instanceof RequestError && e.code === "full")) throw e;
    } finally {
      this.uploading = false;
    }
  }

  // ------------------------------------------------------------ devices and sessions

  private async devicesOf(conn: Connection, user: string): Promise<string[]> {
    let ds = this.devicesCache.get(user);
    if (!ds) {
      const r = await conn.ctl("devices", { user });
      ds = ((r.devices as string[]) ?? []).map((d) => `${user}/${d}`);
      this.devicesCache.set(user, ds);
    }
    return ds;
  }

  /** Every device of these users but this one. */
  private async recipients(conn: Connection, users: string[]): Promise<string[]> {
    const all: string[] = [];
    for (const u of new Set(users)) all.push(...(await this.devicesOf(conn, u)));
    return all.filter((a) => a !== this.addr);
  }

  /** Makes sure there is a session with every device, fetching one bundle per user that needs it. */
  private async sessionsFor(conn: Connection, devices: string[]): Promise<void> {
    const st = await this.state();
    const missing = new Set(devices.filter((a) => !st.sessions[a]?.length).map(userOf));
    for (const user of missing) {
      const quiet = !this.contactOf(user, false)?.complete; // completing a partial set
      const since = st.log?.size;
      const r = await conn.keys("bundle", since ? { user, since } : { user }).catch((e) => {
        if (e instanceof RequestError && e.code === "notfound")
          throw new Error(`no keys for ${user} on the key server yet (no device of theirs has signed in)`);
        throw e;
      });
      const head = await this.acceptHead(conn, r);
      for (const e of (r.devices as Reply[]) ?? []) {
        const addr = `${user}/${String(e.device)}`;
        if (!devices.includes(addr)) continue;
        // a listed device's key is proven against the log before it counts
        // for the key set (safety numbers, notices) or starts a session
        const ref = e.log as Reply | undefined;
        const proof = K.readProof(ref?.proof);
        if (!ref || !proof || typeof ref.index !== "number" || typeof ref.ts !== "number" ||
            !(e.ik instanceof Uint8Array) ||
            !K.verifyInclusion(ref.index, head.size, K.entryHash(e.ik, ref.ts, user, String(e.device)), proof,
              head.root))
          throw new KeyDirectoryError(`key directory check failed: the identity key served for ${addr} is ` +
            "not the one in the key server's log; not using it");
        this.seenKey(addr, e.ik, quiet);
        if (st.sessions[addr]?.length) continue;
        const spk = e.spk as Reply;
        const opk = e.opk as Reply | undefined;
        const { session } = E.x3dhInitiate(st.ik, {
          ik: e.ik as Uint8Array, spkId: spk.id as number, spk: spk.key as Uint8Array, spkSig: spk.sig as Uint8Array,
          opkId: opk ? (opk.id as number) : 0, opk: opk?.key as Uint8Array | undefined,
        });
        st.sessions[addr] = [session];
      }
    }
    this.save();
    const without = devices.filter((a) => !st.sessions[a]?.length);
    if (without.length) throw new Error(`no keys for ${without.join(", ")} on the key server`);
  }

  /** Verifies a bundle answer's head (signature, consistency with the last
   *  head seen) and remembers it. Throws KeyDirectoryError. */
  private async acceptHead(conn: Connection, r: Reply): Promise<K.Head> {
    const st = await this.state();
    const head = K.readHead(r.head);
    if (!head) throw new KeyDirectoryError("key directory check failed: the bundle comes without a log head");
    if (!st.log) {
      const h = await conn.keys("head", {});
      if (!(h.pub instanceof Uint8Array) || h.pub.length !== 32)
        throw new KeyDirectoryError("key directory check failed: the key server did not say its log key");
      // copies: a decoded byte string may be a view of a buffer that is reused
      st.log = { pub: Uint8Array.from(h.pub), size: 0, root: new Uint8Array(32) }; // trusted on first use
    }
    if (!K.verifyHead(head, st.log.pub))
      throw new KeyDirectoryError("key directory check failed: the log head is not signed by the log key");
    if (st.log.size) {
      const cons = K.readProof(r.consistency);
      if (head.size < st.log.size || !cons ||
          !K.verifyConsistency(st.log.size, head.size, st.log.root, head.root, cons))
        throw new KeyDirectoryError(`key directory check failed: the key server's log forked (the head of size ` +
          `${head.size} does not extend the one of size ${st.log.size} seen before)`);
    }
    st.log.size = head.size;
    st.log.root = Uint8Array.from(head.root);
    this.save();
    return head;
  }

  private encryptTo(addr: string, pt: Uint8Array): Uint8Array {
    return E.pairwiseEncrypt(this.st!.sessions[addr][0], pt);
  }

  // ------------------------------------------------------------ key sets and safety numbers

  private contactOf(user: string, create: boolean): Contact | undefined {
    const st = this.st!;
    st.contacts ??= {};
    if (!st.contacts[user] && create) st.contacts[user] = { verified: false, complete: false, keys: {} };
    return st.contacts[user];
  }

  /** A change of user's set: verified marks go (all of them for our own set). */
  private changedSet(user: string, what: string): void {
    const st = this.st!;
    let wasVerified = false;
    for (const [u, c] of Object.entries(st.contacts ?? {}))
      if (u === user || user === this.creds.user) {
        wasVerified ||= c.verified;
        c.verified = false;
      }
    this.save();
    this.onKeyChange({ user, what, wasVerified });
  }

  /** A device's identity key from a bundle or an X3DH message (client_trust.c's rules). */
  private seenKey(addr: string, ik: Uint8Array, quiet: boolean): void {
    const user = userOf(addr);
    const dev = addr.slice(user.length + 1);
    const c = this.contactOf(user, true)!;
    const had = c.keys[dev];
    if (had && sodium.memcmp(had, ik)) return;
    c.keys[dev] = Uint8Array.from(ik);
    // a device the cached list may lack: the next send asks again, and its
    // check does not take the cached list's word that the device is gone
    if (!had) this.devicesCache.delete(user);
    if (had || (c.complete && !quiet)) this.changedSet(user, had ? `key of ${addr} changed` : `device ${addr} added`);
  }

  /** user's complete device list: keys of devices not on it are dropped (a notice each). */
  private deviceList(user: string, devs: string[]): void {
    const st = this.st!;
    const c = this.contactOf(user, true)!;
    for (const d of Object.keys(c.keys))
      if (!devs.includes(d)) {
        delete c.keys[d];
        this.changedSet(user, `device ${user}/${d} removed`);
      }
    for (const d of devs) {
      const addr = `${user}/${d}`;
      if (c.keys[d]) continue;
      if (addr === this.addr) c.keys[d] = st.ik.pk;
      else if (st.sessions[addr]?.length) c.keys[d] = st.sessions[addr][0].remoteIk;
    }
    c.complete = true;
  }

  /** The safety number with peer, from fresh device lists (bundles only for new devices). */
  async safety(conn: Connection, peer: string): Promise<SafetyView> {
    const st = await this.state();
    const me = this.creds.user;
    this.devicesCache.delete(peer);
    this.devicesCache.delete(me);
    const theirs = await this.devicesOf(conn, peer);
    if (!theirs.length) throw new Error(`${peer} has no devices`);
    const devices = await this.recipients(conn, [peer, me]);
    await this.sessionsFor(conn, devices);
    this.deviceList(peer, theirs.map((a) => a.slice(peer.length + 1)));
    this.deviceList(me, (await this.devicesOf(conn, me)).map((a) => a.slice(me.length + 1)));
    this.save();
    const ours = { ...this.contactOf(me, true)!.keys, [this.creds.device]: st.ik.pk };
    const p = this.contactOf(peer, false)!;
    const r = S.safetyNumber(me, ours, peer, p.keys);
    return { number: r.number, qr: S.qrText(r.qr), verified: p.verified };
  }

  isVerified(peer: string): boolean {
    return this.st?.contacts?.[peer]?.verified ?? false;
  }

  /** Marks peer verified (the user compared view.number) or not. */
  async setVerified(peer: string, verified: boolean): Promise<void> {
    await this.state();
    const c = this.contactOf(peer, false);
    if (!c) throw new Error(`no keys of ${peer} known yet`);
    c.verified = verified;
    this.save();
  }

  // ------------------------------------------------------------ sealing

  seal(conn: Connection, conv: Conversation, text: string): Promise<Sealed> {
    return this.sealPlain(conn, conv, E.textPlaintext(text));
  }

  /** The devices a send to conv goes to (an attachment's `to`). */
  devicesFor(conn: Connection, conv: Conversation): Promise<string[]> {
    return this.recipients(conn, [...conv.members, this.creds.user]);
  }

  async sealPlain(conn: Connection, conv: Conversation, pt: Uint8Array): Promise<Sealed> {
    const st = await this.state();
    const gid = groupId(conv.id);
    const devices = await this.recipients(conn, [...conv.members, this.creds.user]);
    await this.sessionsFor(conn, devices);
    // the lists we send to are complete: check the key sets against them
    for (const u of new Set([...conv.members.filter((m) => m !== this.creds.user), ...(gid === null ? [this.creds.user] : [])]))
      this.deviceList(u, (await this.devicesOf(conn, u)).map((a) => a.slice(u.length + 1)));
    const bodies: Record<string, Uint8Array> = {};
    if (gid === null) {
      for (const a of devices) bodies[a] = E.bodyPairwise(this.encryptTo(a, pt));
    } else {
      let ours = st.ours[gid];
      // rotate after a membership change, or when a device that had the key is gone
      if (!ours || ours.stale || ours.holders.some((a) => !devices.includes(a))) {
        ours = st.ours[gid] = { chain: E.chainNew((ours?.chain.keyId ?? 0) + 1), holders: [], stale: false };
      }
      const dist = E.distributionPlaintext(ours.chain, gid);
      const give = new Map(devices.filter((a) => !ours.holders.includes(a)).map((a) => [a, this.encryptTo(a, dist)]));
      const msg = E.senderEncrypt(ours.chain, pt, conv.id, st.ik.sk);
      for (const a of devices) bodies[a] = E.bodyGroup(give.get(a) ?? null, msg);
      ours.holders = devices;
    }
    this.save();
    return { bodies };
  }

  refused(conv: Conversation): void {
    for (const u of conv.members) this.devicesCache.delete(u);
    this.devicesCache.delete(this.creds.user);
    const gid = groupId(conv.id);
    // a refused group send may have carried the only copy of a distribution
    if (gid !== null && this.st?.ours[gid]) {
      this.st.ours[gid].stale = true;
      this.save();
    }
  }

  deviceRemoved(user: string, removed: string, devices: string[]): void {
    this.devicesCache.set(user, devices.map((d) => `${user}/${d}`));
    const st = this.st;
    if (st && st.sessions[`${user}/${removed}`]) {
      delete st.sessions[`${user}/${removed}`]; // a group key it held is rotated on the next send
      this.save();
    }
    if (st && `${user}/${removed}` !== this.addr && this.contactOf(user, false)) {
      this.deviceList(user, devices);
      this.save();
    }
  }

  groupChanged(gid: string): void {
    const ours = this.st?.ours[gid];
    if (ours) {
      ours.stale = true;
      this.save();
    }
    this.devicesCache.clear();
  }

  // ------------------------------------------------------------ opening

  async open(_conn: Connection, conv: string, from: string, body: Uint8Array): Promise<Opened> {
    const st = await this.state();
    const b = E.bodyParse(body);
    let text: Opened;
    if (b.kind === E.KIND_PAIRWISE) {
      text = this.plainText(this.decryptFrom(from, b.pairwise!));
    } else {
      const gid = groupId(conv);
      if (gid === null) throw new E.CryptoError("a group body in a 1:1 conversation");
      const key = `${from} ${conv}`;
      if (b.pairwise) {
        const d = E.parseDistribution(this.decryptFrom(from, b.pairwise));
        if (d.gid !== gid) throw new E.CryptoError("a sender key for another group");
        const chain: E.Chain = { ...E.chainNew(d.keyId, d.ck), n: d.n, sigPk: st.sessions[from][0].remoteIk };
        st.theirs[key] = [chain, ...(st.theirs[key] ?? []).filter((c) => c.keyId !== d.keyId)].slice(0, CHAINS_KEPT);
      }
      const id = E.senderKeyId(b.sender!);
      const i = (st.theirs[key] ?? []).findIndex((c) => c.keyId === id);
      if (i < 0) throw new E.CryptoError("no sender key from this device");
      const r = E.senderDecrypt(st.theirs[key][i], b.sender!, conv);
      st.theirs[key][i] = r.chain;
      text = this.plainText(r.pt);
    }
    this.save();
    return text;
  }

  private plainText(pt: Uint8Array): Opened {
    if (pt[0] === A.PT_ATTACHMENT) return { pointer: A.decodePointer(pt) };
    if (pt[0] !== E.PT_TEXT) throw new E.CryptoError(`unexpected plaintext type ${pt[0]}`);
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(pt.subarray(1)) };
  }

  /** Decrypts a pairwise message from a device: with the session its X3DH
   *  part names (a repeat), a new responder session (a new X3DH), or, without
   *  an X3DH part, whichever session it belongs to. */
  private decryptFrom(from: string, msg: Uint8Array): Uint8Array {
    const st = this.st!;
    const list = st.sessions[from] ?? [];
    const keep = (i: number, r: { pt: Uint8Array; session: E.Session }) => {
      if (i >= 0) list.splice(i, 1);
      st.sessions[from] = [r.session, ...list].slice(0, SESSIONS_PER_DEVICE);
      return r.pt;
    };
    const pre = E.pairwisePrekey(msg);
    if (!pre) {
      for (let i = 0; i < list.length; i++) {
        try {
          return keep(i, E.pairwiseDecrypt(list[i], msg));
        } catch (e) {
          if (!(e instanceof E.CryptoError)) throw e;
        }
      }
      throw new E.CryptoError(list.length ? "does not decrypt" : "no session with this device");
    }
    const known = list.findIndex((s) => sodium.memcmp(s.ekPk, pre.ek));
    if (known >= 0) return keep(known, E.pairwiseDecrypt(list[known], msg));
    if (pre.spkId !== st.spk.id) throw new E.CryptoError("unknown signed pre-key");
    const opk = pre.opkId ? st.opks[pre.opkId] : null;
    if (pre.opkId && !opk) throw new E.CryptoError("one-time pre-key already used");
    const r = E.pairwiseDecrypt(E.x3dhRespond(st.ik, st.spk, opk ?? null, pre).session, msg);
    if (pre.opkId) delete st.opks[pre.opkId]; // one time only
    this.seenKey(from, r.session.remoteIk, false); // a new device or a new key: a notice
    return keep(-1, r);
  }
}
