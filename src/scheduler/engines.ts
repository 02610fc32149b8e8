/**
 * Which engines this page can run, as advertised in every work request. WASIX runs under
 * @wasmer/sdk, whose workers share memory: that needs a cross-origin isolated page (COOP + COEP),
 * and without isolation the SDK's runs "succeed" with no output, so such a page never asks for
 * WASIX tasks at all.
 */
import type { Engine } from '../protocol/schema.ts';

export function runnableEngines(scope: { crossOriginIsolated?: boolean } = globalThis): Engine[] {
  return scope.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' ? ['wasi-preview1', 'wasix'] : ['wasi-preview1'];
}
