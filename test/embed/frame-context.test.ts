// Who embedded the card: the partner origin from the frame's URL, checked against what the browser
// says (ancestorOrigins, else the referrer); and the project it was set up for.
import { describe, expect, it } from 'vitest';
import { frameContext, type FrameSurroundings } from '../../src/embed/frame-context.ts';

const base: FrameSurroundings = {
  search: '?partner=https%3A%2F%2Fpartner.example&theme=dark&max-cpu=40&project=Demo',
  embedded: true,
  ancestorOrigins: ['https://partner.example'],
  referrer: 'https://partner.example/',
  projectName: 'Demo',
};
const context = (change: Partial<FrameSurroundings>) => frameContext({ ...base, ...change }, () => undefined);

describe('frameContext', () => {
  it('takes the partner and options when the browser agrees', () => {
    expect(context({})).toEqual({ ok: true, partner: 'https://partner.example', options: { project: 'Demo', position: 'inline', theme: 'dark', maxCpu: 0.4 } });
    // Without ancestorOrigins the referrer decides; with no referrer either, the URL alone (posts go only to that origin).
    expect(context({ ancestorOrigins: null }).ok).toBe(true);
    expect(context({ ancestorOrigins: null, referrer: '' }).ok).toBe(true);
  });

  it('refuses a URL that names another partner than the page it is on', () => {
    expect(context({ ancestorOrigins: ['https://evil.example'] })).toEqual({ ok: false, problem: 'The card\u2019s address says it is on https://partner.example, but it is on https://evil.example.' });
    expect(context({ ancestorOrigins: null, referrer: 'https://evil.example/page' })).toMatchObject({ ok: false, problem: expect.stringContaining('on https://evil.example') });
    // The nearest ancestor counts: the partner page framed by someone else is still the partner.
    expect(context({ ancestorOrigins: ['https://partner.example', 'https://outer.example'] }).ok).toBe(true);
  });

  it('refuses a missing or malformed partner origin, and a page that is not embedded', () => {
    for (const partner of ['', 'partner.example', 'https://partner.example/path', 'null', 'javascript:alert(1)']) {
      expect(context({ search: `?partner=${encodeURIComponent(partner)}` }), partner).toMatchObject({ ok: false, problem: expect.stringContaining('no valid partner origin') });
    }
    expect(context({ embedded: false })).toMatchObject({ ok: false, problem: expect.stringContaining('only inside a partner site') });
  });

  it('refuses a card set up for another project than this build trusts', () => {
    expect(context({ projectName: 'Other' })).toEqual({ ok: false, problem: 'This card was set up for \u201cDemo\u201d, but this Dewgrid server runs \u201cOther\u201d: nothing can run here.' });
  });
});
