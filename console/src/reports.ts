// A node's signed epoch reports (GET /api/nodes/{id}/reports), verified in the browser exactly as
// `computegrid verify --node-reports` does (src/ComputeGrid.Inference/Reports/EpochReportChain.cs): for each report in
// order its identity, its shape and derived figures (EpochFigures.cs), its window (one epoch), its SHA-256 over the
// canonical bytes (EpochReportEncoding.cs, rebuilt here byte for byte, never from the JSON text), its Ed25519 signature
// over that hash with the node's public key (WebCrypto), its link to the report before; then the totals. Integers are
// BigInt, so no figure goes through binary floating point. The first failure is reported with the check's name.

import { parseApiTime } from './candles';

/** One epoch report as the API writes it. */
export interface EpochReport {
  node_principal: number;
  node_id: string;
  epoch: number;
  start: string;
  end: string;
  gpus: number;
  requests: number;
  tokens: number;
  utilization_bp: number;
  uptime_s: number;
  energy_j: number;
  energy_source: string;
  tokens_per_joule_milli: number | null;
  revenue_micro_usd: number;
  revenue_per_gpu_hour_micro_usd: number | null;
  shares_outstanding: number | null;
  revenue_per_share_micro_usd_e6: number | null;
  previous_hash: string;
  hash: string;
  signature: string;
}

/** The sums of a node's accepted reports. */
export interface ReportTotals {
  reports: number;
  requests: number;
  tokens: number;
  uptime_s: number;
  energy_j: number;
  revenue_micro_usd: number;
}

/** GET /api/nodes/{id}/reports. */
export interface NodeReportsDocument {
  node_id: string;
  node_principal: number;
  public_key: string;
  epoch_seconds: number;
  reports: EpochReport[];
  totals: ReportTotals;
  flagged: { received_at: string; epoch: number; check: string; reason: string }[];
}

/** The rule a report broke, named as the server and the CLI name it. */
export type ReportCheck = 'identity' | 'shape' | 'signature' | 'chain';

/** What verifying a document found. */
export type Verdict =
  | { ok: true; reports: number }
  | { ok: false; index: number; epoch: number | null; check: ReportCheck; reason: string; verified: number };

/** The previous hash of a node's first report. */
export const GENESIS_HASH = '0'.repeat(64);

const DOMAIN = 'computegrid-epoch-report/v1';
const NODE_ID_BYTES_MAX = 128;
const GPUS_MAX = 65_536;
const COUNT_MAX = 1_000_000_000_000_000n;
const REVENUE_MAX = 1_000_000_000_000n;
const EPOCH_SECONDS_MIN = 1;
const EPOCH_SECONDS_MAX = 86_400;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

const utf8 = new TextEncoder();

/** A JSON integer as a BigInt; a fraction, or a number past 2^53 (not exact once parsed), is refused. */
function int(v: unknown, name: string): bigint {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ShapeError(`${name} is not an exact integer`);
  return BigInt(v);
}

function optionalInt(v: unknown, name: string): bigint | null {
  return v === null || v === undefined ? null : int(v, name);
}

class ShapeError extends Error {}

