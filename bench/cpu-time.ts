/**
 * CPU time, not wall time, for benchmarks on a machine other work shares: wall time counts the
 * time a thread waits for a core, CPU time only the time it runs. Read from Linux's per-thread
 * scheduler statistics (/proc/<pid>/task/<tid>/schedstat: nanoseconds on a CPU), for every thread
 * of every process below this one: the browsers a benchmark starts, and what they start.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Nanoseconds on a CPU so far, summed over every thread of every descendant of `root` (not `root` itself). */
export function descendantsCpuNs(root = process.pid): number {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parents.get(pid) ?? 0, hops = 0; p > 1 && hops < 30; p = parents.get(p) ?? 0, hops++) if (p === root) return true;
    return false;
  };
  let ns = 0;
  for (const pid of parents.keys()) {
    if (!below(pid)) continue;
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the process or thread ended meanwhile
    }
  }
  return ns;
}

/** This process's own CPU time so far, ms (all its threads). */
export function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * The CPU time of this process's main thread so far, ms (Linux; NaN elsewhere): what a run on that
 * thread costs, without the engine's background compile threads or the waits for a core that
 * stretch wall time on a shared machine.
 */
export function mainThreadCpuMs(): number {
  try {
    return Number(readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return NaN;
  }
}
