#!/usr/bin/env node
// The `dewgrid` CLI. Its code is TypeScript (server/cli.ts); tsx runs it without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli.ts');
