// The main donor journeys (test/helpers/journeys.ts) in WebKitGTK (Safari's engine), through
// Debian's WebKitWebDriver, twice:
//  - an ephemeral session, as Safari's Private Browsing (and MiniBrowser under WebDriver): IndexedDB
//    refuses Blobs there, and WebKitGTK as shipped has no SharedArrayBuffer though it reports
//    crossOriginIsolated, so pages cannot share memory with their workers;
//  - a persistent profile with JSC_useSharedArrayBuffer=1, as Safari's cross-origin isolated pages
//    are: Blobs kept, memory shared (the throttle's control block, live progress).
import { describe } from 'vitest';
import { donorJourneys } from '../helpers/journeys.ts';

describe('ephemeral session, no SharedArrayBuffer', () => donorJourneys('webkit', { profile: 'ephemeral' }));
describe('persistent profile, SharedArrayBuffer', () => donorJourneys('webkit', { profile: 'persistent', sharedArrayBuffer: true, only: ['offline', 'cpu'] }));
