/**
 * The task server's domain rules as pure functions: which results a task takes, when a quorum is
 * reached and who is credited, when a task fails or is refused, which device may finish a task
 * alone. Both database engines run the same workflows (store.ts), which read rows, ask these
 * functions what follows, and write it: a rule is changed here once, never per engine.
 * See docs/protocol.md, "Validation".
 */
import type { DeviceCredit, LeasePhase, QuorumView, RefusalReason, RunErrorCode, TaskState, Validation } from '../../src/protocol/index.ts';
import { creditFor } from '../../src/protocol/index.ts';
import { StoreError } from './errors.ts';

/**
 * Valid results in a row, each corroborated by another device's agreeing result, that make a
 * device trusted: its word then counts (a failure report may end a task; under adaptive
 * replication it may finish a task alone). BOINC's habit, with BOINC's caveat: keys are free, so
 * trust is only as good as the quorums that granted it (docs/security.md, "The Sybil budget").
 */
export const TRUST_AFTER_VALID = 10;
/** How often a trusted device's task is replicated anyway, at random, under adaptive replication. */
export const SPOT_CHECK_RATE = 0.1;
/** A lease lasts the time to prepare and run its task plus this margin for posting (the server's default). */
export const LEASE_MARGIN_MS = 60_000;

/** Results a task with redundancy R takes before it is inconclusive: enough for R to agree despite R liars. */
export function resultLimit(redundancy: number): number {
  return Math.min(16, 2 * redundancy + 1);
}

export function isTrusted(consecutiveValid: number): boolean {
  return consecutiveValid >= TRUST_AFTER_VALID;
}

// ---- What a lease may hold, and for how long (issue #13.2, #16.4) ---------------------------------

/** Live leases a device that has proven nothing may hold. */
export const NEW_DEVICE_LEASES = 4;
/** The most live leases any device may hold (WorkRequest's `max`). */
export const MAX_DEVICE_LEASES = 64;
/** How far back a device's throughput is counted: its valid results received in this window. */
export const THROUGHPUT_WINDOW_MS = 10 * 60_000;

/**
 * How many live leases a device may hold: few for a device that has proven nothing, one more for
 * every two results of its own validated in the last THROUGHPUT_WINDOW_MS (about the work it gets
 * through in a few minutes, the client's buffer), at most MAX_DEVICE_LEASES. Keys are free, so this
 * bounds what one key squats, not what a thousand do (docs/security.md, "The Sybil budget").
 */
export function leaseAllowance(validRecently: number): number {
  return Math.min(MAX_DEVICE_LEASES, NEW_DEVICE_LEASES + Math.ceil(validRecently / 2));
}

/** How many more leases a device may be given now. */
export function leasesToGrant(asked: number, standing: { live: number; validRecently: number }): number {
  return Math.max(0, Math.min(asked, leaseAllowance(standing.validRecently) - standing.live));
}

/** The least time a device is given to ready any task: fetch, hash, rewrite and compile. */
export const PREPARE_BASE_MS = 15_000;
/** Bytes of module and inputs a slow device readies per ms: 250 kB/s, a slow phone on a slow link. */
export const PREPARE_BYTES_PER_MS = 250;
/** The longest one grant of time while a task runs: a long task shows progress at least this often. */
export const RUN_STEP_MS = 10 * 60_000;

/** A task's facts that decide its leases' terms. */
export interface LeaseSizing {
  wallTimeMs: number;
  /** The module's and the input blobs' sizes, bytes. */
  prepareBytes: number;
}

/**
 * Time to ready a task of this size on a slow device (issue #16: a 30 MB module takes minutes
 * there). `bytesPerMs`: the device's assumed pace, PREPARE_BYTES_PER_MS unless a server sets another.
 */
export function prepareAllowanceMs(prepareBytes: number, bytesPerMs = PREPARE_BYTES_PER_MS): number {
  return PREPARE_BASE_MS + Math.ceil(prepareBytes / bytesPerMs);
}

