#!/usr/bin/env node
// `npm run bench`: the benchmarks are TypeScript; tsx runs them.
import { spawnSync } from 'node:child_process';
const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? 1);
