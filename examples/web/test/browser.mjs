// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Browser scenarios for the web client, in Debian's Chromium driven by
// playwright-core. Run by tests/integration/test_web.py, which starts the
// broker (MQTT over WebSockets, the page from http_dir), the key server and
// the devices, and passes them in CHAT_WEB (JSON):
//   { url, users: { name: { addr, token } }, shots: dir|null,
//     client: { argv: [chat-client and its connection options] } (interop),
//     chatctl: [chatctl and its options] (removal, safety),
//     clients: { name: { argv, token_file } } (safety: chat-client devices by name),
//     files: { name: { path, sha256 } } (attachment) }
// Usage: node test/browser.mjs SCENARIO
//        (pair | reload | interop | removal | webpush | safety | attachment | lied | impersonated)
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.env.CHAT_WEB ?? "{}");
const scenario = process.argv[2];
const WAIT = 20000;
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

// launch() gives every browser a fresh temporary --user-data-dir
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_FLAGS });
const pageErrors = [];

async function person(name, viewport = { width: 1100, height: 720 }, query = "") {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && log(`${name} console:`, m.text()));
  page.setDefaultTimeout(WAIT);
  await page.goto(cfg.url + query);
  return { name, ctx, page, user: cfg.users[name].addr.split("/")[0] };
}

async function signIn(p) {
  const { addr, token } = cfg.users[p.name];
  await p.page.fill("#addr", addr);
  await p.page.fill("#token", token);
  await p.page.click("form[data-testid=signin] button[type=submit]");
  await online(p);
  await p.page.waitForSelector("[data-testid=conn][data-keys=ready]"); // its keys are on the key server
  log(`${p.name} signed in as ${addr}`);
}

const online = (p) => p.page.waitForSelector("[data-testid=conn][data-state=online]");

async function newChat(p, user) {
  await p.page.click("[data-testid=new-chat]");
  await p.page.fill("[data-testid=dialog] input[name=user]", user);
  await p.page.click("[data-testid=dialog] button[type=submit]");
  await p.page.waitForSelector("[data-testid=dialog]", { state: "detached" });
}

async function send(p, text) {
  await p.page.fill("[data-testid=composer]", text);
  await p.page.press("[data-testid=composer]", "Enter");
}

/** The message bubble with this text (incoming or outgoing) in the open conversation. */
const bubble = (p, text, dir = "") =>
  p.page.locator(`[data-testid=msg]${dir ? `.${dir}` : ""}`, { has: p.page.locator(".text", { hasText: text }) });

async function waitTick(p, text, tick) {
  await bubble(p, text, "out").and(p.page.locator(`[data-tick=${tick}]`)).waitFor();
  log(`${p.name} sees ${tick} on "${text}"`);
}

async function openConv(p, conv) {
  await p.page.click(`[data-testid=conv][data-conv="${conv}"]`);
}

