/**
 * The project owner's status page (GET /status): batches and their progress, active devices,
 * refusals with their reasons, and the expiry sweep. A browser without the owner's credential gets
 * the server's totals only (routes/status.ts says why).
 *
 * Rendered here, on the server, as plain HTML: the data is already here, it is a few tables, and
 * it then needs no build, no client framework, and no second copy of the rendering in the browser;
 * it also reads with scripts off. Escaping is in one place (html.ts). A few lines of script
 * refresh it: they fetch this same page and swap in its live part, so the rendering stays here;
 * the reader may pause that (a meta refresh could not be paused, and would reload the whole page).
 *
 * Each table is a list of columns (header and cell): a new column is one more entry.
 */
import {
  KEYSET_REFUSAL_TEXT,
  REFUSAL_TEXT,
  TASK_STATES,
  type BatchStatus,
  type DeviceCredit,
  type FailureReport,
  type KeysetRefusalReason,
  type TaskState,
} from '../src/protocol/index.ts';
import { html, raw, type Html } from './html.ts';
import { TRUST_AFTER_VALID } from './store/rules.ts';
import type { DeviceActivity } from './store/index.ts';
import type { SweepReport } from './sweep.ts';

export interface Column<Row> {
  header: string;
  /** Right-aligned, tabular figures. */
  numeric?: boolean;
  cell(row: Row, page: StatusPageData): Html | string | number;
}

/** An active device, with its standing: validated credit and whether it is trusted (adaptive replication). */
export type DeviceRow = DeviceActivity & { credit: DeviceCredit | null };

export interface KeysetRefusalRow {
  deviceId: string;
  version: number;
  reason: string;
  detail: string;
  at: number;
  /** The device had not earned trust when it reported. */
  newDevice: boolean;
}

export interface StatusPageData {
  now: number;
  /** The reader holds the owner's credential: batches, devices and refusals are shown. */
  owner: boolean;
  /** Why a link's token was refused, when it was. */
  tokenRefused?: string | null;
  batches: BatchStatus[];
  /** The active devices shown (none to a reader who is not the owner). */
  devices: DeviceRow[];
  /** How many devices were active (or more, see moreDevices). */
  activeDeviceCount: number;
  /** Keysets devices refused (not signed by a pinned root, tampered with, rolled back): a sign of trouble between server and donors. */
  keysetRefusals: KeysetRefusalRow[];
  /** More devices were active than `devices` holds. */
  moreDevices: boolean;
  /** How far back a device counts as active, ms. */
  activeWindowMs: number;
  refreshSeconds: number;
  sweep: SweepReport;
}

interface RefusalRow {
  batch: BatchStatus;
  refusal: BatchStatus['refusals'][number];
}

interface FailureRow {
  batch: BatchStatus;
  failure: FailureReport;
}

/** The newest refusals shown; every one is in `dewgrid status BATCH`. */
export const MAX_REFUSALS_SHOWN = 50;

export const STATE_WORDS: Record<TaskState, string> = {
  queued: 'Queued',
  running: 'Running',
  done: 'Done',
  'exit-nonzero': 'Done, exit ≠ 0',
  failed: 'Failed',
  refused: 'Refused',
  expired: 'Expired',
  inconclusive: 'Inconclusive',
  revoked: 'Revoked',
  cancelled: 'Cancelled',
};
/** The states a task ends in: the bar's "finished". */
const FINISHED: TaskState[] = ['done', 'exit-nonzero', 'failed', 'refused', 'expired', 'inconclusive', 'revoked', 'cancelled'];

const total = (b: BatchStatus) => TASK_STATES.reduce((sum, s) => sum + (b.counts[s] ?? 0), 0);

export const BATCH_COLUMNS: Column<BatchStatus>[] = [
  { header: 'Batch', cell: (b) => html`<strong>${b.name}</strong><br /><code>${b.batchId}</code>` },
  { header: 'Published', cell: (b, page) => when(b.createdAt, page.now) },
  { header: 'Progress', cell: (b) => progressBar(b) },
  { header: 'Tasks', numeric: true, cell: (b) => total(b) },
  // One cell for the states (only those with tasks), so the table fits a desktop whatever states there are.
  { header: 'By state', cell: (b) => stateList(b.counts) },
  { header: 'Quorum', cell: (b) => quorumSummary(b) },
  { header: 'Refusals', cell: (b) => refusalSummary(b) },
  { header: 'Reports', cell: (b) => reportSummary(b) },
];

