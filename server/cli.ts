/**
 * `dewgrid`: the project owner's CLI. Usage problems exit 2 with one line saying what is wrong;
 * server problems exit 1 with the server's message.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep, posix } from 'node:path';
import {
  API,
  ENGINES,
  KEYSET_REFUSAL_TEXT,
  MAX_OUTPUT_BYTES,
  parse,
  PublishRequest,
  REFUSAL_TEXT,
  TASK_STATES,
  type BatchResults,
  type BatchStatus,
  type Engine,
  type JsonBytes,
  type KeysetRefusalReason,
  type SignedKeyset,
} from '../src/protocol/index.ts';
import { currentSigningKey, initProject, keyPath, keysetPath, readKey, readKeyset, revokeKey, ROOT_KEY_NAME, rotateKey, trustPath, type SigningKey } from './keys.ts';
import { buildBatch, postJson, publishBatch, PublishError, type TaskSpec } from './publish.ts';
import { formatBytes, Progress } from './progress.ts';

class UsageError extends Error {}

const HELP = `dewgrid: publish signed WebAssembly tasks and collect their results

Usage:
  dewgrid keygen [--project NAME] [--force]      a root key, the trust file, a first signing key, keyset 1
  dewgrid keys rotate [--grace HOURS]            a new signing key; the others retire after the grace (168 h)
  dewgrid keys revoke KEYID                      nothing KEYID signed verifies any more
  dewgrid keys list                              the keyset's keys and their windows
  dewgrid keys push                              sends the keyset to the server again
  dewgrid publish MODULE.wasm [--arg A]... [--env K=V]... [--stdin FILE] [--file GUEST=HOST]...
                  [--dir HOST:GUEST]... [--count N] [--redundancy R] [--adaptive] [--timeout SECONDS]
                  [--memory MB] [--output-limit MB] [--expires HOURS] [--name NAME] [--batch ID]
                  [--argv0 NAME] [--deterministic] [--engine wasi-preview1|wasix] [--json] [--progress]
  dewgrid status [BATCH] [--json]
  dewgrid results BATCH [--json] [--out DIR] [--progress]

Everywhere: --server URL (default $DEWGRID_SERVER or http://localhost:8787),
            --data DIR (default $DEWGRID_DATA or ./.dewgrid),
            --key FILE (publish; default: the newest valid signing key of DATA/keyset.json held in DATA/keys),
            --root FILE (keys rotate/revoke; default DATA/keys/root.json: keep it offline)
In publish, {i} in --arg and --env values becomes the task's index (0 to N-1).
publish and results show their progress on stderr when it is a terminal, or anywhere with --progress.`;

const GLOBAL: ParseArgsConfig['options'] = {
  server: { type: 'string' },
  data: { type: 'string' },
  key: { type: 'string' },
  root: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
};

const COMMANDS: Record<string, ParseArgsConfig['options']> = {
  keygen: { project: { type: 'string' }, force: { type: 'boolean' } },
  keys: { grace: { type: 'string' } },
  publish: {
    arg: { type: 'string', multiple: true },
    env: { type: 'string', multiple: true },
    stdin: { type: 'string' },
    file: { type: 'string', multiple: true },
    dir: { type: 'string', multiple: true },
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
  status: {},
  results: { out: { type: 'string' }, progress: { type: 'boolean' } },
};

type Values = Record<string, string | boolean | string[] | undefined>;

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

/** An absolute guest path as the manifest schema wants it; a trailing slash is dropped. */
function guestPath(path: string, flag: string): string {
  if (!path.startsWith('/')) throw new UsageError(`${flag}: guest path "${path}" must be absolute`);
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  if (trimmed !== '/' && !/^(\/(?!\.\.?(\/|$))[^/\0]+)+$/.test(trimmed)) {
    throw new UsageError(`${flag}: guest path "${path}" must not hold ., .. or empty segments`);
  }
  return trimmed;
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;

function underPreopen(path: string, preopens: string[]): boolean {
  return preopens.some((p) => p === '/' || path === p || path.startsWith(`${p}/`));
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

async function publish(positionals: string[], values: Values, server: string, signingKey: () => Promise<SigningKey>): Promise<void> {
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
  const preopens: string[] = [];
  for (const spec of (values.dir as string[] | undefined) ?? []) {
    const at = spec.lastIndexOf(':');
    if (at <= 0) throw new UsageError(`--dir "${spec}" must be HOST:GUEST`);
    const host = spec.slice(0, at);
    const guest = guestPath(spec.slice(at + 1), '--dir');
    if (!existsSync(host) || !statSync(host).isDirectory()) throw new UsageError(`--dir ${host}: no such folder`);
    if (preopens.includes(guest)) throw new UsageError(`--dir: guest path ${guest} given twice`);
    preopens.push(guest);
    for (const file of listFiles(host)) {
      const rel = relative(host, file).split(sep).join('/');
      files.push({ path: guest === '/' ? `/${rel}` : `${guest}/${rel}`, data: readHostFile(file, '--dir') });
    }
  }
  for (const spec of (values.file as string[] | undefined) ?? []) {
    const at = spec.indexOf('=');
    if (at <= 0) throw new UsageError(`--file "${spec}" must be GUEST=HOST`);
    const guest = guestPath(spec.slice(0, at), '--file');
    if (guest === '/') throw new UsageError(`--file "${spec}": / is a folder, not a file path`);
    files.push({ path: guest, data: readHostFile(spec.slice(at + 1), '--file') });
    if (!underPreopen(guest, preopens)) preopens.push(posix.dirname(guest));
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
  const tasks: TaskSpec[] = Array.from({ length: count }, (_, i) => ({
    args: [argv0, ...args.map((a) => a.replaceAll('{i}', String(i)))],
    env: env.map(([k, v]): [string, string] => [k, v.replaceAll('{i}', String(i))]),
    stdin,
    files,
    preopens,
  }));
  const key = await signingKey().catch((error: Error) => {
    throw new UsageError(error.message);
  });
  const progress = Progress.on(process.stderr, values.progress === true);
  const request = await buildBatch(
    {
      batchId: typeof values.batch === 'string' ? values.batch : undefined,
      name: typeof values.name === 'string' ? values.name : argv0,
      module,
      tasks,
      limits: { memoryBytes: memory * 2 ** 20, wallTimeMs: timeout * 1000, outputBytes: outputLimit * 2 ** 20 },
      redundancy,
      deterministic: values.deterministic === true ? true : undefined,
      engine: engine as Engine,
      expiresInMs: expires * 3600 * 1000,
    },
    key,
    undefined,
    (signed, total) => progress.update(`Signing tasks: ${signed}/${total}`),
  );
  progress.done(`Signed ${count} task${count === 1 ? '' : 's'}.`);
  // The server checks all of this too; checking here makes a bad flag a usage error, not a server error.
  const checked = parse(PublishRequest, request);
  if (!checked.ok) throw new UsageError(`the batch would be refused: ${checked.message}`);
  if (!values.json) process.stderr.write(`Publishing ${count} task${count === 1 ? '' : 's'} of ${argv0} to ${server}...\n`);
  if (values.adaptive === true) request.batch.adaptive = true;
  // The blobs travel in the batch's body, with the signed tasks: one upload.
  const status = await publishBatch(
    server,
    request,
    progress.shown
      ? {
          blobs: (sending, blobs, bytes) =>
            progress.done(
              sending === 0
                ? `Blobs: the server has all ${blobs} already.`
                : `Blobs: uploading ${sending === blobs ? `all ${blobs}` : `${sending} of ${blobs} (the server has the rest)`}, ${formatBytes(bytes)}.`,
            ),
          uploading: (sent, total) => progress.update(`Uploading blobs and tasks: ${formatBytes(sent)} of ${formatBytes(total)}`),
          uploaded: (total) => {
            progress.done(`Uploaded blobs and tasks: ${formatBytes(total)}.`);
            progress.update('Waiting for the server to verify and store the batch...');
          },
        }
      : undefined,
  );
  progress.done('The server stored the batch.');
  const taskIds = request.tasks.map((t) => t.manifest.taskId);
  if (values.json) console.log(JSON.stringify({ batchId: status.batchId, tasks: taskIds }));
  else console.log(`Published batch ${status.batchId}: ${taskIds.length} task${taskIds.length === 1 ? '' : 's'}, signed by key ${key.keyId}.`);
}

/** @param onReceived when given, told the body's bytes as they arrive, and its length if the server said */
async function getJson<T>(url: string, onReceived?: (received: number, total: number | null) => void): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new PublishError(`cannot reach ${url}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`, 0);
  }
  let body: Promise<unknown>;
  if (onReceived && response.body) {
    const length = Number(response.headers.get('content-length') ?? NaN);
    const chunks: Uint8Array[] = [];
    let received = 0;
    body = (async () => {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        chunks.push(chunk);
        received += chunk.length;
        onReceived(received, Number.isFinite(length) ? length : null);
      }
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    })();
  } else {
    body = response.json();
  }
  const json = (await body.catch(() => null)) as (T & { message?: string }) | null;
  if (!response.ok || json === null) throw new PublishError(`${response.status} ${json?.message ?? response.statusText}`, response.status);
  return json;
}

