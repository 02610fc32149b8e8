/**
 * Publishing a batch already built (owner/build.ts): the demo start script, tests and benchmarks
 * come through here; programs use the client library (owner/project.ts), which does the same.
 */
import * as v from 'valibot';
import { API, BatchStatusSchema, type BatchStatus, type PublishRequest } from '../src/protocol/index.ts';
import { OwnerHttp, type OwnerKey } from '../owner/http.ts';

export { buildBatch, randomId, type BatchSpec, type TaskSpec } from '../owner/build.ts';

/** How publishing goes, for the CLI's progress: the blobs to send, the upload, the server's checks. */
export interface PublishProgress {
  /** The server lacks `sending` of the batch's `blobs` blobs: those go with the tasks. */
  blobs(sending: number, blobs: number, sendingBytes: number): void;
  uploading(sent: number, total: number): void;
  /** Everything is sent; the server verifies and stores the batch. */
  uploaded(total: number): void;
}

/**
 * Sends only the blobs the server lacks, then the batch (the blobs travel in its body), as the
 * project owner: `key` is a task-signing key of the project's keyset, which signs the owner token.
 */
export async function publishBatch(serverUrl: string, request: PublishRequest, key: OwnerKey, progress?: PublishProgress): Promise<BatchStatus> {
  const http = new OwnerHttp(serverUrl.replace(/\/$/, ''), key);
  const { missing } = await http.request('POST', API.missingBlobs, { body: { hashes: Object.keys(request.blobs) }, schema: v.object({ missing: v.array(v.string()) }) });
  const wanted = new Set(missing);
  const blobs = Object.fromEntries(Object.entries(request.blobs).filter(([hash]) => wanted.has(hash)));
  progress?.blobs(Object.keys(blobs).length, Object.keys(request.blobs).length, Object.values(blobs).reduce((sum, b64) => sum + Buffer.byteLength(b64, 'base64'), 0));
  const onSent = progress
    ? (sent: number, total: number) => {
        progress.uploading(sent, total);
        if (sent === total) progress.uploaded(total);
      }
    : undefined;
  return http.request('POST', API.batches, { body: { ...request, blobs }, schema: BatchStatusSchema, onSent });
}
