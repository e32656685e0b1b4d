// After `vite build`: copies the prebuilt browser bundle of the API reference (Scalar, @scalar/api-reference's
// standalone script) into dist/vendor/, so the server serves it like any other file of the console (nothing from a
// CDN), then writes a Brotli (.br) and a gzip (.gz) copy of every text file beside it. The server sends those as they
// are: compressing a 4.8 MB script on a client's first request would cost seconds of CPU on a busy machine.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const dist = path.join(root, 'dist');
const from = path.join(root, 'node_modules', '@scalar', 'api-reference', 'dist', 'browser', 'standalone.js');
const to = path.join(dist, 'vendor', 'scalar', 'standalone.js');
fs.mkdirSync(path.dirname(to), { recursive: true });
fs.copyFileSync(from, to);

const compressible = /\.(html|js|mjs|css|json|svg|txt)$/;
let files = 0;
let raw = 0;
let packed = 0;
for (const entry of fs.readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !compressible.test(entry.name)) continue;
  const file = path.join(entry.parentPath, entry.name);
  const body = fs.readFileSync(file);
  // The strongest Brotli for the small files; a faster level for the large vendor bundle (its build time stays short).
  const quality = body.length > 1_000_000 ? 9 : zlib.constants.BROTLI_MAX_QUALITY;
  const br = zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: quality, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } });
  fs.writeFileSync(file + '.br', br);
  fs.writeFileSync(file + '.gz', zlib.gzipSync(body, { level: 9 }));
  files++;
  raw += body.length;
  packed += br.length;
}
console.log(`postbuild: vendor/scalar/standalone.js copied; ${files} files precompressed, ${raw} → ${packed} bytes (Brotli)`);
