/**
 * The yield hook's rewrite against the engine's compile, in a worker as the prepare worker does
 * them (bench/programs-browser.ts, issue #16: the rewrite at most 20% of the compile). Each round:
 * the rewrite (worker/instrument.ts), compiling the original, compiling the rewritten bytes, each
 * timed alone. `WebAssembly.compile` in Chromium validates the whole module and compiles it with
 * Liftoff, its baseline tier, lazily where V8's flags say so (functions then compile on first call);
 * optimised code comes later, on a background thread, as functions get hot. So "compile" here is
 * what a start waits for, not all the compiling the engine will do.
 */
import { instrument, instrumentInto } from '../../worker/instrument.ts';
import { INITIAL_ALLOWANCE } from '../../src/protocol/throttle.ts';

self.onmessage = async (event: MessageEvent<{ url: string; rounds: number }>) => {
  const response = await fetch(event.data.url);
  if (!response.ok) throw new Error(`${event.data.url}: ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const rewriteMs: number[] = [];
  const rewriterMs: number[] = [];
  const compileMs: number[] = [];
  const compileRewrittenMs: number[] = [];
  let size = 0;
  for (let round = 0; round < event.data.rounds; round++) {
    let started = performance.now();
    const rewritten = instrument(bytes, INITIAL_ALLOWANCE);
    rewriteMs.push(performance.now() - started);
    size = rewritten.length / bytes.length;
    // The rewriter alone, its output left in pieces: what the prepare path pays on top of the
    // memory cap's copy of the module, which it makes with or without the hook.
    started = performance.now();
    instrumentInto(bytes, INITIAL_ALLOWANCE, (pieces) => pieces.length);
    rewriterMs.push(performance.now() - started);
    started = performance.now();
    await WebAssembly.compile(bytes);
    compileMs.push(performance.now() - started);
    started = performance.now();
    await WebAssembly.compile(rewritten as Uint8Array<ArrayBuffer>);
    compileRewrittenMs.push(performance.now() - started);
  }
  self.postMessage({ rewriteMs, rewriterMs, compileMs, compileRewrittenMs, size });
};
