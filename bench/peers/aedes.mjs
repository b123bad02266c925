// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
// bench/peers/aedes.mjs — aedes (a Node.js MQTT broker) on 127.0.0.1:PORT, for
// bench/compare.sh's optional peer relay runs.
//
//   node bench/peers/aedes.mjs PORT BASE...     # serve until SIGTERM
//   node bench/peers/aedes.mjs --check BASE...  # exit 0 if aedes is found
//
// aedes is looked up in BASE/node_modules for each BASE in turn (compare.sh
// passes bench/peers and npm's global root), so `npm install aedes` in
// bench/peers, or `npm install -g aedes`, makes it a peer. Both the ESM
// aedes 1.x (Aedes.createBroker) and the CommonJS 0.x (a factory) work.
// Every connection gets TCP_NODELAY, as mosquitto's set_tcp_nodelay true.
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

function find(bases) {
  for (const base of bases) {
    try {
      return createRequire(join(base, 'noop.js')).resolve('aedes');
    } catch {
      /* not under this base */
    }
  }
  return null;
}

async function broker(entry) {
  const mod = await import(pathToFileURL(entry).href);
  const Aedes = mod.Aedes || (mod.default && mod.default.Aedes);
  if (Aedes && typeof Aedes.createBroker === 'function')
    return Aedes.createBroker();
  if (typeof mod.default === 'function')
    return mod.default();
  throw new Error(`${entry}: neither Aedes.createBroker nor a factory`);
}

const args = process.argv.slice(2);
if (args[0] === '--check') {
  process.exit(find(args.slice(1)) ? 0 : 1);
}
const port = Number(args[0]);
if (!Number.isInteger(port) || port < 1 || port > 65535 || args.length < 2) {
  console.error('usage: node aedes.mjs PORT BASE... | --check BASE...');
  process.exit(2);
}
const entry = find(args.slice(1));
if (!entry) {
  console.error(`aedes.mjs: aedes not found under ${args.slice(1).join(', ')}`);
  process.exit(1);
}
const b = await broker(entry);
const server = createServer((sock) => {
  sock.setNoDelay(true);
  b.handle(sock);
});
server.on('error', (e) => {
  console.error(`aedes.mjs: ${e.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => console.log(`aedes listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
