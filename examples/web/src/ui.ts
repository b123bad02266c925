// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The screens: sign-in, the conversation list, a conversation, and the
// dialogs (new chat, new group, group members, devices, verify a contact's
// safety number). Rendering reads the
// ChatApp model; user actions call its verbs.
import type { ChatApp } from "./app";
import { RequestError, type Credentials } from "./client";
import { h, replace } from "./dom";
import { groups } from "./e2ee/safety";
import qrcode from "qrcode-generator";
import { icon } from "./icons";
import { lastActivity, type Conversation, type Message } from "./store";

/** libsodium's URL-safe base64 (how attachments are stored) as standard base64 for a data: URL. */
function toStdB64(s: string): string {
  const t = s.replace(/-/g, "+").replace(/_/g, "/");
  return t + "=".repeat((4 - (t.length % 4)) % 4);
}

function fmtSize(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** What a message shows in the list: its text, or the attachment's name. */
function previewText(m: Message): string {
  return m.att ? `📎 ${m.att.name ?? m.att.type}${m.text ? ` ${m.text}` : ""}` : m.text;
}
import { DEVICE_RE, ID_RE, userOf } from "./wire";

function fmtTime(ts: number): string {
  const d = new Date(ts);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toDateString() === now.toDateString() ? hm : `${d.toLocaleDateString([], { day: "numeric", month: "short" })} ${hm}`;
}

function errText(e: unknown): string {
  return e instanceof RequestError ? e.message : String((e as Error)?.message ?? e);
}

function avatar(name: string): HTMLElement {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return h("div.avatar", { style: `--hue:${hash % 360}`, "aria-hidden": "true" }, name.slice(0, 1).toUpperCase());
}

const TICKS: Record<string, [string, string]> = {
  pending: ["", "sending"],
  sent: ["✓", "sent"],
  delivered: ["✓✓", "delivered"],
  read: ["✓✓", "read"],
  failed: ["!", "not sent"],
};

// ------------------------------------------------------------------ sign in

export function signInScreen(root: HTMLElement, defaults: Partial<Credentials>, error: string,
                             done: (c: Credentials) => void): void {
  const addr = h("input", { id: "addr", name: "addr", placeholder: "alice/phone", autocomplete: "username",
    value: defaults.user ? `${defaults.user}/${defaults.device}` : "", required: true }) as HTMLInputElement;
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password",
    placeholder: "43 characters from chatctl device add", required: true, value: defaults.token ?? "" }) as HTMLInputElement;
  const url = h("input", { id: "url", name: "url", value: defaults.url ?? "", required: true }) as HTMLInputElement;
  const msg = h("p.form-error", { role: "alert", "data-testid": "signin-error" }, error);
  const submit = (e: Event) => {
    e.preventDefault();
    const [user, device, ...rest] = addr.value.trim().split("/");
    if (!user || !device || rest.length || !ID_RE.test(user) || !DEVICE_RE.test(device)) {
      replace(msg, "The address is user/device, letters, digits and . _ - only.");
      return;
    }
    done({ url: url.value.trim(), user, device, token: token.value.trim() });
  };
  replace(root, h("main.signin",
    h("form.card", { onsubmit: submit, "data-testid": "signin" },
      h("h1", h("span.logo", "◆"), " mosquitto-chat"),
      h("p.muted", "Sign in with one of your devices. An administrator creates it with ",
        h("code", "chatctl device add USER DEVICE"), ", which prints its token."),
      h("label", { for: "addr" }, "Device"), addr,
      h("label", { for: "token" }, "Token"), token,
      h("details", h("summary", "Server"), h("label", { for: "url" }, "MQTT over WebSockets"), url),
      msg,
      h("button.primary", { type: "submit" }, "Sign in"),
      h("p.muted.small", "Messages are end-to-end encrypted on this device."))));
  (addr.value ? token : addr).focus();
}

// ------------------------------------------------------------------ main screen

export class ChatScreen {
  private sidebar = h("aside.sidebar");
  private pane = h("section.pane");
  private header = h("header.conv-header");
  private list = h("div.messages", { "data-testid": "messages", role: "log", "aria-live": "polite" });
  private composer: HTMLFormElement;
  private input: HTMLInputElement;
  private fileInput: HTMLInputElement;
  private media = new Map<string, HTMLElement>(); // attachment -> its <img>/<audio> (kept across renders)
  private dialog: HTMLElement | null = null;
  private shown: string | null = null;
  private unsubscribe: () => void;

