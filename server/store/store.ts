/**
 * The task server's state, whatever database holds it: batches and tasks, leases, results judged
 * by quorum, credit, refusals, the keyset and the blobs. Every method is one transaction: a
 * request refused half-way changes nothing, and two servers on one database never see each
 * other's half-done work. Each workflow reads what the rules need, asks the rules (rules.ts) what
 * follows, and writes it through the engine's queries (engine.ts), so SQLite and PostgreSQL run
 * the same logic.
 */
import { randomBytes } from 'node:crypto';
import type {
  BatchStatus,
  DeviceCredit,
  FailureReport,
  KeysetRefusalReport,
  LeaseRenewal,
  QuorumView,
  RefusalReason,
  ResultSubmission,
  SignedTask,
  TaskRefusalReport,
  TaskState,
} from '../../src/protocol/index.ts';
import { MAX_FAILURES_LISTED, TASK_STATES } from '../../src/protocol/index.ts';
import type { DeviceActivity, Engine, EngineInfo, KeysetRefusalRow, Queries, TaskEventRow, TaskFacts } from './engine.ts';
import { StoreError } from './errors.ts';
import * as rules from './rules.ts';

export interface StoredResult {
  leaseId: string;
  deviceId: string;
  exitCode: number | null;
  stdout: Buffer;
  stderr: Buffer;
  files: { path: string; data: string }[];
  truncated: { stdout: boolean; stderr: boolean; files: boolean };
  error: { code: string; message: string } | null;
  /** As the device reported them. */
  timings: ResultSubmission['timings'];
}

export interface TaskRow {
  taskId: string;
  envelope: SignedTask;
  state: TaskState;
  results: number;
  redundancy: number;
  /** Leases handed out for it, ever, and those live now. */
  leases: number;
  live: number;
  canonical: StoredResult | null;
  refusals: { reason: RefusalReason; detail: string; deviceId: string; at: number }[];
  lastError: { code: string; message: string } | null;
  quorum: QuorumView;
}

/** What the route has checked before the store takes a result: the device's signature, the output digest. */
export interface CheckedResult {
  submission: ResultSubmission;
  /** SHA-256 of the canonical JSON of the whole body: the same retry hashes the same. */
  bodyHash: string;
  /** outputDigest of the result, null when it has an error (errors are not compared). */
  outputDigest: string | null;
  /** The outputs' decoded sizes, bytes (the output files together), for the task's limits. */
  sizes: rules.OutputSizes;
}

export interface IssuedLease {
  leaseId: string;
  expiresAt: number;
  /** The signed task, as the JSON it was published as. */
  envelope: string;
}

export interface NewBatchRequest {
  batchId: string;
  name: string;
  /** SHA-256 of the canonical JSON of the tasks: the same batch published again has the same digest. */
  digest: string;
  adaptive: boolean;
  tasks: readonly SignedTask[];
}

export interface StoreOptions {
  /** Draws adaptive replication's spot checks; default Math.random. */
  random?: () => number;
  /** How long past the time to prepare and run its task a lease lasts; default rules.LEASE_MARGIN_MS. */
  leaseMarginMs?: number;
  /** The pace leases assume a device readies a task's bytes at, bytes per ms; default rules.PREPARE_BYTES_PER_MS. */
  prepareBytesPerMs?: number;
}

/** Keyset refusals kept, newest first (those from devices without trust go first). */
export const MAX_KEYSET_REFUSALS = 1000;

export type { DeviceActivity, EngineInfo, KeysetRefusalRow, TaskEventRow };

export class Store {
  private readonly random: () => number;
  private readonly leaseMarginMs: number;
  private readonly prepareBytesPerMs: number;

  constructor(
    private readonly engine: Engine,
    options: StoreOptions = {},
  ) {
    this.random = options.random ?? Math.random;
    this.leaseMarginMs = options.leaseMarginMs ?? rules.LEASE_MARGIN_MS;
    this.prepareBytesPerMs = options.prepareBytesPerMs ?? rules.PREPARE_BYTES_PER_MS;
  }

