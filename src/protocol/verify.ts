/**
 * What a client checks before anything is compiled, and the reason code for each refusal.
 * The same checks run on the server when a batch is published, so a server never stores a
 * task its own clients would refuse.
 */
import { sha256Hex } from './bytes.ts';
import { parse, SignedTask, type BlobRef, type RefusalReason } from './schema.ts';
import { verifyTaskSignature } from './signing.ts';
import { keyStanding, type TaskKey } from './keyset.ts';

export type Verdict<T> = { ok: true; value: T } | { ok: false; reason: RefusalReason; detail: string };

/** Plain-words explanation of each refusal, for the page's activity log and the CLI. */
export const REFUSAL_TEXT: Record<RefusalReason, string> = {
  'bad-signature': 'the signature does not match the task (it was altered or signed by someone else)',
  'unknown-key': 'the task was signed by a key this client does not trust',
  'revoked-key': "the task was signed by a key the project has revoked",
  'expired-key': "the task was signed by a key outside its validity window (retired, or not yet valid)",
  'expired-task': 'the task has expired',
  'replayed-task': 'this device has already completed this task (a replay)',
  'module-hash-mismatch': "the module's bytes do not match the hash the project signed",
  'module-size-mismatch': "the module's size does not match the size the project signed",
  'input-hash-mismatch': "an input file's bytes do not match the hash the project signed",
  'bad-manifest': 'the task description is malformed',
  'module-too-large': 'the module is larger than this client accepts',
  'unsupported-engine': 'this client cannot run the engine the task asks for',
};

/**
 * Checks an envelope's shape, key, signature, the key's standing and the task's expiry, in that
 * order (docs/protocol.md, "What the client checks").
 * @param taskKeys keyId -> task-signing key, from the verified keyset (verifyKeyset).
 */
export async function verifyEnvelope(input: unknown, taskKeys: ReadonlyMap<string, TaskKey>, now: number): Promise<Verdict<SignedTask>> {
  const parsed = parse(SignedTask, input);
  if (!parsed.ok) return { ok: false, reason: 'bad-manifest', detail: parsed.message };
  const task = parsed.value;
  const key = taskKeys.get(task.manifest.keyId);
  if (!key) return { ok: false, reason: 'unknown-key', detail: `key ${task.manifest.keyId} is not in the project's keyset` };
  if (!(await verifyTaskSignature(task, key.publicKey))) {
    return { ok: false, reason: 'bad-signature', detail: `signature does not verify under key ${task.manifest.keyId}` };
  }
  const standing = keyStanding(key, now);
  if (!standing.ok) return { ok: false, reason: standing.reason, detail: `key ${task.manifest.keyId}: ${standing.detail}` };
  if (task.manifest.expiresAt <= now) {
    return { ok: false, reason: 'expired-task', detail: `expired at ${new Date(task.manifest.expiresAt).toISOString()}` };
  }
  return { ok: true, value: task };
}

/** Checks fetched bytes against the size and SHA-256 the manifest signed. */
export async function verifyBlob(ref: BlobRef, bytes: Uint8Array, kind: 'module' | 'input'): Promise<Verdict<Uint8Array>> {
  if (bytes.length !== ref.size) {
    return {
      ok: false,
      reason: kind === 'module' ? 'module-size-mismatch' : 'input-hash-mismatch',
      detail: `expected ${ref.size} bytes, got ${bytes.length}`,
    };
  }
  const actual = await sha256Hex(bytes);
  if (actual !== ref.sha256) {
    return {
      ok: false,
      reason: kind === 'module' ? 'module-hash-mismatch' : 'input-hash-mismatch',
      detail: `expected SHA-256 ${ref.sha256}, got ${actual}`,
    };
  }
  return { ok: true, value: bytes };
}
