import { render } from 'preact';
import { App } from './components/App.tsx';
import { boot } from './boot.ts';
import type { DewgridApi } from './api.ts';
import { registerServiceWorker } from './service-worker.ts';
import { showUpdate } from './components/UpdateBanner.tsx';
// Listening from start-up, not from a component: a beforeinstallprompt fired while the app boots is held for the Install button.
import { installOffers } from './install.ts';
import { ProgressHistory } from './progress-history.ts';
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
    const history = new ProgressHistory(() => controller.status(), Math.max(1, navigator.hardwareConcurrency || 1));
    history.start();
    const demo = new DemoPictures(location.origin);
    demo.start();
    render(<App controller={controller} trust={trust} history={history} installOffers={installOffers} demo={demo} />, root);
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
