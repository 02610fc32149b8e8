/**
 * `dewgrid`: the project owner's CLI, a thin layer over the client library (owner/): it reads the
 * command line and host files, and prints. Usage problems exit 2 with one line saying what is
 * wrong; server and file problems exit 1 with the reason and what to do; `results` exits 3 when a
 * task did not succeed or has no result yet. Everything a device supplied is printed with its
 * control characters escaped (cli/printable.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import {
  API,
  ENGINES,
  isFinal,
  KEYSET_REFUSAL_TEXT,
  MAX_OUTPUT_BYTES,
  REFUSAL_TEXT,
  succeeded,
  TASK_STATES,
  type BatchStatus,
  type Engine,
  type SignedKeyset,
  type TaskState,
} from '../src/protocol/index.ts';
import * as v from 'valibot';
import {
  NotADewgridServerError,
  Project,
  ServerRefusedError,
  ServerUnreachableError,
  serverInfo,
  type PublishProgress,
  type TaskInput,
  type TaskResult,
} from '../owner/index.ts';
import { OwnerHttp } from '../owner/http.ts';
import { initProject, keyPath, keysetPath, readKeyset, revokeKey, ROOT_KEY_NAME, rotateKey, trustPath } from './keys.ts';
import { formatBytes, Progress } from './progress.ts';
import { parseCommandLine, UsageError, type Flags, type Values } from './cli/args.ts';
import { printableJson, printableLine, printableText } from './cli/printable.ts';
import { planTask, writeTask } from './cli/output-files.ts';

const DEFAULT_SERVER = 'http://localhost:8787';

const HELP = `dewgrid: publish signed WebAssembly tasks and collect their results

Usage:
  dewgrid keygen [--project NAME] [--force]      a root key, the trust file, a first signing key, keyset 1
  dewgrid keys rotate [--grace HOURS]            a new signing key; the others retire after the grace (168 h)
  dewgrid keys revoke KEYID                      nothing KEYID signed verifies any more
  dewgrid keys list                              the keyset's keys and their windows
  dewgrid keys push                              sends the keyset to the server again
  dewgrid publish MODULE.wasm [--arg A]... [--env K=V]... [--stdin FILE] [--file GUEST=HOST]...
                  [--dir HOST:GUEST]... [--mkdir GUEST]... [--count N] [--redundancy R] [--adaptive]
                  [--timeout SECONDS] [--memory MB] [--output-limit MB] [--expires HOURS] [--name NAME]
                  [--batch ID] [--argv0 NAME] [--deterministic] [--engine wasi-preview1|wasix] [--json] [--progress]
  dewgrid batches [--json]                       every batch, with its counts
  dewgrid status [BATCH] [--json] [--link [--hours H]]
  dewgrid results BATCH [--json] [--out DIR] [--follow] [--accept-failures] [--progress]
  dewgrid cancel BATCH [--json]                  queued tasks leave the queue; running ones stop at their next renewal
  dewgrid token [--scope read|all] [--hours H]   an owner token for scripts and dashboards (default read, 24 h)

Everywhere: --server URL (default $DEWGRID_SERVER or ${DEFAULT_SERVER}),
            --data DIR (default $DEWGRID_DATA or ./.dewgrid),
            --key FILE (default: the newest valid signing key of DATA/keyset.json held in DATA/keys),
            --root FILE (keys rotate/revoke; default DATA/keys/root.json: keep it offline)
In publish, {i} in --arg and --env values becomes the task's index (0 to N-1).
A flag's value may start with -: --arg -s. After --, every word is an argument (an id starting with -).
results exits 0 when every task succeeded, 3 when one has no result yet or did not succeed
(--accept-failures: only the first counts); --follow waits, printing each result as it is agreed.
publish and results show their progress on stderr when it is a terminal, or anywhere with --progress.`;

const GLOBAL: Flags = {
  server: { type: 'string' },
  data: { type: 'string' },
  key: { type: 'string' },
  root: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
};

const COMMANDS: Record<string, { flags: Flags; takesIds?: boolean }> = {
  keygen: { flags: { project: { type: 'string' }, force: { type: 'boolean' } } },
  keys: { flags: { grace: { type: 'string' } } },
  publish: {
    flags: {
      arg: { type: 'string', multiple: true },
      env: { type: 'string', multiple: true },
      stdin: { type: 'string' },
      file: { type: 'string', multiple: true },
      dir: { type: 'string', multiple: true },
      mkdir: { type: 'string', multiple: true },
      count: { type: 'string' },
      redundancy: { type: 'string' },
      adaptive: { type: 'boolean' },
      timeout: { type: 'string' },
      memory: { type: 'string' },
      'output-limit': { type: 'string' },
      expires: { type: 'string' },
      name: { type: 'string' },
      batch: { type: 'string' },
      argv0: { type: 'string' },
      deterministic: { type: 'boolean' },
      engine: { type: 'string' },
      progress: { type: 'boolean' },
    },
  },
  batches: { flags: {} },
  status: { flags: { link: { type: 'boolean' }, hours: { type: 'string' } }, takesIds: true },
  results: { flags: { out: { type: 'string' }, progress: { type: 'boolean' }, follow: { type: 'boolean' }, 'accept-failures': { type: 'boolean' } }, takesIds: true },
  cancel: { flags: {}, takesIds: true },
  token: { flags: { scope: { type: 'string' }, hours: { type: 'string' } } },
};

/** Exit code of `results` when a task did not succeed or has no result yet. */
const EXIT_INCOMPLETE = 3;

