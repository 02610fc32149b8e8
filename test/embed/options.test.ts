// The partner's script-tag options: only lowering Dewgrid's limits, a bad value ignored with a
// warning naming it, and the frame reading back what the loader wrote.
import { describe, expect, it } from 'vitest';
import { frameUrl, readEmbedOptions, type OptionName } from '../../src/embed/options.ts';

function read(values: Partial<Record<OptionName, string>>) {
  const warnings: string[] = [];
  const options = readEmbedOptions(
    (name) => values[name] ?? null,
    (name, value, expected) => warnings.push(`${name}=${value}: ${expected}`),
  );
  return { options, warnings };
}

describe('embed options', () => {
  it('defaults to inline, auto theme and no cap of its own', () => {
    expect(read({})).toEqual({ options: { project: null, position: 'inline', theme: 'auto', maxCpu: 1 }, warnings: [] });
  });

  it('takes valid values', () => {
    const { options, warnings } = read({ project: 'Folding', position: 'bottom-left', theme: 'dark', 'max-cpu': '25' });
    expect(options).toEqual({ project: 'Folding', position: 'bottom-left', theme: 'dark', maxCpu: 0.25 });
    expect(warnings).toEqual([]);
    expect(read({ 'max-cpu': '50%' }).options.maxCpu).toBe(0.5);
    expect(read({ 'max-cpu': '100' }).options.maxCpu).toBe(1);
    expect(read({ 'max-cpu': '10' }).options.maxCpu).toBe(0.1);
  });

  it('ignores a CPU share that would raise the limit or does not parse, and says which attribute', () => {
    for (const bad of ['150', '101', '5', '0', '-20', '0.5', 'half', '', '50 %', '1e2']) {
      const { options, warnings } = read({ 'max-cpu': bad });
      expect(options.maxCpu, bad).toBe(1);
      expect(warnings, bad).toEqual([`max-cpu=${bad}: a whole percentage from 10 to 100 (such as 50)`]);
    }
  });

  it('ignores an unknown position or theme, and an empty or overlong project, with a warning each', () => {
    const { options, warnings } = read({ position: 'top', theme: 'sepia', project: ' ' });
    expect(options).toEqual({ project: null, position: 'inline', theme: 'auto', maxCpu: 1 });
    expect(warnings).toEqual([
      'project= : a project name of 1 to 200 characters',
      'position=top: one of inline, bottom-right, bottom-left',
      'theme=sepia: one of auto, light, dark',
    ]);
    expect(read({ project: 'x'.repeat(201) }).options.project).toBeNull();
  });

  it('puts them in the frame URL so that the frame reads the same back', () => {
    const options = { project: 'A & B "quoted"', position: 'bottom-right' as const, theme: 'light' as const, maxCpu: 0.3 };
    const url = new URL(frameUrl('https://dewgrid.example', 'https://partner.example', options));
    expect(url.origin + url.pathname).toBe('https://dewgrid.example/embed/frame.html');
    expect(url.searchParams.get('partner')).toBe('https://partner.example');
    const back = readEmbedOptions((name) => url.searchParams.get(name), () => expect.unreachable());
    // The frame does not need the position: the loader places the iframe.
    expect(back).toEqual({ ...options, position: 'inline' });
  });
});
