/**
 * One decision from every policy: the donor's CPU limit times the strictest policy's factor, or a
 * pause, and the reason in plain words, named after the policy that decided. The donor's own
 * limit is the ceiling: a policy only ever lowers it.
 */
import type { Settings } from './settings.ts';
import type { Verdict } from './verdict.ts';

export interface Decision {
  state: 'running' | 'throttled' | 'paused';
  /** The share of a core each task may use now (0.1 to 1); meaningless when paused. */
  cpu: number;
  /** Plain words for the page: "Paused: on battery at 28% …", "Running at 50%: device warm". */
  reason: string;
}

/** @param limitName whose limit the settings' CPU share is, for the words: the donor's, or the host site's that capped it */
export function decide(settings: Pick<Settings, 'cpu'>, verdicts: Verdict[], limitName = 'your limit'): Decision {
  const strictest = verdicts.reduce<Verdict | null>((worst, v) => (v.reason && (!worst || v.factor < worst.factor) ? v : worst), null);
  if (strictest && strictest.factor <= 0) return { state: 'paused', cpu: settings.cpu, reason: `Paused: ${strictest.reason}.` };
  const cpu = Math.max(0.1, settings.cpu * (strictest?.factor ?? 1));
  const percent = `${Math.round(cpu * 100)}%`;
  if (strictest && strictest.factor < 1) return { state: 'throttled', cpu, reason: `Running at ${percent}: ${strictest.reason}.` };
  return { state: 'running', cpu, reason: settings.cpu < 1 ? `Running at ${percent}, ${limitName}.` : 'Running at full speed.' };
}
