// The CLI's progress lines (server/progress.ts): redrawn in place on a terminal, plain and at most
// one a second elsewhere when forced, nothing otherwise; a step's end always shows.
import { describe, expect, it } from 'vitest';
import { formatBytes, Progress } from '../../server/progress.ts';

function stream(isTTY: boolean) {
  const written: string[] = [];
  return { written, out: { isTTY, write: (text: string) => written.push(text) } };
}

describe('Progress', () => {
  it('redraws one line on a terminal, ten times a second at most, and ends it with the step', () => {
    let now = 0;
    const { written, out } = stream(true);
    const progress = Progress.on(out, false, () => now);
    expect(progress.shown).toBe(true);
    progress.update('Signing tasks: 1/3');
    now += 50;
    progress.update('Signing tasks: 2/3'); // too soon: dropped
    now += 60;
    progress.update('Signing tasks: 3/3');
    progress.done('Signed 3 tasks.');
    progress.update('Uploading: 1 KiB'); // a new step shows at once
    expect(written).toEqual(['\r\x1b[2KSigning tasks: 1/3', '\r\x1b[2KSigning tasks: 3/3', '\r\x1b[2KSigned 3 tasks.\n', '\r\x1b[2KUploading: 1 KiB']);
  });

  it('writes plain lines, one a second at most, when forced off a terminal; nothing when not forced', () => {
    let now = 0;
    const { written, out } = stream(false);
    const progress = Progress.on(out, true, () => now);
    for (let i = 1; i <= 30; i++) {
      progress.update(`Writing files: ${i}/30`);
      now += 100;
    }
    progress.done('Wrote 30 files.');
    expect(written).toEqual(['Writing files: 1/30\n', 'Writing files: 11/30\n', 'Writing files: 21/30\n', 'Wrote 30 files.\n']);

    const quiet = stream(false);
    const off = Progress.on(quiet.out, false);
    off.update('Signing tasks: 1/1');
    off.done('Signed 1 task.');
    expect(off.shown).toBe(false);
    expect(quiet.written).toEqual([]);
  });

  it('formats byte counts', () => {
    expect([0, 1023, 1024, 1536, 5 * 2 ** 20, 3 * 2 ** 30].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '5.0 MiB', '3.0 GiB']);
  });
});