/**
 * A new lease's expiry and the end of its life. It first covers preparing the task and running it
 * (or the first RUN_STEP_MS of a longer run) plus the margin; renewals showing progress extend it,
 * never past its end: twice the time to prepare and run it (a device half as fast as assumed, a
 * run paused or cut short once), plus the margin. Past its expiry a lease is dead.
 */
export function leaseTerms(task: LeaseSizing, now: number, marginMs: number, bytesPerMs = PREPARE_BYTES_PER_MS): { expiresAt: number; endsAt: number } {
  const prepareMs = prepareAllowanceMs(task.prepareBytes, bytesPerMs);
  return {
    expiresAt: now + prepareMs + Math.min(task.wallTimeMs, RUN_STEP_MS) + marginMs,
    endsAt: now + 2 * (prepareMs + task.wallTimeMs) + marginMs,
  };
}

/** The most probes one ms of a run can execute: a probe per loop iteration, and no iteration takes under 0.1 ns. */
export const MAX_WORK_PER_MS = 10_000_000;

/** The most work a run within these limits can claim (item 3 of issue #13: `work: 1e308` was credited). */
export function maxWork(wallTimeMs: number): number {
  return wallTimeMs * MAX_WORK_PER_MS;
}

/** The most bytes a device can have readied for a task: each byte fetched, hashed and rewritten once. */
export function maxPrepareProgress(prepareBytes: number): number {
  return 3 * prepareBytes;
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
  /** No renewal extends it past this. */
  endsAt: number;
  status: 'live' | 'answered' | 'refused';
  solo: boolean;
  /** What its last renewal showed (null phase: never renewed). */
  phase: LeasePhase | null;
  progress: number;
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

/** A result's sizes, as the route measured them (decoded bytes). */
export interface OutputSizes {
  stdout: number;
  stderr: number;
  files: number;
}

/**
 * What a result may claim, from its task's signed limits (issue #13, items 3 and 4): outputs
 * within `outputBytes` each (the output files together), and no more work than its wall time
 * allows. A device that truncated honestly stays within them; the server stores nothing past them.
 * @throws StoreError 400 naming the field and the limit.
 */
export function checkClaims(task: { taskId: string; outputBytes: number; wallTimeMs: number }, sizes: OutputSizes, work: number | null): void {
  for (const [field, bytes, what] of [
    ['stdout', sizes.stdout, ''],
    ['stderr', sizes.stderr, ''],
    ['files', sizes.files, ' in all'],
  ] as const) {
    if (bytes > task.outputBytes) throw new StoreError(400, `${field}: ${bytes} bytes${what}, over task ${task.taskId}'s outputBytes of ${task.outputBytes}`);
  }
  if (work !== null && work > maxWork(task.wallTimeMs)) {
    throw new StoreError(400, `work: ${work} probes is more than task ${task.taskId}'s wall time of ${task.wallTimeMs} ms allows (at most ${maxWork(task.wallTimeMs)})`);
  }
}

// ---- Reports against a task (issue #13.1, #12.2) ------------------------------------------------

/**
 * What one device said about a task: a result with an output ('result'), a run that failed
 * ('error'), a refusal that speaks against the task ('refusal'), or a word about itself only
 * ('device': it could not prepare or run the task, or it refused it as a replay or for an engine
 * it cannot run).
 */
export type ReportKind = 'result' | 'error' | 'refusal' | 'device';

export interface Report {
  deviceId: string;
  kind: ReportKind;
  /** The device had earned trust when it reported. */
  trusted: boolean;
}

/** Refusals that say something about the device, not the task. */
const DEVICE_REFUSALS: readonly RefusalReason[] = ['replayed-task', 'unsupported-engine'];

export function resultKind(error: { code: RunErrorCode } | null): ReportKind {
  return error === null ? 'result' : error.code === 'device' ? 'device' : 'error';
}

export function refusalKind(reason: RefusalReason): ReportKind {
  return DEVICE_REFUSALS.includes(reason) ? 'device' : 'refusal';
}

/** Distinct trusted devices whose reports of one kind end a task: one device may be wrong about its own setup. */
export const TRUSTED_REPORTS_TO_END = 2;

/** Reports from devices that have not earned trust a task takes (re-issuing it each time) before it goes only to trusted devices. */
export function replicaCap(redundancy: number): number {
  return resultLimit(redundancy);
}

export type ReportDecision = { outcome: 'failed' | 'refused' } | { outcome: 'reissue'; trustedOnly: boolean };

/**
 * What a task's failure reports decide (docs/protocol.md, "Failures and refusals"). Must hold: no
 * number of devices that have not earned trust ends a task; their reports only re-issue it, up to
 * its replica cap, after which only trusted devices are leased it. A task is `failed` (or
 * `refused`) when TRUSTED_REPORTS_TO_END trusted devices say so, or, once the cap is reached, when
 * one trusted device does and failure reports (its and at least one other device's) outnumber
 * results: a majority of the distinct devices that answered.
 * Reports of kind 'device' never count against the task, only toward its cap.
 */
export function judgeReports(reports: readonly Report[], redundancy: number): ReportDecision {
  // One report per device: the last it made (a device is leased a task once, but older rows may hold more).
  const byDevice = new Map<string, Report>();
  for (const r of reports) byDevice.set(r.deviceId, r);
  const all = [...byDevice.values()];
  const count = (kind: ReportKind, trusted?: boolean) => all.filter((r) => r.kind === kind && (trusted === undefined || r.trusted === trusted)).length;
  const trustedErrors = count('error', true);
  const trustedRefusals = count('refusal', true);
  if (trustedErrors >= TRUSTED_REPORTS_TO_END) return { outcome: 'failed' };
  if (trustedRefusals >= TRUSTED_REPORTS_TO_END) return { outcome: 'refused' };
  const capReached = all.filter((r) => !r.trusted && r.kind !== 'result').length >= replicaCap(redundancy);
  const errors = count('error');
  const refusals = count('refusal');
  // The majority: failure reports (from at least one device besides the trusted one) outnumber results.
  const failures = errors + refusals;
  if (capReached && trustedErrors + trustedRefusals > 0 && failures >= TRUSTED_REPORTS_TO_END && failures > count('result')) {
    return { outcome: errors >= refusals ? 'failed' : 'refused' };
  }
  return { outcome: 'reissue', trustedOnly: capReached };
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

/**
 * What a judged result does to its device's run of valid results: an agreeing result corroborated
 * by another device's extends it; one no other device checked (a quorum of one, a solo lease, a
 * late answer to a finished task, whose output may have been copied) leaves it as it is; a
 * disagreeing one starts it over.
 */
export type RunEffect = 'extend' | 'keep' | 'reset';

/** How one pending result is judged once a quorum is found. */
export interface Verdict {
  leaseId: string;
  deviceId: string;
  agrees: boolean;
  /** Credit granted: the quorum's credit if it agrees, else 0. */
  credit: number;
  run: RunEffect;
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
    const corroborated = group.devices.size >= 2;
    const verdicts = byArrival.map((r): Verdict => {
      const agrees = r.digest === digest;
      return { leaseId: r.leaseId, deviceId: r.deviceId, agrees, credit: agrees ? credit : 0, run: !agrees ? 'reset' : corroborated ? 'extend' : 'keep' };
    });
    return { outcome: 'done', canonicalLeaseId: group.first.leaseId, credit, verdicts };
  }
  const devices = new Set(pending.map((r) => r.deviceId)).size;
  const limit = resultLimit(redundancy);
  if (devices >= limit) return { outcome: 'inconclusive' };
  // Enough further results for the largest group to reach the quorum, if they agree with it.
  const largest = ranked[0]?.[1].devices.size ?? 0;
  return { outcome: 'wait', needed: Math.min(limit, Math.max(redundancy, devices + (redundancy - largest))) };
}

/**
 * A late answer to a done task: judged against the canonical result, but it earns nothing, neither
 * credit nor trust: once a task is done its output may be known (issue #13.3), so agreeing with it
 * proves no work. A late answer that disagrees still starts the device's run over.
 */
export function lateVerdict(leaseId: string, deviceId: string, digest: string | null, canonical: { digest: string }): Verdict {
  const agrees = digest === canonical.digest;
  return { leaseId, deviceId, agrees, credit: 0, run: agrees ? 'keep' : 'reset' };
}

/**
 * Verdicts in the order their devices' rows are written: one order for every writer, so two
 * quorums judging the same devices at once cannot each wait for the other (a deadlock, on an
 * engine with row locks).
 */
export function inWriteOrder(verdicts: readonly Verdict[]): Verdict[] {
  return [...verdicts].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : a.leaseId < b.leaseId ? -1 : 1));
}