  get engineName(): Engine['name'] {
    return this.engine.name;
  }

  info(): Promise<EngineInfo> {
    return this.engine.info();
  }

  close(): Promise<void> {
    return this.engine.close();
  }

  // ---- Blobs ----------------------------------------------------------------------------------

  /** A blob's bytes as stored (clients verify them against the signed manifest), or null. */
  blob(sha256: string): Promise<Buffer | null> {
    return this.engine.blobs.read(sha256);
  }

  missingBlobs(hashes: readonly string[]): Promise<string[]> {
    return this.engine.blobs.missing(hashes);
  }

  /** Stores blobs the caller has checked against their hashes (a hash already stored is kept as it is). */
  writeBlobs(blobs: ReadonlyMap<string, Uint8Array>): Promise<void> {
    return this.engine.blobs.write(blobs);
  }

  // ---- Publishing -----------------------------------------------------------------------------

  /**
   * Stores a batch and its tasks, all or nothing. The same batch again (same digest) is
   * 'exists'. Its blobs must be stored first (writeBlobs): an orphan blob is harmless, a task
   * without its blob is not.
   * @throws StoreError 409 for a batch id taken by other tasks, or a task id another batch holds.
   */
  publishBatch(batch: NewBatchRequest): Promise<'created' | 'exists'> {
    return this.engine.write(async (q, now) => {
      const existing = await q.batchDigest(batch.batchId);
      if (existing !== null) {
        if (existing !== batch.digest) throw new StoreError(409, `batch ${batch.batchId} already exists with other tasks`);
        return 'exists';
      }
      const taken = await q.takenTaskIds(batch.tasks.map((t) => t.manifest.taskId));
      if (taken.length > 0) throw new StoreError(409, `task id ${taken[0]} already belongs to another batch`);
      await q.insertBatch(
        { batchId: batch.batchId, name: batch.name, digest: batch.digest, adaptive: batch.adaptive, createdAt: now },
        batch.tasks.map((task, seq) => {
          const m = task.manifest;
          const prepareBytes = m.module.size + (m.stdin?.size ?? 0) + m.files.reduce((sum, f) => sum + f.blob.size, 0);
          return {
            taskId: m.taskId, seq, envelope: JSON.stringify(task), engine: m.engine, redundancy: m.redundancy, expiresAt: m.expiresAt,
            wallTimeMs: m.limits.wallTimeMs, keyId: m.keyId, outputBytes: m.limits.outputBytes, prepareBytes,
          };
        }),
      );
      return 'created';
    });
  }

  // ---- The keyset -----------------------------------------------------------------------------

  /** The newest keyset stored, as the JSON it was stored as (the caller verifies it). */
  keyset(): Promise<{ version: number; body: string } | null> {
    return this.engine.read((q) => q.keyset());
  }

  /**
   * Stores a keyset the caller verified against the one it read (version `previousVersion`, 0
   * for none), and revokes the unfinished tasks of the keys it newly revokes: their results
   * would be void, and clients would refuse them.
   * @returns how many tasks were revoked.
   * @throws StoreError 409 if another keyset was stored since the caller read (verify again against it).
   */
  replaceKeyset(keyset: { version: number; body: string }, previousVersion: number, newlyRevoked: readonly string[]): Promise<number> {
    return this.engine.write(async (q, now) => {
      const current = (await q.keyset())?.version ?? 0;
      if (current !== previousVersion) throw new StoreError(409, `keyset version ${current} was stored meanwhile, not ${previousVersion}`);
      await q.insertKeyset(keyset.version, keyset.body, now);
      return newlyRevoked.length > 0 ? q.revokeTasks(newlyRevoked) : 0;
    });
  }

  // ---- Devices --------------------------------------------------------------------------------

