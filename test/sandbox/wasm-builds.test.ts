// Two parts of the client ship as WebAssembly built from C: the yield hook's rewrite
// (worker/rewriter/rewriter.c) and the small outputs' SHA-256 (src/protocol/sha256/sha256.c). Each
// committed *-wasm.ts must be exactly what its build.sh makes of the committed source with
// Debian's clang and lld, or the code reviewed is not the code that runs.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const builds = [
  { dir: '../../worker/rewriter/', output: 'rewriter-wasm.ts', source: 'rewriter.c' },
  { dir: '../../src/protocol/sha256/', output: 'sha256-wasm.ts', source: 'sha256.c' },
];

describe.each(builds)('$output', ({ dir: relative, output, source }) => {
  it(`is build.sh's output from ${source}`, () => {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    const scratch = mkdtempSync(join(tmpdir(), 'dewgrid-wasm-build-'));
    try {
      const built = join(scratch, output);
      execFileSync('bash', [join(dir, 'build.sh'), built], { stdio: 'pipe' });
      expect(readFileSync(built, 'utf8') === readFileSync(join(dir, output), 'utf8'), `${output} is stale: run ${relative}build.sh`).toBe(true);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
