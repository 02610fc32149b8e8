import { useEffect, useRef } from 'preact/hooks';
import type { Controller, Status } from '../../scheduler/controller.ts';
import type { NightScreen as NightScreenLogic } from '../night-screen.ts';
import { useNightScreen } from '../hooks.ts';

/**
 * The dim screen of night mode (src/app/night-screen.ts): black, with the progress in dark grey,
 * moved a little each minute so no pixel stays lit for hours. Any touch or key ends it.
 */
export function NightScreen({ night, status }: { night: NightScreenLogic; status: Status }) {
  const { active } = useNightScreen(night);
  const element = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (active) element.current?.focus();
  }, [active]);
  if (!active) return null;
  const minute = Math.floor(Date.now() / 60_000);
  const shift = { transform: `translate(${((minute * 37) % 21) - 10}vw, ${((minute * 53) % 31) - 15}vh)` };
  const { done, running } = status.counts;
  return (
    <div
      ref={element}
      class="night"
      role="dialog"
      aria-modal="true"
      aria-label="Night mode"
      tabIndex={-1}
      onPointerDown={() => night.dismiss()}
      onKeyDown={() => night.dismiss()}
    >
      <div class="night-progress" style={shift}>
        <p>{status.activity.reason}</p>
        <p>
          {done} task{done === 1 ? '' : 's'} done, {running} running.
        </p>
        <p class="night-hint">Charging: the screen stays on while this device computes. Touch it to wake it.</p>
      </div>
    </div>
  );
}

/** The installed app's offer, the first time it sees the device charge. */
export function NightOffer({ night, controller }: { night: NightScreenLogic; controller: Controller }) {
  const { offer } = useNightScreen(night);
  if (!offer) return null;
  return (
    <section class="night-offer" aria-labelledby="night-offer-heading">
      <h2 id="night-offer-heading">Donate overnight?</h2>
      <p>This device is charging. Dewgrid can keep the screen on, dim and nearly black, while it charges and there is work, so the device computes through the night.</p>
      <button
        type="button"
        onClick={() => {
          controller.setSettings({ keepScreenOnWhileCharging: true });
          night.answerOffer();
        }}
      >
        Keep the screen on while charging
      </button>
      <button type="button" class="secondary" onClick={() => night.answerOffer()}>
        Not now
      </button>
    </section>
  );
}