function countsLine(status: BatchStatus): string {
  return TASK_STATES.filter((state) => (status.counts[state] ?? 0) > 0)
    .map((state) => `${status.counts[state]} ${state}`)
    .join(', ');
}

async function status(positionals: string[], values: Values, server: string): Promise<void> {
  const [batchId, ...extra] = positionals;
  if (extra.length) throw new UsageError(`status takes at most one batch id, got also: ${extra.join(' ')}`);
  if (!batchId) {
    const all = await getJson<BatchStatus[]>(server + API.batches);
    if (values.json) return void console.log(JSON.stringify(all, null, 2));
    if (all.length === 0) return void console.log('No batches.');
    for (const b of all) console.log(`${b.batchId}  ${b.name}  ${countsLine(b) || 'empty'}${reportsLine(b) ? `  (${reportsLine(b)})` : ''}`);
    const keysetRefusals = await getJson<{ deviceId: string; version: number; reason: KeysetRefusalReason; detail: string; newDevice?: boolean }[]>(server + API.keysetRefusals);
    for (const r of keysetRefusals) {
      console.log(`keyset version ${r.version} refused on ${deviceWords(r.deviceId, r.newDevice)}: ${r.reason}: ${KEYSET_REFUSAL_TEXT[r.reason] ?? r.reason} (${r.detail})`);
    }
    return;
  }
  const b = await getJson<BatchStatus>(server + API.batch(encodeURIComponent(batchId)));
  if (values.json) return void console.log(JSON.stringify(b, null, 2));
  console.log(`Batch ${b.batchId} (${b.name}): ${countsLine(b) || 'empty'}${b.adaptive ? ' (adaptive replication)' : ''}`);
  if (b.quorum.awaiting) {
    console.log(`  quorum: ${b.quorum.awaiting} task${b.quorum.awaiting === 1 ? '' : 's'} awaiting agreement${b.quorum.disputed ? `, ${b.quorum.disputed} of them disputed (results disagreed: more replicas drawn)` : ''}`);
  }
  if (reportsLine(b)) console.log(`  reports: ${reportsLine(b)}`);
  for (const f of b.failures ?? []) {
    const what = f.code === 'device' ? 'could not prepare or run' : 'failed';
    console.log(`  ${what} ${f.taskId} on ${deviceWords(f.deviceId, f.newDevice)}: ${f.code}: ${f.message}`);
  }
  for (const r of b.refusals) console.log(`  refused ${r.taskId} on ${deviceWords(r.deviceId, r.newDevice)}: ${r.reason}: ${REFUSAL_TEXT[r.reason] ?? r.reason} (${r.detail})`);
}

