// The Usage page's data handling (GET /api/inference/usage): the days of the range with requests as the chart's series,
// every day of the range present (a day without requests is a zero, not a gap the chart would bridge), and the check
// that the days add up to the totals the API gives.

/** One UTC day, as the API gives it. */
export interface UsageDay {
  day: string;
  requests: number;
  tokens: number;
  spend_micro_usd: number;
}

/** One request, as the API gives it. */
export interface UsageRequest {
  time: string;
  transfer_id: string;
  model: string | null;
  node: number | null;
  node_id: string | null;
  tokens: number | null;
  cost_micro_usd: number;
  fee_micro_usd: number;
  paid_by: 'key' | 'x402';
  customer: number | null;
}

/** A page, as the API gives it. */
export interface UsagePage {
  customer: number | null;
  from: string;
  to: string;
  requests: UsageRequest[];
  next: string | null;
  days: UsageDay[] | null;
  totals: { requests: number; tokens: number; spend_micro_usd: number } | null;
  complete: boolean;
}

const DAY_NS = 86_400_000_000_000n;

/**
 * Every UTC day from the one holding `fromNs` to the one holding `toNs − 1`, with the API's figures where it has them
 * and zeros elsewhere: [day starts (Unix seconds), requests, spend (micro-USD), tokens]. At most `maxDays` days (the
 * newest ones).
 */
export function dailySeries(days: readonly UsageDay[], fromNs: bigint, toNs: bigint, parseTime: (t: string) => bigint, maxDays = 93): [number[], number[], number[], number[]] {
  const byDay = new Map<bigint, UsageDay>();
  for (const d of days) byDay.set(parseTime(d.day), d);
  const floor = (t: bigint): bigint => t - (((t % DAY_NS) + DAY_NS) % DAY_NS);
  const last = floor(toNs - 1n);
  let first = floor(fromNs);
  if ((last - first) / DAY_NS + 1n > BigInt(maxDays)) first = last - BigInt(maxDays - 1) * DAY_NS;
  const out: [number[], number[], number[], number[]] = [[], [], [], []];
  for (let t = first; t <= last; t += DAY_NS) {
    const d = byDay.get(t);
    out[0].push(Number(t / 1_000_000_000n));
    out[1].push(d?.requests ?? 0);
    out[2].push(d?.spend_micro_usd ?? 0);
    out[3].push(d?.tokens ?? 0);
  }
  return out;
}

/** Whether the days add up to the totals (requests, tokens, spend), in exact integers. */
export function daysMatchTotals(days: readonly UsageDay[], totals: { requests: number; tokens: number; spend_micro_usd: number }): boolean {
  const sum = (f: (d: UsageDay) => number): bigint => days.reduce((s, d) => s + BigInt(f(d)), 0n);
  return sum((d) => d.requests) === BigInt(totals.requests) && sum((d) => d.tokens) === BigInt(totals.tokens) && sum((d) => d.spend_micro_usd) === BigInt(totals.spend_micro_usd);
}
