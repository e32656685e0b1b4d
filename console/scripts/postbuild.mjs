// After `vite build`: copies the prebuilt browser bundle of the API reference (Scalar, @scalar/api-reference's
// standalone script) into dist/vendor/scalar/, so the server serves it like any other file of the console (nothing from a
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
// Its stylesheet declares its web font (Inter) at fonts.scalar.com, which the server's Content-Security-Policy refuses
// (and a machine offline cannot reach): those @font-face rules are left out, so the page uses the machine's fonts.
const bundle = fs.readFileSync(from, 'utf8');
const fontFaces = /@font-face\s*\{[^{}]*fonts\.scalar\.com[^{}]*\}/g;
const removed = (bundle.match(fontFaces) ?? []).length;
const local = bundle.replace(fontFaces, '');
if (local.includes('fonts.scalar.com')) throw new Error('postbuild: the Scalar bundle still names fonts.scalar.com after removing its @font-face rules');
fs.writeFileSync(to, local);

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
console.log(`postbuild: vendor/scalar/standalone.js copied (${removed} remote @font-face rules left out); ${files} files precompressed, ${raw} → ${packed} bytes (Brotli)`);
