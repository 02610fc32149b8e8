import { useState } from 'preact/hooks';
import type { Controller, LoadDetails, Status } from '../../scheduler/controller.ts';
import type { Settings as SettingsValues } from '../../scheduler/policies/settings.ts';

const percent = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 0 });
/** Whether the page can see the battery at all: the Battery Status API is Chromium's alone. */
const batteryVisible = typeof (navigator as Navigator & { getBattery?: unknown }).getBattery === 'function';

/**
 * The rules the policies follow (docs/scheduling.md), next to the state line they explain. Every
 * change is kept in IndexedDB and applied to the running tasks at once.
 */
export function Settings({ controller, status }: { controller: Controller; status: Status }) {
  const s = status.settings;
  const set = (change: Partial<SettingsValues>) => controller.setSettings(change);
  // What was wrong with the last number typed (the controller's RangeError), shown beside the field.
  const [dwellError, setDwellError] = useState<string | null>(null);
  return (
    <details class="settings">
      <summary>Settings: when this device computes</summary>
      <fieldset>
        <legend>Battery</legend>
        <label>
          <input type="checkbox" checked={s.runOnBattery} onChange={(e) => set({ runOnBattery: e.currentTarget.checked })} />
          Compute while on battery
        </label>
        {/* Labelled by id, as the CPU slider in Controls.tsx is. */}
        <div class="field">
          <label for="min-battery">On battery, stop below</label>
          <output for="min-battery" aria-hidden="true">
            {Math.round(s.minBatteryLevel * 100)}%
          </output>
          <input
            id="min-battery"
            type="range"
            min={0}
            max={90}
            step={5}
            value={Math.round(s.minBatteryLevel * 100)}
            aria-valuetext={`${Math.round(s.minBatteryLevel * 100)}%`}
            disabled={!s.runOnBattery}
            onInput={(e) => set({ minBatteryLevel: Number(e.currentTarget.value) / 100 })}
          />
        </div>
        <p class="hint">
          {batteryVisible
            ? 'It starts again 10 points above that, or on the charger.'
            : 'This browser does not tell pages whether the device is charging (only Chromium-based browsers do), so these rules cannot apply here: it computes as if charging.'}
        </p>
      </fieldset>
      <fieldset>
        <legend>When this page is hidden</legend>
        <label>
          <input type="radio" name="whenHidden" checked={s.whenHidden === 'run'} onChange={() => set({ whenHidden: 'run' })} />
          Go on
        </label>
        <label>
          <input type="radio" name="whenHidden" checked={s.whenHidden === 'slow'} onChange={() => set({ whenHidden: 'slow' })} />
          Go on at half speed
        </label>
        <label>
          <input type="radio" name="whenHidden" checked={s.whenHidden === 'pause'} onChange={() => set({ whenHidden: 'pause' })} />
          Pause
        </label>
        <p class="hint">Hidden behind another tab, this page goes on computing while you work elsewhere, and steps down when other programs are busy.</p>
      </fieldset>
      <fieldset>
        <legend>Other</legend>
        <label>
          <input type="checkbox" checked={s.backOffWhileInUse} onChange={(e) => set({ backOffWhileInUse: e.currentTarget.checked })} />
          Slow down while I use this page
        </label>
        <label>
          <input type="checkbox" checked={s.backOffForOtherPrograms} onChange={(e) => set({ backOffForOtherPrograms: e.currentTarget.checked })} />
          Slow down while other programs are busy
        </label>
        <label>
          <input type="checkbox" checked={s.respectDataSaver} onChange={(e) => set({ respectDataSaver: e.currentTarget.checked })} />
          With data saver on, fetch no modules over 1 MB
        </label>
        <label>
          Wait at least
          <input
            type="number"
            min={0}
            max={3600}
            value={s.dwellSeconds}
            aria-invalid={dwellError !== null}
            aria-describedby={dwellError ? 'dwell-error' : undefined}
            onChange={(e) => {
              // An empty value is also what the browser gives for text that is not a number.
              const text = e.currentTarget.value.trim();
              try {
                set({ dwellSeconds: text === '' ? NaN : Number(text) });
                setDwellError(null);
              } catch {
                // The controller refused it (a RangeError): nothing changed. Said in the donor's terms.
                setDwellError(`Enter a number of seconds from 0 to 3600${text ? `, not ${text}` : ''}.`);
              }
            }}
          />
          seconds before resuming after a pause
        </label>
        {dwellError && (
          <p id="dwell-error" class="error" role="alert">
            {dwellError}
          </p>
        )}
      </fieldset>
      <fieldset>
        <legend>Overnight</legend>
        <label>
          <input type="checkbox" checked={s.keepScreenOnWhileCharging} onChange={(e) => set({ keepScreenOnWhileCharging: e.currentTarget.checked })} />
          Keep the screen on while charging
        </label>
        <p class="hint">
          No browser lets a page compute with the screen off. With this on, while the device charges and there is work, the screen stays on, dim and
          nearly black (an OLED screen draws almost nothing for black); it goes off on battery, at a battery or heat rule, or when you touch it.
        </p>
      </fieldset>
      <p class="hint">
        Heat is watched too: when the processor runs a fixed check clearly slower at the same limit, the device is warm, and Dewgrid steps down to 75%,
        50%, then 25% of your limit, and tries the level above again after the wait above.
      </p>
      <details class="load-method">
        <summary>How load and heat are judged</summary>
        <LoadMethod load={status.load} />
      </details>
    </details>
  );
}

/** Which signal tells Dewgrid's own load from other programs' here, and the latest figures (docs/scheduling.md, "Own load"). */
function LoadMethod({ load }: { load: LoadDetails }) {
  const method =
    load.method === 'estimate'
      ? "By Compute Pressure, with the browser's own estimate of this page's share of the load (ownContributionEstimate)."
      : load.method === 'accounting'
        ? "By Compute Pressure, less Dewgrid's own share, from its tasks' own accounting of their computing time."
        : load.pressureObserved
          ? 'Compute Pressure speaks only to a page in front with focus; meanwhile, by the time other programs take the cores from the tasks.'
          : 'This browser gives no Compute Pressure: other programs are seen by the time they take the cores from the tasks.';
  return (
    <div class="hint" data-load-method={load.method}>
      <p>{method}</p>
      <p>
        Dewgrid uses about {percent.format(load.ownShare)} of this device's CPU now; other programs at least {percent.format(load.othersShare)}. It steps
        down when others use a quarter of the device, and pauses when they use half.
      </p>
      <p data-core-speed={load.coreSpeed === null ? '' : load.coreSpeed.toFixed(2)}>
        Heat: a fixed unit of work timed every 2 s while tasks compute; a core that runs it under 75% of its best speed at the same limit is hot, and
        Dewgrid steps down.{' '}
        {load.coreSpeed === null ? 'No check yet.' : `The last check ran at ${percent.format(load.coreSpeed)} of the best.`}
      </p>
    </div>
  );
}