export const DEVICE_COLUMNS: Column<DeviceRow>[] = [
  { header: 'Device', cell: (d) => html`<code class="id">${d.deviceId}</code>` },
  { header: 'Last seen', cell: (d, page) => when(d.lastSeen, page.now) },
  { header: 'Leases', numeric: true, cell: (d) => d.leases },
  { header: 'Results', numeric: true, cell: (d) => d.results },
  { header: 'Errors', numeric: true, cell: (d) => d.errors },
  { header: 'Refusals', numeric: true, cell: (d) => d.refusals },
  { header: 'Running now', numeric: true, cell: (d) => d.live },
  { header: 'Credit', numeric: true, cell: (d) => d.credit?.validated ?? 0 },
  { header: 'Valid / invalid', numeric: true, cell: (d) => (d.credit ? `${d.credit.results.valid} / ${d.credit.results.invalid}` : '0 / 0') },
  // Trust is earned by results another device agreed with (server/store/rules.ts, TRUST_AFTER_VALID).
  { header: 'Trusted', cell: (d) => (d.credit?.trusted ? 'yes' : `no (${d.credit?.consecutiveValid ?? 0} of ${TRUST_AFTER_VALID} corroborated in a row)`) },
];

/** A device's id, marked when it had not earned trust: its word re-issues a task, never ends one. */
function device(deviceId: string, newDevice: boolean): Html {
  return html`<code class="id">${deviceId}</code>${newDevice ? html` <span class="new">new</span>` : ''}`;
}

export const KEYSET_REFUSAL_COLUMNS: Column<KeysetRefusalRow>[] = [
  { header: 'When', cell: (r, page) => when(r.at, page.now) },
  { header: 'Device', cell: (r) => device(r.deviceId, r.newDevice) },
  { header: 'Version', numeric: true, cell: (r) => r.version },
  { header: 'Reason', cell: (r) => html`${KEYSET_REFUSAL_TEXT[r.reason as KeysetRefusalReason] ?? r.reason} <code>${r.reason}</code>` },
  { header: 'Detail', cell: (r) => r.detail },
];

export const REFUSAL_COLUMNS: Column<RefusalRow>[] = [
  { header: 'When', cell: (r, page) => when(r.refusal.at, page.now) },
  { header: 'Batch', cell: (r) => r.batch.name },
  { header: 'Task', cell: (r) => html`<code class="id">${r.refusal.taskId}</code>` },
  { header: 'Device', cell: (r) => device(r.refusal.deviceId, r.refusal.newDevice) },
  { header: 'Reason', cell: (r) => html`${REFUSAL_TEXT[r.refusal.reason] ?? r.refusal.reason} <code>${r.refusal.reason}</code>` },
  { header: 'Detail', cell: (r) => r.refusal.detail },
];

/** What a run's error code means, for the owner. */
const FAILURE_TEXT: Record<string, string> = {
  trap: 'the program trapped',
  timeout: 'the run took longer than its wall-time limit',
  'memory-limit': 'the program reached its memory limit',
  link: 'the module imports something the engine does not provide',
  'invalid-module': 'the module is not valid WebAssembly',
  internal: 'the runtime failed',
  device: 'the device could not prepare or run it (not counted against the task)',
};

export const FAILURE_COLUMNS: Column<FailureRow>[] = [
  { header: 'When', cell: (r, page) => when(r.failure.at, page.now) },
  { header: 'Batch', cell: (r) => r.batch.name },
  { header: 'Task', cell: (r) => html`<code class="id">${r.failure.taskId}</code>` },
  { header: 'Device', cell: (r) => device(r.failure.deviceId, r.failure.newDevice) },
  { header: 'What', cell: (r) => html`${FAILURE_TEXT[r.failure.code] ?? r.failure.code} <code>${r.failure.code}</code>` },
  { header: 'Message', cell: (r) => r.failure.message },
];

