// A kept result's request body is assembled from parts (Blobs from the worker, their bytes where
// IndexedDB refuses Blobs, or strings kept by older versions) so the page never stringifies
// megabytes of output; it must still be exactly the JSON of the submission.
import { describe, expect, it } from 'vitest';
import { resultBody } from '../../src/storage/result-body.ts';
import { withOutputsAsBytes } from '../../src/storage/blob-support.ts';
import { parse, parseResultBody, RESULT_BODY_TYPE, ResultHead, ResultSubmission, toBase64 } from '../../src/protocol/index.ts';

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

describe('resultBody of a result kept as bytes', () => {
  it('is the binary body: the head with sizes, then the outputs raw, in order', async () => {
    const bytes = (text: string) => new TextEncoder().encode(text);
    const { stdout: _o, stderr: _e, files: _f, ...rest } = submission([]);
    const kept = { ...rest, encoding: 'bytes' as const, stdout: new Blob([bytes('out\u0000')]), stderr: new Blob([]), files: [{ path: '/out/a', data: new Blob([bytes('ä')]) }, { path: '/out/b', data: new Blob([]) }] };
    // As the worker made it (Blobs), and as kept where IndexedDB refuses Blobs (bytes).
    for (const form of [kept, await withOutputsAsBytes(kept)]) {
      const body = resultBody(form);
      expect(body.type).toBe(RESULT_BODY_TYPE);
      const parsed = parseResultBody(new Uint8Array(await body.arrayBuffer()));
      if (!parsed.ok) throw new Error(parsed.message);
      expect(parsed.head).toEqual({ ...rest, stdout: { size: 4 }, stderr: { size: 0 }, files: [{ path: '/out/a', size: 2 }, { path: '/out/b', size: 0 }] });
      expect(parse(ResultHead, parsed.head).ok).toBe(true);
      expect(parsed.outputs.map((o) => [...o])).toEqual([[...bytes('out\u0000')], [], [...bytes('ä')], []]);
    }
  });
});
