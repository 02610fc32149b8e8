// The main donor journeys (test/helpers/journeys.ts) in Debian's Firefox ESR, through puppeteer-core
// over WebDriver BiDi, each page in a user context of its own.
import { donorJourneys } from '../helpers/journeys.ts';

donorJourneys('firefox');
