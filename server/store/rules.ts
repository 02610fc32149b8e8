/**
 * The task server's domain rules as pure functions: which results a task takes, when a quorum is
 * reached and who is credited, when a task fails or is refused, which device may finish a task
 * alone. Both database engines run the same workflows (store.ts), which read rows, ask these
 * functions what follows, and write it: a rule is changed here once, never per engine.
 * See docs/protocol.md, "Validation".
 */
import type { DeviceCredit, QuorumView, TaskState, Validation } from '../../src/protocol/index.ts';
import { creditFor } from '../../src/protocol/index.ts';
import { StoreError } from './errors.ts';

/** A task erroring this many times is `failed`; refused this many times, `refused`. */
export const MAX_ERRORS = 3;
export const MAX_REFUSALS = 3;
/** Valid results in a row that make a device trusted: checked less under adaptive replication (BOINC's habit). */
export const TRUST_AFTER_VALID = 10;
/** How often a trusted device's task is replicated anyway, at random, under adaptive replication. */
export const SPOT_CHECK_RATE = 0.1;
/** A lease lasts the task's wall time plus this margin for fetching and posting (the server's default). */
export const LEASE_MARGIN_MS = 60_000;

/** Results a task with redundancy R takes before it is inconclusive: enough for R to agree despite R liars. */
export function resultLimit(redundancy: number): number {
  return Math.min(16, 2 * redundancy + 1);
}

export function leaseExpiry(now: number, wallTimeMs: number, marginMs: number): number {
  return now + wallTimeMs + marginMs;
}

export function isTrusted(consecutiveValid: number): boolean {
  return consecutiveValid >= TRUST_AFTER_VALID;
}

/**
 * Adaptive replication: a trusted device may take a task of an adaptive batch that no one else
 * has answered or holds, and finish it alone, unless this lease is drawn for a spot check.
 */
export function isSoloLease(task: { adaptive: boolean; results: number; live: number }, consecutiveValid: number, draw: () => number): boolean {
  return task.adaptive && isTrusted(consecutiveValid) && task.results === 0 && task.live === 0 && draw() >= SPOT_CHECK_RATE;
}

/** A lease as the workflows see it. */
export interface LeaseFacts {
  leaseId: string;
  taskId: string;
  deviceId: string;
  expiresAt: number;
  status: 'live' | 'answered' | 'refused';
  solo: boolean;
}

/** @throws StoreError 404 for no lease, 403 for another device's. */
export function leaseOf<L extends LeaseFacts>(lease: L | null, leaseId: string, deviceId: string): L {
  if (!lease) throw new StoreError(404, `no lease ${leaseId}`);
  if (lease.deviceId !== deviceId) throw new StoreError(403, `lease ${leaseId} belongs to another device`);
  return lease;
}

/** The lease a device may answer or renew. @throws StoreError 404, 403 (another device's, or another task's). */
export function answerableLease<L extends LeaseFacts>(lease: L | null, leaseId: string, taskId: string, deviceId: string): L {
  const found = leaseOf(lease, leaseId, deviceId);
  if (found.taskId !== taskId) throw new StoreError(403, `lease ${leaseId} is for another task, not ${taskId}`);
  return found;
}

/**
 * Whether a result for this lease is taken: 'duplicate' for the identical body again, 'take'
 * for a first answer.
 * @throws StoreError 409 for a second, different answer or an answer to a refused lease; 404 for
 *   no task; 410 for an expired lease whose task needs no more results.
 */
export function admitResult(
  lease: LeaseFacts,
  existingBodyHash: string | null,
  bodyHash: string,
  task: { state: TaskState } | null,
  now: number,
): 'duplicate' | 'take' {
  if (existingBodyHash !== null) {
    if (existingBodyHash === bodyHash) return 'duplicate';
    throw new StoreError(409, `lease ${lease.leaseId} already has a different result`);
  }
  if (lease.status === 'refused') throw new StoreError(409, `lease ${lease.leaseId} was refused by this device`);
  if (!task) throw new StoreError(404, `no task ${lease.taskId}`);
  // A late result is still welcome while the task needs results: the device paid for it.
  if (lease.expiresAt <= now && task.state !== 'queued') {
    throw new StoreError(410, `lease ${lease.leaseId} expired at ${new Date(lease.expiresAt).toISOString()} and task ${lease.taskId} is ${task.state}`);
  }
  return 'take';
}