const conv = (a, b) => (a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`);

async function shot(p, name) {
  if (!cfg.shots) return;
  mkdirSync(cfg.shots, { recursive: true });
  await p.page.screenshot({ path: path.join(cfg.shots, `${name}.png`) });
  log(`screenshot ${name}.png`);
}

// ---------------------------------------------------------------- scenarios

async function pair() {
  const alice = await person("alice");
  const bob = await person("bob");
  await shot(alice, "web-signin");
  // a wrong token is refused with a message, and the form stays
  await alice.page.fill("#addr", cfg.users.alice.addr);
  await alice.page.fill("#token", "A".repeat(43));
  await alice.page.click("form[data-testid=signin] button[type=submit]");
  await alice.page.locator("[data-testid=signin-error]", { hasText: "refused" }).waitFor();
  log("a wrong token is refused");
  await signIn(alice);
  await signIn(bob);
  const dm = conv(alice.user, bob.user);
  // protocol v2: the server took the page's capabilities (docs/PROTOCOL.md)
  for (const p of [alice, bob]) await p.page.waitForSelector("[data-testid=conn][data-caps='batch,rcpts,sents']");
  const pubackDelivered = await alice.page.getAttribute("[data-testid=conn]", "data-puback-delivered");
  log(`protocol v2: sents, rcpts, batch; delivered by PUBACK: ${pubackDelivered}`);

  // alice starts the chat; bob sees it arrive unread, opens it, alice sees "read"
  await newChat(alice, bob.user);
  await send(alice, "hello bob");
  await waitTick(alice, "hello bob", "delivered");
  const item = bob.page.locator(`[data-testid=conv][data-conv="${dm}"]`);
  await item.locator("[data-testid=unread]", { hasText: "1" }).waitFor();
  log("bob has 1 unread");
  await shot(bob, "web-unread");
  await openConv(bob, dm);
  await bubble(bob, "hello bob", "in").waitFor();
  await waitTick(alice, "hello bob", "read");
  assert.equal(await item.locator("[data-testid=unread]").count(), 0, "bob's unread count cleared");

  // bob answers; both have the conversation open, so it is read at once
  await send(bob, "hi alice, got it");
  await bubble(alice, "hi alice, got it", "in").waitFor();
  await waitTick(bob, "hi alice, got it", "read");
  await send(alice, "are we still on for the release review on friday?");
  await send(bob, "yes! 10:00, I'll bring the benchmark numbers");
  await bubble(alice, "I'll bring the benchmark numbers", "in").waitFor();
  await waitTick(alice, "are we still on", "read");

  // presence and typing
  await alice.page.locator("[data-testid=presence]", { hasText: "online" }).waitFor();
  log("alice sees bob online");
  await bob.page.locator("[data-testid=presence]", { hasText: "online" }).waitFor();
  await bob.page.type("[data-testid=composer]", "see you there", { delay: 20 });
  await alice.page.locator("[data-testid=typing]").waitFor();
  log("alice sees bob typing");
  await shot(alice, "web-chat");
  await send(bob, "see you there");
  await bubble(alice, "see you there", "in").waitFor();
  await alice.page.locator("[data-testid=typing]").waitFor({ state: "detached" });

  // a group: alice creates it with bob; messages go both ways under sender keys
  const gid = `team-${Date.now() % 100000}`;
  await alice.page.click("[data-testid=new-group]");
  await alice.page.fill("[data-testid=dialog] input[name=gid]", gid);
  await alice.page.fill("[data-testid=dialog] input[name=name]", "The team");
  await alice.page.fill("[data-testid=dialog] input[name=members]", bob.user);
  await alice.page.click("[data-testid=dialog] button[type=submit]");
  await alice.page.locator("[data-testid=conv-title]", { hasText: "The team" }).waitFor();
  await send(alice, "welcome to the team");
  await waitTick(alice, "welcome to the team", "delivered");
  await openConv(bob, `g:${gid}`);
  await bubble(bob, "welcome to the team", "in").waitFor();
  await waitTick(alice, "welcome to the team", "read");
  await send(bob, "thanks, glad to be here");
  await bubble(alice, "thanks, glad to be here", "in").waitFor();
  await alice.page.click("[data-testid=group-info]");
  await alice.page.locator("[data-testid=members] li", { hasText: bob.user }).waitFor();
  await shot(alice, "web-group");
  // membership: alice promotes bob, then removes him; bob sees both and can no longer write
  await alice.page.locator("[data-testid=members] li", { hasText: bob.user }).getByText("make admin").click();
  await bob.page.locator("[data-testid=event]", { hasText: "you are now an admin" }).waitFor();
  // the dialog stays open, redrawn: bob now carries the admin mark
  await alice.page.locator("[data-testid=members] li", { hasText: bob.user }).locator(".pill", { hasText: "admin" }).waitFor();
  await alice.page.locator("[data-testid=members] li", { hasText: bob.user }).getByText("remove").click();
  await bob.page.locator("[data-testid=event]", { hasText: `${alice.user} removed you` }).waitFor();
  await bob.page.locator("[data-testid=composer][disabled]").waitFor();
  log("bob was promoted, then removed, and sees it");
  // alice's dialog is redrawn once the change is through: then close it
  await alice.page.locator("[data-testid=members] li", { hasText: bob.user }).waitFor({ state: "detached" });
  await alice.page.click("[data-testid=dialog] button[aria-label=Close]");

  // devices
  await alice.page.click("[data-testid=open-devices]");
  await alice.page.locator("[data-testid=my-devices] li", { hasText: cfg.users.alice.addr }).waitFor();
  await alice.page.locator("[data-testid=fingerprint]", { hasText: /^[0-9a-f]{4}( [0-9a-f]{4}){4}$/ }).waitFor();
  await shot(alice, "web-devices");
  await alice.page.click("[data-testid=dialog] button[aria-label=Close]");

  // bob goes away: alice sees "last seen"
  await openConv(alice, dm);
  await bob.ctx.close();
  await alice.page.locator("[data-testid=presence]", { hasText: "last seen" }).waitFor();
  log("alice sees bob's last seen");

  // the narrow layout shows one pane at a time
  await alice.page.setViewportSize({ width: 390, height: 760 });
  assert.equal(await alice.page.locator(".sidebar").isVisible(), false, "narrow: the list hides behind the conversation");
  await shot(alice, "web-phone");
  await alice.page.click("button.back");
  await alice.page.locator(".sidebar").waitFor();
}

async function reload() {
  const alice = await person("alice");
  // bob's page keeps to protocol v1 (?protocol=1): the v1 forms beside alice's v2
  const bob = await person("bob", undefined, "?protocol=1");
  await signIn(alice);
  const dm = conv(alice.user, bob.user);

  // bob's device has no keys until it first signs in: the send fails, visibly,
  // and goes through on retry once it has
  await newChat(alice, bob.user);
  await send(alice, "knock knock");
  await bubble(alice, "knock knock", "out").and(alice.page.locator("[data-tick=failed]")).waitFor();
  await bubble(alice, "knock knock", "out").locator(".bad", { hasText: "no keys" }).waitFor();
  log("alice's send to a device without keys failed");
  await signIn(bob);
  await alice.page.waitForSelector("[data-testid=conn][data-caps='batch,rcpts,sents']");
  assert.equal(await bob.page.getAttribute("[data-testid=conn]", "data-caps"), "", "bob's page declared nothing");
  await alice.page.click("[data-testid=retry]");
  await waitTick(alice, "knock knock", "delivered");

  await newChat(bob, alice.user);
  await send(bob, "before the reload");
  await openConv(alice, dm);
  await bubble(alice, "before the reload", "in").waitFor();
  await send(alice, "me too");
  await waitTick(alice, "me too", "read");

  await alice.page.reload();
  await online(alice); // signed in again without the form
  assert.equal(await alice.page.locator("form[data-testid=signin]").count(), 0);
  log("alice resumed after the reload");
  await openConv(alice, dm);
  await bubble(alice, "before the reload", "in").waitFor();
  await waitTick(alice, "me too", "read");
  // the sessions survived too: new messages decrypt both ways
  await send(bob, "after the reload");
  await bubble(alice, "after the reload", "in").waitFor();
  await send(alice, "still here");
  await bubble(bob, "still here", "in").waitFor();
  assert.equal(await alice.page.locator("[data-testid=msg] .bad").count(), 0, "nothing failed to decrypt");

  // a message that arrives while the page is closed is there when it comes back
  await alice.page.close();
  await send(bob, "while you were away");
  const again = await alice.ctx.newPage();
  again.setDefaultTimeout(WAIT);
  await again.goto(cfg.url);
  await again.waitForSelector("[data-testid=conn][data-state=online]");
  await again.click(`[data-testid=conv][data-conv="${dm}"]`);
  await again.locator("[data-testid=msg].in .text", { hasText: "while you were away" }).waitFor();
  log("alice got the message sent while her page was closed");

  // the network goes away: the page says so at once, keeps what is written
  // as pending, and sends it when the network is back
  await alice.ctx.setOffline(true);
  await again.waitForSelector("[data-testid=conn][data-state=offline]");
  await again.fill("[data-testid=composer]", "written while offline");
  await again.press("[data-testid=composer]", "Enter");
  await again.locator("[data-testid=msg][data-tick=pending] .text", { hasText: "written while offline" }).waitFor();
  await alice.ctx.setOffline(false);
  await again.waitForSelector("[data-testid=conn][data-state=online]");
  await bubble(bob, "written while offline", "in").waitFor();
  // bob has the conversation open: read at once
  await again.locator("[data-testid=msg][data-tick=read] .text", { hasText: "written while offline" }).waitFor();
  log("a message written offline went out when the network came back");
}

/** Runs chat-client (docs/E2EE.md's C client) with extra arguments; its stdout. */
function chatClient(...args) {
  return new Promise((resolve, reject) => {
    const [bin, ...base] = cfg.client.argv;
    execFile(bin, [...base, ...args], { timeout: 60000 }, (err, stdout, stderr) => {
      log(`chat-client ${args.join(" ")}:`, stdout.trim(), stderr.trim());
      if (err) reject(new Error(`chat-client ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** chat-client --recv until a line with this text arrives (it prints conv TAB seq TAB from TAB text). */
async function clientReceives(text, from, conv) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const out = await chatClient("--recv", "--timeout", "2");
    const line = out.split("\n").find((l) => l.split("\t")[3] === text);
    if (line) {
      const [c, seq, f] = line.split("\t");
      assert.equal(c, conv);
      assert.equal(f, from);
      assert.ok(Number(seq) > 0);
      return;
    }
    if (Date.now() > deadline) throw new Error(`chat-client never printed "${text}"`);
  }
}

