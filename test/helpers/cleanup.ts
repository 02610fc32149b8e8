/**
 * Cleanup that must run however this process ends: at exit, and on SIGINT, SIGTERM or SIGHUP
 * (after which the signal is raised again, so the process still ends as that signal would end
 * it). For what tests and benchmarks start outside themselves: database clusters, server processes.
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Runs `cleanup` once when the process ends; the returned function runs it now instead (and forgets it). */
export function onProcessEnd(cleanup: () => void): () => void {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    process.off('exit', run);
    for (const signal of SIGNALS) process.off(signal, onSignal);
    cleanup();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    run();
    // No other listener left for it: raising it again ends the process as the signal would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.on('exit', run);
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return run;
}
