/** Signed tasks for tests: a tiny module and manifests that pass the schema. */
import { sha256Hex, signTask, toBase64, type PublishRequest, type SignedTask, type TaskManifest } from '../../src/protocol/index.ts';
import type { SigningKey } from './server.ts';

/** The smallest valid Wasm module: magic and version. */
export const TINY_MODULE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);

export async function manifestFor(key: SigningKey, batchId: string, index: number, overrides: Partial<TaskManifest> = {}, module = TINY_MODULE): Promise<TaskManifest> {
  const now = Date.now();
  return {
    v: 1,
    keyId: key.keyId,
    taskId: `${batchId}-${index}`,
    batchId,
    name: 'test',
    issuedAt: now,
    expiresAt: now + 3600_000,
    engine: 'wasi-preview1',
    module: { sha256: await sha256Hex(module), size: module.length },
    args: ['test', String(index)],
    env: [],
    stdin: null,
    files: [],
    preopens: [],
    limits: { memoryBytes: 2 ** 24, wallTimeMs: 10_000, outputBytes: 2 ** 20 },
    redundancy: 1,
    ...overrides,
  };
}

export async function publishRequest(key: SigningKey, batchId: string, count: number, overrides: Partial<TaskManifest> = {}): Promise<PublishRequest> {
  const tasks: SignedTask[] = [];
  for (let i = 0; i < count; i++) tasks.push(await signTask(await manifestFor(key, batchId, i, overrides), key.secretKey));
  return { batch: { batchId, name: 'test' }, tasks, blobs: { [await sha256Hex(TINY_MODULE)]: toBase64(TINY_MODULE) } };
}

export function resultFor(lease: { leaseId: string; task: { manifest: { taskId: string } } }, deviceId: string, stdout = 'ok', error: { code: 'trap'; message: string } | null = null) {
  return {
    leaseId: lease.leaseId,
    taskId: lease.task.manifest.taskId,
    deviceId,
    exitCode: error ? null : 0,
    stdout: toBase64(new TextEncoder().encode(stdout)),
    stderr: '',
    files: [],
    truncated: { stdout: false, stderr: false, files: false },
    error,
    timings: { fetchMs: 1, compileMs: 1, runMs: 1 },
  };
}