/** The 32 bytes of a 64-digit hex hash (either case), or null. */
export function hashBytes(hex: unknown): Uint8Array<ArrayBuffer> | null {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> | null {
  try {
    const bin = atob(text);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** Little-endian writer of the canonical encoding. */
class Writer {
  private readonly parts: number[] = [];
  bytes(b: Uint8Array): void {
    for (const x of b) this.parts.push(x);
  }
  u8(v: number): void {
    this.parts.push(v & 0xff);
  }
  int(v: bigint, size: 2 | 4 | 8, signed: boolean): void {
    const bits = BigInt(size * 8);
    const min = signed ? -(1n << (bits - 1n)) : 0n;
    const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
    if (v < min || v > max) throw new ShapeError(`a figure does not fit ${size * 8} bits`);
    let u = BigInt.asUintN(size * 8, v);
    for (let i = 0; i < size; i++) {
      this.parts.push(Number(u & 0xffn));
      u >>= 8n;
    }
  }
  optional(v: bigint | null): void {
    if (v === null) this.u8(0);
    else {
      this.u8(1);
      this.int(v, 8, true);
    }
  }
  done(): Uint8Array<ArrayBuffer> {
    return Uint8Array.from(this.parts);
  }
}

/** The report's canonical bytes (EpochReportEncoding.Canonical), which its hash is over. Throws on a malformed report. */
export function canonical(r: EpochReport): Uint8Array<ArrayBuffer> {
  const id = utf8.encode(r.node_id);
  if (id.length > NODE_ID_BYTES_MAX) throw new ShapeError(`the node id is longer than ${NODE_ID_BYTES_MAX} bytes`);
  const previous = hashBytes(r.previous_hash);
  if (previous === null) throw new ShapeError('previous_hash must be 64 hex digits');
  const w = new Writer();
  w.bytes(utf8.encode(DOMAIN));
  w.int(int(r.node_principal, 'node_principal'), 8, false);
  w.int(BigInt(id.length), 2, false);
  w.bytes(id);
  w.int(int(r.epoch, 'epoch'), 8, true);
  w.int(parseApiTime(r.start), 8, true);
  w.int(parseApiTime(r.end), 8, true);
  w.int(int(r.gpus, 'gpus'), 4, true);
  w.int(int(r.requests, 'requests'), 8, true);
  w.int(int(r.tokens, 'tokens'), 8, true);
  w.int(int(r.utilization_bp, 'utilization_bp'), 4, true);
  w.int(int(r.uptime_s, 'uptime_s'), 8, true);
  w.int(int(r.energy_j, 'energy_j'), 8, true);
  if (r.energy_source === 'measured') w.u8(0);
  else if (r.energy_source === 'modeled') w.u8(1);
  else throw new ShapeError('energy_source must be "measured" or "modeled"');
  w.optional(optionalInt(r.tokens_per_joule_milli, 'tokens_per_joule_milli'));
  w.int(int(r.revenue_micro_usd, 'revenue_micro_usd'), 8, true);
  w.optional(optionalInt(r.revenue_per_gpu_hour_micro_usd, 'revenue_per_gpu_hour_micro_usd'));
  w.optional(optionalInt(r.shares_outstanding, 'shares_outstanding'));
  w.optional(optionalInt(r.revenue_per_share_micro_usd_e6, 'revenue_per_share_micro_usd_e6'));
  w.bytes(previous);
  return w.done();
}

/** SHA-256 of the canonical bytes, lowercase hex (WebCrypto). */
export async function reportHash(r: EpochReport, subtle: SubtleCrypto = crypto.subtle): Promise<string> {
  return toHex(new Uint8Array(await subtle.digest('SHA-256', canonical(r))));
}

const show = (v: bigint | null): string => (v === null ? 'null' : v.toString());

/** The report's shape (EpochFigures.CheckShape): null when it holds, else why not. */
export function checkShape(r: EpochReport): string | null {
  if (typeof r.node_id !== 'string' || r.node_id === '' || utf8.encode(r.node_id).length > NODE_ID_BYTES_MAX) return 'node_id is empty or too long';
  const epoch = int(r.epoch, 'epoch');
  const start = parseApiTime(r.start);
  const end = parseApiTime(r.end);
  if (epoch < 0n || end <= start) return "the epoch's window is empty or negative";
  const seconds = (end - start) / 1_000_000_000n;
  const gpus = int(r.gpus, 'gpus');
  if (gpus < 1n || gpus > BigInt(GPUS_MAX)) return `gpus must be 1 to ${GPUS_MAX}`;
  const requests = int(r.requests, 'requests');
  const tokens = int(r.tokens, 'tokens');
  if (requests < 0n || requests > COUNT_MAX || tokens < 0n || tokens > COUNT_MAX) return 'requests and tokens must be 0 to 10^15';
  const util = int(r.utilization_bp, 'utilization_bp');
  if (util < 0n || util > 10_000n) return 'utilization_bp must be 0 to 10000';
  const uptime = int(r.uptime_s, 'uptime_s');
  if (uptime < 0n || uptime > seconds) return `uptime_s must be 0 to the epoch's ${seconds} s`;
  const energy = int(r.energy_j, 'energy_j');
  if (energy < 0n || energy > COUNT_MAX) return 'energy_j must be 0 to 10^15';
  if (r.energy_source !== 'measured' && r.energy_source !== 'modeled') return 'energy_source must be "measured" or "modeled"';
  const revenue = int(r.revenue_micro_usd, 'revenue_micro_usd');
  if (revenue < 0n || revenue > REVENUE_MAX) return 'revenue_micro_usd must be 0 to 10^12';
  const shares = optionalInt(r.shares_outstanding, 'shares_outstanding');
  if (shares !== null && (shares < 1n || shares > COUNT_MAX)) return 'shares_outstanding must be 1 to 10^15, or null';
  if (hashBytes(r.previous_hash) === null) return 'previous_hash must be 64 hex digits';
  // The derived figures, rounded down (all operands are non-negative here, so BigInt division is the floor).
  const tpj = energy <= 0n ? null : (tokens * 1000n) / energy;
  const stated = optionalInt(r.tokens_per_joule_milli, 'tokens_per_joule_milli');
  if (stated !== tpj) return `tokens_per_joule_milli is ${show(stated)}, its figures give ${show(tpj)}`;
  const perGpuHour = gpus <= 0n || uptime <= 0n ? null : (revenue * 3600n) / (gpus * uptime);
  const statedPerGpuHour = optionalInt(r.revenue_per_gpu_hour_micro_usd, 'revenue_per_gpu_hour_micro_usd');
  if (statedPerGpuHour !== perGpuHour) return `revenue_per_gpu_hour_micro_usd is ${show(statedPerGpuHour)}, its figures give ${show(perGpuHour)}`;
  const perShare = shares === null || shares <= 0n ? null : (revenue * 1_000_000n) / shares;
  const statedPerShare = optionalInt(r.revenue_per_share_micro_usd_e6, 'revenue_per_share_micro_usd_e6');
  if (statedPerShare !== perShare) return `revenue_per_share_micro_usd_e6 is ${show(statedPerShare)}, its figures give ${show(perShare)}`;
  return null;
}

/** Whether the stated hash is the recomputed one and the signature is the key's Ed25519 signature over its 32 bytes. */
export async function verifySignature(r: EpochReport, key: CryptoKey, subtle: SubtleCrypto = crypto.subtle): Promise<boolean> {
  let hash: string;
  try {
    hash = await reportHash(r, subtle);
  } catch {
    return false;
  }
  if (hash !== r.hash) return false;
  const signature = typeof r.signature === 'string' ? fromBase64(r.signature) : null;
  const message = hashBytes(hash);
  if (signature === null || message === null) return false;
  try {
    return await subtle.verify({ name: 'Ed25519' }, key, signature, message);
  } catch {
    return false;
  }
}

type Failure = { check: ReportCheck; reason: string };

async function checkReport(r: EpochReport, previous: EpochReport | null, doc: NodeReportsDocument, key: CryptoKey, epochNs: bigint, subtle: SubtleCrypto): Promise<Failure | null> {
  if (r.node_principal !== doc.node_principal || r.node_id !== doc.node_id)
    return { check: 'identity', reason: `it names node ${r.node_id} (${r.node_principal}), not ${doc.node_id} (${doc.node_principal})` };
  const shape = checkShape(r);
  if (shape !== null) return { check: 'shape', reason: shape };
  const start = parseApiTime(r.start);
  const windowStart = BigInt(r.epoch) * epochNs;
  if (windowStart > I64_MAX || windowStart < I64_MIN) return { check: 'shape', reason: 'a figure overflows 64 bits' };
  if (start !== windowStart || parseApiTime(r.end) !== start + epochNs)
    return { check: 'shape', reason: `its window is not epoch ${r.epoch} of ${epochNs / 1_000_000_000n} s` };
  if (!(await verifySignature(r, key, subtle))) return { check: 'signature', reason: "its hash or its Ed25519 signature does not verify with the node's key" };
  const expected = previous?.hash ?? GENESIS_HASH;
  if (typeof r.previous_hash !== 'string' || r.previous_hash.toLowerCase() !== expected.toLowerCase())
    return {
      check: 'chain',
      reason: previous === null ? "a node's first report must have a previous hash of 64 zeros" : `its previous hash is not the hash of epoch ${previous.epoch}'s report`,
    };
  if (previous !== null && r.epoch !== previous.epoch + 1) return { check: 'chain', reason: `epoch ${r.epoch} does not follow epoch ${previous.epoch}` };
  return null;
}

type Summed = 'requests' | 'tokens' | 'uptime_s' | 'energy_j' | 'revenue_micro_usd';
const TOTALS: readonly Summed[] = ['requests', 'tokens', 'uptime_s', 'energy_j', 'revenue_micro_usd'];

/**
 * Verifies a whole document (EpochReportChain.Verify): the key and epoch length, every report in order from the node's
 * first, then the totals against the sums. The first failure names its report's index (−1: the document) and check.
 */
export async function verifyReports(doc: NodeReportsDocument, subtle: SubtleCrypto = crypto.subtle): Promise<Verdict> {
  const fail = (index: number, check: ReportCheck, reason: string, verified: number): Verdict => ({
    ok: false, index, epoch: index >= 0 ? (doc.reports[index]?.epoch ?? null) : null, check, reason, verified,
  });
  const raw = typeof doc.public_key === 'string' ? fromBase64(doc.public_key) : null;
  if (raw === null) return fail(-1, 'signature', 'public_key is not base64', 0);
  if (raw.length !== 32) return fail(-1, 'signature', 'public_key is not a 32-byte Ed25519 key', 0);
  if (!Number.isSafeInteger(doc.epoch_seconds) || doc.epoch_seconds < EPOCH_SECONDS_MIN || doc.epoch_seconds > EPOCH_SECONDS_MAX)
    return fail(-1, 'shape', 'epoch_seconds is out of range', 0);
  let key: CryptoKey;
  try {
    key = await subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
  } catch {
    return fail(-1, 'signature', 'public_key is not an Ed25519 public key', 0);
  }
  const epochNs = BigInt(doc.epoch_seconds) * 1_000_000_000n;
  let previous: EpochReport | null = null;
  for (let i = 0; i < doc.reports.length; i++) {
    const r = doc.reports[i] as EpochReport;
    let failure: Failure | null;
    try {
      failure = await checkReport(r, previous, doc, key, epochNs, subtle);
    } catch (e) {
      failure = { check: 'shape', reason: e instanceof Error ? e.message : String(e) };
    }
    if (failure !== null) return fail(i, failure.check, failure.reason, i);
    previous = r;
  }
  const sums = new Map<Summed, bigint>(TOTALS.map((k) => [k, 0n]));
  for (const r of doc.reports) for (const k of TOTALS) sums.set(k, (sums.get(k) ?? 0n) + BigInt(r[k]));
  const differs = TOTALS.filter((k) => !Number.isSafeInteger(doc.totals[k]) || BigInt(doc.totals[k]) !== sums.get(k));
  if (differs.length > 0 || doc.totals.reports !== doc.reports.length)
    return fail(-1, 'shape', `the totals are not the sums of the reports (${[...differs.map((k) => `${k} ${doc.totals[k]} vs ${sums.get(k)}`), ...(doc.totals.reports !== doc.reports.length ? [`reports ${doc.totals.reports} vs ${doc.reports.length}`] : [])].join(', ')})`, doc.reports.length);
  return { ok: true, reports: doc.reports.length };
}