  /**
   * Records a device's public key, or checks it is the one recorded. The route has checked that
   * the id is derived from the key, so an id names one key forever.
   * @throws StoreError 403 if the id is known with another key.
   */
  registerDevice(deviceId: string, publicKey: string): Promise<void> {
    return this.engine.write(async (q, now) => {
      const recorded = await q.upsertDevice(deviceId, publicKey, now);
      if (recorded !== publicKey) throw new StoreError(403, `device ${deviceId} is registered with another public key`);
    });
  }

  /** The device's public key (base64), or null for a device that never asked for work. */
  devicePublicKey(deviceId: string): Promise<string | null> {
    return this.engine.read((q) => q.devicePublicKey(deviceId));
  }

  /** A device's credit and standing, or null for an unknown device. */
  deviceCredit(deviceId: string): Promise<DeviceCredit | null> {
    return this.engine.read(async (q) => {
      const run = await q.deviceRun(deviceId);
      return run === null ? null : rules.deviceCredit(deviceId, run, await q.creditRows(deviceId));
    });
  }

  // ---- Leases ---------------------------------------------------------------------------------

  /**
   * Hands out up to `max` leases (see docs/protocol.md, POST /api/work), no more than the device's
   * allowance (rules.leaseAllowance), and says which keyset version is current. Under adaptive
   * replication a trusted device may get a task no one else holds as a solo lease: its result
   * alone decides, unless a spot check replicates it as usual.
   */
  lease(deviceId: string, engines: readonly string[], max: number): Promise<{ leases: IssuedLease[]; keysetVersion: number }> {
    return this.engine.write(async (q, now) => {
      await q.expireTasks(now);
      const context = await q.leaseContext(deviceId, now, now - rules.THROUGHPUT_WINDOW_MS);
      const grant = rules.leasesToGrant(max, context);
      const leases: IssuedLease[] = [];
      if (grant === 0) return { leases, keysetVersion: context.keysetVersion };
      const trusted = rules.isTrusted(context.consecutiveValid);
      for (const task of await q.leaseCandidates(deviceId, engines, grant, now, trusted)) {
        const leaseId = randomBytes(12).toString('base64url');
        const { expiresAt, endsAt } = rules.leaseTerms(task, now, this.leaseMarginMs, this.prepareBytesPerMs);
        const solo = rules.isSoloLease(task, context.consecutiveValid, this.random);
        await q.insertLease({ leaseId, taskId: task.taskId, deviceId, issuedAt: now, expiresAt, endsAt, solo });
        leases.push({ leaseId, expiresAt, envelope: task.envelope });
      }
      return { leases, keysetVersion: context.keysetVersion };
    });
  }

  /**
   * More time for a live, unexpired lease whose task still needs it, when the renewal shows
   * progress (rules.admitRenewal); returns the new expiry. The route has verified the device's
   * signature over the renewal.
   */
  renewLease(renewal: LeaseRenewal): Promise<number> {
    return this.engine.write(async (q, now) => {
      const task = await q.lockTask(renewal.taskId);
      const lease = rules.answerableLease(await q.lease(renewal.leaseId), renewal.leaseId, renewal.taskId, renewal.deviceId);
      const expiresAt = rules.admitRenewal(lease, task!, renewal, now, this.leaseMarginMs, this.prepareBytesPerMs);
      await q.renewLease(renewal.leaseId, expiresAt, renewal.phase, renewal.progress);
      return expiresAt;
    });
  }

  // ---- Results and validation -----------------------------------------------------------------

