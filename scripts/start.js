#!/usr/bin/env node
// `npm start`: the demo is TypeScript; tsx runs it without a separate build of the server.
import { register } from 'tsx/esm/api';

register();
await import('./start.ts');
