/**
 * Instantiates a compiled WASI command and runs it to completion. Runs in a worker in the
 * browser, and in Node for tests and benchmarks: it uses no DOM and no Node API.
 */
import { failedOutcome, outputBlob, type WorkerJob, type WorkerOutcome } from '../src/protocol/worker-api.ts';
import type { RunErrorCode } from '../src/protocol/schema.ts';
import { Wasi, WASI_MODULE } from './wasi/index.ts';
import { shimBudgetBytes } from './wasi/budget.ts';
import { DutyCycle } from './duty-cycle.ts';
import { BUDGET_EXPORT, INITIAL_ALLOWANCE, ThrottleBlock, workDone, YIELD_IMPORT } from '../src/protocol/throttle.ts';

/** Aim for a yield about every millisecond of computing: often enough to pause within 50 ms, rare enough to cost nothing. */
const YIELD_EVERY_MS = 1;
const MIN_ALLOWANCE = 1_000;
const MAX_ALLOWANCE = 50_000_000;
/** System calls between two duty-cycle ticks from the shim (a cheap call takes well under a microsecond). */
const SYSCALLS_PER_TICK = 64;
export { INITIAL_ALLOWANCE };

export function runJob(job: WorkerJob): WorkerOutcome {
  const started = performance.now();
  const failure = (code: RunErrorCode, message: string) => failedOutcome(code, message, performance.now() - started);

  const { moduleImports, importedMemory, wasiCalls } = importsOf(job.module);
  if (importedMemory) {
    return failure('link', `the module imports memory (${importedMemory.module}.${importedMemory.name}); a WASI command defines its own`);
  }

  const control = job.control ? new ThrottleBlock(job.control) : null;
  const dutyCycle = new DutyCycle(control ?? { cpu: job.cpu, paused: false });
  // The yield hook's accounting: allowances handed out and used up, and the one running now.
  let usedUp = 0;
  let allowance = INITIAL_ALLOWANCE;
  let computedSince = performance.now();
  let budget: WebAssembly.Global | null = null;
  let untilTick = SYSCALLS_PER_TICK;
  const workSoFar = () => (budget ? workDone(usedUp, allowance, budget.value as number) : 0);
  // `left` defaults to 0 for version 2's rewrite (bench/legacy), which spent allowances exactly and passed nothing.
  const yieldToHost = (left = 0): number => {
    const used = allowance - left; // left is zero or less: a loop's batch may overshoot it
    usedUp += used;
    // The next allowance: as many probes as ran in about YIELD_EVERY_MS of computing.
    const elapsed = performance.now() - computedSince;
    allowance = Math.round(Math.min(MAX_ALLOWANCE, Math.max(MIN_ALLOWANCE, (used * YIELD_EVERY_MS) / Math.max(elapsed, 0.05))));
    dutyCycle.tick(usedUp);
    computedSince = performance.now();
    return allowance;
  };
  const wasi = new Wasi(
    {
      args: job.args,
      env: job.env,
      stdin: job.stdin,
      files: job.files,
      preopens: job.preopens,
      maxStdoutBytes: job.limits.outputBytes,
      maxStderrBytes: job.limits.outputBytes,
      maxOutputFileBytes: job.limits.outputBytes,
      maxHeldBytes: shimBudgetBytes(job.limits),
      deterministic: job.deterministic ? { seed: job.taskId } : undefined,
    },
    {
      // Every SYSCALLS_PER_TICK calls, not each: the tick reads the clock twice and the control
      // block, which doubled the cost of a cheap call (docs/benchmarks.md (e)). The yield hook
      // ticks as often as ever, so pausing and the CPU share hold as before.
      onSyscall: () => {
        if (--untilTick === 0) {
          untilTick = SYSCALLS_PER_TICK;
          dutyCycle.tick(workSoFar());
        }
      },
      // postMessage from inside a synchronous run is fine: the page receives it while this worker computes.
      onCheckpoint: job.checkpoints ? (file) => job.checkpoints!.postMessage(file, [file.data.buffer as ArrayBuffer]) : undefined,
    },
    // Only the calls the module imports are made: making all of them took about 0.05-0.1 ms of
    // each run, a fifth of a small program's (docs/benchmarks.md (l)).
    wasiCalls,
  );

  let instance: WebAssembly.Instance;
  const imports = { ...wasi.imports, [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: yieldToHost } };
  try {
    instance = new WebAssembly.Instance(job.module, imports as WebAssembly.Imports);
  } catch (error) {
    // Name what is missing rather than the engine's "Import #0" wording.
    const provided = imports as Record<string, Record<string, unknown>>;
    const missing = moduleImports.filter((i) => provided[i.module]?.[i.name] === undefined);
    if (missing.length) {
      const names = missing.map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ');
      return failure('link', `the module imports ${names}, which a WASI preview1 host does not provide`);
    }
    return failure('link', describe(error));
  }
  // Growth past the cap while running is checked by the sandbox work (issue #4); the initial size is checked here.
  const exported = instance.exports[BUDGET_EXPORT];
  budget = exported instanceof WebAssembly.Global ? exported : null;
  const memory = instance.exports.memory;
  if (memory instanceof WebAssembly.Memory && memory.buffer.byteLength > job.limits.memoryBytes) {
    return failure('memory-limit', `initial memory ${memory.buffer.byteLength} bytes exceeds the limit of ${job.limits.memoryBytes}`);
  }
  try {
    const result = wasi.start(instance);
    const outputFileBytes = result.files.reduce((sum, f) => sum + f.data.length, 0);
    return {
      exitCode: result.exitCode,
      stdout: result.stdout,
      stderr: result.stderr,
      files: result.files,
      truncated: { ...result.truncated, files: outputFileBytes > job.limits.outputBytes },
      error: null,
      runMs: performance.now() - started,
      work: budget ? workSoFar() : null,
      // The figures go in the outcome only for a page without a control block: with one, every tick
      // wrote them there and the page reads them there, so they would cross twice. A small task's
      // outcome was a third larger with them, each field cloned and checked (docs/benchmarks.md, "(l) peers").
      ...(control ? {} : { progress: { ...dutyCycle.progress } }),
      blobs: { stdout: outputBlob(result.stdout), stderr: outputBlob(result.stderr), files: result.files.map((f) => outputBlob(f.data)) },
      digests: null, // hashed by the worker runtime (worker/runtime.ts), as hashing is asynchronous
    };
  } catch (error) {
    // A trap with memory near its cap is the cap's doing: an allocation found no room and the program
    // gave up. "Near": within the larger of 1 MiB and an eighth of the cap, as one failed malloc may
    // have asked for that much more.
    const slack = Math.max(2 ** 20, job.limits.memoryBytes / 8);
    const reachedCap = memory instanceof WebAssembly.Memory && memory.buffer.byteLength + slack > job.limits.memoryBytes;
    if (error instanceof WebAssembly.RuntimeError && reachedCap) {
      return failure('memory-limit', `the task reached its memory limit of ${job.limits.memoryBytes} bytes (${error.message})`);
    }
    if (error instanceof WebAssembly.RuntimeError) return failure('trap', error.message);
    if (error instanceof RangeError) return failure('trap', error.message); // e.g. stack overflow in the engine
    return failure('internal', describe(error));
  }
}

interface Imports {
  moduleImports: WebAssembly.ModuleImportDescriptor[];
  importedMemory: WebAssembly.ModuleImportDescriptor | undefined;
  /** The WASI calls the module imports: only those are made (docs/benchmarks.md (l)). */
  wasiCalls: string[];
}

/** Each module's imports, read once: the worker keeps the module its tasks share (src/protocol/task-channel.ts). */
const importsByModule = new WeakMap<WebAssembly.Module, Imports>();

function importsOf(module: WebAssembly.Module): Imports {
  let found = importsByModule.get(module);
  if (!found) {
    const moduleImports = WebAssembly.Module.imports(module);
    found = {
      moduleImports,
      importedMemory: moduleImports.find((i) => i.kind === 'memory'),
      wasiCalls: moduleImports.filter((i) => i.module === WASI_MODULE && i.kind === 'function').map((i) => i.name),
    };
    importsByModule.set(module, found);
  }
  return found;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
