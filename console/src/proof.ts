// A balance proof (GET /api/ledger/accounts/{id}/proof) checked in the browser, exactly as the C# verifier does
// (src/ComputeGrid.Ledger/Audit/Checkpoint.cs, BalanceProof.Verify; the hashing in MerkleSumTree.cs): the leaf climbs
// its Merkle sum path to its asset's root, the totals agree, every asset's debits equal its credits, the checkpoint
// root recomputes from its parts, and it equals a root read from elsewhere (the chain's StateRootAnchor, or the
// server's latest checkpoint). SHA-256 comes from WebCrypto; integers are BigInt, written little-endian, never through
// binary floating point. Each check is reported by name, so a tampered proof says which one failed.
//
//   leaf     = SHA-256(0x00 ‖ id u128 ‖ asset u32 ‖ debits_posted i64 ‖ credits_posted i64)
//   internal = SHA-256(0x01 ‖ left hash ‖ left debits i128 ‖ left credits i128 ‖ right hash ‖ right debits ‖ right credits)
//   root     = SHA-256(0x03 ‖ op u64 ‖ timestamp i64 ‖ chain head ‖ per asset by code: asset u32 ‖ hash ‖ debits i128 ‖ credits i128)

import { parseApiTime } from './candles';

/** One step of the path: the sibling's hash and sums (decimal strings), and its side. */
export interface ProofStep {
  hash: string;
  debits: string;
  credits: string;
  sibling_on_left: boolean;
}

/** One asset's root in the checkpoint. */
export interface AssetRoot {
  asset: number;
  hash: string;
  debits: string;
  credits: string;
  accounts: number;
}

/** A balance proof as the API writes it (integers that may pass 2^53 are kept as decimal strings by `parseProof`). */
export interface BalanceProof {
  version: number;
  account_id: string;
  asset: number;
  debits_posted: string;
  credits_posted: string;
  path: ProofStep[];
  op: string;
  timestamp: string;
  chain_head: string;
  assets: AssetRoot[];
  root: string;
}

/** The checks, in the order the C# verifier makes them. */
export type CheckName = 'shape' | 'path' | 'totals' | 'balanced' | 'root' | 'expected';

/** One check's verdict. */
export interface Check {
  name: CheckName;
  ok: boolean;
  detail: string;
}

/** The verdict: every check made (a failed one stops the rest, as in C#), and the root the proof recomputes to. */
export interface Verdict {
  ok: boolean;
  checks: Check[];
  computedRoot: string | null;
}

/** What each check means, for the page. */
export const CHECK_LABELS: Readonly<Record<CheckName, string>> = {
  shape: 'the proof is well formed',
  path: 'the balance climbs its Merkle path to its asset\'s root',
  totals: 'the path\'s totals are the asset root\'s',
  balanced: 'every asset\'s total debits equal its total credits',
  root: 'the checkpoint root recomputes from its parts',
  expected: 'the root equals the independently read root',
};

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const I128_MIN = -(1n << 127n);
const I128_MAX = (1n << 127n) - 1n;

/**
 * Parses a proof's JSON text keeping its integers exact: the numbers that may pass 2^53 (balances, op) are read as
 * decimal strings before JSON.parse could round them.
 */
export function parseProof(text: string): BalanceProof {
  const exact = text.replace(/"(debits_posted|credits_posted|op)"(\s*):(\s*)(-?\d+)/g, '"$1"$2:$3"$4"');
  return JSON.parse(exact) as BalanceProof;
}

