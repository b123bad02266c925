// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Browser scenarios for the web client, in Debian's Chromium driven by
// playwright-core. Run by tests/integration/test_web.py, which starts the
// broker (MQTT over WebSockets, the page from http_dir), the key server and
// the devices, and passes them in CHAT_WEB (JSON):
//   { url, users: { name: { addr, token } }, shots: dir|null,
//     client: { argv: [chat-client and its connection options] } (interop),
//     chatctl: [chatctl and its options] (removal) }
// Usage: node test/browser.mjs SCENARIO
//        (pair | reload | interop | removal | webpush | lied | impersonated)
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
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

async function person(name, viewport = { width: 1100, height: 720 }) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && log(`${name} console:`, m.text()));
  page.setDefaultTimeout(WAIT);
  await page.goto(cfg.url);
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
  const bob = await person("bob");
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
  const reg = [...regs.values()].find((r) => r.scopeURL.startsWith(origin) && !r.isDeleted);
  assert.ok(reg, `a registration for ${origin}: ${JSON.stringify([...regs.values()])}`);
  await cdp.send("ServiceWorker.deliverPushMessage", {
    origin, registrationId: reg.registrationId, data: JSON.stringify({ pending: 3 }),
  });
  const shown = async () =>
    page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
      .map((n) => ({ title: n.title, body: n.body, tag: n.tag })));
  let list = [];
  for (let i = 0; i < 100 && list.length === 0; i++) {
    list = await shown();
    if (list.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
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

const scenarios = { pair, reload, interop, removal, webpush, lied, impersonated };
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