/** "device X", marked when the device had not earned trust: its report re-issues a task, never ends it. */
function deviceWords(deviceId: string, newDevice: boolean | undefined): string {
  return `${newDevice ? 'new ' : ''}device ${deviceId}`;
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

function bytesOf(data: JsonBytes): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.base64, 'base64');
}

async function results(positionals: string[], values: Values, server: string): Promise<void> {
  const [batchId, ...extra] = positionals;
  if (!batchId) throw new UsageError('results needs a batch id: dewgrid results BATCH');
  if (extra.length) throw new UsageError(`results takes one batch id, got also: ${extra.join(' ')}`);
  const progress = Progress.on(process.stderr, values.progress === true);
  const r = await getJson<BatchResults>(server + API.batchResults(encodeURIComponent(batchId)), (received, total) =>
    progress.update(`Fetching results: ${formatBytes(received)}${total === null ? '' : ` of ${formatBytes(total)}`}`),
  );
  progress.done(`Fetched the results of ${r.tasks.length} task${r.tasks.length === 1 ? '' : 's'}.`);
  if (typeof values.out === 'string') {
    const root = resolve(values.out);
    // Plan every write first: one bad name from the server writes nothing at all.
    const writes: { path: string; data: Uint8Array | string }[] = [];
    for (const task of r.tasks) {
      if (!ID.test(task.taskId)) throw new Error(`refusing to write results for task id "${task.taskId}": not a plain id`);
      const dir = join(root, task.taskId);
      const filesDir = join(dir, 'files');
      writes.push({ path: join(dir, 'stdout'), data: task.stdout === null ? '' : bytesOf(task.stdout) });
      writes.push({ path: join(dir, 'stderr'), data: task.stderr === null ? '' : bytesOf(task.stderr) });
      writes.push({ path: join(dir, 'exit-code'), data: task.exitCode === null ? '' : `${task.exitCode}\n` });
      for (const file of task.files) {
        const target = resolve(filesDir, `.${file.path}`);
        if (!file.path.startsWith('/') || !target.startsWith(filesDir + sep)) {
          throw new Error(`refusing to write ${task.taskId} output file ${JSON.stringify(file.path)}: it would land outside ${filesDir}`);
        }
        writes.push({ path: target, data: bytesOf(file.data) });
      }
    }
    for (const [index, w] of writes.entries()) {
      mkdirSync(dirname(w.path), { recursive: true });
      writeFileSync(w.path, w.data);
      progress.update(`Writing files: ${index + 1}/${writes.length}`);
    }
    progress.done(`Wrote ${writes.length} file${writes.length === 1 ? '' : 's'}.`);
    if (!values.json) console.log(`Wrote ${r.tasks.length} task result${r.tasks.length === 1 ? '' : 's'} under ${root}`);
  }
  if (values.json) return void console.log(JSON.stringify(r, null, 2));
  if (typeof values.out === 'string') return;
  for (const task of r.tasks) {
    const q = task.quorum;
    const judged = q.results.filter((x) => x.digest !== null).length;
    const quorum = judged || q.needed > 1 ? `  quorum ${q.agreeing}/${q.needed} agreeing (${judged} result${judged === 1 ? '' : 's'}, ${q.outputs} output${q.outputs === 1 ? '' : 's'})` : '';
    console.log(`${task.taskId}  ${task.state}${task.exitCode !== null ? `  exit ${task.exitCode}` : ''}${task.error ? `  ${task.error.code}: ${task.error.message}` : ''}${quorum}`);
    for (const x of q.results) if (x.validation === 'invalid') console.log(`  device ${x.deviceId} disagreed (output ${x.digest?.slice(0, 12)}): no credit`);
    const show = (label: string, data: JsonBytes | null) => {
      if (data === null) return;
      const text = typeof data === 'string' ? data : `<${Buffer.from(data.base64, 'base64').length} bytes, not UTF-8>`;
      if (text) console.log(`  ${label}: ${text.length > 400 ? `${text.slice(0, 400)}...` : text.trimEnd()}`);
    };
    show('stdout', task.stdout);
    show('stderr', task.stderr);
    for (const f of task.files) show(`file ${f.path}`, f.data);
  }
}

