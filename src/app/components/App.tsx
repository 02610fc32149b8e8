import type { Controller } from '../../scheduler/controller.ts';
import type { TrustConfig } from '../../protocol/api.ts';
import { publisherFingerprint } from '../trust.ts';
import type { InstallOffers } from '../install.ts';
import type { ProgressHistory } from '../progress-history.ts';
import { useStatus } from '../hooks.ts';
import { Controls } from './Controls.tsx';
import { Settings } from './Settings.tsx';
import { Counters } from './Counters.tsx';
import { Credit } from './Credit.tsx';
import { WorkChart } from './WorkChart.tsx';
import { Picture } from './Picture.tsx';
import { ActivityLog } from './ActivityLog.tsx';
import { InstallPrompt } from './InstallPrompt.tsx';
import type { DemoPictures } from '../demo-pictures.ts';

/**
 * The donor's dashboard. The order of the parts is the reading and Tab order on every screen;
 * the stylesheet only arranges them in two columns where there is room. The picture comes right
 * after the controls: what the donor's device is making is the first thing to see.
 */
export function App(props: { controller: Controller; trust: TrustConfig; history: ProgressHistory; installOffers: InstallOffers; demo: DemoPictures }) {
  const { controller, trust } = props;
  const status = useStatus(controller);
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
      <Controls controller={controller} status={status} />
      <Picture controller={controller} demo={props.demo} />
      <Counters counts={status.counts} />
      <Credit credit={status.credit} />
      <WorkChart history={props.history} />
      <Settings controller={controller} status={status} />
      <ActivityLog controller={controller} />
    </main>
  );
}