async function interop() {
  const alice = await person("alice");
  await signIn(alice); // uploads alice's keys
  const carol = cfg.users.carol.addr;
  const carolUser = carol.split("/")[0];
  const dm = conv(alice.user, carolUser);

  // terminal -> browser: chat-client registers its keys, starts a session from alice's bundle
  await chatClient("--send", alice.user, "hello from the terminal");
  await alice.page.locator(`[data-testid=conv][data-conv="${dm}"] [data-testid=unread]`, { hasText: "1" }).waitFor();
  await openConv(alice, dm);
  await bubble(alice, "hello from the terminal", "in").waitFor();
  log("alice read chat-client's message");

  // browser -> terminal, on the session chat-client started; its delivered receipt gives ✓✓
  await send(alice, "hello from the browser ✓");
  await waitTick(alice, "hello from the browser", "sent");
  await clientReceives("hello from the browser ✓", cfg.users.alice.addr, dm);
  await waitTick(alice, "hello from the browser", "delivered");

  // a group with sender keys both ways
  const gid = `mixed-${Date.now() % 100000}`;
  await alice.page.click("[data-testid=new-group]");
  await alice.page.fill("[data-testid=dialog] input[name=gid]", gid);
  await alice.page.fill("[data-testid=dialog] input[name=members]", carolUser);
  await alice.page.click("[data-testid=dialog] button[type=submit]");
  await alice.page.locator("[data-testid=conv-title]", { hasText: gid }).waitFor();
  await send(alice, "group hello from the browser");
  await waitTick(alice, "group hello from the browser", "sent");
  await clientReceives("group hello from the browser", cfg.users.alice.addr, `g:${gid}`);
  await chatClient("--group", gid, "group hello from the terminal");
  await bubble(alice, "group hello from the terminal", "in").waitFor();
  log("alice read chat-client's group message");
  assert.equal(await alice.page.locator("[data-testid=msg] .bad").count(), 0, "nothing failed to decrypt");
}

