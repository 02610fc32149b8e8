/**
 * `dewgrid results --out DIR`: each task's agreed result as files, `DIR/<taskId>/stdout`, `stderr`,
 * `exit-code` and `files/<guest path>`. The names come from devices, so a task's names are all
 * checked before any of its files is written: one task with a bad name (`/`, a file that is also
 * another's folder, a name longer than a file system takes, the same path twice) writes none of
 * its output files, and costs the owner none of the other tasks' (docs/security.md).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import type { TaskResult } from '../../owner/index.ts';
import { printableLine } from './printable.ts';

/** Longest name of one path component most file systems take (NAME_MAX), bytes. */
const NAME_MAX = 255;
/** Longest guest path taken, as the protocol's schema says. */
const GUEST_PATH_MAX = 1024;
const TASK_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface PlannedTask {
  taskId: string;
  writes: { path: string; data: Uint8Array | string }[];
  /** Why the task's output files are not written (its stdout, stderr and exit code still are), or null. */
  refusedFiles: string | null;
}

/**
 * What writing a task's result means, every name checked first.
 * @throws Error for a task id that is not a plain id (the owner's own ids: nothing of it is written)
 */
export function planTask(root: string, task: TaskResult): PlannedTask {
  if (!TASK_ID.test(task.taskId)) throw new Error(`refusing to write results for task id "${printableLine(task.taskId)}": not a plain id`);
  const dir = join(root, task.taskId);
  const filesDir = join(dir, 'files');
  const writes: PlannedTask['writes'] = [
    { path: join(dir, 'stdout'), data: task.stdout },
    { path: join(dir, 'stderr'), data: task.stderr },
    { path: join(dir, 'exit-code'), data: task.exitCode === null ? '' : `${task.exitCode}\n` },
  ];
  const problem = checkNames(task.files.map((f) => f.path));
  if (problem) return { taskId: task.taskId, writes, refusedFiles: problem };
  for (const file of task.files) {
    const target = resolve(filesDir, `.${file.path}`);
    // Checked above; this is the last word: nothing lands outside the task's folder.
    if (!target.startsWith(filesDir + sep)) return { taskId: task.taskId, writes, refusedFiles: `${JSON.stringify(printableLine(file.path))} would land outside ${filesDir}` };
    writes.push({ path: target, data: file.data });
  }
  return { taskId: task.taskId, writes, refusedFiles: null };
}

/** The first reason these guest paths cannot all be written as files, or null. */
export function checkNames(paths: readonly string[]): string | null {
  const files = new Set<string>();
  const folders = new Set<string>();
  for (const path of paths) {
    const shown = JSON.stringify(printableLine(path));
    if (typeof path !== 'string' || !path.startsWith('/')) return `the output file path ${shown} is not absolute`;
    if (path === '/' || path.endsWith('/')) return `the output file path ${shown} names a folder, not a file`;
    if (path.length > GUEST_PATH_MAX) return `an output file path is ${path.length} characters long, more than ${GUEST_PATH_MAX}`;
    const parts = path.slice(1).split('/');
    for (const part of parts) {
      if (part === '' || part === '.' || part === '..') return `the output file path ${shown} holds an empty, . or .. segment`;
      if (Buffer.byteLength(part) > NAME_MAX) return `the output file path ${shown.slice(0, 60)}... has a name of ${Buffer.byteLength(part)} bytes, more than a file system takes (${NAME_MAX})`;
      if (/[\x00-\x1f\x7f]/.test(part)) return `the output file path ${shown} holds a control character`;
    }
    if (files.has(path)) return `the output file path ${shown} is given twice`;
    if (folders.has(path)) return `${shown} is both an output file and the folder of another`;
    for (let i = 1; i < parts.length; i++) {
      const folder = `/${parts.slice(0, i).join('/')}`;
      if (files.has(folder)) return `${JSON.stringify(printableLine(folder))} is both an output file and the folder of ${shown}`;
      folders.add(folder);
    }
    files.add(path);
  }
  return null;
}

/** Writes a planned task. @throws Error naming the file that could not be written (the task's earlier files stay) */
export function writeTask(plan: PlannedTask, onWritten?: () => void): void {
  for (const w of plan.writes) {
    try {
      mkdirSync(dirname(w.path), { recursive: true });
      writeFileSync(w.path, w.data);
    } catch (error) {
      throw new Error(`cannot write ${w.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    onWritten?.();
  }
}
