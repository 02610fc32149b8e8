// The main donor journeys (test/helpers/journeys.ts) in Debian's Chromium, through playwright-core.
// What only Chromium's automation can do stays in the Chromium-only tests, each saying why:
// emulated Compute Pressure and battery (CDP, policies.test.ts), the install prompt (pwa.test.ts).
import { donorJourneys } from '../helpers/journeys.ts';

donorJourneys('chromium');
