// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The service worker: shows a notification when a Web Push wake-up comes
// (chat-pushgw encrypts {"pending": N} for this browser's subscription; the
// browser has already decrypted it). The text is generic, never a message:
// the wake-up carries none. A click focuses the chat (or opens it), whose
// page then connects and syncs as it always does.
//
// Typed by hand (the project's tsconfig has the DOM library, not
// WebWorker's): only what is used here.
interface PushEv { data: { json(): unknown } | null; waitUntil(p: Promise<unknown>): void }
interface ClickEv { notification: Notification; waitUntil(p: Promise<unknown>): void }
interface WindowClient { url: string; focus(): Promise<unknown> }
interface SwScope {
  registration: ServiceWorkerRegistration;
  clients: {
    matchAll(o: { type: string; includeUncontrolled: boolean }): Promise<WindowClient[]>;
    openWindow(url: string): Promise<unknown>;
    claim(): Promise<void>;
  };
  skipWaiting(): Promise<void>;
  addEventListener(type: "push", f: (e: PushEv) => void): void;
  addEventListener(type: "notificationclick", f: (e: ClickEv) => void): void;
  addEventListener(type: "install" | "activate", f: (e: { waitUntil(p: Promise<unknown>): void }) => void): void;
}
const sw = self as unknown as SwScope;

sw.addEventListener("install", (e) => e.waitUntil(sw.skipWaiting()));
sw.addEventListener("activate", (e) => e.waitUntil(sw.clients.claim()));

sw.addEventListener("push", (e) => {
  let pending = 0;
  try {
    const d = e.data?.json() as { pending?: unknown } | undefined;
    if (typeof d?.pending === "number") pending = d.pending;
  } catch {
    // not JSON: still a wake-up
  }
  // userVisibleOnly: every push shows a notification; one tag, so a newer
  // wake-up replaces the older one
  e.waitUntil(
    sw.registration.showNotification("mosquitto-chat", {
      body: pending > 1 ? `${pending} new messages` : "New messages",
      tag: "chat-wake",
      data: { pending },
    }),
  );
});

sw.addEventListener("notificationclick", (e) => {
  e.notification.close();
  e.waitUntil(
    sw.clients.matchAll({ type: "window", includeUncontrolled: true }).then((wins) => {
      const w = wins[0];
      return w ? w.focus() : sw.clients.openWindow("./");
    }),
  );
});
