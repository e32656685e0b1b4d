// Copies the prebuilt browser bundle of the API reference (Scalar, @scalar/api-reference's standalone script) into
// dist/vendor/, so the server serves it like any other file of the console: nothing is fetched from a CDN.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const from = path.join(root, 'node_modules', '@scalar', 'api-reference', 'dist', 'browser', 'standalone.js');
const to = path.join(root, 'dist', 'vendor', 'scalar', 'standalone.js');
fs.mkdirSync(path.dirname(to), { recursive: true });
fs.copyFileSync(from, to);
console.log(`copy-vendor: ${path.relative(root, to)} (${fs.statSync(to).size} bytes)`);