export function renderStatusPage(page: StatusPageData): string {
  const refusals = page.batches
    .flatMap((batch) => batch.refusals.map((refusal): RefusalRow => ({ batch, refusal })))
    .sort((a, b) => b.refusal.at - a.refusal.at);
  const failures = page.batches
    .flatMap((batch) => batch.failures.map((failure): FailureRow => ({ batch, failure })))
    .sort((a, b) => b.failure.at - a.failure.at);
  const minutes = Math.round(page.activeWindowMs / 60_000);
  const devices = `${count(page.moreDevices ? page.activeDeviceCount - 1 : page.activeDeviceCount, 'active device')}${page.moreDevices ? ' or more' : ''}`;
  const title = `Dewgrid status: ${count(page.batches.length, 'batch', 'batches')}, ${devices}`;
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<meta name="referrer" content="no-referrer" />
<title>${title}</title>
<link rel="icon" href="/favicon.ico" sizes="32x32 48x48" />
<style>${raw(STYLE)}</style>
</head>
<body>
<main>
<header>
  <h1>Dewgrid status</h1>
  <p class="refresh">
    <label><input type="checkbox" id="auto-refresh" checked data-seconds="${page.refreshSeconds}" /> Refresh every ${page.refreshSeconds} s</label>
    <span id="refresh-note" role="status"></span>
  </p>
  <noscript><p>Reload the page to see it change.</p></noscript>
</header>
<div id="live">
  <p class="updated">Updated <time datetime="${new Date(page.now).toISOString()}">${utc(page.now)}</time>: ${title.replace(/^Dewgrid status: /, '')}. ${sweepLine(page.sweep, page.now)}</p>
  ${page.owner ? ownerView(page, refusals, failures, minutes) : publicView(page)}
</div>
</main>
<script>${raw(REFRESH_SCRIPT)}</script>
</body>
</html>`}`;
}

/** What the owner sees: every batch, the active devices, the refusals. */
function ownerView(page: StatusPageData, refusals: RefusalRow[], failures: FailureRow[], minutes: number): Html {
  return html`<section aria-labelledby="batches-heading">
    <h2 id="batches-heading">Batches</h2>
    ${page.batches.length === 0 ? html`<p>No batches yet. Publish one with <code>npx dewgrid publish MODULE.wasm</code>.</p>` : table('batches', 'Batches, oldest first', BATCH_COLUMNS, page.batches, page)}
    ${page.batches.length > 0 ? legend() : ''}
  </section>
  <section aria-labelledby="devices-heading">
    <h2 id="devices-heading">Active devices</h2>
    <p>Devices that leased, returned or refused a task in the last ${minutes} minutes, or are running one now; leases, results, errors and refusals are for those ${minutes} minutes, credit (for validated results only) and valid and invalid results for all time. A trusted device (adaptive replication) may finish tasks alone, spot-checked.</p>
    ${page.devices.length === 0 ? html`<p>None.</p>` : table('devices', `Active devices, most recent first`, DEVICE_COLUMNS, page.devices, page)}
    ${page.moreDevices ? html`<p>Only the ${page.devices.length} most recent are shown.</p>` : ''}
  </section>
  <section aria-labelledby="failures-heading">
    <h2 id="failures-heading">Failed runs</h2>
    <p>Runs that gave no result: the program failed (a trap, a timeout, its memory limit), or the device could not prepare or run the task at all (<code>device</code>: it is not given that task again, and it is not counted against the task). A report from a <span class="new">new</span> device, one that has not earned trust, only sends the task to another device; once a task has as many of those as its replica cap it goes only to devices that have earned trust, and only their word ends it.</p>
    ${failures.length === 0 ? html`<p>None.</p>` : table('failures', 'Failed runs, newest first', FAILURE_COLUMNS, failures.slice(0, MAX_REFUSALS_SHOWN), page)}
    ${failures.length > MAX_REFUSALS_SHOWN ? html`<p>The newest ${MAX_REFUSALS_SHOWN}; <code>npx dewgrid status BATCH</code> lists more.</p>` : ''}
  </section>
  <section aria-labelledby="refusals-heading">
    <h2 id="refusals-heading">Refusals</h2>
    <p>Tasks a device would not run, and why: nothing refused is compiled or run.</p>
    ${refusals.length === 0 ? html`<p>None.</p>` : table('refusals', 'Refusals, newest first', REFUSAL_COLUMNS, refusals.slice(0, MAX_REFUSALS_SHOWN), page)}
    ${refusals.length > MAX_REFUSALS_SHOWN ? html`<p>The newest ${MAX_REFUSALS_SHOWN} of ${refusals.length}; <code>npx dewgrid status BATCH</code> lists every one.</p>` : ''}
    ${page.keysetRefusals.length === 0 ? '' : html`<p>Lists of signing keys devices refused: something between this server and them served a keyset they could not trust.</p>${table('keyset-refusals', 'Refused keysets, newest first', KEYSET_REFUSAL_COLUMNS, [...page.keysetRefusals].reverse().slice(0, MAX_REFUSALS_SHOWN), page)}`}
  </section>`;
}

