// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Web Push for this page (docs/WEB.md, "Wake-ups"): when the deployment
// serves its VAPID public key as vapid-public-key.txt next to the page, the
// page registers the service worker (sw.js), subscribes with that key and
// registers the subscription as this device's push target (ctl
// push.register, platform "webpush"); chat-pushgw then wakes the browser
// through its push service while the page is closed.
export type PushState = "off" | "unsupported" | "no-key" | "denied" | "subscribed" | "failed";

function keyBytes(b64url: string): Uint8Array<ArrayBuffer> | null {
  const s = b64url.trim().replace(/-/g, "+").replace(/_/g, "/");
  try {
    const bin = atob(s + "=".repeat((4 - (s.length % 4)) % 4));
    const out = new Uint8Array(new ArrayBuffer(bin.length));
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.length === 65 && out[0] === 4 ? out : null;
  } catch {
    return null;
  }
}

export async function setupPush(register: (token: string) => Promise<unknown>): Promise<{ state: PushState; detail: string }> {
  if (!("serviceWorker" in navigator) || typeof PushManager === "undefined" || typeof Notification === "undefined")
    return { state: "unsupported", detail: "" };
  let key: Uint8Array<ArrayBuffer> | null = null;
  try {
    const r = await fetch("vapid-public-key.txt", { cache: "no-store" });
    if (r.ok) key = keyBytes(await r.text());
  } catch {
    // none served
  }
  if (!key) return { state: "no-key", detail: "" };
  try {
    const reg = await navigator.serviceWorker.register("sw.js");
    if ((await Notification.requestPermission()) !== "granted") return { state: "denied", detail: "" };
    await navigator.serviceWorker.ready;
    const sub =
      (await reg.pushManager.getSubscription()) ??
      (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
    await register(JSON.stringify(sub.toJSON()));
    return { state: "subscribed", detail: "" };
  } catch (e) {
    return { state: "failed", detail: String((e as Error).message ?? e) };
  }
}