/** What a result is stored as on arrival: an error is judged at once; an output awaits a quorum, claiming its credit. */
export function arrivalValidation(failed: boolean, work: number | null): { validation: Validation; credit: number } {
  return failed ? { validation: 'error', credit: 0 } : { validation: 'pending', credit: creditFor(work) };
}

/** After one more error on a task still queued: its error count, and whether it has now failed. */
export function afterError(errors: number): { errors: number; failed: boolean } {
  return { errors: errors + 1, failed: errors + 1 >= MAX_ERRORS };
}

/** A result still awaiting a quorum (validation 'pending', with an output digest). */
export interface PendingResult {
  leaseId: string;
  deviceId: string;
  digest: string;
  work: number | null;
  /** The order results arrived in: the first of the winning group is canonical. */
  receivedAt: number;
  seq: number;
}

/** How one pending result is judged once a quorum is found. */
export interface Verdict {
  leaseId: string;
  deviceId: string;
  agrees: boolean;
  /** Credit granted: the quorum's credit if it agrees, else 0. */
  credit: number;
}

export type QuorumDecision =
  | { outcome: 'done'; canonicalLeaseId: string; credit: number; verdicts: Verdict[] }
  | { outcome: 'inconclusive' }
  /** Not yet: the task wants this many successful results in all (never fewer than before). */
  | { outcome: 'wait'; needed: number };

/**
 * Looks for a quorum among a task's pending results (docs/protocol.md, "Validation").
 *
 * Must hold: a task is done only when `redundancy` distinct devices share one output digest, or
 * a trusted device's solo result is there (a quorum of one); credit is the least work any agreeing
 * device claimed, so claiming more earns nothing; only agreeing results are credited.
 * @param soloDigest the digest of a trusted device's solo result, which is a quorum of one
 */
export function decideQuorum(pending: readonly PendingResult[], redundancy: number, soloDigest: string | null): QuorumDecision {
  const byArrival = [...pending].sort((a, b) => a.receivedAt - b.receivedAt || a.seq - b.seq);
  const groups = new Map<string, { devices: Set<string>; first: PendingResult; work: number | null; counted: boolean }>();
  for (const r of byArrival) {
    let group = groups.get(r.digest);
    if (!group) groups.set(r.digest, (group = { devices: new Set(), first: r, work: null, counted: false }));
    group.devices.add(r.deviceId);
    if (r.work !== null) {
      group.work = group.counted ? Math.min(group.work!, r.work) : r.work;
      group.counted = true;
    }
  }
  // Largest group first; of equal groups, the one whose first result came first.
  const ranked = [...groups.entries()].sort(([, a], [, b]) => b.devices.size - a.devices.size || byArrival.indexOf(a.first) - byArrival.indexOf(b.first));
  const winner = soloDigest !== null ? ranked.find(([digest]) => digest === soloDigest) : ranked.find(([, g]) => g.devices.size >= redundancy);
  if (winner) {
    const [digest, group] = winner;
    const credit = creditFor(group.counted ? group.work : null);
    const verdicts = byArrival.map((r) => ({ leaseId: r.leaseId, deviceId: r.deviceId, agrees: r.digest === digest, credit: r.digest === digest ? credit : 0 }));
    return { outcome: 'done', canonicalLeaseId: group.first.leaseId, credit, verdicts };
  }
  const devices = new Set(pending.map((r) => r.deviceId)).size;
  const limit = resultLimit(redundancy);
  if (devices >= limit) return { outcome: 'inconclusive' };
  // Enough further results for the largest group to reach the quorum, if they agree with it.
  const largest = ranked[0]?.[1].devices.size ?? 0;
  return { outcome: 'wait', needed: Math.min(limit, Math.max(redundancy, devices + (redundancy - largest))) };
}

/** A late answer to a done task: judged against the canonical result, credited as it was if it agrees. */
export function lateVerdict(leaseId: string, deviceId: string, digest: string | null, canonical: { digest: string; credit: number }): Verdict {
  const agrees = digest === canonical.digest;
  return { leaseId, deviceId, agrees, credit: agrees ? canonical.credit : 0 };
}

