// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Builds the page into one directory (default dist/, or the first argument):
// index.html with the stylesheet inlined, and app.js (one classic script, so
// it runs even when served without a Content-Type, as mosquitto's http_dir
// does), and sw.js, the service worker of Web Push wake-ups (which a browser
// registers only when served as JavaScript: not from mosquitto's http_dir).
import { build } from "esbuild";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? path.join(here, "dist"));
await mkdir(out, { recursive: true });
await build({
  entryPoints: [path.join(here, "src/main.ts")],
  outfile: path.join(out, "app.js"),
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});
// the service worker: a script of its own, served next to the page
await build({
  entryPoints: [path.join(here, "src/sw.ts")],
  outfile: path.join(out, "sw.js"),
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
const css = await readFile(path.join(here, "src/style.css"), "utf8");
const html = await readFile(path.join(here, "src/index.html"), "utf8");
await writeFile(path.join(out, "index.html"), html.replace("/*STYLE*/", () => css));
console.log(`web: built ${path.relative(process.cwd(), out) || "."}/index.html`);