/** What anyone else sees: the totals, and how the owner signs in. */
function publicView(page: StatusPageData): Html {
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
  for (const b of page.batches) for (const s of TASK_STATES) counts[s] += b.counts[s] ?? 0;
  return html`<section aria-labelledby="totals-heading">
    <h2 id="totals-heading">This server</h2>
    ${page.tokenRefused ? html`<p class="refused-token" role="alert">The link's owner token was refused: ${page.tokenRefused}. Ask for a new link with <code>npx dewgrid status --link</code>.</p>` : ''}
    <p id="totals">${count(page.batches.length, 'batch', 'batches')}; tasks: ${stateList(counts, 'none')}; ${count(page.activeDeviceCount, 'device')} active in the last ${Math.round(page.activeWindowMs / 60_000)} minutes.</p>
    <p>Batches, their results, devices and refusals are shown to the project owner only. On the machine that holds the project's keys, <code>npx dewgrid status --link</code> prints a link that opens this page as the owner (<code>npm start</code> prints one too).</p>
  </section>`;
}

/** When the expiry sweep last ran and what it ended. */
function sweepLine(sweep: SweepReport, now: number): Html | string {
  if (sweep.intervalMs <= 0) return 'Expired tasks are ended when a device asks for work.';
  const every = sweep.intervalMs % 60_000 === 0 ? `${sweep.intervalMs / 60_000} min` : `${Math.round(sweep.intervalMs / 1000)} s`;
  if (sweep.error) return html`<span class="sweep">Expiry sweep (every ${every}) failed: ${sweep.error}.</span>`;
  if (!sweep.last) return html`<span class="sweep">Expiry sweep: every ${every}, not run yet.</span>`;
  return html`<span class="sweep">Expiry sweep: every ${every}; last ${when(sweep.last.at, now)}, ended ${count(sweep.last.expired, 'expired task')} (${sweep.expiredSinceStart} since the server started).</span>`;
}

/** "3 done, 1 running": the states that have tasks, in TASK_STATES order. */
function stateList(counts: Record<TaskState, number>, empty: string = '—'): Html | string {
  const parts = TASK_STATES.filter((s) => (counts[s] ?? 0) > 0);
  if (parts.length === 0) return empty;
  return html`<span class="states">${parts.map((s, i) => html`<span class="state"><i class="${s}" aria-hidden="true"></i>${counts[s]} ${STATE_WORDS[s].toLowerCase()}${i < parts.length - 1 ? ', ' : ''}</span>`)}</span>`;
}

/** A table in a region of its own that scrolls sideways on a narrow screen (focusable, so it scrolls from the keyboard). */
function table<Row>(id: string, caption: string, columns: Column<Row>[], rows: Row[], page: StatusPageData): Html {
  return html`<div class="scroll" id="${id}-table" role="region" aria-label="${caption}" tabindex="0">
<table>
<caption>${caption}<span class="scroll-note"> (scroll sideways for every column)</span></caption>
<thead><tr>${columns.map((c) => html`<th scope="col"${c.numeric ? raw(' class="num"') : ''}>${c.header}</th>`)}</tr></thead>
<tbody>${rows.map((row) => html`<tr>${columns.map((c) => html`<td${c.numeric ? raw(' class="num"') : ''}>${c.cell(row, page)}</td>`)}</tr>`)}</tbody>
</table>
</div>`;
}

/** Finished tasks out of all, as a bar with one segment per end state and one for the running; its words say the same. */
function progressBar(b: BatchStatus): Html {
  const all = total(b);
  const finished = FINISHED.reduce((sum, s) => sum + (b.counts[s] ?? 0), 0);
  const percent = all === 0 ? 0 : Math.floor((finished / all) * 100);
  const parts = [...FINISHED, 'running' as const].filter((s) => (b.counts[s] ?? 0) > 0);
  const words = `${finished} of ${all} tasks finished (${percent}%)${parts.length ? `: ${parts.map((s) => `${b.counts[s]} ${s}`).join(', ')}` : ''}`;
  return html`<div class="progress"><div class="bar" role="img" aria-label="${words}">${parts.map(
    (s) => html`<span class="${s}" style="width: ${(((b.counts[s] ?? 0) / all) * 100).toFixed(2)}%"></span>`,
  )}</div><span aria-hidden="true">${percent}%</span></div>`;
}

/** Validation under way: tasks whose results await agreement, and the disputed ones among them. */
function quorumSummary(b: BatchStatus): Html | string {
  const parts: string[] = [];
  if (b.quorum.awaiting) parts.push(`${b.quorum.awaiting} awaiting agreement`);
  if (b.quorum.disputed) parts.push(`${b.quorum.disputed} disputed (more replicas drawn)`);
  if (b.adaptive) parts.push('adaptive replication');
  return parts.length ? parts.join('; ') : '—';
}

function legend(): Html {
  return html`<p class="legend" aria-hidden="true">${[...FINISHED, 'running' as const].map((s) => html`<span><i class="${s}"></i>${STATE_WORDS[s]}</span>`)}<span><i class="queued"></i>Queued</span></p>`;
}

/** Reports against the batch's tasks: how many, how many from new devices, how many tasks wait for a trusted device. */
function reportSummary(b: BatchStatus): Html | string {
  const r = b.reports;
  const parts = [
    r.errors ? count(r.errors, 'error') : '',
    r.refusals ? count(r.refusals, 'refusal') : '',
    r.deviceFailures ? count(r.deviceFailures, 'device failure') : '',
  ].filter(Boolean);
  if (parts.length === 0) return '';
  const fromNew = r.fromNewDevices ? `; ${r.fromNewDevices} from new devices` : '';
  const waiting = r.awaitingTrust ? `; ${count(r.awaitingTrust, 'task waits', 'tasks wait')} for a trusted device` : '';
  return `${parts.join(', ')}${fromNew}${waiting}`;
}

function refusalSummary(b: BatchStatus): Html | string {
  if (b.refusals.length === 0) return '';
  const byReason = new Map<string, number>();
  for (const r of b.refusals) byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1);
  return html`${[...byReason].map(([reason, n], i) => html`${i ? ', ' : ''}${n} <code>${reason}</code>`)}`;
}

/** "3 min ago", with the exact time for the curious (and for machines). */
function when(at: number, now: number): Html {
  return html`<time datetime="${new Date(at).toISOString()}" title="${utc(at)}">${ago(now - at)}</time>`;
}

function ago(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function utc(at: number): string {
  return `${new Date(at).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f4; --fg: #1c2320; --muted: #5b665f; --card: #fff; --line: #d5dbd7;
  --done: #1f6f5c; --running: #7fbfae; --failed: #a33a2c; --refused: #b86e00; --expired: #7a7a7a; --queued: #e3e8e4;
  --inconclusive: #6b4fa0; --revoked: #3d3d3d; --nonzero: #c2410c; --cancelled: #9aa19c; --shadow: rgba(0, 0, 0, 0.18);
  font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; background: var(--bg); color: var(--fg); }
@media (prefers-color-scheme: dark) { :root { --bg: #121614; --fg: #e6ece8; --muted: #9aa7a0; --card: #1b211e; --line: #34403a;
  --done: #5cc4a8; --running: #2f6b5c; --failed: #ff8a78; --refused: #f0b35a; --expired: #8d8d8d; --queued: #2a322e;
  --inconclusive: #b9a0e8; --revoked: #c8c8c8; --nonzero: #fb923c; --cancelled: #5f6661; --shadow: rgba(0, 0, 0, 0.6); } }
body { margin: 0; }
main { max-width: 96rem; margin: 0 auto; padding: 1rem; }
h1 { margin: 0; font-size: 1.6rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 0.5rem; }
header { display: flex; flex-wrap: wrap; gap: 0.5rem 2rem; align-items: baseline; justify-content: space-between; }
.refresh { margin: 0; } .updated { color: var(--muted); }
:focus-visible { outline: 3px solid var(--done); outline-offset: 2px; }
/*
 * A desktop shows every column. A narrow screen keeps the columns readable and scrolls the table
 * sideways instead, with a shadow at each edge where there is more to see (the shadows scroll with
 * the content, the covers that hide them at the ends do not: no script needed), and a note saying so.
 */
.scroll { overflow-x: auto; border-radius: 0.6rem;
  background: linear-gradient(to right, var(--card) 30%, transparent) left / 2.5rem 100% no-repeat local,
    linear-gradient(to left, var(--card) 30%, transparent) right / 2.5rem 100% no-repeat local,
    radial-gradient(farthest-side at 0 50%, var(--shadow), transparent) left / 0.9rem 100% no-repeat scroll,
    radial-gradient(farthest-side at 100% 50%, var(--shadow), transparent) right / 0.9rem 100% no-repeat scroll,
    var(--card); }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
caption { text-align: left; padding: 0.5rem 0.75rem 0; color: var(--muted); font-size: 0.85rem; }
.scroll-note { display: none; }
@media (max-width: 60rem) {
  table { min-width: 40rem; }
  .scroll-note { display: inline; }
}
th, td { text-align: left; padding: 0.45rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.88em; }
/* Ids are long and unbroken: they may break anywhere rather than widen their column. */
code.id { overflow-wrap: anywhere; word-break: break-all; }
.states { display: flex; flex-wrap: wrap; gap: 0.1rem 0.6rem; }
.states .state { display: inline-flex; align-items: center; gap: 0.3rem; white-space: nowrap; }
.states i { display: inline-block; width: 0.7rem; height: 0.7rem; border-radius: 0.2rem; border: 1px solid var(--line); }
.sweep { color: var(--muted); }
.refused-token { color: var(--failed); }
.progress { display: flex; align-items: center; gap: 0.5rem; min-width: 8rem; }
.bar { flex: 1; display: flex; height: 0.8rem; border-radius: 0.4rem; overflow: hidden; background: var(--queued); }
.bar span, .legend i { display: block; }
.done { background: var(--done); } .running { background: var(--running); } .failed { background: var(--failed); }
.refused { background: var(--refused); } .expired { background: var(--expired); } .queued { background: var(--queued); }
.inconclusive { background: var(--inconclusive); } .revoked { background: var(--revoked); }
.exit-nonzero { background: var(--nonzero); } .cancelled { background: var(--cancelled); }
.legend { display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; font-size: 0.85rem; color: var(--muted); }
.legend span { display: flex; align-items: center; gap: 0.3rem; }
.legend i { width: 0.8rem; height: 0.8rem; border-radius: 0.2rem; border: 1px solid var(--line); }
.new { font-size: 0.8em; padding: 0 0.3em; border: 1px solid var(--line); border-radius: 0.3em; color: var(--muted); }
`;

/**
 * Fetches this page again and swaps in its live part; keeps the keyboard focus where it was (the
 * regions have ids) and says when a refresh failed. The checkbox stops and restarts it.
 */
const REFRESH_SCRIPT = `
const toggle = document.getElementById('auto-refresh');
const note = document.getElementById('refresh-note');
let timer = null;
async function refresh() {
  try {
    const response = await fetch(location.href, { cache: 'no-store', headers: { accept: 'text/html' } });
    if (!response.ok) throw new Error('the server answered ' + response.status);
    const fresh = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('live');
    if (!fresh) throw new Error('the page had no live part');
    const focused = document.activeElement && document.getElementById('live').contains(document.activeElement) ? document.activeElement.id : '';
    document.getElementById('live').replaceWith(fresh);
    if (focused) document.getElementById(focused)?.focus({ preventScroll: true });
    note.textContent = '';
  } catch (error) {
    note.textContent = 'Could not refresh (' + error.message + '); trying again.';
  }
}
function schedule() {
  clearInterval(timer);
  timer = toggle.checked ? setInterval(refresh, Number(toggle.dataset.seconds) * 1000) : null;
}
toggle.addEventListener('change', schedule);
schedule();
`;
