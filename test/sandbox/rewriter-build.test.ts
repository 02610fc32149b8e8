// The yield hook's rewrite ships as WebAssembly built from worker/rewriter/rewriter.c: the
// committed rewriter-wasm.ts must be exactly what worker/rewriter/build.sh makes of the committed
// source with Debian's clang and lld, or the code reviewed is not the code that runs.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../worker/rewriter/', import.meta.url));

describe('worker/rewriter/rewriter-wasm.ts', () => {
  it('is build.sh\'s output from rewriter.c', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'dewgrid-rewriter-'));
    try {
      const built = join(scratch, 'rewriter-wasm.ts');
      execFileSync('bash', [join(dir, 'build.sh'), built], { stdio: 'pipe' });
      expect(readFileSync(built, 'utf8') === readFileSync(join(dir, 'rewriter-wasm.ts'), 'utf8'), 'rewriter-wasm.ts is stale: run worker/rewriter/build.sh').toBe(true);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
