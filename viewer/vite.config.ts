import path from 'node:path';
import { defineConfig } from 'vite';
import { decodersInWorkerOnly, lazyCodecs, oneDcmjs, precompress } from './build-plugins.js';

// Built at install/start time (`npm run build` → viewer/dist) and served by the server at `/`.
// Dev server: `npx vite viewer` with the server on 8080 (proxy below); see browser-tests notes for why
// the Cornerstone codecs are pre-bundled and workers are ES modules (dev server only: optimizeDeps does
// not touch the build). The build plugins (build-plugins.ts) keep the codecs out of the main thread and
// load each in the decode worker on first use, keep one copy of dcmjs, and precompress every file.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [oneDcmjs(), decodersInWorkerOnly(), precompress()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 8000,
    sourcemap: false,
    // Two pages: the viewer, and the small silent sign-in renewal page (src/auth/silent-renew.ts).
    rolldownOptions: { input: { main: path.join(import.meta.dirname, 'index.html'), 'silent-renew': path.join(import.meta.dirname, 'silent-renew.html'), share: path.join(import.meta.dirname, 'share.html') } },
  },
  optimizeDeps: {
    include: [
      '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
      '@cornerstonejs/codec-charls/decodewasmjs',
      '@cornerstonejs/codec-openjpeg/decodewasmjs',
      '@cornerstonejs/codec-openjph/wasmjs',
    ],
  },
  worker: { format: 'es', plugins: () => [lazyCodecs()] },
  server: {
    proxy: {
      '/dicomweb': 'http://127.0.0.1:8080',
      '/ai': 'http://127.0.0.1:8080',
      '/api': 'http://127.0.0.1:8080',
      '/his': 'http://127.0.0.1:8080',
      '/live': { target: 'ws://127.0.0.1:8080', ws: true },
    },
  },
});