/**
 * Verdicts in the order their devices' rows are written: one order for every writer, so two
 * quorums judging the same devices at once cannot each wait for the other (a deadlock, on an
 * engine with row locks).
 */
export function inWriteOrder(verdicts: readonly Verdict[]): Verdict[] {
  return [...verdicts].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : a.leaseId < b.leaseId ? -1 : 1));
}

/** More time for a lease. @throws StoreError 409 for a lease no longer live, 410 for a task no longer queued. */
export function admitRenewal(lease: LeaseFacts, task: { state: TaskState; wallTimeMs: number }, now: number, marginMs: number): number {
  if (lease.status !== 'live') throw new StoreError(409, `lease ${lease.leaseId} is ${lease.status}`);
  if (task.state !== 'queued') throw new StoreError(410, `task ${lease.taskId} is ${task.state}`);
  return leaseExpiry(now, task.wallTimeMs, marginMs);
}

/**
 * What a device's refusal of a lease does (docs/protocol.md, "Refusals"): every report from the
 * lease's device is kept, under the lease's task ('record'); a live lease is also released
 * ('release'), and counted against the task ('count') unless it is a replay, which says nothing
 * against the task. The identical report again is 'duplicate'.
 * @throws StoreError 409 for a second, different refusal of one lease.
 */
export function admitRefusal(lease: LeaseFacts, reason: string, alreadyReported: boolean): 'duplicate' | 'record' | 'release' | 'count' {
  if (alreadyReported) return 'duplicate';
  // A device refuses a lease once; a second, different word on it is a conflict.
  if (lease.status === 'refused') throw new StoreError(409, `lease ${lease.leaseId} was already refused for another reason`);
  if (lease.status !== 'live') return 'record';
  return reason === 'replayed-task' ? 'release' : 'count';
}

/** The refusal's detail as kept: a tampered lease may have named another task than its own. */
export function refusalDetail(leaseTaskId: string, reportedTaskId: string, detail: string): string {
  return reportedTaskId === leaseTaskId ? detail : `the lease's envelope named task ${reportedTaskId}: ${detail}`;
}

export function isRefusedEnough(refusals: number): boolean {
  return refusals >= MAX_REFUSALS;
}

/**
 * The state a reader sees: a queued task past its expiry is expired, one with a live lease is
 * running, and a done task whose agreed result exited other than 0 is `exit-nonzero` (the quorum
 * agreed, but the program did not succeed).
 */
export function visibleState(state: TaskState, now: { expired: boolean; leased: boolean; nonzeroExit?: boolean }): TaskState {
  if (state === 'queued' && now.expired) return 'expired';
  if (state === 'queued' && now.leased) return 'running';
  if (state === 'done' && now.nonzeroExit) return 'exit-nonzero';
  return state;
}

/** A device's results, counted and credited by validation (one row per validation that occurs). */
export interface CreditRow {
  validation: Validation;
  n: number;
  credit: number;
}

export function deviceCredit(deviceId: string, consecutiveValid: number, rows: readonly CreditRow[]): DeviceCredit {
  const of = (validation: Validation) => rows.find((r) => r.validation === validation) ?? { n: 0, credit: 0 };
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return {
    deviceId,
    validated: round(of('valid').credit),
    pending: round(of('pending').credit),
    results: { valid: of('valid').n, invalid: of('invalid').n, pending: of('pending').n, error: of('error').n },
    consecutiveValid,
    trusted: isTrusted(consecutiveValid),
  };
}

/** How a task stands in validation, from its results in the order they arrived. */
export function quorumView(redundancy: number, solo: boolean, results: QuorumView['results']): QuorumView {
  const agreeing = new Map<string, Set<string>>();
  for (const r of results) if (r.digest && r.validation !== 'invalid') agreeing.set(r.digest, (agreeing.get(r.digest) ?? new Set()).add(r.deviceId));
  return {
    needed: solo ? 1 : redundancy,
    limit: resultLimit(redundancy),
    agreeing: Math.max(0, ...[...agreeing.values()].map((d) => d.size)),
    outputs: new Set(results.filter((r) => r.digest).map((r) => r.digest)).size,
    results,
  };
}
