/**
 * Where a server's CPU time went, from a V8 profile (`--cpu-prof`, as DEWGRID_BENCH_SERVER_FLAGS
 * passes it): self time summed by the package or source folder each function is in, and the
 * heaviest functions. `node --import tsx bench/profile.ts FILE.cpuprofile [TOP]`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** node_modules/<package> (scoped too), a folder of this repo, node's own code, or what V8 names (idle, GC, program). */
function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node';
  const repo = /\/(server\/store|server\/routes|server|src\/protocol|src)\//.exec(url);
  return repo ? repo[1]! : url;
}

export function summarizeProfile(file: string, top = 15): { byPlace: [string, number][]; byFunction: [string, number][]; totalMs: number } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
    total += ms;
    const place = placeOf(url, functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + ms);
    const name = `${functionName || '(anonymous)'} ${place}:${lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  });
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
  return { byPlace: sorted(byPlace), byFunction: sorted(byFunction), totalMs: total };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node --import tsx bench/profile.ts FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  const { byPlace, byFunction, totalMs } = summarizeProfile(file, Number(top ?? 15));
  const share = (ms: number) => `${((100 * ms) / totalMs).toFixed(1).padStart(5)}%`;
  console.log(`${file}: ${(totalMs / 1000).toFixed(1)} s sampled\nby place:`);
  for (const [place, ms] of byPlace) console.log(`  ${share(ms)}  ${place}`);
  console.log('by function (self time):');
  for (const [name, ms] of byFunction) console.log(`  ${share(ms)}  ${name}`);
}