  /**
   * Stores a result once and judges it (docs/protocol.md, "Validation"); the identical body again
   * is a no-op ('duplicate'). The route has verified the device's signature over it.
   *
   * Must hold: a task is done only when its quorum agrees (rules.decideQuorum); credit goes only
   * to results that agree with the canonical one; the task is locked first, so two results for
   * one task, on two servers at once, are judged one after the other.
   */
  submitResult(checked: CheckedResult): Promise<'accepted' | 'duplicate'> {
    const { submission: result, bodyHash, outputDigest } = checked;
    return this.engine.write(async (q, now) => {
      const task = await q.lockTask(result.taskId);
      const lease = rules.answerableLease(await q.lease(result.leaseId), result.leaseId, result.taskId, result.deviceId);
      if (rules.admitResult(lease, await q.resultBodyHash(result.leaseId), bodyHash, task, now) === 'duplicate') return 'duplicate';
      rules.checkClaims(task!, checked.sizes, result.work);
      const trusted = rules.isTrusted((await q.deviceRun(result.deviceId)) ?? 0);
      const failed = result.error !== null;
      const digest = failed ? null : outputDigest;
      await q.insertResult({
        leaseId: result.leaseId,
        taskId: result.taskId,
        deviceId: result.deviceId,
        bodyHash,
        exitCode: result.exitCode,
        stdout: Buffer.from(result.stdout, 'base64'),
        stderr: Buffer.from(result.stderr, 'base64'),
        files: JSON.stringify(result.files),
        truncated: JSON.stringify(result.truncated),
        timings: JSON.stringify(result.timings),
        errorCode: result.error?.code ?? null,
        errorMessage: result.error?.message ?? null,
        receivedAt: now,
        work: result.work,
        outputDigest: digest,
        signature: result.signature,
        ...rules.arrivalValidation(failed, result.work),
        trusted,
      });
      await q.setLeaseStatus(result.leaseId, 'answered');
      await q.touchDevice(result.deviceId, now);
      const state = task!.state;
      if (failed) {
        if (state === 'queued') await this.judgeReports(q, task!);
        return 'accepted';
      }
      if (state === 'done') {
        const verdict = rules.lateVerdict(result.leaseId, result.deviceId, digest, await q.resultVerdict(task!.canonicalLeaseId!));
        await q.judge(verdict.leaseId, verdict.deviceId, verdict.agrees, verdict.credit, verdict.run);
        return 'accepted';
      }
      if (state !== 'queued') {
        await q.voidResult(result.leaseId);
        return 'accepted';
      }
      await q.countResult(result.taskId);
      const decision = rules.decideQuorum(await q.pendingResults(result.taskId), task!.redundancy, lease.solo ? digest : null);
      if (decision.outcome === 'done') {
        for (const v of rules.inWriteOrder(decision.verdicts)) await q.judge(v.leaseId, v.deviceId, v.agrees, v.credit, v.run);
        await q.finishTask(result.taskId, decision.canonicalLeaseId);
      } else if (decision.outcome === 'inconclusive') {
        await q.endTask(result.taskId, 'inconclusive');
      } else if (decision.needed > task!.needed) {
        await q.raiseNeeded(result.taskId, decision.needed);
      }
      return 'accepted';
    });
  }

  /**
   * A queued task's failure reports, judged (rules.judgeReports): it fails, is refused, or is
   * re-issued, held for trusted devices once its replica cap is reached. Under the task's lock.
   */
  private async judgeReports(q: Queries, task: TaskFacts): Promise<void> {
    const decision = rules.judgeReports(await q.taskReports(task.taskId), task.redundancy);
    if (decision.outcome !== 'reissue') await q.endTask(task.taskId, decision.outcome);
    else if (decision.trustedOnly && !task.trustedOnly) await q.holdForTrusted(task.taskId);
  }

  // ---- Refusals -------------------------------------------------------------------------------