/** Runs chatctl (the admin) with arguments. */
function chatctl(...args) {
  return new Promise((resolve, reject) => {
    const [bin, ...base] = cfg.chatctl;
    execFile(bin, [...base, ...args], { timeout: 20000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`chatctl ${args.join(" ")}: ${stderr}`)) : resolve(stdout));
  });
}

async function removal() {
  const alice = await person("alice");
  const phone = await person("bob");
  const tab = await person("bobtab");
  await signIn(alice);
  await signIn(phone);
  await signIn(tab);
  const dm = conv(alice.user, phone.user);
  await newChat(alice, phone.user);
  await send(alice, "to both of your devices");
  for (const p of [phone, tab]) {
    await openConv(p, dm);
    await bubble(p, "to both of your devices", "in").waitFor();
  }
  // the admin removes bob's tab: it is signed out with a message, and
  // alice's next message reaches the device bob has left
  const [user, device] = cfg.users.bobtab.addr.split("/");
  await chatctl("device", "remove", user, device);
  await tab.page.locator("[data-testid=signin-error]", { hasText: "refused" }).waitFor();
  log("the removed device is back at the sign-in form");
  await send(alice, "just your phone now");
  await bubble(phone, "just your phone now", "in").waitFor();
  await waitTick(alice, "just your phone now", "read");
  assert.equal(await alice.page.locator("[data-testid=msg][data-tick=failed]").count(), 0, "no send failed");
}

/** Runs chat-client device `name` of cfg.clients; resolves { out, err } (rejects on failure). */
function cli(name, ...args) {
  return new Promise((resolve, reject) => {
    const [bin, ...base] = cfg.clients[name].argv;
    execFile(bin, [...base, ...args], { timeout: 60000 }, (e, out, err) => {
      log(`${name}: chat-client ${args.join(" ")}:`, out.trim(), err.trim());
      if (e) reject(new Error(`chat-client ${name} ${args.join(" ")} failed: ${e.message}\n${err}`));
      else resolve({ out, err });
    });
  });
}

/** The 60 digits and QR payload that chat-client --safety-number prints. */
async function cliSafety(name, peer) {
  const { out } = await cli(name, "--safety-number", peer);
  const rows = [...out.matchAll(/^ {2}(\d{5}) (\d{5}) (\d{5}) (\d{5})$/gm)].map((m) => m.slice(1).join(""));
  assert.equal(rows.length, 3, out);
  return { number: rows.join(""), qr: /^qr: ([0-9A-F]{130})$/m.exec(out)[1], verified: out.includes(`${peer}: verified`) };
}

/** The verify dialog of the open 1:1 conversation: { number, qr } as the page shows them. */
async function pageSafety(p) {
  await p.page.click("[data-testid=verify]");
  const el = p.page.locator("[data-testid=safety-number]");
  await el.waitFor();
  const number = await el.getAttribute("data-number");
  assert.equal((await el.textContent()).trim(), number.replace(/(\d{5})(?=\d)/g, "$1 "), "groups of five");
  const qr = await p.page.locator("[data-testid=safety-qr]").getAttribute("data-payload");
  assert.ok(await p.page.locator("[data-testid=safety-qr] svg").count(), "a QR code is drawn");
  return { number, qr };
}

