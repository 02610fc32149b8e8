/**
 * `npm run bench`: every benchmark, printed; the figures go into docs/benchmarks.md by hand, with
 * the machine. `npm run bench -- NAME...` runs only those (names below), e.g. `npm run bench -- throttle`.
 * `sustained` (20 minutes by default) runs only when named: `npm run bench -- sustained --seconds=90`
 * for a short check (or DEWGRID_SUSTAINED_SECONDS).
 */
import { cpus, totalmem } from 'node:os';
import { benchSyscallSpeed, benchWasmSpeed, benchYieldHookByEngine, printSpeed } from './wasm-speed.ts';
import { benchServerThroughput, printServerThroughput } from './server-throughput.ts';
import { benchOfflineStart, printOfflineStart } from './offline-start.ts';
import { benchStartLatency, printStartLatency } from './start-latency.ts';
import { benchInstrumentation, printInstrumentation } from './instrumentation.ts';
import { benchThrottle, printThrottle } from './throttle.ts';
import { benchThrottleEngines, printThrottleEngines } from './throttle-engines.ts';
import { benchSignatures, printSignatures } from './signatures.ts';
import { benchPageWeight, printPageWeight } from './page-weight.ts';
import { benchHostileMemory, printHostileMemory } from './hostile-memory.ts';
import { benchPrograms, printPrograms } from './programs.ts';
import { benchProgramsBrowser, printProgramsBrowser } from './programs-browser.ts';
import { benchWasmCodeCache, printWasmCodeCache } from './wasm-code-cache.ts';
import { benchPeers } from './peers.ts';
import { benchBodyMemory, printBodyMemory } from './body-memory.ts';
import { benchScale, scalePrinter } from './scale.ts';
import { costsFromEnv, printDonors, simulateDonors } from './donors.ts';
import { benchSustained, printSustained, sustainedSeconds } from './sustained.ts';

/** In the order docs/benchmarks.md gives them. */
const BENCHMARKS: Record<string, () => Promise<void>> = {
  'wasm-speed': async () => printSpeed(await benchWasmSpeed()),
  'server-throughput': async () => printServerThroughput(await benchServerThroughput()),
  'offline-start': async () => printOfflineStart(await benchOfflineStart()),
  'start-latency': async () => printStartLatency(await benchStartLatency()),
  'syscall-speed': async () => printSpeed(await benchSyscallSpeed()),
  instrumentation: async () => printInstrumentation(await benchInstrumentation()),
  'yield-hook-by-engine': async () => (await benchYieldHookByEngine()).forEach(printSpeed),
  throttle: async () => printThrottle(await benchThrottle()),
  'throttle-engines': async () => printThrottleEngines(await benchThrottleEngines()),
  'page-weight': async () => printPageWeight(await benchPageWeight()),
  signatures: async () => printSignatures(await benchSignatures()),
  programs: async () => printPrograms(await benchPrograms()),
  'programs-browser': async () => printProgramsBrowser(await benchProgramsBrowser()),
  'wasm-code-cache': async () => printWasmCodeCache(await benchWasmCodeCache()),
  peers: async () => void (await benchPeers()), // prints each program's figures as they come
  'hostile-memory': async () => printHostileMemory(await benchHostileMemory()),
  'body-memory': async () => printBodyMemory(await benchBodyMemory()),
  scale: async () => void (await benchScale(scalePrinter())),
  donors: async () => printDonors([1e6, 1e7].map((n) => simulateDonors(n, costsFromEnv()))),
  sustained: async () => printSustained(await benchSustained(sustainedSeconds())),
};
/** Too long for the default run: only when named. */
const ONLY_BY_NAME = new Set(['sustained']);

const wanted = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const unknown = wanted.filter((name) => !(name in BENCHMARKS));
if (unknown.length) {
  console.error(`npm run bench: no benchmark named ${unknown.join(', ')}; there are: ${Object.keys(BENCHMARKS).join(', ')}`);
  process.exit(2);
}
console.log(`Dewgrid benchmarks — node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
for (const [name, run] of Object.entries(BENCHMARKS)) if (wanted.length === 0 ? !ONLY_BY_NAME.has(name) : wanted.includes(name)) await run();
