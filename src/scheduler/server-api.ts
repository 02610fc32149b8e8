/**
 * The client's calls to the task server. Every response is validated before it is used; every
 * renewal and refusal is signed here with the device's key (results are signed with their outputs'
 * hashes, in the outbox).
 */
import { API } from '../protocol/api.ts';
import { toBase64 } from '../protocol/bytes.ts';
import { refusalSigningBytes, renewalSigningBytes, type RefusalClaim, type RenewalClaim } from '../protocol/device-signing.ts';
import { ApiErrorBody, BlobBatchRequest, MAX_BLOB_BATCH_BYTES, parse, WorkResponse, type DeviceCredit, type WorkRequest } from '../protocol/schema.ts';
import type { StoredSubmission } from '../storage/db.ts';
import { resultBody } from '../storage/result-body.ts';

export class ServerError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ServerError';
  }
}

/**
 * How long a POST may take before it is given up (and retried as any network failure is): 30 s,
 * plus a second for every 64 KiB of body, so a 16 MiB result on a slow uplink still goes. Without
 * it a request that never ends holds what waits on it: WebKitGTK left a result post to a server
 * that went away and came back unanswered for good, and every result after it waited too.
 */
function postTimeoutMs(bytes: number): number {
  return 30_000 + (bytes / 65_536) * 1000;
}

async function postJson(base: string, path: string, body: unknown): Promise<unknown> {
  // A Blob, not the string: sending a multi-megabyte string body (through the service worker)
  // held the main thread for ~100 ms in Chromium; a Blob body is streamed without that.
  const blob = body instanceof Blob ? body : new Blob([JSON.stringify(body)], { type: 'application/json' });
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': blob.type || 'application/json' },
    body: blob,
    signal: AbortSignal.timeout(postTimeoutMs(blob.size)),
  });
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // a non-JSON body: reported below by status
  }
  if (!response.ok) {
    const message = (parsed as { message?: string } | null)?.message ?? text.slice(0, 200);
    throw new ServerError(`${path}: ${response.status} ${message}`, response.status);
  }
  return parsed;
}

/** What signs for this device (src/storage/identity.ts). */
export interface DeviceSigner {
  deviceId: string;
  /** The 32-byte ed25519 public key. */
  publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** The message of an error response ({ error, message }, docs/protocol.md), or its status text when it has none. */
async function errorMessage(response: Response): Promise<string> {
  const body = parse(ApiErrorBody, await response.json().catch(() => null));
  return body.ok ? body.value.message : response.statusText;
}

export class TaskServer {
  private signer: DeviceSigner | null = null;

  constructor(readonly base = '') {}

  /** The device whose key signs renewals and refusals from now on. */
  signAs(signer: DeviceSigner): void {
    this.signer = signer;
  }

  private async signature(message: Uint8Array): Promise<string> {
    if (!this.signer) throw new ServerError('this device has no key to sign with yet', 0);
    return toBase64(await this.signer.sign(message));
  }

  async requestWork(request: WorkRequest): Promise<WorkResponse> {
    const parsed = parse(WorkResponse, await postJson(this.base, API.work, request));
    // A malformed lease list is the server's fault, not a task's: refuse the whole response.
    if (!parsed.ok) throw new ServerError(`work response: ${parsed.message}`, 0);
    return parsed.value;
  }

  /**
   * The server's keyset as it sent it (the caller verifies it), or null when it is still the one
   * held (`If-None-Match` on its version) or the server has none.
   */
  async fetchKeyset(heldVersion: number): Promise<unknown | null> {
    const response = await fetch(this.base + API.keyset, {
      cache: 'no-cache',
      headers: heldVersion > 0 ? { 'if-none-match': `"v${heldVersion}"` } : {},
      signal: AbortSignal.timeout(10_000),
    });
    if (response.status === 304 || response.status === 404) return null;
    if (!response.ok) throw new ServerError(`keyset: ${response.status}`, response.status);
    return response.json().catch(() => ({ malformed: 'the keyset response is not JSON' }));
  }

  /** This device's credit, or null when the server does not know it yet. */
  async fetchCredit(deviceId: string): Promise<DeviceCredit | null> {
    const response = await fetch(this.base + API.device(deviceId), { cache: 'no-cache' });
    if (response.status === 404) return null;
    if (!response.ok) throw new ServerError(`credit: ${response.status}`, response.status);
    return (await response.json()) as DeviceCredit;
  }