// Safety numbers across both reference clients (docs/E2EE.md §8): alice
// has a browser and a chat-client device, bob a chat-client device. All
// three show the same number; alice verifies bob on both of her devices.
// An admin removes bob's device and it comes back with new keys: both of
// alice's devices show the notices and lose the verified mark, and the new
// number agrees everywhere.
async function safety() {
  const alice = await person("alice");
  await signIn(alice);
  const bob = cfg.users.bob.addr.split("/")[0];
  const dm = conv(alice.user, bob);
  await cli("alicecli", "--recv", "--timeout", "0"); // registers
  await cli("bob", "--send", alice.user, "hello alice, verify me");
  await alice.page.locator(`[data-testid=conv][data-conv="${dm}"]`).waitFor();
  await openConv(alice, dm);
  await bubble(alice, "hello alice, verify me", "in").waitFor();

  const web = await pageSafety(alice);
  const mine = await cliSafety("alicecli", bob);
  const his = await cliSafety("bob", alice.user);
  assert.deepEqual({ number: mine.number, qr: mine.qr }, web, "alice's chat-client and browser agree");
  assert.deepEqual({ number: his.number, qr: his.qr }, web, "bob's chat-client agrees");
  log(`the same safety number on three devices: ${web.number}`);
  await shot(alice, "web-safety");
  await alice.page.click("[data-testid=mark-verified]");
  await alice.page.locator("[data-testid=unmark-verified]").waitFor();
  await alice.page.click("[data-testid=dialog] [aria-label=Close]");
  await alice.page.locator("[data-testid=verified]").waitFor();
  await cli("alicecli", "--verify", bob, "--code", web.number);
  assert.ok((await cliSafety("alicecli", bob)).verified);

  // bob's device is removed and comes back with new keys
  const [user, device] = cfg.users.bob.addr.split("/");
  await chatctl("device", "remove", user, device);
  const token = (await chatctl("device", "add", user, device)).trim();
  writeFileSync(cfg.clients.bobnew.token_file, `${token}\n`);
  await cli("bobnew", "--send", alice.user, "new keys, same phone");
  await bubble(alice, "new keys, same phone", "in").waitFor();
  const notices = alice.page.locator("[data-testid=key-notice]");
  await notices.filter({ hasText: `${bob}'s safety number changed: device ${bob}/${device} removed; no longer verified` }).waitFor();
  await notices.filter({ hasText: `${bob}'s safety number changed: device ${bob}/${device} added` }).waitFor();
  assert.equal(await alice.page.locator("[data-testid=verified]").count(), 0, "the verified mark is gone");
  log("the page shows the notices and bob is unverified");
  await shot(alice, "web-key-notice");
  const { out, err } = await cli("alicecli", "--recv", "--timeout", "1");
  assert.ok(out.includes("new keys, same phone"), out);
  assert.ok(err.includes(`⚠ ${dm}: ${bob}'s safety number changed: device ${bob}/${device} removed; no longer verified`), err);
  assert.ok(err.includes(`⚠ ${dm}: ${bob}'s safety number changed: device ${bob}/${device} added`), err);
  const after = await cliSafety("alicecli", bob);
  assert.equal(after.verified, false);
  const web2 = await pageSafety(alice);
  assert.notEqual(web2.number, web.number);
  assert.equal(await alice.page.locator("[data-testid=mark-verified]").count(), 1);
  assert.deepEqual({ number: after.number, qr: after.qr }, web2);
  const bobs = await cliSafety("bobnew", alice.user);
  assert.equal(bobs.number, web2.number);
  log(`the new number agrees on all devices: ${web2.number}`);
  await alice.page.click("[data-testid=dialog] [aria-label=Close]");

  // bob adds a tablet, which writes first: one notice, and alice's answer
  // (with the device list she had cached before) reaches it without a
  // spurious "removed"
  const tabToken = (await chatctl("device", "add", user, "tab")).trim();
  writeFileSync(cfg.clients.bobtab.token_file, `${tabToken}\n`);
  await cli("bobtab", "--send", alice.user, "hello from bob's tablet");
  await bubble(alice, "hello from bob's tablet", "in").waitFor();
  await notices.filter({ hasText: `device ${bob}/tab added` }).waitFor();
  await send(alice, "hello tablet");
  await waitTick(alice, "hello tablet", "sent");
  const got = await cli("bobtab", "--recv", "--timeout", "1");
  assert.ok(got.out.includes("hello tablet"), got.out);
  await waitTick(alice, "hello tablet", "delivered");
  assert.equal(await notices.filter({ hasText: `device ${bob}/tab removed` }).count(), 0, "no spurious notice");
  assert.equal(await notices.count(), 3, "removed, added (phone), added (tab)");
}