  constructor(private root: HTMLElement, private app: ChatApp, private signOut: () => void) {
    this.input = h("input", { "data-testid": "composer", placeholder: "Message", autocomplete: "off",
      "aria-label": "Message", oninput: () => this.app.active && this.app.typingInput(this.app.active) }) as HTMLInputElement;
    // the attach button: a file picker; what is typed meanwhile becomes the caption
    this.fileInput = h("input", { type: "file", "data-testid": "attach-input",
      onchange: () => this.attach() }) as HTMLInputElement;
    this.composer = h("form.composer", { onsubmit: (e: Event) => this.send(e) },
      h("label.attach", { title: "Attach a file", "aria-label": "Attach a file", "data-testid": "attach" },
        icon("clip"), this.fileInput),
      this.input,
      h("button.send", { type: "submit", "aria-label": "Send", "data-testid": "send" }, icon("send"))) as HTMLFormElement;
    replace(root, h("div.shell", this.sidebar, this.pane));
    this.unsubscribe = app.subscribe(() => this.render());
    document.addEventListener("visibilitychange", this.onVisible);
    this.render();
  }

  destroy(): void {
    this.unsubscribe();
    document.removeEventListener("visibilitychange", this.onVisible);
  }

  private onVisible = () => this.app.active && this.app.markRead(this.app.active);

  private send(e: Event): void {
    e.preventDefault();
    const id = this.app.active;
    const text = this.input.value;
    if (!id || !text.trim()) return;
    this.input.value = "";
    void this.app.sendText(id, text);
  }

  private attach(): void {
    const id = this.app.active;
    const file = this.fileInput.files?.[0];
    this.fileInput.value = "";
    if (!id || !file) return;
    const caption = this.input.value.trim();
    this.input.value = "";
    void this.app.sendFile(id, file, caption || undefined);
  }

  render(): void {
    this.renderSidebar();
    this.renderPane();
    this.root.querySelector(".shell")!.classList.toggle("conv-open", !!this.app.active);
  }

  private renderSidebar(): void {
    const app = this.app;
    const convs = Object.values(app.state.convs).sort((a, b) => lastActivity(b) - lastActivity(a));
    const status = app.connState === "online" ? (app.synced ? "online" : "syncing…") : app.connState;
    replace(this.sidebar,
      h("header.me",
        avatar(app.me),
        h("div.who", h("strong", { "data-testid": "me" }, app.addr),
          h("span.status", { "data-testid": "conn", "data-state": app.connState,
            // the key server has this device's keys: others can start sessions with it
            "data-keys": app.keyStatus ? "ready" : "none",
            // Web Push wake-ups for this browser (push.ts)
            "data-push": app.pushState,
            // protocol v2: the capabilities in effect, and whether our PUBACK delivers
            "data-caps": [...app.conn.capsInEffect].sort().join(","),
            "data-puback-delivered": String(app.conn.pubackDelivered) }, h("i.dot"), status)),
        h("button.icon", { title: "Devices", "aria-label": "Devices", "data-testid": "open-devices",
          onclick: () => this.devicesDialog() }, icon("gear")),
        h("button.icon", { title: "Sign out", "aria-label": "Sign out", "data-testid": "signout",
          onclick: () => this.signOut() }, icon("logout"))),
      h("div.actions",
        h("button", { "data-testid": "new-chat", onclick: () => this.newChatDialog() }, icon("plus", 16), "New chat"),
        h("button", { "data-testid": "new-group", onclick: () => this.newGroupDialog() }, icon("users", 16), "New group")),
      app.notice && h("p.notice", { role: "status" }, app.notice,
        h("button.link", { onclick: () => { app.notice = ""; this.render(); } }, "dismiss")),
      h("nav.convs", { "data-testid": "conversations" },
        convs.length === 0 && h("p.empty", "No conversations yet. Start one with New chat."),
        convs.map((c) => this.convItem(c))));
  }

