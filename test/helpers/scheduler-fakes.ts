/**
 * Fakes for the scheduler's parts in Node: a task server that records every call, storage kept in
 * memory (with the work store's all-or-nothing rules), a preparer, and worker slots whose runs a
 * test finishes, fails or cuts short. Signing is real (@noble/ed25519, a fixed key).
 */
import { SPEED_CHECK_EVERY_MS } from '../../worker/duty-cycle.ts';
import * as ed from '@noble/ed25519';
import type { DeviceCredit, Lease, TaskManifest, WorkRequest, WorkResponse } from '../../src/protocol/schema.ts';
import type { RefusalClaim, RenewalClaim } from '../../src/protocol/device-signing.ts';
import { failedOutcome, outputBlob, type WorkerJob, type WorkerOutcome } from '../../src/protocol/worker-api.ts';
import { EMPTY_SHA256 } from '../../src/protocol/results.ts';
import type { RunProgress, Throttle } from '../../src/protocol/throttle.ts';
import type { OutboxEntry, StoredSubmission } from '../../src/storage/db.ts';
import type { Settings } from '../../src/scheduler/policies/settings.ts';
import type { ControllerStore } from '../../src/scheduler/controller.ts';
import type { Prepared } from '../../src/scheduler/prepare.ts';
import type { Preparer, TaskSlot } from '../../src/scheduler/task-runner.ts';
import { RunCancelled } from '../../src/scheduler/run-cancelled.ts';
import type { FakeClock } from './fake-clock.ts';

export class HttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export function manifest(taskId: string, overrides: Partial<TaskManifest> = {}): TaskManifest {
  return {
    v: 1,
    keyId: 'k1',
    taskId,
    batchId: 'b1',
    name: 'test',
    issuedAt: 0,
    expiresAt: Date.UTC(2030, 0, 1),
    engine: 'wasi-preview1',
    module: { sha256: '0'.repeat(64), size: 8 },
    args: ['test'],
    env: [],
    stdin: null,
    files: [],
    preopens: [],
    limits: { memoryBytes: 2 ** 24, wallTimeMs: 60_000, outputBytes: 2 ** 20 },
    redundancy: 1,
    ...overrides,
  };
}

let leases = 0;
export function lease(taskId: string, expiresAt: number, overrides: Partial<TaskManifest> = {}): Lease {
  return { leaseId: `lease-${++leases}`, expiresAt, task: { manifest: manifest(taskId, overrides), signature: 'c2ln' } };
}

/** The task server, as the client sees it; every call is recorded with the clock's time. */
export class FakeServer {
  /** Leases the next requests hand out, in order. */
  readonly available: Lease[] = [];
  online = true;
  readonly calls: { at: number; call: string; body: unknown }[] = [];
  readonly results: StoredSubmission[] = [];
  readonly refusals: RefusalClaim[] = [];
  /** Answers renewals with this status instead (410: the task is finished elsewhere). */
  renewStatus: number | null = null;
  credit: DeviceCredit | null = null;

  constructor(private readonly clock: FakeClock) {}

  private record(call: string, body: unknown): void {
    this.calls.push({ at: this.clock.now(), call, body });
    if (!this.online) throw new TypeError('Failed to fetch');
  }

  callsOf(call: string) {
    return this.calls.filter((c) => c.call === call);
  }

  async requestWork(request: WorkRequest): Promise<WorkResponse> {
    this.record('work', request);
    return { leases: this.available.splice(0, request.max), keysetVersion: 1 };
  }

  async renewLease(renewal: RenewalClaim): Promise<number> {
    this.record('renew', renewal);
    if (this.renewStatus !== null) throw new HttpError(`renew: ${this.renewStatus}`, this.renewStatus);
    return this.clock.now() + 120_000;
  }

  async submitResult(result: StoredSubmission): Promise<'accepted' | 'duplicate'> {
    this.record('result', result);
    this.results.push(result);
    return 'accepted';
  }

  async reportRefusal(report: RefusalClaim): Promise<void> {
    this.record('refusal', report);
    this.refusals.push(report);
  }

  async fetchCredit(): Promise<DeviceCredit | null> {
    this.record('credit', null);
    return this.credit;
  }
}

