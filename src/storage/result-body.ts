/**
 * The request body of a kept result (page and service worker post the same bytes). A result kept
 * as bytes goes as a binary body (RESULT_BODY_TYPE: a JSON head, then the outputs raw): its Blobs
 * (or bytes, where IndexedDB keeps no Blobs) go in by reference, so nothing is copied, encoded or
 * scanned on the main thread. One kept by an older version, as base64 text, goes as the JSON it
 * always was: base64 needs no JSON escaping, so its parts go in as they are too (JSON.stringify and
 * new Blob([string]) of a flood's result held the main thread for tens of ms).
 */
import { RESULT_BODY_TYPE, resultBodyParts } from '../protocol/results.ts';
import type { StoredOutput, StoredSubmission } from './db.ts';

export function resultBody(submission: StoredSubmission): Blob {
  const { stdout, stderr, files, encoding, ...small } = submission;
  if (encoding === 'bytes') {
    const size = (data: StoredOutput) => (typeof data === 'string' ? data.length : data instanceof Blob ? data.size : data.byteLength);
    const head = { ...small, stdout: { size: size(stdout) }, stderr: { size: size(stderr) }, files: files.map((f) => ({ path: f.path, size: size(f.data) })) };
    const outputs = [stdout, stderr, ...files.map((f) => f.data)].map((data) => (typeof data === 'string' ? new Blob([data]) : data));
    return new Blob(resultBodyParts(head, outputs) as BlobPart[], { type: RESULT_BODY_TYPE });
  }
  const parts: BlobPart[] = [JSON.stringify(small).slice(0, -1), ',"stdout":"', stdout, '","stderr":"', stderr, '","files":['];
  files.forEach((file, i) => parts.push(i ? ',{"path":' : '{"path":', JSON.stringify(file.path), ',"data":"', file.data, '"}'));
  parts.push(']}');
  return new Blob(parts, { type: 'application/json' });
}
