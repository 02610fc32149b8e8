/**
 * `npm start`: makes the demo project's keys on first run, checks the port is free (before
 * building anything: a second `npm start` must not rebuild the page under a running server),
 * builds the page to trust the keys, starts the task server with the demo (a donor on this machine
 * may ask for the next picture), publishes the next demo picture when there is no unfinished one,
 * and serves the demo partner site (demo/partner/) on the next port.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { startServer, StartError } from '../server/main.ts';
import { currentSigningKey, initProject, readTrust, trustPath } from '../server/keys.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import { DEMO_IMAGE, demoBatchSpec, demoPictureNumber, demoView } from '../demo/tiles.ts';
import { startPartnerSite } from '../demo/partner/server.ts';
import { Project } from '../owner/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dataDir = process.env.DEWGRID_DATA ?? join(root, '.dewgrid');
const staticDir = join(root, 'dist');
const host = process.env.HOST ?? '127.0.0.1';

function fail(message: string): never {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

/** Whether a port can be listened on now; the reason in one line if not. */
function portProblem(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const probe = createTcpServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      resolve(
        error.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is in use (is \`npm start\` already running? Its page is http://localhost:${port}): stop it, or choose another port with PORT=${port + 2} npm start`
          : `port ${port} on ${host}: ${error.message}`,
      ),
    );
    probe.listen(port, host, () => probe.close(() => resolve(null)));
  });
}

const portText = process.env.PORT ?? '8787';
if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`PORT must be a port number, got "${portText}"`);
const port = Number(portText);
// Before anything is built: the page under a running server stays as it is.
if (port !== 0) {
  const problem = await portProblem(port);
  if (problem) fail(problem);
}

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

const module = new Uint8Array(readFileSync(join(root, 'demo/fractal/fractal.wasm')));
const started = await startServer({ ...process.env, DEWGRID_DATA: dataDir, DEWGRID_STATIC: staticDir }, { demo: { module, key } }).catch((error: Error) => {
  if (error instanceof StartError) fail(error.message);
  throw error;
});
const { server, url } = started;
const demoBatches = (await server.store.batchStatuses()).filter((b) => demoPictureNumber(b.name) !== null);
const unfinished = demoBatches.find((b) => b.counts.queued + b.counts.running > 0);
let batchId = unfinished?.batchId;
if (!batchId) {
  // The next picture: the demo keeps going from where it was.
  const number = Math.max(0, ...demoBatches.map((b) => demoPictureNumber(b.name)!)) + 1;
  const request = await buildBatch(demoBatchSpec(module, number), key);
  batchId = (await publishBatch(url, request, key)).batchId;
  console.log(`Published the demo batch ${batchId}: ${request.tasks.length} tiles of a ${DEMO_IMAGE.width}x${DEMO_IMAGE.height} Mandelbrot picture (${demoView(number).name}).`);
} else {
  console.log(`The demo batch ${batchId} still has work; not publishing another.`);
}

const pageUrl = url.replace('127.0.0.1', 'localhost');
// 127.0.0.1 against the page's localhost: another site, as a real partner's would be.
const partner = await startPartnerSite({ dewgridOrigin: new URL(pageUrl).origin, projectName: readTrust(dataDir)!.projectName, port: Number(new URL(url).port) + 1 }).catch(
  (error: NodeJS.ErrnoException) => ({ url: `not started (${error.code === 'EADDRINUSE' ? `port ${Number(new URL(url).port) + 1} is in use` : error.message})` }),
);
const statusLink = await (await Project.open(dataDir, { server: pageUrl })).statusLink();
console.log(`
Dewgrid is running: open ${pageUrl} and press Start.
  A partner site:    ${partner.url} (the embed card, on another site)
  Watch the batch:   npx dewgrid status ${batchId}
  Its results:       npx dewgrid results ${batchId} --follow
  The status page:   ${statusLink}
                     (as the project owner, for 7 days: keep the link to yourself)
  Data folder:       ${dataDir}
Stop with Ctrl+C.`);
