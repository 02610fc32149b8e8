/**
 * A peer for bench/peers.ts: the module run under @wasmer/sdk 0.16 as a plain WASI command, the
 * way worker/wasix/runtime.ts uses the SDK (its unbundled files at /wasmer-sdk/, one guest thread,
 * networking off). The SDK takes bytes, not a compiled module: the package is made once at load
 * with the task's input files at their paths (the SDK compiles its copy then, and gives each run a
 * private writable overlay of the files), and each run gets a fresh sandbox.
 *
 * The SDK's sandbox file API reaches only /workspace, so a folder the program writes its outputs
 * to moves there, as a user of the SDK would put it: `/out` is `/workspace/out` in the arguments
 * that name it. A path compiled into the program stays where it is (the package holds an empty
 * file in each task folder, so the folder exists), and what the program writes there cannot be
 * read back: the run says so rather than compare it.
 */
import type { Package, Wasmer } from '@wasmer/sdk/browser';
import type { PeerJob, PeerOutputs, PeerReply, PeerRequest } from './peer-protocol.ts';

const WORKSPACE = '/workspace';
/** The empty file that makes a task folder exist in the package's private overlay. */
const KEEP = '.dewgrid-folder';

let client: Promise<Wasmer> | null = null;
let pkg: Package | null = null;
/** The step a run is at: what the page is told when a run does not answer (PeerRequest 'stage'). */
let stage = 'idle';

function loadWasmer(): Promise<Wasmer> {
  client ??= (async () => {
    const base = new URL('/wasmer-sdk/', self.location.origin);
    const sdk = (await import(/* @vite-ignore */ new URL('dist/index.js', base).href)) as typeof import('@wasmer/sdk/browser');
    const wasmer = new sdk.Wasmer({ wasm: new URL('pkg/wasmer_sdk_js_bg.wasm', base), cache: 'memory', parallelism: 1 });
    await wasmer.ready();
    return wasmer;
  })();
  return client;
}

/** Each task folder named in `text` (at its start, or after a space, `;` or `=`) moved under /workspace. */
function moved(text: string, folders: string[]): string {
  if (!folders.length) return text;
  const escaped = folders.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  return text.replace(new RegExp(`(^|[\\s;=])(${escaped})(?=/|$|\\s|;)`, 'g'), `$1${WORKSPACE}$2`);
}

async function run(job: PeerJob): Promise<PeerOutputs> {
  if (!pkg) throw new Error('no module loaded');
  const wasmer = await loadWasmer();
  // The task folders that node:wasi's run wrote outputs to.
  const folders = job.preopens.filter((folder) => job.outputPaths.some((path) => path.startsWith(`${folder}/`)));
  stage = 'creating a sandbox';
  const sandbox = await wasmer.sandboxes.create({ packages: [pkg], env: Object.fromEntries(job.env), network: { mode: 'disabled' } });
  try {
    stage = 'making the output folders';
    for (const folder of folders) await sandbox.fs.mkdir(moved(folder, folders), { recursive: true });
    stage = 'running the command';
    // argv[0] is the command's name under the SDK.
    const output = await sandbox.command(pkg, job.args.slice(1).map((arg) => moved(arg, folders))).run({ check: false, stdin: job.stdin, outputBytes: 64 * 2 ** 20 });
    if (output.reason !== 'exited') throw new Error(`the process was ${output.reason} (exit status ${output.exitCode})`);
    const files = [];
    const unreadable: string[] = [];
    stage = 'reading the outputs';
    for (const path of job.outputPaths) {
      // A folder named in the arguments moved; a path compiled into the program did not, and the SDK cannot read it.
      const data = await sandbox.fs.readFile(moved(path, folders)).catch(() => null);
      if (data) files.push({ path, data });
      else unreadable.push(path);
    }
    return {
      exitCode: output.exitCode,
      stdout: output.stdout.bytes,
      stderr: output.stderr.bytes,
      files,
      unreadable: unreadable.length ? { paths: unreadable, why: `the program wrote them outside ${WORKSPACE}, where @wasmer/sdk's file API cannot read` } : undefined,
    };
  } finally {
    stage = 'closing the sandbox';
    await sandbox.close().catch(() => undefined);
    stage = 'idle';
  }
}

self.onmessage = async (event: MessageEvent<PeerRequest>) => {
  if (event.data.type === 'stage') return event.ports[0]?.postMessage(stage);
  let reply: PeerReply;
  try {
    if (!self.crossOriginIsolated) throw new Error('@wasmer/sdk needs a cross-origin isolated page (without it, runs "succeed" with no output)');
    if (event.data.type === 'load') {
      const wasmer = await loadWasmer();
      const { preopens, files } = event.data.job;
      const inputs = Object.fromEntries([...preopens.map((folder) => [`${folder}/${KEEP}`, new Uint8Array(0)] as const), ...files.map((f) => [f.path, f.data] as const)]);
      pkg = await wasmer.packages.create({ modules: { task: event.data.bytes }, commands: { task: { module: 'task' } }, files: inputs });
      reply = { type: 'loaded' };
    } else {
      const started = performance.now();
      const outputs = await run(event.data.job);
      reply = { type: 'ran', outputs, runMs: performance.now() - started };
    }
  } catch (error) {
    reply = { type: 'failed', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  self.postMessage(reply);
};
