// The Tokens page's data handling: a node share pool's revenue per share over time (GET /api/shares/{node}/revenue)
// as a chart's series, the routing table's names of nodes by principal, and a holder's part of the supply. Money stays
// integer (micro- or nano-USD) until a chart needs a float to place a point; figures shown as text are formatted exactly.

/** One hour of a pool's revenue, as the API gives it. */
export interface RevenuePoint {
  start: string;
  revenue_micro_usd: number;
  cumulative_micro_usd: number;
  revenue_per_share_micro_usd: number;
  revenue_per_share_nano_usd: number;
}

/** A node in the routing table (GET /api/inference/nodes), as far as this page needs it. */
export interface RoutingNode {
  id: string;
  region: string;
  revenue_account: string | number | null;
}

/** The chart's series: hour starts (Unix seconds) and cumulative revenue per share (micro-USD, for placing points only). */
export function revenueSeries(points: readonly RevenuePoint[], parseTime: (t: string) => bigint): [number[], number[]] {
  const sorted = [...points].sort((a, b) => (parseTime(a.start) < parseTime(b.start) ? -1 : 1));
  return [sorted.map((p) => Number(parseTime(p.start) / 1_000_000_000n)), sorted.map((p) => p.revenue_per_share_nano_usd / 1000)];
}

/** Nano-USD (revenue per share is often below a micro-dollar) as dollars, exactly, trailing zeros trimmed: "$0.000000375". */
export function formatNanoUsd(nano: number | bigint): string {
  const n = BigInt(nano);
  const abs = n < 0n ? -n : n;
  let fraction = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  if (fraction.length < 2) fraction = fraction.padEnd(2, '0');
  return `${n < 0n ? '-' : ''}$${(abs / 1_000_000_000n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${fraction}`;
}

/**
 * Node names by principal id: a node's revenue account is the chart of accounts' principal account, whose low 64 bits
 * are the node's principal id (ChartOfAccounts.PrincipalAccount), which is also the node's id on the exchange.
 */
export function nodeNames(nodes: readonly RoutingNode[]): Map<number, { name: string; region: string }> {
  const names = new Map<number, { name: string; region: string }>();
  for (const n of nodes) {
    if (n.revenue_account === null) continue;
    const principal = BigInt(n.revenue_account) & ((1n << 64n) - 1n);
    if (principal <= BigInt(Number.MAX_SAFE_INTEGER)) names.set(Number(principal), { name: n.id, region: n.region });
  }
  return names;
}

/** A holder's part of the supply as a percentage with two decimals, exactly rounded down ("12.50 %"). */
export function shareOfSupply(shares: number, supply: number): string {
  if (supply <= 0) return '—';
  const basisPoints = (BigInt(shares) * 10_000n) / BigInt(supply);
  return `${basisPoints / 100n}.${(basisPoints % 100n).toString().padStart(2, '0')} %`;
}
