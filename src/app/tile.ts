/**
 * Display hint for the donor page: a task whose manifest env holds
 * `DEWGRID_TILE=<imageWidth>,<imageHeight>,<x>,<y>` and whose stdout is a binary PPM (P6) is one
 * tile of a picture, drawn at (x, y). The hint is part of the signed manifest.
 */
import type { TaskManifest } from '../protocol/schema.ts';

export interface TilePlacement {
  imageWidth: number;
  imageHeight: number;
  x: number;
  y: number;
}

export interface Pixels {
  width: number;
  height: number;
  rgba: Uint8ClampedArray<ArrayBuffer>;
}

export function tilePlacement(manifest: TaskManifest): TilePlacement | null {
  const hint = manifest.env.find(([name]) => name === 'DEWGRID_TILE')?.[1];
  if (!hint) return null;
  const parts = hint.split(',').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0)) return null;
  const [imageWidth, imageHeight, x, y] = parts as [number, number, number, number];
  if (imageWidth === 0 || imageHeight === 0 || imageWidth > 8192 || imageHeight > 8192) return null;
  return { imageWidth, imageHeight, x, y };
}

/** Decodes a binary PPM (P6, maxval 255), or returns null for anything else. */
export function decodePpm(bytes: Uint8Array): Pixels | null {
  // Header: "P6" whitespace width whitespace height whitespace maxval, then one whitespace byte.
  const fields: number[] = [];
  let i = 2;
  if (bytes[0] !== 0x50 || bytes[1] !== 0x36) return null;
  while (fields.length < 3) {
    while (i < bytes.length && isSpace(bytes[i]!)) i++;
    let n = 0;
    const start = i;
    while (i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39) n = n * 10 + (bytes[i++]! - 0x30);
    if (i === start) return null;
    fields.push(n);
  }
  if (!isSpace(bytes[i] ?? 0)) return null;
  i++;
  const [width, height, maxval] = fields as [number, number, number];
  if (maxval !== 255 || width === 0 || height === 0 || bytes.length - i < width * height * 3) return null;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba[p * 4] = bytes[i + p * 3]!;
    rgba[p * 4 + 1] = bytes[i + p * 3 + 1]!;
    rgba[p * 4 + 2] = bytes[i + p * 3 + 2]!;
    rgba[p * 4 + 3] = 255;
  }
  return { width, height, rgba };
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}
