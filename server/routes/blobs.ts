/** Blobs by hash: served as they are stored (clients verify them), and which ones the server lacks. */
import type { FastifyInstance } from 'fastify';
import { API, MissingBlobsRequest } from '../../src/protocol/index.ts';
import type { Store } from '../store/index.ts';
import { bodyOf, HttpError } from '../errors.ts';

const SHA256 = /^[0-9a-f]{64}$/;

export function isWasm(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}

export function blobRoutes(app: FastifyInstance, store: Store): void {
  app.get<{ Params: { sha256: string } }>(API.blob(':sha256'), async (request, reply) => {
    const { sha256 } = request.params;
    if (!SHA256.test(sha256)) throw new HttpError(400, `not a lowercase SHA-256 hex digest: ${sha256.slice(0, 80)}`);
    // Not re-hashed: the server does not vouch for the bytes, the client checks them against the signed manifest.
    const bytes = await store.blob(sha256);
    if (!bytes) throw new HttpError(404, `no blob ${sha256}`);
    return reply
      .header('content-type', isWasm(bytes) ? 'application/wasm' : 'application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .header('etag', `"${sha256}"`)
      .send(bytes);
  });

  app.post(API.missingBlobs, async (request) => {
    const { hashes } = bodyOf(MissingBlobsRequest, request.body);
    return { missing: await store.missingBlobs(hashes) };
  });
}
