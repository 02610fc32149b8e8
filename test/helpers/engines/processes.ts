/**
 * Processes a browser test starts itself (Xvfb, WebKitWebDriver and the browser it launches), each
 * in a process group of its own so that ending the group ends everything under it, whatever the
 * test did; and ended when the test process exits or is signalled, even on a failure that skipped
 * the teardown.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';

const groups = new Set<number>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

const killAll = () => {
  for (const pid of groups) killGroup(pid, 'SIGKILL');
  groups.clear();
};
process.once('exit', killAll);
// A signal ends Node without 'exit' (a `timeout`, Ctrl-C, CI cancelling): the groups first, then
// the signal's own way; where others listen too (puppeteer closes its browser on SIGTERM and then
// lets the process run on), the process ends once they have had two seconds.
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
for (const [signal, number] of Object.entries(SIGNALS) as [keyof typeof SIGNALS, number][]) {
  process.once(signal, () => {
    killAll();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    else setTimeout(() => process.exit(128 + number), 2000).unref();
  });
}

export interface GroupProcess {
  child: ChildProcess;
  /** Ends the whole group: SIGTERM, then SIGKILL after `graceMs` if anything is left. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `command` as the leader of a new process group. */
export function spawnGroup(command: string, args: string[], options: SpawnOptions = {}): GroupProcess {
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  groups.add(pid);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    child,
    async stop(graceMs = 2000) {
      if (!groups.delete(pid)) return;
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // The leader is gone; what it started may not be (a browser's helper processes).
      killGroup(pid, 'SIGKILL');
    },
  };
}

/** A loopback port free at the time of asking (for a server that takes its port on the command line). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
