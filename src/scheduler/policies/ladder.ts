/**
 * Backing off for the device (heat, other programs) in steps, and probing back up: 100%, 75%, 50%,
 * 25% of the donor's limit, or a pause. A pull that holds for a couple of seconds takes one step
 * down, to 25% at the least (at most one step every few seconds, so the signals can show its
 * effect first); only a strong one (other programs using half the device beyond Dewgrid's own
 * share) pauses, at once. Once nothing pulls for the hold time (the
 * donor's "wait at least" setting), it steps back up one level. A probe that is pulled straight back
 * down doubles the hold, up to eight times: the limit settles at the level the device bears, and
 * the state line says which, rather than pausing for the dwell and starting again at full speed.
 */
import type { Settings } from './settings.ts';
import { NO_OBJECTION, type Verdict } from './verdict.ts';

/** The factors of the donor's limit, one per step; the last is a pause. */
export const LEVELS = [1, 0.75, 0.5, 0.25, 0] as const;
const PAUSED = LEVELS.length - 1;
/** The lowest a step down goes: 25%. Only a strong pull pauses. */
const LOWEST_STEP = PAUSED - 1;

/** What the device asks: nothing, a step down (to `lowest` at the least: a factor of LEVELS; 0.25 by default), or a pause. */
export type Pull = { kind: 'none' } | { kind: 'down'; reason: string; lowest?: number } | { kind: 'pause'; reason: string };

export interface LadderState {
  step: number;
  reason: string | null;
  /** When the last step was taken (either way). */
  steppedAt: number;
  /** When the last step up was taken, or null. */
  probedAt: number | null;
  /** Since when the present pull has held (its kind), or null. */
  pull: { kind: 'down' | 'pause'; since: number } | null;
  /** How long nothing must pull before a step up, ms; 0: the donor's dwell. */
  holdMs: number;
}

export const INITIAL_LADDER: LadderState = { step: 0, reason: null, steppedAt: -Infinity, probedAt: null, pull: null, holdMs: 0 };

/** How long a pull must hold before a step is taken. */
export const CONFIRM_MS = 2000;
/** The least time between two steps down: the signals need that long to show the first one's effect. */
export const SETTLE_MS = 5000;
const MAX_HOLD_FACTOR = 8;

export function ladderPolicy(pull: Pull, settings: Pick<Settings, 'dwellSeconds'>, previous: LadderState, now: number): { state: LadderState; verdict: Verdict } {
  const baseHold = Math.max(1000, settings.dwellSeconds * 1000);
  let state: LadderState = { ...previous, holdMs: previous.holdMs || baseHold };
  if (pull.kind === 'none') {
    state.pull = null;
    if (state.step > 0 && now - state.steppedAt >= state.holdMs) {
      state = { ...state, step: state.step - 1, steppedAt: now, probedAt: now };
    } else if (state.step === 0 && state.holdMs !== baseHold && now - state.steppedAt >= state.holdMs) {
      state.holdMs = baseHold; // settled at full speed for a while: the next probe waits the dwell again
    }
  } else {
    const since = state.pull?.kind === pull.kind ? state.pull.since : now;
    state.pull = { kind: pull.kind, since };
    const confirmed = now - since >= Math.min(CONFIRM_MS, baseHold);
    const lowest = pull.kind === 'down' && pull.lowest !== undefined ? Math.max(0, LEVELS.indexOf(pull.lowest as (typeof LEVELS)[number])) : LOWEST_STEP;
    const target = pull.kind === 'pause' ? PAUSED : Math.min(lowest, state.step + 1);
    const settled = now - state.steppedAt >= Math.min(SETTLE_MS, baseHold) || pull.kind === 'pause';
    if (confirmed && settled && target > state.step) {
      // A probe up pulled straight back down: the level above does not hold; wait longer before the next.
      const probeFailed = state.probedAt !== null && now - state.probedAt < state.holdMs;
      state = {
        ...state,
        step: target,
        reason: pull.reason,
        steppedAt: now,
        probedAt: null,
        holdMs: probeFailed ? Math.min(baseHold * MAX_HOLD_FACTOR, state.holdMs * 2) : state.holdMs,
      };
    } else if (state.step > 0) {
      state.reason = pull.reason; // held where it is, for what pulls now
    }
  }
  if (state.step === 0) return { state: { ...state, reason: null }, verdict: NO_OBJECTION };
  return { state, verdict: { factor: LEVELS[state.step]!, reason: state.reason } };
}
