/**
 * The page itself: hidden (go on, at half the limit, or pause, as the donor chose), and in use
 * (the donor typing or moving the pointer on it: back off to half for a few seconds after).
 */
import type { Settings } from './settings.ts';
import { NO_OBJECTION, type Verdict } from './verdict.ts';

export const IN_USE_BACKOFF_MS = 5000;

/**
 * @param hostRule true where the page around the client set the rule (the embed on a partner site
 *   always pauses when hidden), so the words do not say the donor chose it
 */
export function visibilityPolicy(hidden: boolean, settings: Pick<Settings, 'whenHidden'>, hostRule = false): Verdict {
  if (!hidden || settings.whenHidden === 'run') return NO_OBJECTION;
  if (settings.whenHidden === 'slow') return { factor: 0.5, reason: 'this page is hidden' };
  return { factor: 0, reason: hostRule ? 'the page around this card is hidden' : 'this page is hidden (you chose to pause then)' };
}

/** @param lastInputAt when the donor last typed or moved the pointer on the page, ms, or null */
export function inUsePolicy(lastInputAt: number | null, settings: Pick<Settings, 'backOffWhileInUse'>, now: number): Verdict {
  if (!settings.backOffWhileInUse || lastInputAt === null || now - lastInputAt >= IN_USE_BACKOFF_MS) return NO_OBJECTION;
  return { factor: 0.5, reason: 'you are using this page' };
}

/** Modules larger than this are not fetched while the browser's data saver is on. */
export const DATA_SAVER_MAX_FETCH_BYTES = 2 ** 20;

/** The most a task's module and inputs may weigh to be fetched now; Infinity when there is no limit. */
export function fetchAllowance(saveData: boolean, settings: Pick<Settings, 'respectDataSaver'>): number {
  return saveData && settings.respectDataSaver ? DATA_SAVER_MAX_FETCH_BYTES : Infinity;
}