  private convItem(c: Conversation): HTMLElement {
    const last = [...c.messages].reverse().find(Boolean);
    const typers = this.app.typers(c.id);
    const preview = typers.length ? h("em.typing", "typing…")
      : last ? (last.mine ? `You: ${previewText(last)}` : c.kind === "group" && !last.event ? `${userOf(last.from)}: ${previewText(last)}` : previewText(last)) : "";
    const online = c.peer && this.app.presence.get(c.peer)?.online;
    return h("button.conv", { "data-testid": "conv", "data-conv": c.id, "aria-current": c.id === this.app.active ? "true" : null,
      onclick: () => { this.app.open(c.id); this.input.focus(); } },
      h("div.avatar-wrap", avatar(c.title), online && h("i.online-dot", { title: "online" })),
      h("div.conv-main",
        h("div.conv-top", h("span.conv-title", c.kind === "group" ? `# ${c.title}` : c.title),
          h("time", last ? fmtTime(last.ts) : "")),
        h("div.conv-bottom", h("span.preview", preview),
          c.unread > 0 && h("span.badge", { "data-testid": "unread" }, c.unread))));
  }

  private subtitle(c: Conversation): string {
    const typers = this.app.typers(c.id);
    if (typers.length) return c.kind === "dm" ? "typing…" : `${typers.join(", ")} typing…`;
    if (c.kind === "group") return c.left ? "you are not a member" : `${c.members.length} members: ${c.members.join(", ")}`;
    const p = this.app.presence.get(c.peer!);
    if (!p) return "";
    if (p.online) return "online";
    return p.seen ? `last seen ${fmtTime(p.seen)}` : "offline";
  }

  private renderPane(): void {
    const app = this.app;
    const c = app.active ? app.conv(app.active) : undefined;
    if (!c) {
      replace(this.pane, h("div.placeholder", h("span.logo.big", "◆"), h("p", "Pick a conversation, or start a new one."),
        h("p.muted.small.e2e", icon("lock", 14), "End-to-end encrypted. The server only sees ciphertext.")));
      this.shown = null;
      return;
    }
    const typing = app.typers(c.id).length > 0;
    replace(this.header,
      h("button.icon.back", { "aria-label": "Back", onclick: () => app.open(null) }, icon("back", 24)),
      avatar(c.title),
      h("div.who", h("strong", { "data-testid": "conv-title" }, c.kind === "group" ? `# ${c.title}` : c.title,
        c.peer && app.isVerified(c.peer) && h("span.pill.verified", { "data-testid": "verified", title: "You compared the safety number" },
          icon("shield", 12), " verified")),
        h("span.status", { "data-testid": typing ? "typing" : "presence", class: typing ? "status typing" : "status" }, this.subtitle(c))),
      c.peer && h("button.icon", { title: "Verify safety number", "aria-label": "Verify safety number", "data-testid": "verify",
        onclick: () => this.verifyDialog(c.peer!) }, icon("shield")),
      c.kind === "group" && h("button.icon", { title: "Members", "aria-label": "Members", "data-testid": "group-info",
        onclick: () => this.groupDialog(c.id) }, icon("users")));
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
    replace(this.list, c.messages.map((m) => this.bubble(c, m)));
    if (this.shown !== c.id || nearBottom) this.list.scrollTop = this.list.scrollHeight;
    this.input.disabled = !!c.left;
    this.fileInput.disabled = !!c.left;
    this.input.placeholder = c.left ? "You are not a member of this group" : "Message";
    if (this.shown !== c.id) {
      replace(this.pane, this.header, this.list, this.composer);
      this.input.value = "";
      this.shown = c.id;
    }
  }

  private bubble(c: Conversation, m: Message): HTMLElement {
    if (m.notice) return h("div.event.key-notice", { "data-testid": "key-notice", role: "status" }, icon("shield", 12), " ", m.text);
    if (m.event) return h("div.event", { "data-testid": "event" }, m.text);
    const tick = m.mine && m.tick ? TICKS[m.tick] : null;
    return h(`div.msg.${m.mine ? "out" : "in"}`, { "data-testid": "msg", "data-seq": m.seq, "data-tick": m.tick ?? null },
      c.kind === "group" && !m.mine && h("div.sender", userOf(m.from)),
      m.att && this.attachment(m),
      m.error && !m.text ? h("div.text.bad", m.error) : m.text || !m.att ? h("div.text", m.text) : null,
      h("div.meta", m.error && m.text ? h("span.bad", m.error) : null,
        m.tick === "failed" && h("button.link", { "data-testid": "retry", onclick: () => this.app.retry(c.id, m) }, "retry"),
        h("time", fmtTime(m.ts)),
        tick && h(`span.tick.${m.tick}`, { title: tick[1], "data-testid": "tick" }, m.tick === "pending" ? icon("clock", 12) : tick[0])));
  }

