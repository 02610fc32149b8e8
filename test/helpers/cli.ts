/** The `dewgrid` CLI as a project owner runs it: a child process, asynchronously (a server in this process must keep answering). */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export const CLI = fileURLToPath(new URL('../../server/bin/dewgrid.js', import.meta.url));

/**
 * Runs `dewgrid ARGS...` with this environment added (DEWGRID_SERVER, DEWGRID_DATA, ...).
 * @param options.cwd where it runs (default the repository, as `npx dewgrid` there would)
 */
export function runCli(args: readonly string[], env: Record<string, string | undefined> = {}, options: { cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv = { ...process.env, ...env };
    for (const [name, value] of Object.entries(env)) if (value === undefined) delete childEnv[name];
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd ?? process.cwd(), env: childEnv, maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}
