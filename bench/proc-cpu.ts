/**
 * CPU time of a browser's processes and threads from Linux's /proc, for the benchmarks that hold the
 * client to its CPU limit: utime + stime of every thread of every process descended from a root
 * process (this Node process, which launched Chromium), grouped by what the thread is for.
 *
 * Chromium names its threads (/proc/PID/task/TID/comm, 15 characters at most): each Web Worker runs
 * on a "DedicatedWorker" thread ("DedicatedWorker thread", cut); a renderer's main thread is its
 * process's first thread (TID = PID; Debian's build leaves it named "chromium"). Processes say their
 * kind in their command line (`--type=renderer`, `--type=gpu-process`, `--type=utility`; none for the
 * browser process itself).
 */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_S = 100; // Linux USER_HZ

export type ThreadGroup =
  /** Dedicated workers in renderers: the tasks' workers (and the page's small helper workers). */
  | 'workers'
  /** A renderer's main thread: the page's scripts, style, layout. */
  | 'page main'
  /** A renderer's other threads: compositor, IO, its thread pool. */
  | 'page other'
  /** The browser process: tabs, IPC, IndexedDB, the network stack where it runs in-process. */
  | 'browser'
  /** GPU, network service, storage and other utility processes. */
  | 'helpers'
  /** Processes outside Chromium under the same root (none, normally). */
  | 'other';

export const THREAD_GROUPS: ThreadGroup[] = ['workers', 'page main', 'page other', 'browser', 'helpers', 'other'];

export interface ThreadSample {
  pid: number;
  tid: number;
  name: string;
  group: ThreadGroup;
  /** CPU seconds used so far (user + system). */
  seconds: number;
}

interface ProcessInfo {
  ppid: number;
  cmdline: string;
}

function readProcesses(): Map<number, ProcessInfo> {
  const processes = new Map<number, ProcessInfo>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      processes.set(Number(entry), { ppid: Number(fields[1]), cmdline });
    } catch {
      // the process ended meanwhile
    }
  }
  return processes;
}

function groupOf(cmdline: string, threadName: string, isMainThread: boolean): ThreadGroup {
  if (!/chrom/i.test(cmdline)) return 'other';
  const type = /--type=([\w-]+)/.exec(cmdline)?.[1] ?? null;
  if (type === null) return 'browser';
  if (type === 'renderer') {
    if (threadName.startsWith('DedicatedWorker')) return 'workers';
    if (isMainThread || threadName === 'CrRendererMain') return 'page main';
    return 'page other';
  }
  return 'helpers';
}

/** Every thread of every process below `root` (not `root` itself), with its CPU time so far. */
export function sampleThreads(root = process.pid): ThreadSample[] {
  const processes = readProcesses();
  const below = (pid: number): boolean => {
    for (let p = processes.get(pid)?.ppid ?? 0, hops = 0; p > 1 && hops < 20; p = processes.get(p)?.ppid ?? 0, hops++) {
      if (p === root) return true;
    }
    return false;
  };
  const samples: ThreadSample[] = [];
  for (const [pid, info] of processes) {
    if (!below(pid)) continue;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const ticks = Number(fields[11]) + Number(fields[12]);
        samples.push({ pid, tid: Number(tid), name, group: groupOf(info.cmdline, name, Number(tid) === pid), seconds: ticks / CLOCK_TICKS_PER_S });
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return samples;
}

/** Cores used over a window, per group and per thread (threads that ended meanwhile count what they had used by the first sample only). */
export interface CpuUse {
  seconds: number;
  total: number;
  groups: Record<ThreadGroup, number>;
  /** The busiest threads, cores each, busiest first. */
  threads: { pid: number; tid: number; name: string; group: ThreadGroup; cores: number }[];
}

/** Starts a window now; `end()` gives the cores each group used since. */
export function cpuWindow(root = process.pid): { end(): CpuUse } {
  const before = new Map(sampleThreads(root).map((s) => [`${s.pid}/${s.tid}`, s]));
  const started = performance.now();
  return {
    end() {
      const seconds = (performance.now() - started) / 1000;
      const groups = Object.fromEntries(THREAD_GROUPS.map((g) => [g, 0])) as Record<ThreadGroup, number>;
      const threads: CpuUse['threads'] = [];
      for (const s of sampleThreads(root)) {
        const used = s.seconds - (before.get(`${s.pid}/${s.tid}`)?.seconds ?? 0);
        const cores = used / seconds;
        groups[s.group] += cores;
        if (cores > 0) threads.push({ pid: s.pid, tid: s.tid, name: s.name, group: s.group, cores });
      }
      threads.sort((a, b) => b.cores - a.cores);
      return { seconds, total: Object.values(groups).reduce((a, b) => a + b, 0), groups, threads };
    },
  };
}

/** One line per group, in cores. */
export function formatCpuUse(use: CpuUse, digits = 3): string {
  return THREAD_GROUPS.filter((g) => use.groups[g] > 0 || g === 'workers' || g === 'page main')
    .map((g) => `${g} ${use.groups[g].toFixed(digits)}`)
    .join(', ');
}

/** CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq, steal) since boot: /proc/stat's first line. */
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S;
}

/** CPU seconds used so far by every process below `root` (the browser it launched). */
export function treeSeconds(root = process.pid): number {
  return sampleThreads(root).reduce((sum, s) => sum + s.seconds, 0);
}