interface Context {
  values: Values;
  dataDir: string;
  server: string;
  /** The data folder came from --data or DEWGRID_DATA (not the default). */
  dataGiven: boolean;
}

function integer(values: Values, flag: string, fallback: number, min: number, max: number): number {
  const text = values[flag];
  if (text === undefined) return fallback;
  const n = typeof text === 'string' && /^\d{1,12}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  return n;
}

function readHostFile(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, not a file' : (error as Error).message}`);
  }
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const full = join(root, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full));
    else if (entry.isFile()) out.push(full);
  }
  return out.sort();
}

/** Whether we run inside a Dewgrid checkout, where `npm start` is the way to a server and keys. */
function inCheckout(): boolean {
  try {
    return JSON.parse(readFileSync('package.json', 'utf8')).name === 'dewgrid' && existsSync('scripts/start.ts');
  } catch {
    return false;
  }
}

/** The server, or an error that says what to do when it is down or is something else. */
async function reach(ctx: Context): Promise<void> {
  await serverInfo(ctx.server);
}

/** The project of the data folder; when it has no keys, advice that fits where the user is. */
async function openProject(ctx: Context): Promise<Project> {
  if (typeof ctx.values.key !== 'string' && !existsSync(trustPath(ctx.dataDir))) {
    const advice = inCheckout() && !ctx.dataGiven
      ? '`npm start` makes the demo project\'s keys here (and starts the server); for a project of your own, `npx dewgrid keygen`'
      : `run \`npx dewgrid keygen --data ${ctx.dataDir}\` to set a project up there, or point --data at the project's folder`;
    throw new UsageError(`no project keys in ${ctx.dataDir} (${trustPath(ctx.dataDir)} is missing): ${advice}`);
  }
  try {
    return await Project.open(ctx.dataDir, { server: ctx.server, keyFile: typeof ctx.values.key === 'string' ? ctx.values.key : undefined });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function publish(positionals: string[], ctx: Context): Promise<void> {
  const { values } = ctx;
  const [modulePath, ...extra] = positionals;
  if (!modulePath) throw new UsageError('publish needs a module: dewgrid publish MODULE.wasm');
  if (extra.length) throw new UsageError(`publish takes one module, got also: ${extra.join(' ')}`);
  const module = readHostFile(modulePath, 'module');
  if (!(module[0] === 0 && module[1] === 0x61 && module[2] === 0x73 && module[3] === 0x6d)) {
    throw new UsageError(`${modulePath} is not a WebAssembly module (it does not start with \\0asm)`);
  }
  const count = integer(values, 'count', 1, 1, 100000);
  const redundancy = integer(values, 'redundancy', 1, 1, 16);
  const timeout = integer(values, 'timeout', 300, 1, 86400);
  const memory = integer(values, 'memory', 256, 1, 4096);
  const outputLimit = integer(values, 'output-limit', 16, 1, MAX_OUTPUT_BYTES / 2 ** 20);
  const expires = integer(values, 'expires', 168, 1, 24 * 365);
  const env = ((values.env as string[] | undefined) ?? []).map((pair): [string, string] => {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--env "${pair}" must be NAME=VALUE`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  });
  const stdin = typeof values.stdin === 'string' ? readHostFile(values.stdin, '--stdin') : null;
  const files: { path: string; data: Uint8Array }[] = [];
  const dirs: string[] = [];
  const guest = (path: string, flag: string) => {
    if (!path.startsWith('/')) throw new UsageError(`${flag}: guest path "${path}" must be absolute`);
    const trimmed = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
    if (trimmed !== '/' && !/^(\/(?!\.\.?(\/|$))[^/\0]+)+$/.test(trimmed)) throw new UsageError(`${flag}: guest path "${path}" must not hold ., .. or empty segments`);
    return trimmed;
  };
  for (const spec of (values.dir as string[] | undefined) ?? []) {
    const at = spec.lastIndexOf(':');
    if (at <= 0) throw new UsageError(`--dir "${spec}" must be HOST:GUEST`);
    const host = spec.slice(0, at);
    const folder = guest(spec.slice(at + 1), '--dir');
    if (!existsSync(host) || !statSync(host).isDirectory()) throw new UsageError(`--dir ${host}: no such folder`);
    if (dirs.includes(folder)) throw new UsageError(`--dir: guest path ${folder} given twice`);
    dirs.push(folder);
    for (const file of listFiles(host)) {
      const rel = relative(host, file).split(sep).join('/');
      files.push({ path: folder === '/' ? `/${rel}` : `${folder}/${rel}`, data: readHostFile(file, '--dir') });
    }
  }
  for (const path of (values.mkdir as string[] | undefined) ?? []) {
    const folder = guest(path, '--mkdir');
    if (!dirs.includes(folder)) dirs.push(folder);
  }
  for (const spec of (values.file as string[] | undefined) ?? []) {
    const at = spec.indexOf('=');
    if (at <= 0) throw new UsageError(`--file "${spec}" must be GUEST=HOST`);
    const path = guest(spec.slice(0, at), '--file');
    if (path === '/') throw new UsageError(`--file "${spec}": / is a folder, not a file path`);
    files.push({ path, data: readHostFile(spec.slice(at + 1), '--file') });
  }
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.path)) throw new UsageError(`guest path ${file.path} is given twice (by --file or --dir)`);
    seen.add(file.path);
  }
  if (typeof values.batch === 'string' && !/^[A-Za-z0-9_-]{1,50}$/.test(values.batch)) {
    throw new UsageError(`--batch must be 1-50 characters of A-Z a-z 0-9 _ -, got "${values.batch}"`);
  }
  if (typeof values.name === 'string' && values.name.length > 200) throw new UsageError('--name must be at most 200 characters');
  const argv0 = typeof values.argv0 === 'string' ? values.argv0 : basename(modulePath).replace(/\.wasm$/, '');
  const engine = values.engine ?? 'wasi-preview1';
  if (!(ENGINES as readonly unknown[]).includes(engine)) throw new UsageError(`--engine must be one of ${ENGINES.join(', ')}, got "${String(engine)}"`);
  const args = (values.arg as string[] | undefined) ?? [];
  const tasks: TaskInput[] = Array.from({ length: count }, (_, i) => ({
    args: args.map((a) => a.replaceAll('{i}', String(i))),
    env: env.map(([k, v]): [string, string] => [k, v.replaceAll('{i}', String(i))]),
    stdin,
    files,
    dirs,
  }));

  // The server first: a server that is down, or the wrong address, is said before anything is signed.
  await reach(ctx);
  const project = await openProject(ctx);
  const progress = Progress.on(process.stderr, values.progress === true);
  // Said once the tasks are signed and checked: a batch the schema refuses is a usage error, on one line.
  const announce = () => !values.json && process.stderr.write(`Publishing ${count} task${count === 1 ? '' : 's'} of ${argv0} to ${ctx.server}...\n`);
  const onProgress = (p: PublishProgress) => {
    if (p.step === 'signing') {
      progress.update(`Signing tasks: ${p.signed}/${p.total}`);
      if (p.signed === p.total) progress.done(`Signed ${p.total} task${p.total === 1 ? '' : 's'}.`);
    } else if (p.step === 'blobs') {
      announce();
      progress.done(
        p.sending === 0
          ? `Blobs: the server has all ${p.blobs} already.`
          : `Blobs: uploading ${p.sending === p.blobs ? `all ${p.blobs}` : `${p.sending} of ${p.blobs} (the server has the rest)`}, ${formatBytes(p.bytes)}.`,
      );
    } else if (p.step === 'uploading') {
      progress.update(`Uploading blobs and tasks: ${formatBytes(p.sent)} of ${formatBytes(p.total)}`);
    } else {
      progress.done(`Uploaded blobs and tasks: ${formatBytes(p.total)}.`);
      progress.update('Waiting for the server to verify and store the batch...');
    }
  };
  let batch;
  try {
    batch = await project.publish(
      {
        module,
        tasks,
        name: typeof values.name === 'string' ? values.name : argv0,
        argv0,
        batchId: typeof values.batch === 'string' ? values.batch : undefined,
        redundancy,
        adaptive: values.adaptive === true,
        deterministic: values.deterministic === true ? true : undefined,
        engine: engine as Engine,
        limits: { memoryBytes: memory * 2 ** 20, wallTimeMs: timeout * 1000, outputBytes: outputLimit * 2 ** 20 },
        expiresInMs: expires * 3600 * 1000,
      },
      { onProgress },
    );
  } catch (error) {
    // A bad field is the command line's fault: say it as a usage error.
    if (error instanceof TypeError) throw new UsageError(error.message);
    throw error;
  }
  progress.done('The server stored the batch.');
  const taskIds = batch.taskIds ?? [];
  if (values.json) console.log(JSON.stringify({ batchId: batch.id, tasks: taskIds }));
  else console.log(`Published batch ${batch.id}: ${taskIds.length} task${taskIds.length === 1 ? '' : 's'}, signed by key ${project.keyId}.`);
}

/** How a state reads in a sentence. */
const STATE_TEXT: Record<TaskState, string> = {
  queued: 'queued',
  running: 'running',
  done: 'done',
  'exit-nonzero': 'done with a non-zero exit',
  failed: 'failed',
  refused: 'refused',
  expired: 'expired',
  inconclusive: 'inconclusive',
  revoked: 'revoked',
  cancelled: 'cancelled',
};

function countsLine(status: BatchStatus): string {
  return TASK_STATES.filter((state) => (status.counts[state] ?? 0) > 0)
    .map((state) => `${status.counts[state]} ${STATE_TEXT[state]}`)
    .join(', ');
}

function batchLine(b: BatchStatus): string {
  const reports = reportsLine(b);
  return `${b.batchId}  ${printableLine(b.name)}  ${countsLine(b) || 'empty'}${reports ? `  (${reports})` : ''}`;
}

async function batches(positionals: string[], ctx: Context): Promise<void> {
  if (positionals.length) throw new UsageError(`batches takes no arguments, got: ${positionals.join(' ')}`);
  await reach(ctx);
  const all = await (await openProject(ctx)).batches();
  if (ctx.values.json) return void console.log(printableJson(all, 2));
  if (all.length === 0) return void console.log('No batches.');
  for (const b of all) console.log(batchLine(b));
}

async function status(positionals: string[], ctx: Context): Promise<void> {
  const { values } = ctx;
  const [batchId, ...extra] = positionals;
  if (extra.length) throw new UsageError(`status takes at most one batch id, got also: ${extra.join(' ')}`);
  await reach(ctx);
  const project = await openProject(ctx);
  if (values.link) {
    const hours = integer(values, 'hours', 7 * 24, 1, 366 * 24);
    const link = await project.statusLink({ lifetimeMs: hours * 3600_000 });
    if (values.json) return void console.log(JSON.stringify({ link, expiresAt: Date.now() + hours * 3600_000 }));
    console.log(link);
    process.stderr.write(`Opens the status page as the project owner for ${hours} h; anyone with it can read your batches' status until then.\n`);
    return;
  }
  if (!batchId) {
    const all = await project.batches();
    if (values.json) return void console.log(printableJson(all, 2));
    if (all.length === 0) return void console.log('No batches.');
    for (const b of all) console.log(batchLine(b));
    for (const r of await project.keysetRefusals()) {
      console.log(`keyset version ${r.version} refused on ${deviceWords(r.deviceId, r.newDevice)}: ${r.reason}: ${KEYSET_REFUSAL_TEXT[r.reason] ?? r.reason} (${printableLine(r.detail)})`);
    }
    return;
  }
  const b = await project.batch(batchId).status();
  if (values.json) return void console.log(printableJson(b, 2));
  console.log(`Batch ${b.batchId} (${printableLine(b.name)}): ${countsLine(b) || 'empty'}${b.adaptive ? ' (adaptive replication)' : ''}`);
  if (b.quorum.awaiting) {
    console.log(`  quorum: ${b.quorum.awaiting} task${b.quorum.awaiting === 1 ? '' : 's'} awaiting agreement${b.quorum.disputed ? `, ${b.quorum.disputed} of them disputed (results disagreed: more replicas drawn)` : ''}`);
  }
  if (reportsLine(b)) console.log(`  reports: ${reportsLine(b)}`);
  for (const f of b.failures ?? []) {
    const what = f.code === 'device' ? 'could not prepare or run' : 'failed';
    console.log(`  ${what} ${f.taskId} on ${deviceWords(f.deviceId, f.newDevice)}: ${f.code}: ${printableLine(f.message)}`);
  }
  for (const r of b.refusals) {
    console.log(`  refused ${r.taskId} on ${deviceWords(r.deviceId, r.newDevice)}: ${r.reason}: ${REFUSAL_TEXT[r.reason] ?? printableLine(r.reason)} (${printableLine(r.detail)})`);
  }
}

/** "device X", marked when the device had not earned trust: its report re-issues a task, never ends it. */
function deviceWords(deviceId: string, newDevice: boolean | undefined): string {
  return `${newDevice ? 'new ' : ''}device ${printableLine(deviceId)}`;
}

/** What devices reported against a batch's tasks, in words; '' for nothing. */
function reportsLine(b: BatchStatus): string {
  const r = b.reports;
  if (!r) return ''; // a server from before reports were counted
  const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  const parts = [
    r.errors ? plural(r.errors, 'error') : '',
    r.refusals ? plural(r.refusals, 'refusal') : '',
    r.deviceFailures ? plural(r.deviceFailures, 'device failure') : '',
  ].filter(Boolean);
  if (parts.length === 0) return '';
  return `${parts.join(', ')}${r.fromNewDevices ? `, ${r.fromNewDevices} of them from new devices` : ''}${
    r.awaitingTrust ? `; ${plural(r.awaitingTrust, 'task waits', 'tasks wait')} for a device that has earned trust` : ''
  }`;
}

async function cancel(positionals: string[], ctx: Context): Promise<void> {
  const [batchId, ...extra] = positionals;
  if (!batchId) throw new UsageError('cancel needs a batch id: dewgrid cancel BATCH');
  if (extra.length) throw new UsageError(`cancel takes one batch id, got also: ${extra.join(' ')}`);
  await reach(ctx);
  const result = await (await openProject(ctx)).batch(batchId).cancel();
  if (ctx.values.json) return void console.log(printableJson(result, 2));
  const running = result.status.counts.running;
  console.log(
    `Cancelled ${result.cancelled} task${result.cancelled === 1 ? '' : 's'} of batch ${result.batchId}: ${countsLine(result.status) || 'empty'}.` +
      (running ? ` Devices running ${running === 1 ? 'one stop it' : `${running} stop them`} when they next renew its lease; their results are not counted.` : ''),
  );
}

async function token(positionals: string[], ctx: Context): Promise<void> {
  if (positionals.length) throw new UsageError(`token takes no arguments, got: ${positionals.join(' ')}`);
  const scope = ctx.values.scope ?? 'read';
  if (scope !== 'read' && scope !== 'all') throw new UsageError(`--scope must be read or all, got "${String(scope)}"`);
  const hours = integer(ctx.values, 'hours', 24, 1, 366 * 24);
  const made = await (await openProject(ctx)).token({ scope, lifetimeMs: hours * 3600_000 });
  console.log(made);
  process.stderr.write(`An owner token (scope ${scope}) for ${hours} h: send it as "Authorization: Bearer <token>". Revoking or retiring the key that signed it ends it sooner.\n`);
}

/** A task as the text listing shows it: its line, then its outputs (device text, escaped). */
function taskText(task: TaskResult): string {
  const q = task.quorum;
  const judged = q.results.filter((x) => x.digest !== null).length;
  const quorum = judged || q.needed > 1 ? `  quorum ${q.agreeing}/${q.needed} agreeing (${judged} result${judged === 1 ? '' : 's'}, ${q.outputs} output${q.outputs === 1 ? '' : 's'})` : '';
  const state = task.state === 'exit-nonzero' ? `done (exit ${task.exitCode})` : task.state === 'done' ? `done  exit ${task.exitCode}` : isFinal(task.state) ? task.state : `${task.state}  (no result yet)`;
  const lines = [`${task.taskId}  ${state}${task.error ? `  ${printableLine(task.error.code)}: ${printableLine(task.error.message)}` : ''}${quorum}`];
  for (const x of q.results) if (x.validation === 'invalid') lines.push(`  device ${printableLine(x.deviceId)} disagreed (output ${x.digest?.slice(0, 12)}): no credit`);
  const show = (label: string, data: Uint8Array) => {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(data);
    const shown = isUtf8(data) ? printableText(text.length > 400 ? `${text.slice(0, 400)}...` : text.trimEnd()) : `<${data.length} bytes, not UTF-8>`;
    if (data.length > 0) lines.push(`  ${label}: ${shown}`);
  };
  if (task.agreed) {
    show('stdout', task.stdout);
    show('stderr', task.stderr);
    for (const f of task.files) show(`file ${printableLine(f.path)}`, f.data);
  }
  return lines.join('\n');
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** "a, b, c and 4 more". */
function some(ids: readonly string[], at = 10): string {
  return ids.length <= at ? ids.join(', ') : `${ids.slice(0, at).join(', ')} and ${ids.length - at} more`;
}

async function results(positionals: string[], ctx: Context): Promise<number> {
  const { values } = ctx;
  const [batchId, ...extra] = positionals;
  if (!batchId) throw new UsageError('results needs a batch id: dewgrid results BATCH');
  if (extra.length) throw new UsageError(`results takes one batch id, got also: ${extra.join(' ')}`);
  const accept = values['accept-failures'] === true;
  await reach(ctx);
  const batch = (await openProject(ctx)).batch(batchId);
  const progress = Progress.on(process.stderr, values.progress === true);
  const root = typeof values.out === 'string' ? resolve(values.out) : null;
  const unwritten: string[] = [];
  let written = 0;
  let filesWritten = 0;

  /** Writes one task's result under --out, if it has one: every name checked before any file is written. */
  const write = (task: TaskResult, onFile?: () => void) => {
    if (!root || !task.agreed) return;
    const plan = planTask(root, task);
    if (plan.refusedFiles) {
      plan.writes = plan.writes.slice(0, 3); // stdout, stderr and exit code: the names at fault are the files'
      unwritten.push(task.taskId);
      process.stderr.write(`dewgrid: ${task.taskId}: its output files are not written: ${plan.refusedFiles}\n`);
    }
    writeTask(plan, () => {
      filesWritten++;
      onFile?.();
    });
    written++;
  };

  let tasks: TaskResult[];
  if (values.follow) {
    tasks = [];
    for await (const task of batch.results()) {
      tasks.push(task);
      write(task);
      if (values.json) console.log(printableJson(task.view));
      else if (!root) console.log(taskText(task));
      else progress.update(`Results: ${tasks.length}, written ${written}`);
    }
    if (root) progress.done(`Wrote ${filesWritten} file${filesWritten === 1 ? '' : 's'}.`);
  } else {
    const fetched = await batch.fetchResults({ onReceived: (received, total) => progress.update(`Fetching results: ${formatBytes(received)}${total === null ? '' : ` of ${formatBytes(total)}`}`) });
    tasks = fetched.tasks;
    progress.done(`Fetched the results of ${tasks.length} task${tasks.length === 1 ? '' : 's'}.`);
    if (root) {
      const total = tasks.filter((t) => t.agreed).length * 3 + tasks.reduce((n, t) => n + (t.agreed ? t.files.length : 0), 0);
      for (const task of tasks) write(task, () => progress.update(`Writing files: ${filesWritten}/${total}`));
      progress.done(`Wrote ${filesWritten} file${filesWritten === 1 ? '' : 's'}.`);
    }
    if (values.json) console.log(printableJson({ batchId: fetched.batchId, name: fetched.name, tasks: tasks.map((t) => t.view) }, 2));
    else if (!root) for (const task of tasks) console.log(taskText(task));
  }
  if (root && !values.json) console.log(`Wrote the results of ${written} task${written === 1 ? '' : 's'} under ${root}`);

  const pending = tasks.filter((t) => !isFinal(t.state)).map((t) => t.taskId);
  const unsuccessful = tasks.filter((t) => isFinal(t.state) && !succeeded(t.state));
  if (pending.length) {
    process.stderr.write(`dewgrid: ${pending.length} task${pending.length === 1 ? ' has' : 's have'} no result yet${root ? ' (nothing is written for them)' : ''}: ${some(pending)}. \`dewgrid results ${batchId} --follow\` waits for them.\n`);
  }
  if (unsuccessful.length) {
    const why = (t: TaskResult) => (t.state === 'exit-nonzero' ? `${t.taskId} (exit ${t.exitCode})` : `${t.taskId} (${t.state}${t.error ? `: ${printableLine(t.error.code)}` : ''})`);
    process.stderr.write(`dewgrid: ${unsuccessful.length} task${unsuccessful.length === 1 ? '' : 's'} did not succeed: ${some(unsuccessful.map(why))}.${accept ? '' : ' (--accept-failures exits 0 even so.)'}\n`);
  }
  return pending.length || unwritten.length || (unsuccessful.length && !accept) ? EXIT_INCOMPLETE : 0;
}

/**
 * Sends a keyset to the server. null when it took it (or had it already); the reason otherwise:
 * an unreachable server is not an error here (push it later), a refusal is.
 */
async function pushKeyset(server: string, signed: SignedKeyset): Promise<string | null> {
  // A keyset carries its root's signature: no owner token is needed to send it (nor held: keygen makes the first key).
  const http = new OwnerHttp(server, { keyId: '', secretKey: new Uint8Array(0) });
  try {
    await http.request('POST', API.keyset, { body: signed, schema: v.unknown(), owner: false }).catch(async (error) => {
      if (error instanceof ServerRefusedError && error.status === 404) await serverInfo(server); // a 404 from something that is not Dewgrid
      throw error;
    });
    return null;
  } catch (error) {
    if (error instanceof ServerUnreachableError) return error.message;
    if (error instanceof NotADewgridServerError) throw error;
    throw new Error(`the server refused keyset version ${signed.keyset.version}: ${(error as Error).message}`);
  }
}

function reportPush(server: string, unreached: string | null): void {
  if (unreached === null) console.log(`The task server at ${server} has it now.`);
  else process.stderr.write(`dewgrid: the keyset was not sent (${unreached}); send it with \`dewgrid keys push\` once the server runs.\n`);
}

/** The data folder's keyset; a usage error when it is missing or unreadable. */
function localKeyset(dataDir: string): SignedKeyset {
  let signed: SignedKeyset | null;
  try {
    signed = readKeyset(dataDir);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (!signed) throw new UsageError(`${keysetPath(dataDir)} is missing: run \`dewgrid keygen\` first`);
  return signed;
}

function describeKey(k: SignedKeyset['keyset']['keys'][number], now: number): string {
  const when = (ms: number) => new Date(ms).toISOString();
  if (k.revokedAt !== null) return `revoked ${when(k.revokedAt)}`;
  if (k.notAfter !== null && k.notAfter <= now) return `retired ${when(k.notAfter)}`;
  return `valid from ${when(k.notBefore)}${k.notAfter === null ? '' : ` until ${when(k.notAfter)}`}`;
}

async function keys(positionals: string[], ctx: Context, rootFile: string): Promise<void> {
  const { values, dataDir, server } = ctx;
  const [verb, ...rest] = positionals;
  const fail = (error: Error) => {
    throw new UsageError(error.message);
  };
  switch (verb) {
    case 'rotate': {
      if (rest.length) throw new UsageError(`keys rotate takes no arguments, got: ${rest.join(' ')}`);
      const graceHours = integer(values, 'grace', 168, 0, 24 * 365);
      const { key, keyset, retired } = await rotateKey(dataDir, { graceMs: graceHours * 3600_000, rootFile }).catch(fail);
      const pushed = await pushKeyset(server, keyset);
      if (values.json) return void console.log(JSON.stringify({ keyId: key.keyId, retired, version: keyset.keyset.version, pushed: pushed === null }));
      console.log(`New signing key ${key.keyId} (${keyPath(dataDir, key.keyId)}) in keyset version ${keyset.keyset.version}; publish signs with it from now on.`);
      if (retired.length) console.log(`Retiring ${retired.join(', ')} in ${graceHours} h: tasks they signed verify until then.`);
      return reportPush(server, pushed);
    }
    case 'revoke': {
      const [keyId, ...extra] = rest;
      if (!keyId || extra.length) throw new UsageError('keys revoke takes one key id: dewgrid keys revoke KEYID');
      if (!/^[0-9a-f]{16}$/.test(keyId)) throw new UsageError(`a key id is 16 lowercase hex digits, got "${keyId}"`);
      const keyset = await revokeKey(dataDir, keyId, { rootFile }).catch(fail);
      const pushed = await pushKeyset(server, keyset);
      if (values.json) return void console.log(JSON.stringify({ revoked: keyId, version: keyset.keyset.version, pushed: pushed === null }));
      console.log(`Revoked ${keyId} in keyset version ${keyset.keyset.version}: clients refuse every task it signed once they hold this keyset.`);
      return reportPush(server, pushed);
    }
    case 'list': {
      if (rest.length) throw new UsageError(`keys list takes no arguments, got: ${rest.join(' ')}`);
      const signed = localKeyset(dataDir);
      if (values.json) return void console.log(JSON.stringify(signed.keyset, null, 2));
      const now = Date.now();
      console.log(`Keyset version ${signed.keyset.version}, signed by root ${signed.rootKeyId} at ${new Date(signed.keyset.issuedAt).toISOString()}:`);
      for (const k of signed.keyset.keys) console.log(`  ${k.keyId}  ${describeKey(k, now)}`);
      return;
    }
    case 'push': {
      if (rest.length) throw new UsageError(`keys push takes no arguments, got: ${rest.join(' ')}`);
      const signed = localKeyset(dataDir);
      await reach(ctx);
      const unreached = await pushKeyset(server, signed);
      if (unreached !== null) throw new ServerUnreachableError(server, unreached);
      if (values.json) return void console.log(JSON.stringify({ version: signed.keyset.version }));
      return void console.log(`The task server at ${server} holds keyset version ${signed.keyset.version}.`);
    }
    default:
      throw new UsageError(verb ? `unknown keys command "${verb}" (rotate, revoke, list, push)` : 'keys needs a command: rotate, revoke, list or push');
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command) {
    process.stderr.write(`dewgrid: no command given\n\n${HELP}\n`);
    return 2;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return 0;
  }
  const spec = COMMANDS[command];
  if (!spec) {
    const guess = Object.keys(COMMANDS).find((c) => c.startsWith(command.slice(0, 3)));
    throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')})${guess ? `; did you mean ${guess}?` : ''}`);
  }
  const allFlags = Object.fromEntries(Object.entries(COMMANDS).map(([name, c]) => [name, c.flags]));
  const parsed = parseCommandLine(rest, { ...GLOBAL, ...spec.flags }, { command, takesIds: spec.takesIds, otherFlags: allFlags });
  const values = parsed.values;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const dataGiven = typeof values.data === 'string' || process.env.DEWGRID_DATA !== undefined;
  const dataDir = (values.data as string | undefined) ?? process.env.DEWGRID_DATA ?? '.dewgrid';
  const server = ((values.server as string | undefined) ?? process.env.DEWGRID_SERVER ?? DEFAULT_SERVER).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(server)) throw new UsageError(`--server must be an http(s) URL, got "${server}"`);
  const ctx: Context = { values, dataDir, server, dataGiven };
  const rootFile = typeof values.root === 'string' ? values.root : keyPath(dataDir, ROOT_KEY_NAME);
  switch (command) {
    case 'keygen': {
      if (parsed.positionals.length) throw new UsageError(`keygen takes no arguments, got: ${parsed.positionals.join(' ')}`);
      const projectName = values.project as string | undefined;
      if (projectName !== undefined && (projectName.length === 0 || projectName.length > 200)) throw new UsageError('--project must be 1-200 characters');
      const made = await initProject(dataDir, { projectName, force: Boolean(values.force) }).catch((error: Error) => {
        throw new UsageError(error.message);
      });
      const pushed = await pushKeyset(server, made.keyset);
      if (values.json) {
        console.log(JSON.stringify({ rootKeyId: made.root.keyId, keyId: made.key.keyId, version: made.keyset.keyset.version, pushed: pushed === null }));
      } else {
        console.log(`Root key ${made.root.keyId} written to ${keyPath(dataDir, ROOT_KEY_NAME)}: it signs keysets only, so keep it offline once the project is set up.`);
        console.log(`Signing key ${made.key.keyId} written to ${keyPath(dataDir, made.key.keyId)}, named in keyset version ${made.keyset.keyset.version} (${keysetPath(dataDir)}).`);
        console.log(`Clients trust ${trustPath(dataDir)}: build the page with it (DEWGRID_TRUST_FILE), and give the task server a copy.`);
        reportPush(server, pushed);
      }
      return 0;
    }
    case 'keys':
      await keys(parsed.positionals, ctx, rootFile);
      return 0;
    case 'publish':
      await publish(parsed.positionals, ctx);
      return 0;
    case 'batches':
      await batches(parsed.positionals, ctx);
      return 0;
    case 'status':
      await status(parsed.positionals, ctx);
      return 0;
    case 'results':
      return results(parsed.positionals, ctx);
    case 'cancel':
      await cancel(parsed.positionals, ctx);
      return 0;
    case 'token':
      await token(parsed.positionals, ctx);
      return 0;
  }
  return 2;
}

/** What to do about an error, where the user is: one line after the error's own. */
function advice(error: Error, server: string): string | null {
  const local = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(server);
  if (error instanceof ServerUnreachableError) {
    if (local && inCheckout()) return `Start it with \`npm start\` in this folder (it serves on PORT, default 8787), or give another address with --server URL.`;
    if (local) return `Start the task server (\`npm start\` in the Dewgrid folder), or give its address with --server URL or DEWGRID_SERVER.`;
    return `Check the address (--server or DEWGRID_SERVER) and that the server runs.`;
  }
  if (error instanceof NotADewgridServerError) {
    return `Is --server right? \`npm start\` prints the task server's address${local ? ' (the demo partner site, on the next port, is not it)' : ''}.`;
  }
  if (error instanceof ServerRefusedError && error.status === 401) {
    return `The server does not take this data folder's key as the project owner's: is the server's keyset this project's (\`dewgrid keys push\` sends it), and --data the project's folder?`;
  }
  return null;
}

// exitCode, not exit(): exit() would cut off stdout still queued for a pipe.
const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    const server = (process.env.DEWGRID_SERVER ?? DEFAULT_SERVER).replace(/\/+$/, '');
    const flagged = argv.indexOf('--server');
    const shown = flagged >= 0 && argv[flagged + 1] ? argv[flagged + 1]!.replace(/\/+$/, '') : argv.find((a) => a.startsWith('--server='))?.slice(9).replace(/\/+$/, '') ?? server;
    const hint = advice(error, shown);
    // On a terminal, over any progress line left showing (server/progress.ts).
    process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}dewgrid: ${printableLine(error.message)}${hint ? `\n${hint}` : ''}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  },
);
