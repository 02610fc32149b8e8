import type { Limits, Status } from '../scheduler/controller.ts';

/** The automation surface for kiosk and lab operators, as `window.dewgrid` (README: "Automating a donor page"). */
export interface DewgridApi {
  start(): void;
  stop(): void;
  status(): Status;
  setLimits(limits: Partial<Limits>): Limits;
}
