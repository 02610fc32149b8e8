/**
 * A worker that puts the yield hook into modules (worker/instrument.ts), so that rewriting a large
 * module never holds the page's main thread. One per page, started with the first module.
 */
import * as Comlink from 'comlink';
import { instrument } from './instrument.ts';

const api = {
  instrument(bytes: Uint8Array, firstAllowance: number): Uint8Array {
    const rewritten = instrument(bytes, firstAllowance);
    return Comlink.transfer(rewritten, [rewritten.buffer as ArrayBuffer]);
  },
};

export type InstrumentApi = typeof api;

Comlink.expose(api);