  /**
   * Records a device's refusal of a task it was leased (rules.admitRefusal says what it does); a
   * refusal of a live lease releases it and is judged with the task's other reports
   * (rules.judgeReports). The identical report again is a no-op ('duplicate'), so clients may
   * retry. The route has verified the device's signature over it.
   */
  recordRefusal(report: TaskRefusalReport): Promise<'recorded' | 'duplicate'> {
    return this.engine.write(async (q, now) => {
      const first = rules.leaseOf(await q.lease(report.leaseId), report.leaseId, report.deviceId);
      const task = await q.lockTask(first.taskId);
      const lease = (await q.lease(report.leaseId))!; // again, under the task's lock: its status may have moved
      const detail = rules.refusalDetail(lease.taskId, report.taskId, report.detail);
      const action = rules.admitRefusal(lease, { reason: report.reason, detail }, await q.leaseRefusal(report.leaseId));
      if (action === 'duplicate') return 'duplicate';
      const trusted = rules.isTrusted((await q.deviceRun(report.deviceId)) ?? 0);
      await q.insertRefusal({ taskId: lease.taskId, leaseId: report.leaseId, deviceId: report.deviceId, reason: report.reason, detail, at: now, trusted });
      if (action === 'record') return 'recorded';
      await q.setLeaseStatus(report.leaseId, 'refused');
      if (task!.state === 'queued') await this.judgeReports(q, task!);
      return 'recorded';
    });
  }

  /**
   * Records a device's refusal of a keyset it was served: one per device and keyset version (the
   * identical report again is a no-op), at most MAX_KEYSET_REFUSALS kept. The route has verified
   * the device's signature, so the device has a key on record.
   * @throws StoreError 409 for a second, different report on one version.
   */
  recordKeysetRefusal(report: KeysetRefusalReport): Promise<'recorded' | 'duplicate'> {
    return this.engine.write(async (q, now) => {
      const trusted = rules.isTrusted((await q.deviceRun(report.deviceId)) ?? 0);
      const earlier = await q.insertKeysetRefusal({ deviceId: report.deviceId, version: report.version, reason: report.reason, detail: report.detail, at: now, trusted });
      if (earlier) {
        if (earlier.reason === report.reason && earlier.detail === report.detail) return 'duplicate';
        throw new StoreError(409, `device ${report.deviceId} already refused keyset version ${report.version} for another reason`);
      }
      await q.trimKeysetRefusals(MAX_KEYSET_REFUSALS);
      return 'recorded';
    });
  }

  keysetRefusals(): Promise<KeysetRefusalRow[]> {
    return this.engine.read((q) => q.keysetRefusals());
  }

  // ---- Reading ----------------------------------------------------------------------------------

  /**
   * Devices seen lately, for the status page: those that leased, answered or refused a task in
   * the last `windowMs`, or hold a lease still live (a long task renews its lease, which leaves
   * no row of its own). Most recent first; at most `limit`.
   */
  activeDevices(windowMs: number, limit: number): Promise<DeviceActivity[]> {
    return this.engine.read((q, now) => q.activeDevices(now - windowMs, now, limit));
  }

  /**
   * Cancels a batch (docs/protocol.md, "Cancelling"): its queued tasks become `cancelled` and
   * leave the queue; their pending results are void. Devices holding leases on them are told when
   * they next renew (410) and their results are kept, void. Finished tasks keep their results.
   * @returns how many tasks it cancelled, or null for no such batch.
   */
  cancelBatch(batchId: string): Promise<number | null> {
    return this.engine.write(async (q) => ((await q.batch(batchId)) ? q.cancelTasks(batchId) : null));
  }

  /** Ends every queued task whose manifest expired (the expiry sweep); returns how many. */
  sweepExpired(): Promise<number> {
    return this.engine.write((q, now) => q.expireTasks(now));
  }

  /** The batch's task events after `afterSeq` (see Queries.taskEvents), those committed since last asked numbered first. */
  taskEvents(batchId: string, afterSeq: number, limit: number): Promise<TaskEventRow[]> {
    return this.engine.write(async (q) => {
      await q.sequenceEvents();
      return q.taskEvents(batchId, afterSeq, limit);
    });
  }

