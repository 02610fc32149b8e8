import type { ComponentChildren } from 'preact';
import type { Controller, Status } from '../../scheduler/controller.ts';
import type { TrustConfig } from '../../protocol/api.ts';
import { publisherFingerprint } from '../trust.ts';
import type { InstallOffers } from '../install.ts';
import type { ProgressHistory } from '../progress-history.ts';
import type { NightScreen as NightScreenLogic } from '../night-screen.ts';
import { useStatus } from '../hooks.ts';
import { Controls } from './Controls.tsx';
import { Settings } from './Settings.tsx';
import { Counters } from './Counters.tsx';
import { Credit } from './Credit.tsx';
import { WorkChart } from './WorkChart.tsx';
import { Picture } from './Picture.tsx';
import { ActivityLog } from './ActivityLog.tsx';
import { InstallPrompt } from './InstallPrompt.tsx';
import { NightOffer, NightScreen } from './NightScreen.tsx';
import type { DemoPictures } from '../demo-pictures.ts';

/**
 * The donor's dashboard. The order of the parts is the reading and Tab order on every screen;
 * the stylesheet only arranges them in two columns where there is room. The picture comes right
 * after the controls: what the donor's device is making is the first thing to see.
 *
 * Each part that shows the controller's status listens to it itself (at most once a second, never
 * while the page is hidden): the chart, the picture and the log re-render only on their own news.
 */
export function App(props: { controller: Controller; trust: TrustConfig; history: ProgressHistory; installOffers: InstallOffers; night: NightScreenLogic; demo: DemoPictures }) {
  const { controller, trust, night } = props;
  return (
    <main class="dashboard">
      <header class="masthead">
        <div>
          <h1>Dewgrid</h1>
          <p class="lede">
            Lend this device's idle time to <strong>{trust.projectName}</strong>. Tasks are WebAssembly programs signed by the project
            (publisher key <code>{publisherFingerprint(trust)}</code>); each is checked before it runs, in a sandbox with no network.
          </p>
        </div>
        <InstallPrompt offers={props.installOffers} />
      </header>
      <NightOffer night={night} controller={controller} />
      <Live controller={controller}>{(status) => <Controls controller={controller} status={status} />}</Live>
      <Picture controller={controller} demo={props.demo} />
      <Live controller={controller}>{(status) => <Counters counts={status.counts} />}</Live>
      <Live controller={controller}>{(status) => <Credit credit={status.credit} />}</Live>
      <WorkChart history={props.history} />
      <Live controller={controller}>{(status) => <Settings controller={controller} status={status} />}</Live>
      <ActivityLog controller={controller} />
      <Live controller={controller}>{(status) => <NightScreen night={night} status={status} />}</Live>
    </main>
  );
}

/** Renders its children with the controller's latest status. */
function Live({ controller, children }: { controller: Controller; children: (status: Status) => ComponentChildren }) {
  return <>{children(useStatus(controller))}</>;
}
