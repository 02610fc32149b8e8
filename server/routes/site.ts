/** The built PWA. (The client's trust roots are compiled into it: no trust file is served.) */
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export async function siteRoutes(app: FastifyInstance, options: { staticDir?: string }): Promise<void> {
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
