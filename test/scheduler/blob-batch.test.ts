// The client's side of POST /api/blobs/batch (TaskServer.fetchBlobs) against the real server, and
// against servers that answer otherwise: an older one without the route, one that fails, one that
// sends bytes of other lengths. Anything but the exact bytes asked for gives null (the preparer
// then fetches each blob alone, and that request names the blob at fault); only a server that
// cannot answer at all throws, as for a single blob.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { MAX_BLOB_BATCH, sha256Hex } from '../../src/protocol/index.ts';
import { ServerError, TaskServer } from '../../src/scheduler/server-api.ts';
import { writeKey } from '../helpers/server.ts';

let dataDir: string;
let server: DewgridServer;
let url: string;
const blobs = [new TextEncoder().encode('an input file'), new Uint8Array(300_000).map((_, i) => (i * 7) % 256), new Uint8Array(0), new Uint8Array([42])];
let refs: { sha256: string; size: number }[];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-blob-batch-'));
  await writeKey(dataDir);
  server = await createServer({ dataDir });
  refs = await Promise.all(blobs.map(async (bytes) => ({ sha256: await sha256Hex(bytes), size: bytes.length })));
  await server.store.writeBlobs(new Map(blobs.map((bytes, i) => [refs[i]!.sha256, bytes])));
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A server that answers every request with `status` and `body`. */
async function answering(status: number, body: Uint8Array | string, run: (base: string) => Promise<void>): Promise<void> {
  const other: Server = createHttpServer((_, response) => response.writeHead(status, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(other.address() as AddressInfo).port}`);
  } finally {
    await new Promise((resolve) => other.close(resolve));
  }
}

describe('TaskServer.fetchBlobs', () => {
  it('gives each blob its own bytes, in the order asked, repeats and empty blobs included', async () => {
    const asked = [refs[1]!, refs[0]!, refs[2]!, refs[3]!, refs[1]!];
    const pieces = await new TaskServer(url).fetchBlobs(asked);
    expect(pieces).toEqual([blobs[1], blobs[0], blobs[2], blobs[3], blobs[1]]);
    // Each in a buffer of its own (IndexedDB would otherwise keep the whole response under each).
    expect(new Set(pieces!.map((piece) => piece.buffer)).size).toBe(asked.length);
  });

  it('gives null when the server lacks one of them, or its bytes are of other lengths than asked', async () => {
    const client = new TaskServer(url);
    expect(await client.fetchBlobs([refs[0]!, { sha256: '0'.repeat(64), size: 1 }])).toBeNull();
    expect(await client.fetchBlobs([refs[0]!, { ...refs[1]!, size: refs[1]!.size + 1 }])).toBeNull(); // the body is shorter
    expect(await client.fetchBlobs([refs[0]!, { ...refs[1]!, size: refs[1]!.size - 1 }])).toBeNull(); // the body is longer
  });

  it('gives null from a server without the route, and throws, naming the status and message, when the server fails', async () => {
    await answering(404, JSON.stringify({ error: 'not-found', message: 'no route POST /api/blobs/batch' }), async (base) => {
      expect(await new TaskServer(base).fetchBlobs(refs)).toBeNull();
    });
    await answering(503, JSON.stringify({ error: 'unavailable', message: 'the database is not answering' }), async (base) => {
      const failure = await new TaskServer(base).fetchBlobs(refs).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ServerError);
      expect((failure as ServerError).status).toBe(503);
      expect((failure as ServerError).message).toBe('/api/blobs/batch: 503 the database is not answering');
    });
    await answering(502, '<html>bad gateway</html>', async (base) => {
      expect(((await new TaskServer(base).fetchBlobs(refs).catch((error: unknown) => error)) as ServerError).message).toBe('/api/blobs/batch: 502 Bad Gateway');
    });
  });

  it('refuses to send a request the protocol does not allow, naming the problem', async () => {
    const client = new TaskServer(url);
    await expect(client.fetchBlobs([])).rejects.toThrow(/^blob batch request: hashes: /);
    await expect(client.fetchBlobs(Array(MAX_BLOB_BATCH + 1).fill(refs[0]!))).rejects.toThrow(/^blob batch request: hashes: /);
    await expect(client.fetchBlobs([{ sha256: 'ABC', size: 1 }])).rejects.toThrow(/^blob batch request: hashes\.0: /);
  });
});