  async batchIds(): Promise<string[]> {
    return (await this.engine.read((q) => q.batches())).map((b) => b.batchId);
  }

  batchStatus(batchId: string): Promise<BatchStatus | null> {
    return this.engine.read((q, now) => this.readBatchStatus(q, batchId, now));
  }

  /** Every batch's status, oldest first, as of one moment. */
  batchStatuses(): Promise<BatchStatus[]> {
    return this.engine.read(async (q, now) => {
      const statuses: BatchStatus[] = [];
      for (const batch of await q.batches()) statuses.push((await this.readBatchStatus(q, batch.batchId, now))!);
      return statuses;
    });
  }

  private async readBatchStatus(q: Parameters<Parameters<Engine['read']>[0]>[0], batchId: string, now: number): Promise<BatchStatus | null> {
    const batch = await q.batch(batchId);
    if (!batch) return null;
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const row of await q.batchCounts(batchId, now)) counts[rules.visibleState(row.state, row)] += row.n;
    const refusals = (await q.batchRefusals(batchId)).map(({ trusted, ...r }) => ({ ...r, reason: r.reason as RefusalReason, newDevice: !trusted }));
    const failures: FailureReport[] = await q.batchFailures(batchId, MAX_FAILURES_LISTED);
    return {
      batchId: batch.batchId, name: batch.name, createdAt: batch.createdAt, counts, refusals, failures, reports: await q.batchReports(batchId),
      adaptive: batch.adaptive, quorum: await q.batchQuorum(batchId),
    };
  }

  /** A batch's tasks in order (with `taskIds`, only those), each with its canonical result, refusals, last error and quorum. */
  tasks(batchId: string, taskIds?: readonly string[]): Promise<TaskRow[]> {
    return this.engine.read(async (q, now) => {
      const rows = await q.batchTasks(batchId, now, taskIds);
      const results = byTask(await q.batchResults(batchId, taskIds));
      const refusals = byTask(await q.batchRefusals(batchId, taskIds));
      const canonical = new Map((await q.canonicalResults(batchId, taskIds)).map((r) => [r.taskId, r]));
      return rows.map((row): TaskRow => {
        const judged = results.get(row.taskId) ?? [];
        const lastError = judged.findLast((r) => r.errorCode !== null);
        const best = canonical.get(row.taskId);
        return {
          taskId: row.taskId,
          envelope: JSON.parse(row.envelope) as SignedTask,
          state: rules.visibleState(row.state, { expired: row.expiresAt <= now, leased: row.live > 0, nonzeroExit: best !== undefined && best.exitCode !== 0 }),
          results: row.results,
          redundancy: row.redundancy,
          leases: row.leases,
          live: row.live,
          canonical: best
            ? {
                leaseId: best.leaseId,
                deviceId: best.deviceId,
                exitCode: best.exitCode,
                stdout: best.stdout,
                stderr: best.stderr,
                files: JSON.parse(best.files),
                truncated: JSON.parse(best.truncated),
                error: null,
                timings: JSON.parse(best.timings),
              }
            : null,
          refusals: (refusals.get(row.taskId) ?? []).map(({ reason, detail, deviceId, at }) => ({ reason: reason as RefusalReason, detail, deviceId, at })),
          lastError: lastError ? { code: lastError.errorCode!, message: lastError.errorMessage! } : null,
          quorum: rules.quorumView(
            row.redundancy,
            row.solo > 0,
            judged.map(({ deviceId, digest, validation, credit, at }) => ({ deviceId, digest, validation, credit, at })),
          ),
        };
      });
    });
  }
}

function byTask<R extends { taskId: string }>(rows: readonly R[]): Map<string, R[]> {
  const groups = new Map<string, R[]>();
  for (const row of rows) {
    const group = groups.get(row.taskId);
    if (group) group.push(row);
    else groups.set(row.taskId, [row]);
  }
  return groups;
}
