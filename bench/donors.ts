/**
 * (o) A donor population, simulated (not a load test): how much work a million or ten million
 * donors ask of the task servers and the database over a day, and so how many server processes,
 * database cores and how much storage they need, from the cost per cycle `npm run bench -- scale`
 * measures. docs/scaling.md gives the figures, the model and where it is crude.
 *
 * The model, per donor device (seeded, so every run gives the same population):
 * - 30% are phones, 70% desktops and laptops;
 * - a device donates on a given day with probability DAILY_SHARE; that day it has 1 to 3
 *   sessions (phones 1 to 4), each starting at a time drawn from its region's evening-heavy daily
 *   curve (regions at UTC-5, UTC+1 and UTC+8), each lasting from 5 minutes to 8 hours (log-uniform:
 *   desktops 15 min to 8 h, phones 5 min to 2 h);
 * - while in a session it asks for work every few minutes (desktops every 2 to 5 minutes, phones
 *   every 5 to 10): one lease + result cycle each time.
 * Counted in 1-minute bins over a day in steady state (sessions crossing midnight wrap around).
 */
import { fmt } from './stats.ts';

/** What a cycle costs, as `npm run bench -- scale` measured it (docs/scaling.md); DEWGRID_COSTS overrides, e.g. "server=3,database=4,task=940,cycle=2400". */
export interface CycleCosts {
  /** CPU ms a task server spends per lease + result cycle. */
  serverMs: number;
  /** CPU ms the database spends per cycle. */
  databaseMs: number;
  /** Bytes the database grows by per published task, and per cycle (a lease and a result). */
  taskBytes: number;
  cycleBytes: number;
}

export const MEASURED_COSTS: CycleCosts = { serverMs: 3.0, databaseMs: 4.0, taskBytes: 940, cycleBytes: 2400 };

const DAILY_SHARE = 0.4;
const PHONES = 0.3;
const REGIONS = [
  { utcOffsetHours: -5, share: 0.35 },
  { utcOffsetHours: 1, share: 0.35 },
  { utcOffsetHours: 8, share: 0.3 },
];
/** Relative chance of a session starting in each local hour: low at night, a peak in the evening. */
const HOURLY = [2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 6, 6, 7, 6, 6, 6, 7, 8, 10, 12, 12, 10, 7, 4];
/** Keep a process and the database at most this busy at the peak minute: headroom for bursts and for one server failing. */
const TARGET_UTILISATION = 0.5;

export interface DonorReport {
  donors: number;
  peakSessions: number;
  meanSessions: number;
  peakCyclesPerSecond: number;
  meanCyclesPerSecond: number;
  cyclesPerDay: number;
  serverProcesses: number;
  databaseCores: number;
  /** Bytes the database grows by per day: each cycle's lease and result, and the task it served. */
  bytesPerDay: number;
  costs: CycleCosts;
}

