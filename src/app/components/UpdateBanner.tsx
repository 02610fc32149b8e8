import { render } from 'preact';
import { useState } from 'preact/hooks';
import type { UpdateOffer } from '../service-worker.ts';

/** Shows the "new version" offer in its own spot, outside the app tree it will replace. */
export function showUpdate(offer: UpdateOffer): void {
  let host = document.getElementById('update');
  if (!host) {
    host = document.createElement('div');
    host.id = 'update';
    document.body.prepend(host);
  }
  render(<UpdateBanner offer={offer} />, host);
}

function UpdateBanner({ offer }: { offer: UpdateOffer }) {
  const [applying, setApplying] = useState(false);
  return (
    <aside class="update-banner" aria-live="polite">
      {applying ? (
        <p>Finishing the running tasks, then updating…</p>
      ) : (
        <>
          <p>A new version of Dewgrid is ready.</p>
          <button
            type="button"
            onClick={() => {
              setApplying(true);
              void offer.apply();
            }}
          >
            Update
          </button>
        </>
      )}
    </aside>
  );
}