  /** An attachment: the image inline, audio with controls, anything else a
   *  download link with name and size; a progress bar while it moves. */
  private attachment(m: Message): HTMLElement {
    const att = m.att!;
    const url = this.app.fileUrl(m);
    const name = att.name ?? (att.type || "file");
    const size = att.plainSize ?? att.size;
    const key = att.id || `cid:${m.cid}`;
    let view: HTMLElement | null = null;
    if (url && att.type.startsWith("image/")) {
      view = this.mediaEl(`${key} img`, () => h("img", { src: url, alt: name, "data-testid": "att-image" }));
    } else if (url && att.type.startsWith("audio/")) {
      view = this.mediaEl(`${key} audio`, () => h("audio", { src: url, controls: true, preload: "metadata", "data-testid": "att-audio" }));
    } else if (url) {
      view = h("a.file", { href: url, download: name, "data-testid": "att-file" }, icon("clip", 16), name,
        h("span.size", `(${fmtSize(size)})`));
    } else if (att.thumb) {
      view = h("img.thumb", { src: `data:image/jpeg;base64,${toStdB64(att.thumb)}`, alt: name, "data-testid": "att-thumb" });
    }
    const moving = att.state === "uploading" || att.state === "downloading";
    return h("div.att", { "data-testid": "att", "data-state": att.state, "data-name": name, "data-type": att.type },
      view ?? h("span.file", icon("clip", 16), name, h("span.size", `(${fmtSize(size)})`)),
      moving && h("progress", { max: "1", value: String(att.progress ?? 0),
        "data-testid": att.state === "uploading" ? "upload-progress" : "download-progress" }),
      att.state === "failed" && h("span.bad", { "data-testid": "att-error" }, att.error ?? "failed"));
  }

  private mediaEl(key: string, make: () => HTMLElement): HTMLElement {
    let el = this.media.get(key);
    if (!el) this.media.set(key, (el = make()));
    return el;
  }

  // ------------------------------------------------------------------ dialogs

  private modal(title: string, ...body: (HTMLElement | false | null)[]): HTMLElement {
    this.closeDialog();
    const d = h("div.backdrop", { onclick: (e: Event) => e.target === d && this.closeDialog() },
      h("div.dialog", { role: "dialog", "aria-label": title, "data-testid": "dialog" },
        h("header", h("h2", title), h("button.icon", { "aria-label": "Close", onclick: () => this.closeDialog() }, icon("close"))),
        ...body));
    this.dialog = d;
    document.body.append(d);
    d.querySelector("input")?.focus();
    return d;
  }

  private closeDialog(): void {
    this.dialog?.remove();
    this.dialog = null;
  }

