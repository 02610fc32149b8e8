import { useEffect, useState } from 'preact/hooks';
import type { Controller, LogEntry, Status } from '../scheduler/controller.ts';
import type { InstallOffer, InstallOffers } from './install.ts';
import type { ProgressHistory, ProgressSample } from './progress-history.ts';

export function useStatus(controller: Controller): Status {
  const [status, setStatus] = useState(() => controller.status());
  useEffect(() => controller.on('status', setStatus), [controller]);
  return status;
}

/** The newest `limit` log entries, newest first. */
export function useLog(controller: Controller, limit = 200): LogEntry[] {
  const [entries, setEntries] = useState<LogEntry[]>(() => controller.recentLog().slice(0, limit));
  useEffect(() => controller.on('log', (entry) => setEntries((old) => [entry, ...old].slice(0, limit))), [controller, limit]);
  return entries;
}

/** The samples of the dashboard's chart, oldest first; a new array each second. */
export function useProgressHistory(history: ProgressHistory): readonly ProgressSample[] {
  const [samples, setSamples] = useState(() => history.current());
  useEffect(() => {
    setSamples(history.current()); // a sample taken between the first render and this effect
    return history.subscribe(setSamples);
  }, [history]);
  return samples;
}

/** What the page can offer for installing it as an app, now. */
export function useInstallOffer(offers: InstallOffers): InstallOffer {
  const [offer, setOffer] = useState(() => offers.current());
  useEffect(() => {
    setOffer(offers.current()); // an event fired between the first render and this effect
    return offers.subscribe(setOffer);
  }, [offers]);
  return offer;
}
