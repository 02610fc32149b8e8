import { defineConfig, type Plugin } from 'vite';
import preact from '@preact/preset-vite';
import { VitePWA } from 'vite-plugin-pwa';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

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
