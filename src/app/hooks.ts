import { useEffect, useState } from 'preact/hooks';
import type { Controller, LogEntry, Status } from '../scheduler/controller.ts';
import type { InstallOffer, InstallOffers } from './install.ts';
import type { ProgressHistory, ProgressSample } from './progress-history.ts';
import type { NightScreen, NightState } from './night-screen.ts';

/**
 * The controller's status, re-rendered as it changes (at most once a second). While the page is
 * hidden nothing is rendered (no one sees it; issue #17: the page costs nothing then), unless
 * `whileHidden` (the embed's card, whose partner page may hide it while the visitor still reads it
 * through the partner's events); shown again, it renders the latest once.
 */
export function useStatus(controller: Controller, whileHidden = false): Status {
  const [status, setStatus] = useState(() => controller.status());
  useEffect(() => {
    const hidden = () => !whileHidden && document.visibilityState === 'hidden';
    const shown = () => {
      if (!hidden()) setStatus(controller.status());
    };
    document.addEventListener('visibilitychange', shown);
    const stop = controller.on('status', (next) => {
      if (!hidden()) setStatus(next);
    });
    return () => {
      stop();
      document.removeEventListener('visibilitychange', shown);
    };
  }, [controller, whileHidden]);
  return status;
}

/** The newest `limit` log entries, newest first. */
export function useLog(controller: Controller, limit = 200): LogEntry[] {
  const [entries, setEntries] = useState<LogEntry[]>(() => controller.recentLog().slice(0, limit));
  useEffect(() => controller.on('log', (entry) => setEntries((old) => [entry, ...old].slice(0, limit))), [controller, limit]);
  return entries;
}

/** Something with a value now and a way to hear of the next ones (ProgressHistory, InstallOffers). */
interface Watchable<T> {
  current(): T;
  subscribe(listener: (value: T) => void): () => void;
}

/** The source's value, re-rendered on each change. */
function useWatched<T>(source: Watchable<T>): T {
  const [value, setValue] = useState(() => source.current());
  useEffect(() => {
    setValue(source.current()); // a change between the first render and this effect
    return source.subscribe(setValue);
  }, [source]);
  return value;
}

/** The samples of the dashboard's chart, oldest first; a new array each second. */
export function useProgressHistory(history: ProgressHistory): readonly ProgressSample[] {
  return useWatched<readonly ProgressSample[]>(history);
}

/** What the page can offer for installing it as an app, now. */
export function useInstallOffer(offers: InstallOffers): InstallOffer {
  return useWatched(offers);
}

/** Whether night mode shows, and whether the installed app offers it. */
export function useNightScreen(night: NightScreen): NightState {
  return useWatched(night);
}
