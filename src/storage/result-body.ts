/**
 * The request body of a kept result (page and service worker post the same bytes). The outputs,
 * base64 up to 16 MiB each, go in as they are kept, Blobs, bytes or strings: base64 needs no JSON
 * escaping, so no multi-megabyte string is built, scanned or UTF-8-encoded on the main thread
 * (JSON.stringify and new Blob([string]) of a flood's result held it for tens of ms).
 */
import type { StoredSubmission } from './db.ts';

export function resultBody(submission: StoredSubmission): Blob {
  const { stdout, stderr, files, ...small } = submission;
  const parts: BlobPart[] = [JSON.stringify(small).slice(0, -1), ',"stdout":"', stdout, '","stderr":"', stderr, '","files":['];
  files.forEach((file, i) => parts.push(i ? ',{"path":' : '{"path":', JSON.stringify(file.path), ',"data":"', file.data, '"}'));
  parts.push(']}');
  return new Blob(parts, { type: 'application/json' });
}
