/**
 * Starts the task server: PORT (8787), HOST (127.0.0.1), DEWGRID_DATA (./.dewgrid),
 * DEWGRID_STATIC (dist); DEWGRID_DATABASE_URL (postgres://...: the state in PostgreSQL, shared
 * by every server given the same URL, instead of SQLite in the data folder), DEWGRID_DATABASE_POOL
 * (connections held at most, 10), DEWGRID_LEASE_MARGIN_MS (how long past the time to prepare and
 * run a task a lease lasts, 60000), DEWGRID_DEVICE_RATE (requests a second one device may make,
 * 20), DEWGRID_TRUST_PROXY (behind a reverse proxy: `true`, or its addresses, comma-separated).
 * Run it with `npx tsx server/main.ts`; `npm start` calls startServer. See docs/deploy.md.
 */
import { pathToFileURL } from 'node:url';
import { createServer, type DewgridServer, type ServerOptions } from './app.ts';

/** A start-up problem said in one line (the port is taken, PORT is not a port): no stack trace. */
export class StartError extends Error {}

/**
 * Listens, or says in one line why not: a port in use names PORT and what probably holds it.
 * @throws StartError when the port is taken or not allowed
 */
export async function listen(server: DewgridServer, port: number, host: string): Promise<string> {
  try {
    return await server.app.listen({ port, host });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    await server.close();
    if (code === 'EADDRINUSE') throw new StartError(`port ${port} on ${host} is in use (is \`npm start\` already running?): stop what holds it, or choose another with PORT=${port + 2} npm start`);
    if (code === 'EACCES') throw new StartError(`port ${port} on ${host} needs privileges this process lacks: choose another with PORT=8787`);
    throw error;
  }
}

/** @param extra options only a caller in code can give (the demo's key and module) */
export async function startServer(env: NodeJS.ProcessEnv = process.env, extra: Partial<ServerOptions> = {}): Promise<{ server: DewgridServer; url: string }> {
  const port = Number(env.PORT ?? 8787);
  if (!/^\d+$/.test(env.PORT ?? '8787') || port > 65535) throw new StartError(`PORT must be a port number, got "${env.PORT}"`);
  const rate = env.DEWGRID_DEVICE_RATE === undefined ? undefined : Number(env.DEWGRID_DEVICE_RATE);
  if (rate !== undefined && !(rate > 0)) throw new StartError(`DEWGRID_DEVICE_RATE must be a number of requests a second above 0, got "${env.DEWGRID_DEVICE_RATE}"`);
  const proxy = env.DEWGRID_TRUST_PROXY;
  const whole = (name: string, min: number): number | undefined => {
    const value = env[name];
    if (value === undefined || value === '') return undefined;
    if (!/^\d+$/.test(value) || Number(value) < min) throw new StartError(`${name} must be a whole number from ${min}, got "${value}"`);
    return Number(value);
  };
  const server = await createServer({
    dataDir: env.DEWGRID_DATA ?? '.dewgrid',
    staticDir: env.DEWGRID_STATIC ?? 'dist',
    logger: false,
    databaseUrl: env.DEWGRID_DATABASE_URL,
    databasePoolSize: whole('DEWGRID_DATABASE_POOL', 1),
    leaseMarginMs: whole('DEWGRID_LEASE_MARGIN_MS', 0),
    deviceLimits: rate === undefined ? undefined : { perDevice: { perSecond: rate, burst: Math.max(10, rate * 10) } },
    trustProxy: proxy === undefined ? undefined : proxy === 'true' ? true : proxy.split(',').map((a) => a.trim()),
    ...extra,
  });
  const url = await listen(server, port, env.HOST ?? '127.0.0.1');
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    console.log(`${signal}: closing the task server.`);
    server.close().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`could not close cleanly: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return { server, url };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const { url } = await startServer();
    console.log(`Dewgrid task server on ${url}`);
  } catch (error) {
    console.error(`dewgrid server: ${(error as Error).message}`);
    process.exit(1);
  }
}