/** The work store's contract, in memory: a result enters the outbox as its lease leaves, at once. */
export class MemoryStore implements ControllerStore {
  readonly heldLeases = new Map<string, Lease>();
  readonly outboxEntries = new Map<string, OutboxEntry>();
  readonly completedTasks = new Set<string>();
  readonly checkpoints = new Map<string, Map<string, Uint8Array>>();
  saved: Partial<Settings> | null = null;
  runningFlag = false;

  async addLeases(leases: Lease[]): Promise<void> {
    for (const l of leases) this.heldLeases.set(l.leaseId, structuredClone(l));
  }
  async leases(): Promise<Lease[]> {
    return [...this.heldLeases.values()].map((l) => structuredClone(l));
  }
  async updateLease(lease: Lease): Promise<void> {
    if (this.heldLeases.has(lease.leaseId)) this.heldLeases.set(lease.leaseId, structuredClone(lease));
  }
  async dropLease(leaseId: string): Promise<void> {
    this.heldLeases.delete(leaseId);
    this.checkpoints.delete(leaseId);
  }
  async unsentTaskIds(): Promise<Set<string>> {
    return new Set([...this.outboxEntries.values()].map((e) => e.submission.taskId));
  }
  async finish(submission: StoredSubmission, _expiresAt?: number): Promise<void> {
    this.outboxEntries.set(submission.leaseId, { leaseId: submission.leaseId, submission, attempts: 0, nextAttemptAt: 0 });
    this.heldLeases.delete(submission.leaseId);
    this.checkpoints.delete(submission.leaseId);
    this.completedTasks.add(submission.taskId);
  }
  async dueResults(now: number): Promise<OutboxEntry[]> {
    return [...this.outboxEntries.values()].filter((e) => e.nextAttemptAt <= now).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt);
  }
  async outboxSchedule(): Promise<{ count: number; nextAttemptAt: number | null }> {
    const times = [...this.outboxEntries.values()].map((e) => e.nextAttemptAt);
    return { count: times.length, nextAttemptAt: times.length ? Math.min(...times) : null };
  }
  async delivered(leaseId: string): Promise<void> {
    this.outboxEntries.delete(leaseId);
  }
  async retryLater(entry: OutboxEntry, nextAttemptAt: number): Promise<void> {
    this.outboxEntries.set(entry.leaseId, { ...entry, attempts: entry.attempts + 1, nextAttemptAt });
  }
  async checkpoint(leaseId: string) {
    return [...(this.checkpoints.get(leaseId) ?? new Map()).entries()].map(([path, data]) => ({ path, data }));
  }
  async saveCheckpoint(leaseId: string, file: { path: string; data: Uint8Array }): Promise<void> {
    if (!this.heldLeases.has(leaseId)) return;
    const files = this.checkpoints.get(leaseId) ?? new Map<string, Uint8Array>();
    files.set(file.path, file.data);
    this.checkpoints.set(leaseId, files);
  }
  async pruneCompleted(): Promise<void> {}
  async setRunning(running: boolean): Promise<void> {
    this.runningFlag = running;
  }
  async wasRunning(): Promise<boolean> {
    return this.runningFlag;
  }
  async setSettings(settings: Settings): Promise<void> {
    this.saved = { ...settings };
  }
  async savedSettings(): Promise<Partial<Settings> | null> {
    return this.saved;
  }
}

/** Prepares every lease as ready to run, unless told otherwise for a task id. */
export class FakePreparer implements Preparer {
  /** A task's own outcome; it may tell of its progress (bytes readied) as a long prepare would. */
  readonly outcomes = new Map<string, (onProgress?: (readied: number) => void) => Promise<Prepared>>();
  readonly prepared: string[] = [];
  readonly prefetched: string[] = [];

  async prepare(lease: Lease, onProgress?: (readied: number) => void): Promise<Prepared> {
    const m = lease.task.manifest;
    this.prepared.push(m.taskId);
    const special = this.outcomes.get(m.taskId);
    if (special) return special(onProgress);
    return { kind: 'ready', manifest: m, module: {} as WebAssembly.Module, moduleBytes: null, stdin: new Uint8Array(0), files: [], fetchMs: 1, compileMs: 1 };
  }

  async prefetch(lease: Lease): Promise<void> {
    this.prefetched.push(lease.task.manifest.taskId);
  }
}

