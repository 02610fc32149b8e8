// A kept result's request body is assembled from parts (Blobs from the worker, their bytes where
// IndexedDB refuses Blobs, or strings kept by older versions) so the page never stringifies
// megabytes of output; it must still be exactly the JSON of the submission.
import { describe, expect, it } from 'vitest';
import { resultBody } from '../../src/storage/result-body.ts';
import { withOutputsAsBytes } from '../../src/storage/blob-support.ts';
import { parse, ResultSubmission, toBase64 } from '../../src/protocol/index.ts';

const base64 = (text: string) => toBase64(new TextEncoder().encode(text));
const submission = (files: { path: string; data: string }[]) => ({
  leaseId: 'lease-1',
  taskId: 'task-1',
  deviceId: 'device-1',
  exitCode: 3,
  stdout: toBase64(new Uint8Array([0, 1, 2, 250, 251, 252])),
  stderr: '',
  files,
  truncated: { stdout: false, stderr: true, files: false },
  error: null,
  timings: { fetchMs: 1.5, compileMs: 0, runMs: 12.25 },
  work: 123456,
  signature: toBase64(new Uint8Array(64).fill(7)),
});
const asBlobs = (s: ReturnType<typeof submission>) => ({
  ...s,
  stdout: new Blob([s.stdout]),
  stderr: new Blob([s.stderr]),
  files: s.files.map((f) => ({ path: f.path, data: new Blob([f.data]) })),
});

describe('resultBody', () => {
  const cases = [[], [{ path: '/out/a "quoted" \\ name.txt', data: base64('ä') }], [{ path: '/x', data: '' }, { path: '/y/z', data: base64('A') }]];
  for (const files of cases) {
    it(`is the submission's JSON with ${files.length} output file(s), from strings, Blobs and bytes`, async () => {
      const expected = submission(files);
      const asBytes = await withOutputsAsBytes(asBlobs(expected));
      expect(asBytes.stdout).toBeInstanceOf(Uint8Array);
      for (const kept of [expected, asBlobs(expected), asBytes]) {
        const body = resultBody(kept);
        expect(body.type).toBe('application/json');
        const parsed = JSON.parse(await body.text());
        expect(parsed).toEqual(expected);
        expect(parse(ResultSubmission, parsed).ok).toBe(true);
      }
    });
  }
});