  /** Resolves when the server has the result (accepted now, or already had it). */
  async submitResult(result: StoredSubmission): Promise<'accepted' | 'duplicate'> {
    const body = (await postJson(this.base, API.results, resultBody(result))) as { status?: string } | null;
    return body?.status === 'duplicate' ? 'duplicate' : 'accepted';
  }

  /** More time for a lease, showing its progress (signed here); resolves to the new expiry. */
  async renewLease(claim: RenewalClaim): Promise<number> {
    const renewal = { ...claim, signature: await this.signature(renewalSigningBytes(claim)) };
    const body = (await postJson(this.base, API.renew, renewal)) as { expiresAt?: unknown } | null;
    if (typeof body?.expiresAt !== 'number') throw new ServerError('renewal: no expiresAt in the answer', 0);
    return body.expiresAt;
  }

  /** Reports what this device refused (signed here); a keyset refusal carries the device's key, as it may come before any work request. */
  async reportRefusal(claim: RefusalClaim): Promise<void> {
    const full = claim.kind === 'keyset' && this.signer ? { ...claim, publicKey: toBase64(this.signer.publicKey) } : claim;
    await postJson(this.base, API.refusals, { ...full, signature: await this.signature(refusalSigningBytes(full)) });
  }

  /**
   * A blob's bytes, read as they arrive into one buffer of the `size` the manifest signed (no
   * growing and copying, so a 30 MB module costs 30 MB). A body longer than that is cut after
   * `size + 1` bytes, which the caller's size check refuses without reading the rest. `onBytes`
   * hears each part as it arrives (a long prepare's progress).
   */
  async fetchBlob(sha256: string, size: number, onBytes?: (length: number) => void): Promise<Uint8Array> {
    const response = await fetch(this.base + API.blob(sha256));
    if (!response.ok) throw new ServerError(`blob ${sha256}: ${response.status}`, response.status);
    if (!response.body) return new Uint8Array(await response.arrayBuffer());
    const reader = response.body.getReader();
    const bytes = new Uint8Array(size + 1);
    let length = 0;
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      const taken = Math.min(chunk.value.length, bytes.length - length);
      bytes.set(chunk.value.subarray(0, taken), length);
      length += taken;
      onBytes?.(taken);
      if (length > size) {
        await reader.cancel();
        break;
      }
    }
    return bytes.subarray(0, length);
  }

  /**
   * Many blobs in one request (POST /api/blobs/batch): the body is their bytes one after another,
   * read straight into one buffer per blob at the sizes the signed manifest gives (the caller checks
   * each hash). Null when the server cannot answer this batch: it has no such route (an older
   * server), lacks one of the blobs, or sends a body of another length; the caller then fetches
   * each alone, and that request names the blob at fault.
   * @throws ServerError or TypeError when the server cannot be reached or fails (5xx), as fetchBlob.
   */
  async fetchBlobs(refs: readonly { sha256: string; size: number }[]): Promise<Uint8Array[] | null> {
    const request = parse(BlobBatchRequest, { hashes: refs.map((ref) => ref.sha256) });
    if (!request.ok) throw new TypeError(`blob batch request: ${request.message}`); // a caller's bug, not the server's
    const response = await fetch(this.base + API.blobBatch, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request.value),
      signal: AbortSignal.timeout(postTimeoutMs(MAX_BLOB_BATCH_BYTES)),
    });
    if (response.status >= 500) throw new ServerError(`${API.blobBatch}: ${response.status} ${await errorMessage(response)}`, response.status);
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      return null;
    }
    const pieces = refs.map((ref) => new Uint8Array(ref.size));
    let piece = 0;
    let at = 0;
    const reader = response.body.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      for (let taken = 0; taken < chunk.value.length; ) {
        while (piece < pieces.length && at === pieces[piece]!.length) [piece, at] = [piece + 1, 0];
        if (piece === pieces.length) {
          await reader.cancel(); // longer than asked for
          return null;
        }
        const n = Math.min(chunk.value.length - taken, pieces[piece]!.length - at);
        pieces[piece]!.set(chunk.value.subarray(taken, taken + n), at);
        [taken, at] = [taken + n, at + n];
      }
    }
    while (piece < pieces.length && at === pieces[piece]!.length) [piece, at] = [piece + 1, 0];
    return piece === pieces.length ? pieces : null; // shorter than asked for: null
  }
}
