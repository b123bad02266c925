// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// Runs the node tests of the web client: bundles test/*.test.ts with esbuild
// into a scratch directory (node cannot load TypeScript), then runs them with
// node's test runner. Usage: node test/run.mjs [OUTDIR]
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ? path.resolve(process.argv[2]) : mkdtempSync(path.join(os.tmpdir(), "web-test-"));
const tests = readdirSync(here).filter((f) => f.endsWith(".test.ts"));
await build({
  entryPoints: tests.map((f) => path.join(here, f)),
  outdir: out,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node18",
  logLevel: "warning",
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
const r = spawnSync(process.execPath, ["--test", ...tests.map((f) => path.join(out, f.replace(/\.ts$/, ".mjs")))],
  { stdio: "inherit" });
if (!process.argv[2]) rmSync(out, { recursive: true, force: true });
process.exit(r.status ?? 1);
