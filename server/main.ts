/** Starts the task server: PORT (8787), HOST (127.0.0.1), DEWGRID_DATA (./.dewgrid), DEWGRID_STATIC (dist). */
import { createServer } from './app.ts';

export async function startServer(env: NodeJS.ProcessEnv = process.env) {
  const port = Number(env.PORT ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${env.PORT}`);
  const server = await createServer({ dataDir: env.DEWGRID_DATA ?? '.dewgrid', staticDir: env.DEWGRID_STATIC ?? 'dist', logger: false });
  const url = await server.app.listen({ port, host: env.HOST ?? '127.0.0.1' });
  const shutdown = () => void server.close().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return { server, url };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { url } = await startServer();
  console.log(`Dewgrid task server on ${url}`);
}