/**
 * Sends a keyset to the server. null when it took it (or had it already); the reason otherwise:
 * an unreachable server is not an error here (push it later), a refusal is.
 */
async function pushKeyset(server: string, signed: SignedKeyset): Promise<string | null> {
  try {
    await postJson(server + API.keyset, signed);
    return null;
  } catch (error) {
    if (error instanceof PublishError && error.status === 0) return error.message;
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

async function keys(positionals: string[], values: Values, dataDir: string, server: string, rootFile: string): Promise<void> {
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
      const unreached = await pushKeyset(server, signed);
      if (unreached !== null) throw new PublishError(unreached, 0);
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
  const options = COMMANDS[command];
  if (!options) throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...GLOBAL, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    // One line: parseArgs's hints ("To specify an option argument starting with a dash use '--arg=-XYZ'") are worth keeping.
    throw new UsageError((error as Error).message.trim().replace(/\s*\n\s*/g, ' '));
  }
  const values = parsed.values as Values;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const dataDir = (values.data as string | undefined) ?? process.env.DEWGRID_DATA ?? '.dewgrid';
  const server = ((values.server as string | undefined) ?? process.env.DEWGRID_SERVER ?? 'http://localhost:8787').replace(/\/$/, '');
  if (!/^https?:\/\/[^/]+/.test(server)) throw new UsageError(`--server must be an http(s) URL, got "${server}"`);
  const signingKey = () => (typeof values.key === 'string' ? readKey(values.key) : currentSigningKey(dataDir));
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
      await keys(parsed.positionals, values, dataDir, server, rootFile);
      return 0;
    case 'publish':
      await publish(parsed.positionals, values, server, signingKey);
      return 0;
    case 'status':
      await status(parsed.positionals, values, server);
      return 0;
    case 'results':
      await results(parsed.positionals, values, server);
      return 0;
  }
  return 2;
}

// exitCode, not exit(): exit() would cut off stdout still queued for a pipe.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    // On a terminal, over any progress line left showing (server/progress.ts).
    process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}dewgrid: ${error.message}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  },
);