/** mulberry32: a small seeded PRNG, so the population is the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MINUTES = 24 * 60;

export function costsFromEnv(env: NodeJS.ProcessEnv = process.env): CycleCosts {
  const costs = { ...MEASURED_COSTS };
  const names: Record<string, keyof CycleCosts> = { server: 'serverMs', database: 'databaseMs', task: 'taskBytes', cycle: 'cycleBytes' };
  for (const pair of (env.DEWGRID_COSTS ?? '').split(',').filter(Boolean)) {
    const [name, value] = pair.split('=');
    const key = names[name!.trim()];
    if (!key || !(Number(value) >= 0)) throw new Error(`DEWGRID_COSTS: "${pair}" is not one of server=MS, database=MS, task=BYTES, cycle=BYTES`);
    costs[key] = Number(value);
  }
  return costs;
}

export function simulateDonors(donors: number, costs: CycleCosts = MEASURED_COSTS, seed = 14): DonorReport {
  const draw = random(seed);
  // Difference arrays over the day's minutes: sessions open and close, and the cycles per minute they ask for.
  const sessions = new Float64Array(MINUTES + 1);
  const rate = new Float64Array(MINUTES + 1);
  const hourly = HOURLY.map((w, h) => HOURLY.slice(0, h + 1).reduce((a, b) => a + b, 0) / HOURLY.reduce((a, b) => a + b, 0));
  const add = (from: number, to: number, perMinute: number) => {
    sessions[from]! += 1;
    sessions[to]! -= 1;
    rate[from]! += perMinute;
    rate[to]! -= perMinute;
  };
  for (let d = 0; d < donors; d++) {
    if (draw() >= DAILY_SHARE) continue;
    const phone = draw() < PHONES;
    let pick = draw();
    const region = REGIONS.find((r) => (pick -= r.share) < 0) ?? REGIONS[REGIONS.length - 1]!;
    const count = 1 + Math.floor(draw() * (phone ? 4 : 3));
    for (let s = 0; s < count; s++) {
      const u = draw();
      const hour = hourly.findIndex((c) => u < c);
      const localMinute = hour * 60 + Math.floor(draw() * 60);
      const start = (((localMinute - region.utcOffsetHours * 60) % MINUTES) + MINUTES) % MINUTES;
      const [shortest, longest] = phone ? [5, 120] : [15, 480];
      const length = Math.round(shortest * Math.pow(longest / shortest, draw()));
      const every = phone ? 5 + draw() * 5 : 2 + draw() * 3; // minutes between cycles
      const end = start + length;
      if (end <= MINUTES) add(start, end, 1 / every);
      else {
        add(start, MINUTES, 1 / every);
        add(0, end - MINUTES, 1 / every);
      }
    }
  }
  let open = 0;
  let perMinute = 0;
  let peakSessions = 0;
  let peakPerMinute = 0;
  let sessionMinutes = 0;
  let cycles = 0;
  for (let m = 0; m < MINUTES; m++) {
    open += sessions[m]!;
    perMinute += rate[m]!;
    peakSessions = Math.max(peakSessions, open);
    peakPerMinute = Math.max(peakPerMinute, perMinute);
    sessionMinutes += open;
    cycles += perMinute;
  }
  const peakCyclesPerSecond = peakPerMinute / 60;
  return {
    donors,
    peakSessions: Math.round(peakSessions),
    meanSessions: Math.round(sessionMinutes / MINUTES),
    peakCyclesPerSecond,
    meanCyclesPerSecond: cycles / (MINUTES * 60),
    cyclesPerDay: Math.round(cycles),
    // One more than the peak needs, so the peak is still served with one server down.
    serverProcesses: Math.ceil((peakCyclesPerSecond * costs.serverMs) / 1000 / TARGET_UTILISATION) + 1,
    databaseCores: Math.max(1, Math.ceil((peakCyclesPerSecond * costs.databaseMs) / 1000 / TARGET_UTILISATION)),
    bytesPerDay: cycles * (costs.cycleBytes + costs.taskBytes),
    costs,
  };
}

export function printDonors(reports: DonorReport[]): void {
  const c = reports[0]!.costs;
  console.log(`\n(o) Donor populations, simulated over a day (costs per cycle: server ${c.serverMs} ms, database ${c.databaseMs} ms, ${c.taskBytes + c.cycleBytes} bytes stored)`);
  const gb = (bytes: number) => fmt(bytes / 1e9, 1);
  for (const r of reports) {
    console.log(
      `    ${String(r.donors.toLocaleString('en')).padStart(10)} donors: sessions open ${r.meanSessions.toLocaleString('en')} mean, ${r.peakSessions.toLocaleString('en')} at the peak;` +
        ` ${fmt(r.meanCyclesPerSecond, 0)} cycles/s mean, ${fmt(r.peakCyclesPerSecond, 0)} at the peak minute (${fmt(r.cyclesPerDay / 1e6, 1)} million a day);` +
        ` ${r.serverProcesses} server processes, ${r.databaseCores} database cores, the database grows ${gb(r.bytesPerDay)} GB a day (${gb(r.bytesPerDay * 30)} GB for 30 days of results)`,
    );
  }
}
