import type { Limits, Status } from '../scheduler/controller.ts';
import type { Settings } from '../scheduler/policies/settings.ts';

/** The automation surface for kiosk and lab operators, as `window.dewgrid` (README: "Automating a donor page"). */
export interface DewgridApi {
  /** Starts for this page's session: unlike a donor's click on Start, it does not last across a reload. */
  start(): void;
  stop(): void;
  status(): Status;
  setLimits(limits: Partial<Limits>): Limits;
  /** Every setting of the settings panel; throws a RangeError naming a bad value. */
  setSettings(settings: Partial<Settings>): Settings;
}