/**
 * More time for a lease that shows progress (issue #13.2): its new expiry. Must hold: an expired
 * lease stays dead; a renewal shows more progress than the last one (so a replayed renewal gets
 * nothing), within what the task allows; a lease goes from preparing to running once; and no
 * lease outlives its end (leaseTerms).
 * @throws StoreError 409 for a lease no longer live or expired, no progress, or one at its end;
 *   410 for a task no longer queued (its run may stop); 400 for progress past what the task allows.
 */
export function admitRenewal(
  lease: LeaseFacts,
  task: LeaseSizing & { state: TaskState },
  renewal: { phase: LeasePhase; progress: number },
  now: number,
  marginMs: number,
  bytesPerMs = PREPARE_BYTES_PER_MS,
): number {
  if (lease.status !== 'live') throw new StoreError(409, `lease ${lease.leaseId} is ${lease.status}`);
  if (lease.expiresAt <= now) throw new StoreError(409, `lease ${lease.leaseId} expired at ${new Date(lease.expiresAt).toISOString()}: an expired lease is not renewed`);
  if (task.state !== 'queued') throw new StoreError(410, `task ${lease.taskId} is ${task.state}`);
  const { phase, progress } = renewal;
  if (lease.phase === 'running' && phase === 'preparing') throw new StoreError(409, `lease ${lease.leaseId} is running: it does not go back to preparing`);
  const most = phase === 'preparing' ? maxPrepareProgress(task.prepareBytes) : maxWork(task.wallTimeMs);
  if (progress > most) {
    throw new StoreError(400, `progress: ${progress} is more than task ${lease.taskId} allows while ${phase} (at most ${most})`);
  }
  if (lease.phase === phase && progress <= lease.progress) {
    throw new StoreError(409, `lease ${lease.leaseId} shows no progress since its last renewal (${phase}, ${lease.progress}): renewal needs progress`);
  }
  if (lease.expiresAt >= lease.endsAt) {
    throw new StoreError(409, `lease ${lease.leaseId} has reached the end of its life at ${new Date(lease.endsAt).toISOString()} (twice the time to prepare and run its task)`);
  }
  const ahead = (phase === 'preparing' ? prepareAllowanceMs(task.prepareBytes, bytesPerMs) : 0) + Math.min(task.wallTimeMs, RUN_STEP_MS) + marginMs;
  // A renewal never shortens a lease, and never takes it past its end.
  return Math.max(lease.expiresAt, Math.min(now + ahead, lease.endsAt));
}

/**
 * What a device's refusal of a lease does (docs/protocol.md, "Refusals"): a lease takes one report,
 * kept under the lease's task ('record'); a live lease is also released and the refusal judged
 * with the task's other reports ('release': judgeReports). The identical report again is
 * 'duplicate'.
 * @throws StoreError 409 for a second, different report on one lease: what one lease can make the
 *   server store is bounded.
 */
export function admitRefusal(
  lease: LeaseFacts,
  report: { reason: string; detail: string },
  earlier: { reason: string; detail: string } | null,
): 'duplicate' | 'record' | 'release' {
  if (earlier) {
    if (earlier.reason === report.reason && earlier.detail === report.detail) return 'duplicate';
    throw new StoreError(409, `lease ${lease.leaseId} was already refused for another reason`);
  }
  return lease.status === 'live' ? 'release' : 'record';
}

/** The refusal's detail as kept: a tampered lease may have named another task than its own. */
export function refusalDetail(leaseTaskId: string, reportedTaskId: string, detail: string): string {
  return reportedTaskId === leaseTaskId ? detail : `the lease's envelope named task ${reportedTaskId}: ${detail}`;
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
