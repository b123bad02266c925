// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// The browser side of attachments (docs/E2EE.md §4.5, §5): the HTTP
// transfers to chat-media (an upload with progress; a download that resumes
// with a Range request after an interruption), thumbnails made on this
// device (canvas → small JPEG), and the decrypted files kept in IndexedDB so
// they survive a reload (chat-media deletes a blob once every device has it).

export const THUMB_MAX = 8192; // bytes, docs/E2EE.md §4.3
const THUMB_EDGE = [160, 120, 96, 64];
const GET_ATTEMPTS = 4;

/** PUTs the ciphertext; onProgress gets the fraction sent. */
export function upload(url: string, body: Uint8Array, onProgress: (f: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", url);
    x.setRequestHeader("Content-Type", "application/octet-stream");
    x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    x.onload = () => (x.status === 201 ? resolve() : reject(new Error(`upload refused: HTTP ${x.status} ${x.responseText.slice(0, 200)}`)));
    x.onerror = () => reject(new Error("upload failed (network)"));
    x.send(new Blob([body as Uint8Array<ArrayBuffer>]));
  });
}

/** GETs size bytes from a grant URL, resuming with Range after an
 *  interruption; getUrl asks for a fresh grant for each attempt. */
export async function download(getUrl: () => Promise<string>, size: number,
                               onProgress: (f: number) => void): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let have = 0;
  let last: unknown = null;
  for (let attempt = 0; attempt < GET_ATTEMPTS && have < size; attempt++) {
    try {
      const url = await getUrl();
      const r = await fetch(url, { headers: have ? { Range: `bytes=${have}-` } : {} });
      if (r.status === 200) have = 0; // the whole blob, from the start
      else if (r.status !== 206) throw new Error(`download refused: HTTP ${r.status}`);
      const reader = r.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (have + value.length > size) throw new Error("the blob is larger than the pointer says");
        out.set(value, have);
        have += value.length;
        onProgress(have / size);
      }
    } catch (e) {
      last = e;
      if (e instanceof Error && /refused: HTTP (403|404|410)|larger/.test(e.message)) throw e;
    }
  }
  if (have < size) throw last instanceof Error ? last : new Error("download incomplete");
  return out;
}

/** A JPEG thumbnail of at most 8 KB, or undefined when the image cannot be read. */
export async function thumbnail(file: Blob): Promise<Uint8Array | undefined> {
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    return undefined;
  }
  try {
    for (const edge of THUMB_EDGE) {
      const k = Math.min(1, edge / Math.max(bmp.width, bmp.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bmp.width * k));
      canvas.height = Math.max(1, Math.round(bmp.height * k));
      canvas.getContext("2d")!.drawImage(bmp, 0, 0, canvas.width, canvas.height);
      for (const q of [0.7, 0.5, 0.3]) {
        const b = await new Promise<Blob | null>((ok) => canvas.toBlob(ok, "image/jpeg", q));
        if (b && b.size <= THUMB_MAX) return new Uint8Array(await b.arrayBuffer());
      }
    }
    return undefined;
  } finally {
    bmp.close();
  }
}

/** An audio file's duration in ms, from the browser's own decoder (or undefined). */
export function audioDuration(url: string): Promise<number | undefined> {
  return new Promise((ok) => {
    const a = new Audio();
    const done = (v: number | undefined) => {
      clearTimeout(t);
      a.src = "";
      ok(v);
    };
    const t = setTimeout(() => done(undefined), 3000);
    a.preload = "metadata";
    a.onloadedmetadata = () => done(Number.isFinite(a.duration) ? Math.round(a.duration * 1000) : undefined);
    a.onerror = () => done(undefined);
    a.src = url;
  });
}

// ---------------------------------------------------------------- the files, kept

const DB = "mchat-files";

function db(): Promise<IDBDatabase> {
  return new Promise((ok, fail) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore("files");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}

/** Keeps a decrypted file under key (account and blob id). */
export async function keep(key: string, file: Blob): Promise<void> {
  const d = await db();
  await new Promise<void>((ok, fail) => {
    const tx = d.transaction("files", "readwrite");
    tx.objectStore("files").put(file, key);
    tx.oncomplete = () => ok();
    tx.onerror = () => fail(tx.error);
  });
  d.close();
}

export async function kept(key: string): Promise<Blob | undefined> {
  const d = await db();
  const v = await new Promise<Blob | undefined>((ok, fail) => {
    const r = d.transaction("files").objectStore("files").get(key);
    r.onsuccess = () => ok(r.result as Blob | undefined);
    r.onerror = () => fail(r.error);
  });
  d.close();
  return v;
}
