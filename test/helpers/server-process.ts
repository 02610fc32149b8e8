/**
 * A task server in a process of its own (`node --import tsx server/main.ts`), as deployed: for
 * benchmarks (the load generator must not share the server's event loop) and for failure tests
 * (a process can be killed outright).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { onProcessEnd } from './cleanup.ts';

export interface ServerProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  /** What it printed to stderr so far (to say why it failed). */
  stderr(): string;
  /** Sends the signal (SIGTERM: a clean stop; SIGKILL: a crash) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a server on a free loopback port with the given environment (DEWGRID_DATA,
 * DEWGRID_DATABASE_URL, ...) and resolves once it listens.
 * @param tree the checkout whose server/main.ts to run (another tree's, to compare two versions)
 */
export function spawnServer(env: NodeJS.ProcessEnv, options: { tree?: string; flags?: string[] } = {}): Promise<ServerProcess> {
  const tree = options.tree ?? process.cwd();
  const child = spawn(process.execPath, [...(options.flags ?? []), '--import', 'tsx', join(tree, 'server/main.ts')], {
    cwd: tree,
    // Simulated devices (test/helpers/fleet.ts) post hundreds of times a second each, far past one
    // browser's pace: the per-device rate limit is raised out of their way unless `env` sets it.
    env: { ...process.env, PORT: '0', DEWGRID_STATIC: join(tree, '.no-static'), DEWGRID_DEVICE_RATE: '1000000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A server must not outlive the test or benchmark that started it, however that ends.
  const forget = onProcessEnd(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      forget();
      resolve(code);
    }),
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk;
      const match = /on (http:\/\/\S+)/.exec(out);
      if (match) {
        resolve({
          url: match[1]!,
          pid: child.pid!,
          child,
          exited,
          stderr: () => err,
          async kill(signal = 'SIGTERM') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            await exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`the server exited with ${code} before listening: ${err.trim() || out.trim()}`)));
  });
}
