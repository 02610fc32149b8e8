import type { InstallOffers } from '../install.ts';
import { useInstallOffer } from '../hooks.ts';

/**
 * Install as an app: a button where the browser offers installing (beforeinstallprompt), a line
 * of help on iOS Safari (which has no such event), nothing elsewhere or once installed.
 */
export function InstallPrompt({ offers }: { offers: InstallOffers }) {
  const offer = useInstallOffer(offers);
  if (offer.kind === 'prompt') {
    return (
      <button type="button" class="install" onClick={() => void offer.install()}>
        Install Dewgrid
      </button>
    );
  }
  if (offer.kind === 'ios-hint') {
    return (
      <p class="install-hint">
        To install Dewgrid, tap <strong>Share</strong>, then <strong>Add to Home Screen</strong>.
      </p>
    );
  }
  return null;
}
