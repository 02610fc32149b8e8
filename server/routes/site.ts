/** Deploy configuration (the trust file) and the built PWA. */
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { API } from '../../src/protocol/index.ts';
import { HttpError } from '../errors.ts';
import { trustPath } from '../keys.ts';

export async function siteRoutes(app: FastifyInstance, options: { dataDir: string; staticDir?: string }): Promise<void> {
  app.get(API.trust, async (_request, reply) => {
    const file = trustPath(options.dataDir);
    if (!existsSync(file)) throw new HttpError(404, 'no trust.json in the data folder: run `dewgrid keygen`');
    return reply.header('content-type', 'application/json').header('cache-control', 'no-cache').send(readFileSync(file));
  });

  if (options.staticDir && existsSync(options.staticDir)) {
    await app.register(fastifyStatic, {
      root: resolve(options.staticDir),
      cacheControl: false,
      setHeaders(reply, path) {
        // Hashed asset names change with their content; index.html and the service worker must never be stale.
        reply.header('cache-control', /[/\\]assets[/\\]/.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }
}
