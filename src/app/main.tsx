import { render } from 'preact';
import { App } from './components/App.tsx';
import { boot } from './boot.ts';
import type { DewgridApi } from './api.ts';
import { registerServiceWorker } from './service-worker.ts';
import { showUpdate } from './components/UpdateBanner.tsx';
// Listening from start-up, not from a component: a beforeinstallprompt fired while the app boots is held for the Install button.
import { installOffers, isStandalone } from './install.ts';
import { NightScreen, type WakeLockApi } from './night-screen.ts';
import { ProgressHistory } from './progress-history.ts';
import { reportedProcessors } from '../scheduler/processors.ts';
import { DemoPictures } from './demo-pictures.ts';
import './style.css';

declare global {
  interface Window {
    dewgrid?: DewgridApi;
  }
}

const root = document.getElementById('app')!;
boot().then(
  ({ controller, trust }) => {
    window.dewgrid = {
      start: () => controller.start(),
      stop: () => controller.stop(),
      status: () => controller.status(),
      setLimits: (limits) => controller.setLimits(limits),
      setSettings: (settings) => controller.setSettings(settings),
    };
    // Sampled from now on, whatever is on screen: the chart shows the minutes before it was looked at.
    const history = new ProgressHistory(() => controller.status(), reportedProcessors());
    history.start();
    const demo = new DemoPictures(location.origin);
    demo.start();
    const night = new NightScreen((navigator as Navigator & { wakeLock?: WakeLockApi }).wakeLock ?? null, () => document.visibilityState === 'visible', isStandalone, storage());
    controller.on('status', (status) => night.update(status));
    document.addEventListener('visibilitychange', () => night.update(controller.status()));
    night.update(controller.status());
    render(<App controller={controller} trust={trust} history={history} installOffers={installOffers} night={night} demo={demo} />, root);
    registerServiceWorker(controller, (offer) => showUpdate(offer));
    document.documentElement.dataset.ready = 'true';
  },
  (error: Error) => {
    render(
      <main class="boot-error"><div role="alert">
        <h1>Dewgrid could not start</h1>
        <p>{error.message}</p>
        </div>
      </main>,
      root,
    );
  },
);

/** localStorage, or null where the browser refuses it (then the installed app makes no offer). */
function storage(): Storage | null {
  try {
    return localStorage;
  } catch {
    return null;
  }
}