// Web Push: the page (served with JavaScript MIME types, and the
// deployment's vapid-public-key.txt) registers its service worker after
// sign-in; a push message delivered to the worker (as the browser's push
// service would, here through the DevTools protocol) shows a notification
// with a generic text. Subscribing at the browser's push service needs the
// internet, which tests have not: the page's push state is then "failed",
// and the worker is tested directly.
async function webpush() {
  const origin = new URL(cfg.url).origin;
  const ctx = await browser.newContext();
  await ctx.grantPermissions(["notifications"], { origin });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => pageErrors.push(`alice: ${e.message}`));
  page.setDefaultTimeout(WAIT);
  const cdp = await ctx.newCDPSession(page);
  const regs = new Map();
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => {
    for (const r of e.registrations) regs.set(r.registrationId, r);
  });
  await cdp.send("ServiceWorker.enable");
  await page.goto(cfg.url);
  const alice = { name: "alice", ctx, page };
  await signIn(alice);
  await page.waitForSelector("[data-testid=conn]:is([data-push=subscribed], [data-push=failed])");
  log("push state:", await page.getAttribute("[data-testid=conn]", "data-push"));
  // ready resolves while the worker may still be "activating", and a push sent
  // to a worker that is not yet "activated" can be dropped (seen once in CI
  // under load): wait for "activated", as a push service's first wake-up would
  // find it long after sign-in
  const script = await page.evaluate(async () => {
    const w = (await navigator.serviceWorker.ready).active;
    if (w.state !== "activated")
      await new Promise((ok) => w.addEventListener("statechange", () => w.state === "activated" && ok()));
    return w.scriptURL;
  });
  assert.equal(script, `${origin}/sw.js`);
  log("service worker active:", script);
  const current = () =>
    [...regs.values()].filter((r) => r.scopeURL.startsWith(origin) && !r.isDeleted);
  assert.ok(current().length, `a registration for ${origin}: ${JSON.stringify([...regs.values()])}`);
  const shown = async () =>
    page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
      .map((n) => ({ title: n.title, body: n.body, tag: n.tag })));
  // DevTools' deliverPushMessage is fire-and-forget: a push it hands to a
  // worker the browser is still starting (or to a registration it has just
  // replaced) can vanish without an error — seen twice under load, each time
  // with the worker "activated". A push service redelivers what was not
  // acknowledged; the test does too: up to 5 deliveries, 2 s apart, each
  // logged, to the newest live registration. One tag, so a redelivery that
  // also arrives replaces the first and the assertion below is unchanged.
  let list = [];
  for (let attempt = 1; attempt <= 5 && list.length === 0; attempt++) {
    const regsNow = current();
    const reg = regsNow[regsNow.length - 1];
    if (attempt > 1) log(`push not shown yet: delivering again (attempt ${attempt}, registrations ${JSON.stringify(regsNow)})`);
    await cdp.send("ServiceWorker.deliverPushMessage", {
      origin, registrationId: reg.registrationId, data: JSON.stringify({ pending: 3 }),
    });
    for (let i = 0; i < 20 && list.length === 0; i++) {
      list = await shown();
      if (list.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
  }
  const reg = current()[current().length - 1];
  assert.deepEqual(list, [{ title: "mosquitto-chat", body: "3 new messages", tag: "chat-wake" }]);
  log("notification shown:", JSON.stringify(list[0]));
  // a second wake-up replaces it (one tag)
  await cdp.send("ServiceWorker.deliverPushMessage", {
    origin, registrationId: reg.registrationId, data: JSON.stringify({ pending: 1 }),
  });
  for (let i = 0; i < 100; i++) {
    list = await shown();
    if (list.length === 1 && list[0].body === "New messages") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(list.map((n) => n.body), ["New messages"]);
}

// ---------------------------------------------------------------- attachments

/** The attachment bubble of a file name in the open conversation. */
const att = (p, name, dir = "") =>
  p.page.locator(`[data-testid=msg]${dir ? `.${dir}` : ""} [data-testid=att][data-name="${name}"]`);

/** Picks a file with the attach button (a caption: typed first). */
async function attach(p, file, caption = "") {
  if (caption) await p.page.fill("[data-testid=composer]", caption);
  await p.page.setInputFiles("[data-testid=attach-input]", cfg.files[file].path);
}

/** SHA-256 (hex) of what an attachment's object URL holds, read in the page. */
async function pageSha(p, selector, attr) {
  return p.page.locator(selector).first().evaluate(async (el, a) => {
    const buf = await (await fetch(el.getAttribute(a))).arrayBuffer();
    const h = await crypto.subtle.digest("SHA-256", buf);
    return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
  }, attr);
}

/** chat-client --recv until it saves a file with this name; its sha256. */
async function clientSaves(name, from, conv) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const out = await chatClient("--recv", "--timeout", "1");
    const line = out.split("\n").find((l) => l.split("\t")[3]?.startsWith("file:") && l.split("\t")[3].endsWith(`/${name}`));
    if (line) {
      const [c, , f, file] = line.split("\t");
      assert.equal(c, conv);
      assert.equal(f, from);
      return createHash("sha256").update(readFileSync(file.slice(5))).digest("hex");
    }
    if (Date.now() > deadline) throw new Error(`chat-client never saved ${name}`);
  }
}

