/** Blobs by hash: served as they are stored (clients verify them), and which ones the server lacks. */
import type { FastifyInstance } from 'fastify';
import { API, BlobBatchRequest, MAX_BLOB_BATCH_BYTES, MissingBlobsRequest } from '../../src/protocol/index.ts';
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

  // Many blobs in one response, their bytes one after another in the order asked (the client
  // knows each size from the signed manifest, and checks each hash as for a single blob). Read
  // one at a time, and no further than MAX_BLOB_BATCH_BYTES, so one request holds at most that.
  app.post(API.blobBatch, async (request, reply) => {
    const { hashes } = bodyOf(BlobBatchRequest, request.body);
    const parts: Buffer[] = [];
    let total = 0;
    for (const [i, sha256] of hashes.entries()) {
      const bytes = await store.blob(sha256);
      if (!bytes) throw new HttpError(404, `no blob ${sha256} (body.hashes.${i})`);
      total += bytes.length;
      if (total > MAX_BLOB_BATCH_BYTES) throw new HttpError(400, `the blobs asked for come to more than ${MAX_BLOB_BATCH_BYTES} bytes by body.hashes.${i}: ask for fewer in one batch`);
      parts.push(bytes);
    }
    return reply.header('content-type', 'application/octet-stream').header('cache-control', 'no-store').send(Buffer.concat(parts));
  });

  app.post(API.missingBlobs, async (request) => {
    const { hashes } = bodyOf(MissingBlobsRequest, request.body);
    return { missing: await store.missingBlobs(hashes) };
  });
}
