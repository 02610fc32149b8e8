/**
 * What a policy says: the share of the donor's CPU limit it allows (1 = no objection, 0 = pause),
 * and why, in words the page shows after "Paused: " or "Running at N%: ".
 */
export interface Verdict {
  factor: number;
  reason: string | null;
}

export const NO_OBJECTION: Verdict = { factor: 1, reason: null };