  private form(fields: HTMLElement[], label: string, act: () => Promise<void>): HTMLElement {
    const err = h("p.form-error", { role: "alert" });
    const btn = h("button.primary", { type: "submit" }, label) as HTMLButtonElement;
    return h("form", {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        btn.disabled = true;
        try {
          await act();
        } catch (x) {
          replace(err, errText(x));
        } finally {
          btn.disabled = false;
        }
      },
    }, ...fields, err, btn);
  }

  private newChatDialog(): void {
    const user = h("input", { name: "user", placeholder: "bob", required: true }) as HTMLInputElement;
    this.modal("New chat", this.form([h("label", "User"), user], "Start chat", async () => {
      const id = await this.app.startDm(user.value.trim());
      this.closeDialog();
      this.app.open(id);
      this.input.focus();
    }));
  }

  private newGroupDialog(): void {
    const gid = h("input", { name: "gid", placeholder: "team", required: true }) as HTMLInputElement;
    const name = h("input", { name: "name", placeholder: "The team" }) as HTMLInputElement;
    const members = h("input", { name: "members", placeholder: "bob, carol" }) as HTMLInputElement;
    this.modal("New group", this.form([h("label", "Group id"), gid, h("label", "Name"), name,
      h("label", "Members (comma separated)"), members], "Create group", async () => {
      const list = members.value.split(/[\s,]+/).filter(Boolean);
      const id = await this.app.createGroup(gid.value.trim(), name.value.trim(), list);
      this.closeDialog();
      this.app.open(id);
    }));
  }

  private groupDialog(id: string): void {
    const app = this.app;
    const c = app.conv(id)!;
    const amAdmin = c.admins.includes(app.me);
    const add = h("input", { name: "add", placeholder: "user to add" }) as HTMLInputElement;
    let shown: HTMLElement | null = null;
    const act = (f: () => Promise<unknown>) => async () => {
      try {
        await f();
        await app.refreshGroup(id);
        if (this.dialog === shown) this.groupDialog(id); // redraw, unless it was closed meanwhile
      } catch (e) {
        app.notice = errText(e);
        this.closeDialog();
        this.render();
      }
    };
    shown = this.modal(`# ${c.title}`,
      h("ul.members", { "data-testid": "members" }, c.members.map((u) => h("li", avatar(u),
        h("span.grow", u === app.me ? `${u} (you)` : u), c.admins.includes(u) && h("span.pill", "admin"),
        amAdmin && u !== app.me && !c.admins.includes(u) && h("button.small", { onclick: act(() => app.makeAdmin(id, u)) }, "make admin"),
        amAdmin && u !== app.me && h("button.small.danger", { onclick: act(() => app.removeMember(id, u)) }, "remove")))),
      amAdmin && this.form([h("label", "Add a member"), add], "Add", act(() => app.addMembers(id, [add.value.trim()]))),
      !c.left && h("button.danger.wide", { onclick: act(() => app.leaveGroup(id)) }, "Leave group"));
    void app.refreshGroup(id).catch(() => {});
  }

  /** The safety number with peer in groups of five and as a QR code (docs/E2EE.md §8). */
  private verifyDialog(peer: string): void {
    const app = this.app;
    const body = h("div.safety", { "data-testid": "safety" }, h("p.muted", "computing…"));
    const shown = this.modal(`Verify ${peer}`, body);
    void app.safety(peer).then((v) => {
      if (this.dialog !== shown) return;
      const qr = qrcode(0, "M");
      qr.addData(v.qr, "Alphanumeric");
      qr.make();
      const pic = h("div.qr", { "data-testid": "safety-qr", "data-payload": v.qr, role: "img",
        "aria-label": "QR code of the safety number" });
      pic.innerHTML = qr.createSvgTag({ cellSize: 3, margin: 2, scalable: true }); // markup made by the library from hex
      const mark = (on: boolean) => async () => {
        await app.setVerified(peer, on);
        this.verifyDialog(peer);
        this.render();
      };
      replace(body,
        h("p.muted.small", `Compare these numbers with ${peer}'s device, in person or on a call you trust. `,
          "They are the same on both sides when nobody is in between; they change when a device of either of you is added or gets new keys."),
        h("p.safety-number", { "data-testid": "safety-number", "data-number": v.number },
          groups(v.number).split(" ").map((g, i) => h("span", i < 11 ? `${g} ` : g))),
        pic,
        v.verified
          ? h("p", h("span.pill.verified", icon("shield", 12), " verified"), " ",
            h("button.small", { "data-testid": "unmark-verified", onclick: mark(false) }, "Clear verification"))
          : h("button.primary.wide", { "data-testid": "mark-verified", onclick: mark(true) }, "Mark as verified"));
    }).catch((e) => {
      if (this.dialog === shown) replace(body, h("p.form-error", { role: "alert" }, errText(e)));
    });
  }

  private devicesDialog(): void {
    const app = this.app;
    const mine = h("ul.devices", { "data-testid": "my-devices" }, h("li.muted", "loading…"));
    const c = app.active ? app.conv(app.active) : undefined;
    const users = c ? c.members.filter((u) => u !== app.me) : [];
    const theirs = h("div");
    const ks = app.keyStatus;
    const fp = h("p.fingerprint", { "data-testid": "fingerprint" }, "…");
    void app.fingerprint().then((f) => replace(fp, f));
    this.modal("Devices",
      h("h3", "Your devices"), mine,
      h("p.muted.small", "This device: ", h("strong", app.addr),
        ks ? ` · ${String(ks.opks)} one-time pre-keys on the key server${ks.low ? " (low)" : ""}` : ""),
      h("p.muted.small", "Identity key fingerprint (compare it with your contacts): "), fp,
      users.length > 0 && h("h3", `In ${c!.kind === "group" ? "# " : ""}${c!.title}`), theirs);
    const list = (user: string, el: HTMLElement) => app.devices(user)
      .then((ds) => replace(el, ds.map((d) => h("li", h("span.dev", "▭"), `${user}/${d}`,
        `${user}/${d}` === app.addr && h("span.pill", "this device")))))
      .catch((e) => replace(el, h("li.bad", errText(e))));
    void list(app.me, mine);
    for (const u of users) {
      const el = h("ul.devices", h("li.muted", "loading…"));
      theirs.append(el);
      void list(u, el);
    }
  }
}
