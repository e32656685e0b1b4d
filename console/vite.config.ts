// The console is two static pages (the console and the API reference) built into dist/, which the server embeds and
// serves at / (src/ComputeGrid.Server/WebConsole/ConsoleAssets.cs). Content-hashed names under assets/ let the server
// cache them for a year; no source maps ship (the sources are in the repository).
import { defineConfig } from 'vite';
import { resolve } from 'node:path';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      input: {
        main: resolve(import.meta.dirname, 'index.html'),
        reference: resolve(import.meta.dirname, 'reference.html'),
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
} as import('vite').UserConfig);
