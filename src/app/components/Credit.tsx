import type { DeviceCredit } from '../../protocol/schema.ts';

const format = (n: number) => n.toLocaleString(undefined, { maximumFractionDigits: n < 10 ? 2 : 0 });

/**
 * The donor's credit, as the server judged this device's results (docs/protocol.md, "Validation
 * and credit"): validated results earn it; pending ones wait for other devices to agree.
 */
export function Credit({ credit }: { credit: DeviceCredit | null }) {
  return (
    <section class="credit" aria-labelledby="credit-heading">
      <h2 id="credit-heading">Your credit</h2>
      {credit && Object.values(credit.results).some((n) => n > 0) ? (
        <>
          <dl>
            <div data-credit="validated">
              <dt>Validated</dt>
              <dd>{format(credit.validated)}</dd>
            </div>
            <div data-credit="pending">
              <dt>Pending</dt>
              <dd>{format(credit.pending)}</dd>
            </div>
          </dl>
          <p class="hint">
            One credit per million steps of work, for results the project validated (where it asks several devices, the results they agreed on);
            pending results wait for the others
            {credit.results.invalid > 0 ? `. ${credit.results.invalid} result${credit.results.invalid === 1 ? '' : 's'} did not agree and earned nothing` : ''}.
            {credit.trusted ? ' This device is trusted: its results are checked less often.' : ''}
          </p>
        </>
      ) : (
        <p class="empty">No results from this device have reached the project yet.</p>
      )}
    </section>
  );
}
