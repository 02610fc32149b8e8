/**
 * The memory of the Chromium renderers this process started, read from outside the page: /proc
 * (Linux), the resident set of every process descended from this one whose command line says
 * `--type=renderer`. A page's dedicated workers run in its renderer, so a task's memory shows
 * there. Nothing in the page is asked (a hostile task could not fake it, and the page's own
 * performance.memory does not see workers' heaps).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Processes below `root` in the process tree, from /proc/<pid>/stat. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(root);
  return out;
}

/** The renderer processes among this process's descendants. */
export function rendererPids(root = process.pid): number[] {
  return descendants(root).filter((pid) => {
    try {
      // Zygote-forked processes rewrite their title: the arguments are then one string, spaces between.
      return /(?:^|[\s\0])--type=renderer(?:[\s\0]|$)/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    } catch {
      return false;
    }
  });
}

/** Resident bytes of the renderers this process started, summed. */
export function rendererRssBytes(pids = rendererPids()): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (rss) total += Number(rss[1]) * 1024;
    } catch {
      // the process ended
    }
  }
  return total;
}

/**
 * Samples the renderers' resident bytes every `intervalMs` until stop(), which returns the
 * highest seen. Renderers that start meanwhile are found again every second.
 */
export function sampleRendererMemory(intervalMs = 50): { stop(): number } {
  let pids = rendererPids();
  let peak = rendererRssBytes(pids);
  let ticks = 0;
  const timer = setInterval(() => {
    if (++ticks % Math.max(1, Math.round(1000 / intervalMs)) === 0) pids = rendererPids();
    peak = Math.max(peak, rendererRssBytes(pids));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rendererRssBytes(pids));
    },
  };
}
