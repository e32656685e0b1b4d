// The Market page's leases panel: the signed-in principal's leases (operators: everyone's) from GET /api/exchange/leases,
// read page by page up to a bound, and each lease's delivery as the page shows it. Every figure is the API's; the one
// derived figure, what is still in escrow, is the lease's notional less what the API says was paid and refunded from it
// (a penalty comes from the provider's collateral, not the escrow). Money stays integer (micro-USD) throughout.

import { parseApiTime } from './candles';
import { toMicro } from './money';

/** A lease as GET /api/exchange/leases gives it, as far as the panel needs it. */
export interface ApiLease {
  id: number;
  symbol: string | null;
  parent: number | null;
  start: string;
  end: string;
  gpus: number;
  price: number;
  notional: number | string;
  status: string;
  gpu_hours: number;
  delivered_gpu_hours: number;
  paid: number | string;
  refunded: number | string;
  penalty: number | string;
}

/** One page of leases, by id; `next` is the `after` of the next page. */
export interface LeasePage {
  leases: ApiLease[];
  next: number | null;
}

/** Where a lease stands in its delivery at a moment. */
export type DeliveryState = 'upcoming' | 'in delivery' | 'window over' | 'completed' | 'failed' | string;

/** A lease as the panel shows it. */
export interface LeaseRow {
  id: number;
  symbol: string;
  gpus: number;
  start: string;
  end: string;
  status: string;
  state: DeliveryState;
  deliveredGpuHours: number;
  gpuHours: number;
  paid: bigint;
  escrow: bigint;
}

/** The panel's totals over the leases read. */
export interface LeaseSummary {
  count: number;
  inDelivery: number;
  gpusInDelivery: number;
  paid: bigint;
  escrow: bigint;
}

/** The most leases the panel reads (pages of 1,000): past it the count says "at least". */
export const LEASES_READ_MAX = 5_000;

/**
 * Reads every lease from `fetchPage(after)` (GET /api/exchange/leases?limit=1000&after=), following `next`, until the
 * last page or `max` leases. Returns them by id and whether there were more than it read.
 */
export async function readLeases(fetchPage: (after: number) => Promise<LeasePage>, max = LEASES_READ_MAX): Promise<{ leases: ApiLease[]; more: boolean }> {
  const leases: ApiLease[] = [];
  let after = 0;
  for (;;) {
    const page = await fetchPage(after);
    leases.push(...page.leases);
    if (page.next === null || page.leases.length === 0) return { leases, more: false };
    if (leases.length >= max) return { leases, more: true };
    after = page.next;
  }
}

/** Where a lease is at `nowNs` (Unix ns): an active one before, in or after its window; otherwise its status. */
export function deliveryState(lease: ApiLease, nowNs: bigint): DeliveryState {
  if (lease.status !== 'active') return lease.status;
  if (nowNs < parseApiTime(lease.start)) return 'upcoming';
  return nowNs < parseApiTime(lease.end) ? 'in delivery' : 'window over';
}

/** The lease's row: newest leases first is the caller's order; escrow = notional − paid − refunded. */
export function leaseRow(lease: ApiLease, nowNs: bigint): LeaseRow {
  const paid = toMicro(lease.paid);
  return {
    id: lease.id,
    symbol: lease.symbol ?? '—',
    gpus: lease.gpus,
    start: lease.start,
    end: lease.end,
    status: lease.status,
    state: deliveryState(lease, nowNs),
    deliveredGpuHours: lease.delivered_gpu_hours,
    gpuHours: lease.gpu_hours,
    paid,
    escrow: toMicro(lease.notional) - paid - toMicro(lease.refunded),
  };
}

/** The rows of the newest `limit` leases, newest first. */
export function newestRows(leases: readonly ApiLease[], nowNs: bigint, limit: number): LeaseRow[] {
  return [...leases].sort((a, b) => b.id - a.id).slice(0, limit).map((l) => leaseRow(l, nowNs));
}

/** Totals over every lease read: how many, how many in delivery now and their GPUs, paid so far and still in escrow. */
export function summarize(leases: readonly ApiLease[], nowNs: bigint): LeaseSummary {
  const s: LeaseSummary = { count: leases.length, inDelivery: 0, gpusInDelivery: 0, paid: 0n, escrow: 0n };
  for (const l of leases) {
    const row = leaseRow(l, nowNs);
    if (row.state === 'in delivery') {
      s.inDelivery++;
      // A lease resold from another runs on its parent's GPUs: count the GPUs once.
      if (l.parent === null) s.gpusInDelivery += l.gpus;
    }
    s.paid += row.paid;
    s.escrow += row.escrow;
  }
  return s;
}
