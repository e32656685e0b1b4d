// Compiles contracts/*.sol with the pinned solc (JS API, standard JSON) and writes, per deployable contract,
// <Name>.abi.json and <Name>.bin (hex, no 0x) into contracts/build or the folder given as the first argument.
// Settings are fixed and the CBOR metadata is left out of the bytecode, so the output depends only on the sources:
// a test compiles to a temporary folder and compares with the committed artifacts.
// Any warning fails the build, like the C# projects.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const solc = require('solc');

const here = path.dirname(fileURLToPath(import.meta.url));
const contractsDir = path.resolve(here, '..', '..', 'contracts');
const outDir = path.resolve(process.argv[2] ?? path.join(contractsDir, 'build'));

const files = fs.readdirSync(contractsDir).filter(f => f.endsWith('.sol')).sort();
const sources = {};
for (const f of files) sources[f] = { content: fs.readFileSync(path.join(contractsDir, f), 'utf8') };

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const problems = (output.errors ?? []).filter(e => e.severity !== 'info');
if (problems.length > 0) {
  for (const e of problems) process.stderr.write(e.formattedMessage ?? e.message);
  process.stderr.write(`compile: ${problems.length} error(s) or warning(s)\n`);
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
const written = [];
for (const file of files) {
  for (const [name, c] of Object.entries(output.contracts[file] ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    const bin = c.evm.bytecode.object;
    if (bin.length === 0) continue; // interfaces have no code
    fs.writeFileSync(path.join(outDir, `${name}.abi.json`), JSON.stringify(c.abi, null, 2) + '\n');
    fs.writeFileSync(path.join(outDir, `${name}.bin`), bin + '\n');
    written.push(name);
  }
}
console.log(`compiled ${written.join(', ')} with solc ${solc.version()} into ${outDir}`);
