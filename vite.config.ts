import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  plugins: [preact()],
  worker: { format: 'es' },
  build: { outDir: 'dist', target: 'es2022', sourcemap: true },
  server: {
    // Same headers the task server sends, so `vite` dev behaves like production.
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
});
