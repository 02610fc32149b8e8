import type { Controller } from '../../scheduler/controller.ts';
import type { TrustConfig } from '../../protocol/api.ts';
import { publisherFingerprint } from '../trust.ts';
import { useStatus } from '../hooks.ts';
import { Controls } from './Controls.tsx';
import { Settings } from './Settings.tsx';
import { Counters } from './Counters.tsx';
import { Credit } from './Credit.tsx';
import { Picture } from './Picture.tsx';
import { ActivityLog } from './ActivityLog.tsx';

export function App({ controller, trust }: { controller: Controller; trust: TrustConfig }) {
  const status = useStatus(controller);
  return (
    <main>
      <header class="masthead">
        <h1>Dewgrid</h1>
        <p class="lede">
          Lend this device's idle time to <strong>{trust.projectName}</strong>. Tasks are WebAssembly programs signed by the project
          (publisher key <code>{publisherFingerprint(trust)}</code>); each is checked before it runs, in a sandbox with no network.
        </p>
      </header>
      <Controls controller={controller} status={status} />
      <Settings controller={controller} status={status} />
      <Counters counts={status.counts} />
      <Credit credit={status.credit} />
      <Picture controller={controller} />
      <ActivityLog controller={controller} />
    </main>
  );
}
