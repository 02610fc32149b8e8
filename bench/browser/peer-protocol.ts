/**
 * What the bench page and its peer workers (shim-worker.ts, wasmer-worker.ts) say to each other:
 * load a program once (compiled, or as bytes where the runtime compiles its own copy), then run it
 * as often as asked. A job is what the client's own worker takes (WorkerJob), less its module.
 */
export interface PeerJob {
  args: string[];
  env: [string, string][];
  stdin: Uint8Array;
  files: { path: string; data: Uint8Array }[];
  preopens: string[];
  /** Where node:wasi's run wrote files: what a runtime with no way to list its writes reads back. */
  outputPaths: string[];
}

/** `stage`: what the worker is doing now, answered on the port sent with it (asked of a run that does not answer). */
export type PeerRequest = { type: 'load'; module: WebAssembly.Module; bytes: Uint8Array; job: PeerJob } | { type: 'run'; job: PeerJob } | { type: 'stage' };

export interface PeerOutputs {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  files: { path: string; data: Uint8Array }[];
  /** Files the run wrote that the runtime cannot hand back (outputPaths it could not read), with why. */
  unreadable?: { paths: string[]; why: string };
}

/** runMs: the run as the worker timed it, from the job's arrival to its outputs collected. */
export type PeerReply = { type: 'loaded' } | { type: 'ran'; outputs: PeerOutputs; runMs: number } | { type: 'failed'; message: string };

/** The files under the preopened folders that the run wrote or changed, by path: the same rule as test/helpers/node-wasi.ts. */
export function writtenFiles(found: { path: string; data: Uint8Array }[], inputs: { path: string; data: Uint8Array }[]): { path: string; data: Uint8Array }[] {
  const given = new Map(inputs.map((f) => [f.path, f.data]));
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
  return found.filter((f) => !given.has(f.path) || !same(given.get(f.path)!, f.data)).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
