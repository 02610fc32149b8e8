/**
 * A peer for bench/peers.ts: the module run under browser_wasi_shim (@bjorn3/browser_wasi_shim),
 * as its README sets a program up: stdin as an in-memory file, stdout and stderr collected, each
 * preopened folder an in-memory directory holding the task's input files. The module is the
 * program as published (no yield hook, no memory cap): what a user of the shim would run.
 */
import { ConsoleStdout, Directory, File, Inode, OpenFile, PreopenDirectory, WASI } from '@bjorn3/browser_wasi_shim';
import { writtenFiles, type PeerJob, type PeerOutputs, type PeerReply, type PeerRequest } from './peer-protocol.ts';

let module: WebAssembly.Module | null = null;

type Tree = Map<string, Tree | Uint8Array>;

/** A preopened folder's contents from the input files under it. */
function directoryOf(preopen: string, files: PeerJob['files']): Map<string, Inode> {
  const root: Tree = new Map();
  for (const file of files) {
    if (!file.path.startsWith(`${preopen}/`)) continue;
    const parts = file.path.slice(preopen.length + 1).split('/');
    let at = root;
    for (const part of parts.slice(0, -1)) {
      let next = at.get(part);
      if (!(next instanceof Map)) at.set(part, (next = new Map()));
      at = next;
    }
    at.set(parts[parts.length - 1]!, file.data);
  }
  const build = (tree: Tree): Map<string, Inode> => new Map([...tree].map(([name, node]) => [name, node instanceof Map ? new Directory(build(node)) : new File(node)]));
  return build(root);
}

function filesIn(directory: Directory, at: string, into: { path: string; data: Uint8Array }[]): void {
  for (const [name, node] of directory.contents) {
    if (node instanceof Directory) filesIn(node, `${at}/${name}`, into);
    else if (node instanceof File) into.push({ path: `${at}/${name}`, data: node.data });
  }
}

function run(job: PeerJob): PeerOutputs {
  if (!module) throw new Error('no module loaded');
  const stdout: Uint8Array[] = [];
  const stderr: Uint8Array[] = [];
  const preopens = job.preopens.map((p) => new PreopenDirectory(p, directoryOf(p, job.files)));
  const wasi = new WASI(job.args, job.env.map(([k, v]) => `${k}=${v}`), [
    new OpenFile(new File(job.stdin)),
    new ConsoleStdout((data) => stdout.push(data.slice())),
    new ConsoleStdout((data) => stderr.push(data.slice())),
    ...preopens,
  ]);
  const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: wasi.wasiImport });
  const exitCode = wasi.start(instance as { exports: { memory: WebAssembly.Memory; _start: () => unknown } });
  const found: { path: string; data: Uint8Array }[] = [];
  preopens.forEach((p, i) => filesIn(p.dir, job.preopens[i]!, found));
  const joined = (chunks: Uint8Array[]) => {
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return out;
  };
  return { exitCode, stdout: joined(stdout), stderr: joined(stderr), files: writtenFiles(found, job.files) };
}

self.onmessage = (event: MessageEvent<PeerRequest>) => {
  if (event.data.type === 'stage') return event.ports[0]?.postMessage('idle'); // runs are synchronous: asked, it is between them
  let reply: PeerReply;
  try {
    if (event.data.type === 'load') {
      module = event.data.module;
      reply = { type: 'loaded' };
    } else {
      const started = performance.now();
      const outputs = run(event.data.job);
      reply = { type: 'ran', outputs, runMs: performance.now() - started };
    }
  } catch (error) {
    reply = { type: 'failed', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  self.postMessage(reply);
};