/** A program result: exit 0, stdout as given (the worker hashes outputs; here, the outbox does). */
export function outcome(stdout = 'ok', runMs = 1000): WorkerOutcome {
  const bytes = new TextEncoder().encode(stdout);
  return {
    exitCode: 0,
    stdout: bytes,
    stderr: new Uint8Array(0),
    files: [],
    truncated: { stdout: false, stderr: false, files: false },
    error: null,
    runMs,
    work: 1000,
    blobs: { stdout: outputBlob(bytes), stderr: null, files: [] },
    digests: null,
  };
}

export { failedOutcome, EMPTY_SHA256 };

/**
 * A worker slot: a run waits until the test ends it (finish, fail) or it is cancelled. Its
 * accounting (the control block's figures) moves as the test says (compute()).
 */
export class FakeSlot implements TaskSlot {
  throttle: Throttle = { cpu: 1, paused: false };
  jobs: WorkerJob[] = [];
  private pending: { resolve: (o: WorkerOutcome) => void; reject: (e: Error) => void } | null = null;
  private accounting: RunProgress = blankProgress();
  private total = { work: 0, busyMs: 0 };

  get busy(): boolean {
    return this.pending !== null;
  }

  run(job: WorkerJob): Promise<WorkerOutcome> {
    this.jobs.push(job);
    this.accounting = blankProgress();
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  finish(result: WorkerOutcome = outcome()): void {
    const p = this.pending!;
    this.pending = null;
    this.total = { work: this.total.work + this.accounting.work, busyMs: this.total.busyMs + this.accounting.busyMs };
    p.resolve(result);
  }

  fail(error: Error): void {
    const p = this.pending!;
    this.pending = null;
    p.reject(error);
  }

  /**
   * The run computed for `ms` of wall time at `pace` probes per ms on its core, of which `waited`
   * ms it spent waiting for a core another program held; the core ran the speed check's unit in
   * `unitMs` (worker/core-speed.ts, checked every 2 s of computing: larger on a slower core).
   */
  compute(ms: number, pace: number, waited = 0, unitMs = 1): void {
    this.accounting = accountComputing(this.accounting, { busyMs: ms, waitedMs: waited, pace, unitMs });
  }

  setThrottle(throttle: Throttle): void {
    this.throttle = { ...throttle };
  }

  progress(): RunProgress {
    return this.pending ? { ...this.accounting } : blankProgress();
  }

  computed(): { work: number; busyMs: number } {
    const current = this.progress();
    return { work: this.total.work + current.work, busyMs: this.total.busyMs + current.busyMs };
  }

  pausedAt(): number {
    return 0;
  }

  cancel(reason: string): void {
    if (!this.pending) return;
    const p = this.pending;
    this.pending = null;
    p.reject(new RunCancelled(reason));
  }
}

/**
 * A run's accounting after it computed for `busyMs` at `pace` probes per ms on a core of its own,
 * `waitedMs` of it waiting for a core another program held, on a core that runs the speed check's
 * unit in `unitMs` (checked as often as worker/duty-cycle.ts does; larger on a slower core).
 */
export function accountComputing(p: RunProgress, { busyMs, waitedMs = 0, pace, unitMs = 1 }: { busyMs: number; waitedMs?: number; pace: number; unitMs?: number }): RunProgress {
  const steady = busyMs - waitedMs;
  const checks = busyMs / SPEED_CHECK_EVERY_MS;
  return {
    ...p,
    work: p.work + steady * pace,
    busyMs: p.busyMs + busyMs,
    steadyWork: p.steadyWork + steady * pace,
    steadyBusyMs: p.steadyBusyMs + steady,
    speedChecks: p.speedChecks + checks,
    speedCheckMs: p.speedCheckMs + checks * unitMs,
  };
}

function blankProgress(): RunProgress {
  return { work: 0, busyMs: 0, napMs: 0, pausedMs: 0, steadyWork: 0, steadyBusyMs: 0, speedChecks: 0, speedCheckMs: 0 };
}

/** A device identity with a fixed key (real ed25519 signatures). */
export async function testIdentity(): Promise<{ deviceId: string; publicKey: Uint8Array; sign(message: Uint8Array): Promise<Uint8Array> }> {
  const secret = new Uint8Array(32).fill(7);
  const publicKey = await ed.getPublicKeyAsync(secret);
  return { deviceId: 'd'.repeat(32), publicKey, sign: (message) => ed.signAsync(message, secret) };
}
