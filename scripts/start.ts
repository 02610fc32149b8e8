/**
 * `npm start`: makes the demo project's keys on first run, builds the page to trust them, starts
 * the task server, publishes a demo batch when there is no unfinished one, and serves the demo
 * partner site (demo/partner/) on the next port.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { startServer } from '../server/main.ts';
import { currentSigningKey, initProject, readTrust, trustPath } from '../server/keys.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import { DEMO_BATCH_NAME, DEMO_IMAGE, demoBatchSpec } from '../demo/tiles.ts';
import { startPartnerSite } from '../demo/partner/server.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dataDir = process.env.DEWGRID_DATA ?? join(root, '.dewgrid');
const staticDir = join(root, 'dist');

// The keys first: the page is built to trust the project's root (its trust file is compiled in).
let legacy = false;
try {
  readTrust(dataDir);
} catch {
  legacy = true; // a data folder from before keysets: set the project up again
}
if (legacy || !existsSync(trustPath(dataDir))) {
  const made = await initProject(dataDir, { projectName: 'Dewgrid demo project', force: legacy });
  console.log(`Made the demo project's root key ${made.root.keyId} and signing key ${made.key.keyId} (keyset version ${made.keyset.keyset.version}) in ${dataDir}.`);
}
const key = await currentSigningKey(dataDir);

console.log('Building the page...');
process.env.DEWGRID_TRUST_FILE = join(dataDir, 'trust.json');
await build({ root, logLevel: 'warn' });

const { server, url } = await startServer({ ...process.env, DEWGRID_DATA: dataDir, DEWGRID_STATIC: staticDir });
const unfinished = (await server.store.batchStatuses()).find((b) => b.name === DEMO_BATCH_NAME && b.counts.queued + b.counts.running > 0);
let batchId = unfinished?.batchId;
if (!batchId) {
  const request = await buildBatch(demoBatchSpec(new Uint8Array(readFileSync(join(root, 'demo/fractal/fractal.wasm')))), key);
  batchId = (await publishBatch(url, request)).batchId;
  console.log(`Published the demo batch ${batchId}: ${request.tasks.length} tiles of a ${DEMO_IMAGE.width}x${DEMO_IMAGE.height} Mandelbrot picture.`);
} else {
  console.log(`The demo batch ${batchId} still has work; not publishing another.`);
}

const pageUrl = url.replace('127.0.0.1', 'localhost');
// 127.0.0.1 against the page's localhost: another site, as a real partner's would be.
const partner = await startPartnerSite({ dewgridOrigin: new URL(pageUrl).origin, projectName: readTrust(dataDir)!.projectName, port: Number(new URL(url).port) + 1 });
console.log(`
Dewgrid is running: open ${pageUrl} and press Start.
  A partner site:    ${partner.url} (the embed card, on another site)
  Watch the batch:   npx dewgrid status ${batchId}
  Its results:       npx dewgrid results ${batchId} --json
  Data folder:       ${dataDir}
Stop with Ctrl+C.`);
