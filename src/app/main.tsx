import { render } from 'preact';
import { App } from './components/App.tsx';
import { boot } from './boot.ts';
import type { DewgridApi } from './api.ts';
import { registerServiceWorker } from './service-worker.ts';
import { showUpdate } from './components/UpdateBanner.tsx';
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
    render(<App controller={controller} trust={trust} />, root);
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