async function attachment() {
  const alice = await person("alice");
  const bob = await person("bob");
  await signIn(alice);
  await signIn(bob);
  // bob's first download breaks off after 1 KB (the test asks chat-media for
  // that much and hands it to the page as a whole answer that ends early):
  // the page must resume with Range: bytes=1024-, which chat-media answers 206
  const ranges = [];
  let cut = false;
  await bob.page.route(/\/v1\/blob\//, async (route) => {
    const req = route.request();
    if (req.method() !== "GET") return route.continue();
    if (!cut) {
      cut = true;
      const part = await route.fetch({ headers: { ...req.headers(), range: "bytes=0-1023" } });
      assert.equal(part.status(), 206);
      const headers = { ...part.headers() };
      delete headers["content-range"];
      delete headers["content-length"];
      return route.fulfill({ status: 200, headers, body: await part.body() });
    }
    const resp = await route.fetch();
    ranges.push([req.headers().range ?? null, resp.status(), resp.headers()["content-range"] ?? null]);
    return route.fulfill({ response: resp });
  });
  const carol = cfg.users.carol.addr;
  const carolUser = carol.split("/")[0];
  const dm = conv(alice.user, bob.user);
  // the progress bar of an upload is seen (it may be short: watch for it)
  await alice.page.evaluate(() => {
    window.__sawUpload = false;
    new MutationObserver(() => {
      if (document.querySelector("[data-testid=upload-progress]")) window.__sawUpload = true;
    }).observe(document.body, { subtree: true, childList: true });
  });

  // 1:1, page to page: a picture (with a caption), a voice note, a 5 MB file
  await newChat(alice, bob.user);
  await attach(alice, "photo.png", "the view from here");
  await att(alice, "photo.png", "out").and(alice.page.locator("[data-state=ready]")).waitFor();
  await attach(alice, "voice.wav");
  await attach(alice, "report.bin");
  await att(alice, "report.bin", "out").and(alice.page.locator("[data-state=ready]")).waitFor({ timeout: 60000 });
  assert.equal(await alice.page.evaluate(() => window.__sawUpload), true, "an upload showed its progress");
  await waitTick(alice, "the view from here", "delivered");
  log("alice sent a picture, a voice note and 5 MB");
  await openConv(bob, dm);
  const img = bob.page.locator("[data-testid=msg].in [data-testid=att-image]");
  await img.waitFor();
  await bubble(bob, "the view from here", "in").waitFor();
  assert.ok(await img.evaluate((el) => el.complete && el.naturalWidth > 0), "the picture is shown");
  log("bob sees the picture");
  assert.equal(await pageSha(bob, "[data-testid=msg].in [data-testid=att-image]", "src"), cfg.files["photo.png"].sha256);
  const resumed = ranges.find(([r]) => r === "bytes=1024-");
  assert.ok(resumed, `a resumed download: ${JSON.stringify(ranges)}`);
  assert.equal(resumed[1], 206);
  assert.match(resumed[2], /^bytes 1024-\d+\/\d+$/);
  log("bob's first download broke off after 1 KB and resumed:", JSON.stringify(resumed));
  const audio = bob.page.locator("[data-testid=msg].in [data-testid=att-audio]");
  await audio.waitFor();
  log("bob has the voice note");
  const secs = await audio.evaluate((el) => el.readyState >= 1 ? el.duration
    : new Promise((ok) => {
      el.addEventListener("loadedmetadata", () => ok(el.duration));
      el.addEventListener("error", () => ok(`error ${el.error?.code}`));
      setTimeout(() => ok(`no metadata (readyState ${el.readyState}, src ${el.src})`), 10000);
    }));
  assert.ok(Math.abs(secs - 1.5) < 0.1, `the voice note plays 1.5 s (${secs})`);
  assert.equal(await pageSha(bob, "[data-testid=msg].in [data-testid=att-audio]", "src"), cfg.files["voice.wav"].sha256);
  const link = bob.page.locator("[data-testid=msg].in [data-testid=att-file]", { hasText: "report.bin" });
  await link.waitFor({ timeout: 60000 });
  assert.match(await link.innerText(), /report\.bin\s*\(5\.0 MB\)/);
  assert.equal(await link.getAttribute("download"), "report.bin");
  assert.equal(await pageSha(bob, "[data-testid=msg].in [data-testid=att-file]", "href"), cfg.files["report.bin"].sha256);
  // the pointer carried a thumbnail made on alice's device (a JPEG of at most 8 KB)
  const thumb = await bob.page.evaluate((addr) => {
    const a = JSON.parse(localStorage.getItem(`mchat.account.${addr}`));
    const m = Object.values(a.convs).flatMap((c) => c.messages).find((x) => x.att?.name === "photo.png");
    return m.att.thumb;
  }, cfg.users.bob.addr);
  const jpeg = Buffer.from(thumb, "base64url");
  assert.ok(jpeg.length > 100 && jpeg.length <= 8192 && jpeg[0] === 0xff && jpeg[1] === 0xd8, "a JPEG thumbnail");
  log("bob sees the picture, plays the voice note, has the 5 MB file: byte-identical");
  await shot(bob, "web-attachments");

  // a group with a chat-client member: the voice note reaches both clients
  const gid = `media-${Date.now() % 100000}`;
  await alice.page.click("[data-testid=new-group]");
  await alice.page.fill("[data-testid=dialog] input[name=gid]", gid);
  await alice.page.fill("[data-testid=dialog] input[name=members]", `${bob.user}, ${carolUser}`);
  await alice.page.click("[data-testid=dialog] button[type=submit]");
  await alice.page.locator("[data-testid=conv-title]", { hasText: gid }).waitFor();
  await chatClient("--recv", "--timeout", "0"); // carol's keys are on the key server
  await attach(alice, "voice.wav", "for the team");
  await att(alice, "voice.wav", "out").and(alice.page.locator("[data-state=ready]")).waitFor();
  assert.equal(await clientSaves("voice.wav", cfg.users.alice.addr, `g:${gid}`), cfg.files["voice.wav"].sha256);
  await openConv(bob, `g:${gid}`);
  await bob.page.locator("[data-testid=msg].in [data-testid=att-audio]").waitFor();
  assert.equal(await pageSha(bob, "[data-testid=msg].in [data-testid=att-audio]", "src"), cfg.files["voice.wav"].sha256);
  log("the group's voice note reached bob's page and carol's chat-client");

  // chat-client to the page: 5 MB, 1:1
  await chatClient("--send-file", alice.user, cfg.files["report.bin"].path, "--caption", "from the terminal");
  await openConv(alice, conv(alice.user, carolUser));
  const got = alice.page.locator("[data-testid=msg].in [data-testid=att-file]", { hasText: "report.bin" });
  await got.waitFor({ timeout: 60000 });
  assert.equal(await pageSha(alice, "[data-testid=msg].in [data-testid=att-file]", "href"), cfg.files["report.bin"].sha256);
  await bubble(alice, "from the terminal", "in").waitFor();
  log("alice's page has chat-client's 5 MB file");

  // after a reload the files are still shown (kept in IndexedDB; the server deleted them)
  await bob.page.reload();
  await online(bob);
  await openConv(bob, dm);
  await img.waitFor();
  assert.equal(await pageSha(bob, "[data-testid=msg].in [data-testid=att-image]", "src"), cfg.files["photo.png"].sha256);
  assert.equal(await alice.page.locator("[data-testid=att-error]").count(), 0, "no attachment failed");
  assert.equal(await bob.page.locator("[data-testid=att-error]").count(), 0, "no attachment failed");
}