/** A hex string (no 0x) as bytes; throws on anything else. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new RangeError(`not hex: '${hex.slice(0, 16)}…'`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Bytes as lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `value` as `size` bytes little-endian, two's complement for negatives; throws when it does not fit [min, max]. */
export function littleEndian(value: bigint, size: number, min: bigint, max: bigint): Uint8Array {
  if (value < min || value > max) throw new RangeError(`${value} does not fit ${size} bytes`);
  let v = value < 0n ? (1n << BigInt(size * 8)) + value : value;
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** A decimal integer string as a BigInt (no sign but '-', no spaces, no exponents). */
function integer(text: string | number, what: string): bigint {
  const s = String(text);
  if (!/^-?\d+$/.test(s)) throw new RangeError(`${what} is not an integer: '${s}'`);
  return BigInt(s);
}

interface SumNode {
  hash: Uint8Array;
  debits: bigint;
  credits: bigint;
}

/** The leaf of an account's balances. */
export async function hashLeaf(accountId: bigint, asset: number, debits: bigint, credits: bigint): Promise<SumNode> {
  const hash = await sha256(concat(Uint8Array.of(0x00), littleEndian(accountId, 16, 0n, U128_MAX), littleEndian(BigInt(asset), 4, 0n, 0xffffffffn),
    littleEndian(debits, 8, I64_MIN, I64_MAX), littleEndian(credits, 8, I64_MIN, I64_MAX)));
  return { hash, debits, credits };
}

/** An internal node over two children; the sums add exactly (and must fit 128 bits, as C#'s checked arithmetic). */
export async function hashInternal(left: SumNode, right: SumNode): Promise<SumNode> {
  const side = (n: SumNode): Uint8Array => concat(n.hash, littleEndian(n.debits, 16, I128_MIN, I128_MAX), littleEndian(n.credits, 16, I128_MIN, I128_MAX));
  const hash = await sha256(concat(Uint8Array.of(0x01), side(left), side(right)));
  const debits = left.debits + right.debits;
  const credits = left.credits + right.credits;
  if (debits > I128_MAX || credits > I128_MAX) throw new RangeError('a sum overflows');
  return { hash, debits, credits };
}

/** The checkpoint root from its published parts. */
export async function checkpointRoot(op: bigint, timestampNs: bigint, chainHeadHex: string, assets: readonly AssetRoot[]): Promise<string> {
  const parts: Uint8Array[] = [Uint8Array.of(0x03), littleEndian(op, 8, 0n, U64_MAX), littleEndian(timestampNs, 8, I64_MIN, I64_MAX), fromHex(chainHeadHex)];
  for (const a of [...assets].sort((x, y) => x.asset - y.asset)) {
    parts.push(littleEndian(BigInt(a.asset), 4, 0n, 0xffffffffn), fromHex(a.hash),
      littleEndian(integer(a.debits, 'an asset\'s debits'), 16, I128_MIN, I128_MAX), littleEndian(integer(a.credits, 'an asset\'s credits'), 16, I128_MIN, I128_MAX));
  }
  return toHex(await sha256(concat(...parts)));
}

/**
 * Checks `proof` against `expectedRoot` (hex, with or without 0x) as `BalanceProof.Verify` does, one named check after
 * another; the first that fails ends the verdict.
 */
export async function verifyProof(proof: BalanceProof, expectedRoot: string): Promise<Verdict> {
  const checks: Check[] = [];
  const pass = (name: CheckName, detail: string): void => void checks.push({ name, ok: true, detail });
  const fail = (name: CheckName, detail: string, computedRoot: string | null = null): Verdict => {
    checks.push({ name, ok: false, detail });
    return { ok: false, checks, computedRoot };
  };
  let node: SumNode;
  let account: bigint;
  try {
    if (proof.version !== 1) return fail('shape', `unknown proof version ${String(proof.version)}`);
    account = integer(proof.account_id, 'the account id');
    if (account < 0n || account > U128_MAX) return fail('shape', 'the account id is not a 128-bit id');
    node = await hashLeaf(account, proof.asset, integer(proof.debits_posted, 'debits_posted'), integer(proof.credits_posted, 'credits_posted'));
    for (const step of proof.path) {
      const hash = fromHex(step.hash);
      if (hash.length !== 32) return fail('shape', 'a path hash is not 32 bytes');
      const sibling = { hash, debits: integer(step.debits, 'a path node\'s debits'), credits: integer(step.credits, 'a path node\'s credits') };
      if (sibling.debits < 0n || sibling.credits < 0n) return fail('shape', 'a path node has a negative sum');
      node = step.sibling_on_left ? await hashInternal(sibling, node) : await hashInternal(node, sibling);
    }
  } catch (e) {
    return fail('shape', `malformed proof: ${e instanceof Error ? e.message : String(e)}`);
  }
  pass('shape', `version 1, account ${account}, ${proof.path.length} path steps`);
  const assetRoot = proof.assets.find((a) => a.asset === proof.asset);
  if (assetRoot === undefined) return fail('path', `the checkpoint has no root for asset ${proof.asset}`);
  if (toHex(node.hash) !== assetRoot.hash.toLowerCase()) return fail('path', 'the account\'s path does not lead to its asset\'s root');
  pass('path', `leaf → ${proof.path.length} steps → ${assetRoot.hash}`);
  if (node.debits.toString() !== assetRoot.debits || node.credits.toString() !== assetRoot.credits)
    return fail('totals', 'the asset root\'s totals differ from the path\'s totals');
  pass('totals', `debits ${assetRoot.debits}, credits ${assetRoot.credits}`);
  for (const a of proof.assets)
    if (a.debits !== a.credits) return fail('balanced', `asset ${a.asset}: total debits ${a.debits} differ from total credits ${a.credits}`);
  pass('balanced', `${proof.assets.length} assets`);
  let root: string;
  try {
    root = await checkpointRoot(integer(proof.op, 'op'), parseApiTime(proof.timestamp), proof.chain_head, proof.assets);
  } catch (e) {
    return fail('root', `malformed proof: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (root !== proof.root.toLowerCase()) return fail('root', 'the proof\'s root does not match its parts', root);
  pass('root', `op ${proof.op}: ${root}`);
  const expected = expectedRoot.trim().replace(/^0x/i, '').toLowerCase();
  if (root !== expected) return fail('expected', `root ${root} differs from the expected root ${expected}`, root);
  pass('expected', `equals ${expected}`);
  return { ok: true, checks, computedRoot: root };
}

/** The selector of StateRootAnchor's `rootAt(uint64)` (as the CLI's AnchoredProofVerify). */
export const ROOT_AT_SELECTOR = 'eaa38b41';

/** The `eth_call` data for `rootAt(op)`. */
export function rootAtCallData(op: bigint): string {
  if (op < 0n || op > U64_MAX) throw new RangeError('op is a 64-bit unsigned integer');
  return `0x${ROOT_AT_SELECTOR}${op.toString(16).padStart(64, '0')}`;
}

/** The root in `rootAt`'s answer (one 32-byte word), or null when it is zero (nothing anchored at that op). */
export function rootFromWord(word: string): string | null {
  if (!/^0x[0-9a-fA-F]{64}$/.test(word)) throw new RangeError(`rootAt answered '${word}', not one 32-byte word`);
  return /^0x0+$/.test(word) ? null : word.slice(2).toLowerCase();
}

/**
 * Reads the root anchored for `op` from the chain itself: a JSON-RPC `eth_call` of `rootAt(op)` on `anchor` at the
 * latest block, from the browser to the chain's RPC (no key, nothing through this server).
 */
export async function readAnchoredRoot(rpcUrl: string, anchor: string, op: bigint, fetcher: typeof fetch = fetch): Promise<string | null> {
  const r = await fetcher(rpcUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_call', params: [{ to: anchor, data: rootAtCallData(op) }, 'latest'] }),
  });
  if (!r.ok) throw new Error(`the chain's RPC answered HTTP ${r.status}`);
  const answer = (await r.json()) as { result?: string; error?: { message?: string } };
  if (answer.error !== undefined) throw new Error(`the chain answered: ${answer.error.message ?? JSON.stringify(answer.error)}`);
  return rootFromWord(answer.result ?? '');
}
