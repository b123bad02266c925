// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Entry point: resumes the stored session (a reload keeps you signed in) or
// shows the sign-in screen.
import { ChatApp } from "./app";
import { setupPush } from "./push";
import type { Credentials } from "./client";
import { E2EE } from "./e2ee";
import { loadSession, saveSession } from "./store";
import { ChatScreen, signInScreen } from "./ui";

const root = document.getElementById("app")!;

function defaultUrl(): string {
  const params = new URLSearchParams(location.search);
  const given = params.get("ws");
  if (given) return given;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // served by mosquitto's own http_dir: the page and MQTT share one listener
  return location.host ? `${scheme}://${location.host}/mqtt` : "ws://127.0.0.1:8080/mqtt";
}

let current: { app: ChatApp; screen: ChatScreen } | null = null;

// ?protocol=1: the v1 forms of docs/PROTOCOL.md (no capabilities declared)
const protocolV1 = new URLSearchParams(location.search).get("protocol") === "1";

function signIn(creds: Credentials): void {
  const app = new ChatApp(creds, new E2EE(creds), protocolV1 ? [] : undefined);
  let screen: ChatScreen | null = null;
  const off = app.subscribe(() => {
    if (app.connState !== "refused") return;
    off();
    signOut(app.connDetail);
  });
  saveSession(creds);
  screen = new ChatScreen(root, app, () => signOut(""));
  current = { app, screen };
  // Web Push, once per sign-in, when first online (docs/WEB.md, "Wake-ups")
  const offPush = app.subscribe(() => {
    if (app.connState !== "online") return;
    offPush();
    void setupPush((token) => app.registerPush(token)).then((r) => app.setPushState(r.state, r.detail));
  });
  app.start();
}

function signOut(error: string): void {
  const creds = current?.app.creds;
  current?.screen.destroy();
  current?.app.stop();
  current = null;
  saveSession(null);
  signInScreen(root, { ...creds, token: "", url: creds?.url ?? defaultUrl() }, error, signIn);
}

const session = loadSession();
if (session) signIn(session);
else signInScreen(root, { url: defaultUrl() }, "", signIn);