/** The key server lies to alice (chat-keyserver-lying, CHAT_KS_LIE=swap:alice's
 *  address): carol's bundle comes with a key that is not in the key directory
 *  log. The page must refuse it: the send fails with the reason, nothing goes out. */
async function lied() {
  const alice = await person("alice");
  await signIn(alice);
  const carolUser = cfg.users.carol.addr.split("/")[0];
  await newChat(alice, carolUser);
  await send(alice, "must not reach an impostor");
  const b = bubble(alice, "must not reach an impostor", "out");
  await b.and(alice.page.locator("[data-tick=failed]")).waitFor();
  const why = await b.locator(".meta .bad").textContent();
  assert.match(why ?? "", /key directory check failed: the identity key served for .* is not the one in the key server's log/);
  log(`alice refused carol's bundle: ${why}`);
}

/** alice signs in; the test then restarts the key server as one that logs
 *  an attacker's key in alice's name (CHAT_KS_LIE=logfake:…) and creates
 *  cfg.flag; alice's page, back online, finds the key in its own history. */
async function impersonated() {
  const alice = await person("alice");
  await signIn(alice);
  log("READY"); // test_web.py waits for this line
  const deadline = Date.now() + 60000;
  while (!existsSync(cfg.flag)) {
    if (Date.now() > deadline) throw new Error("the test never switched the key server");
    await new Promise((r) => setTimeout(r, 100));
  }
  await alice.page.reload();
  await alice.page.locator("p.notice", { hasText: "logged a key in this device's name" }).waitFor()
    .catch(async (e) => {
      log(`notice: ${await alice.page.locator("p.notice").allTextContents()}`);
      throw e;
    });
  log(`alice's page: ${await alice.page.locator("p.notice").textContent()}`);
}

const scenarios = { pair, reload, interop, removal, webpush, safety, attachment, lied, impersonated };
try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  log(`${scenario}: ok`);
} catch (e) {
  log(`${scenario}: FAILED`);
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
