import { build, defineConfig, type Plugin } from 'vite';
import preact from '@preact/preset-vite';
import { VitePWA } from 'vite-plugin-pwa';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The client's trust roots are part of the build (deploy configuration, never the task API): the
 * trust file named by DEWGRID_TRUST_FILE, else the demo data folder's (.dewgrid/trust.json, which
 * `dewgrid keygen` writes). The page imports it as `virtual:dewgrid-trust` (src/app/trust.ts).
 */
function pinTrust(): Plugin {
  const id = 'virtual:dewgrid-trust';
  const file = resolve(process.env.DEWGRID_TRUST_FILE ?? fileURLToPath(new URL('./.dewgrid/trust.json', import.meta.url)));
  return {
    name: 'dewgrid:pin-trust',
    resolveId: (source) => (source === id ? `\0${id}` : null),
    load(resolved) {
      if (resolved !== `\0${id}`) return null;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        throw new Error(`The client's trust file ${file} is missing: run \`npx dewgrid keygen\` first, or set DEWGRID_TRUST_FILE to a trust.json.`);
      }
      this.addWatchFile(file);
      const trust = JSON.parse(text) as { projectName?: unknown };
      if (typeof trust.projectName !== 'string') throw new Error(`${file} is not a trust file: it has no projectName`);
      return `export default ${JSON.stringify(trust)};`;
    },
  };
}

/**
 * Ships @wasmer/sdk's browser runtime as it is, at /wasmer-sdk/ (worker/wasix/runtime.ts loads it
 * from there when the first WASIX task comes): it finds its .wasm and starts its own workers
 * relative to its module URL, which bundling would break. No source maps or type declarations (its
 * browser code imports some of its node-*.js helpers, so those go too).
 */
function shipWasmerSdk(): Plugin {
  const root = fileURLToPath(new URL('./node_modules/@wasmer/sdk/', import.meta.url));
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
  return {
    name: 'dewgrid:ship-wasmer-sdk',
    apply: 'build',
    generateBundle() {
      for (const file of [...files(join(root, 'dist')), ...files(join(root, 'pkg')), join(root, 'LICENSE')]) {
        const path = relative(root, file);
        if (/\.(map|d\.ts)$/.test(path)) continue;
        this.emitFile({ type: 'asset', fileName: `wasmer-sdk/${path}`, source: readFileSync(file) });
      }
    },
  };
}

/**
 * The embed loader partner pages include (src/embed/loader.ts) as /embed.js: one small classic
 * script (an IIFE, as `<script async>` runs it), built on its own so it shares no chunk with the
 * app and imports nothing; not hashed, since partners link to it by name (served no-cache).
 */
function buildEmbedLoader(): Plugin {
  return {
    name: 'dewgrid:embed-loader',
    apply: 'build',
    async generateBundle() {
      const output = await build({
        configFile: false,
        logLevel: 'warn',
        publicDir: false,
        build: {
          write: false,
          minify: true,
          target: 'es2020',
          lib: { entry: fileURLToPath(new URL('./src/embed/loader.ts', import.meta.url)), formats: ['iife'], name: 'dewgridEmbed', fileName: () => 'embed.js' },
        },
      });
      const chunk = [output].flat().flatMap((o) => ('output' in o ? o.output : [])).find((file) => file.type === 'chunk');
      if (!chunk || chunk.type !== 'chunk') throw new Error('dewgrid:embed-loader: the loader build produced no script');
      this.emitFile({ type: 'asset', fileName: 'embed.js', source: chunk.code });
    },
  };
}

export default defineConfig({
  plugins: [
    preact(),
    pinTrust(),
    shipWasmerSdk(),
    buildEmbedLoader(),
    // Our own service worker (src/sw/sw.ts) with Workbox's precache manifest injected at build.
    VitePWA({
      strategies: 'injectManifest',
      srcDir: 'src/sw',
      filename: 'sw.ts',
      injectRegister: false,
      manifest: false,
      // The WASIX engine (5 MB) is fetched only by pages that run WASIX tasks, not precached for all.
      // The embed's loader and frame page are for partner sites: always from the network, with their headers.
      injectManifest: { globPatterns: ['**/*.{js,css,html,svg,png,webmanifest}'], globIgnores: ['wasmer-sdk/**', 'embed.js', 'embed/**'], rollupFormat: 'es' },
    }),
  ],
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    target: 'es2022',
    sourcemap: true,
    // The page, and the embed's card (its own page, for partner sites' iframes) and confirmation window, sharing the app's modules.
    rolldownOptions: {
      input: {
        index: fileURLToPath(new URL('./index.html', import.meta.url)),
        frame: fileURLToPath(new URL('./embed/frame.html', import.meta.url)),
        // The window a card opens for the person to confirm in (src/embed/confirmation.ts).
        confirm: fileURLToPath(new URL('./embed/confirm.html', import.meta.url)),
      },
    },
  },
  server: {
    // Same headers the task server sends, so `vite` dev behaves like production.
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
});
