import { defineConfig, type Plugin } from 'vite';
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

export default defineConfig({
  plugins: [
    preact(),
    pinTrust(),
    shipWasmerSdk(),
    // Our own service worker (src/sw/sw.ts) with Workbox's precache manifest injected at build.
    VitePWA({
      strategies: 'injectManifest',
      srcDir: 'src/sw',
      filename: 'sw.ts',
      injectRegister: false,
      manifest: false,
      // The WASIX engine (5 MB) is fetched only by pages that run WASIX tasks, not precached for all.
      injectManifest: { globPatterns: ['**/*.{js,css,html,svg,png,webmanifest}'], globIgnores: ['wasmer-sdk/**'], rollupFormat: 'es' },
    }),
  ],
  worker: { format: 'es' },
  build: { outDir: 'dist', target: 'es2022', sourcemap: true },
  server: {
    // Same headers the task server sends, so `vite` dev behaves like production.
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
});
