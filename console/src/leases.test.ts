import { describe, expect, it } from 'vitest';
import { parseApiTime } from './candles';
import { deliveryState, leaseRow, newestRows, readLeases, summarize, type ApiLease, type LeasePage } from './leases';

const lease = (id: number, over: Partial<ApiLease> = {}): ApiLease => ({
  id, symbol: `H100-dallas-H-2026-12-07T01`, parent: null, start: '2026-12-07T01:00:00Z', end: '2026-12-07T02:00:00Z', gpus: 512, price: 2_100_000,
  notional: 1_075_200_000, status: 'active', gpu_hours: 512, delivered_gpu_hours: 0, paid: 0, refunded: 0, penalty: 0, ...over,
});
const at = (t: string): bigint => parseApiTime(t);

describe('deliveryState', () => {
  it('is upcoming before the window, in delivery within it and over after it', () => {
    expect(deliveryState(lease(1), at('2026-12-07T00:59:59Z'))).toBe('upcoming');
    expect(deliveryState(lease(1), at('2026-12-07T01:00:00Z'))).toBe('in delivery');
    expect(deliveryState(lease(1), at('2026-12-07T01:59:59.999999999Z'))).toBe('in delivery');
    expect(deliveryState(lease(1), at('2026-12-07T02:00:00Z'))).toBe('window over');
  });
  it('is the status of a lease no longer active', () => {
    expect(deliveryState(lease(1, { status: 'completed' }), at('2026-12-07T01:30:00Z'))).toBe('completed');
    expect(deliveryState(lease(1, { status: 'failed' }), at('2026-12-07T01:30:00Z'))).toBe('failed');
  });
});

describe('leaseRow', () => {
  it('keeps in escrow the notional less what was paid and refunded, exactly', () => {
    const row = leaseRow(lease(7, { notional: '9007199254740993', paid: 1, refunded: '2', delivered_gpu_hours: 256 }), at('2026-12-07T01:30:00Z'));
    expect(row.escrow).toBe(9007199254740990n);
    expect(row.paid).toBe(1n);
    expect(row.deliveredGpuHours).toBe(256);
  });
  it('shows a lease without a known instrument by a dash', () => expect(leaseRow(lease(1, { symbol: null }), 0n).symbol).toBe('—'));
});

describe('newestRows and summarize', () => {
  const leases = [
    lease(1, { status: 'completed', paid: 1_075_200_000, delivered_gpu_hours: 512 }),
    lease(2),
    lease(3, { parent: 2, gpus: 100, notional: 210_000_000 }),
    lease(4, { start: '2026-12-07T02:00:00Z', end: '2026-12-07T03:00:00Z', gpus: 1024, notional: 2_150_400_000 }),
  ];
  const now = at('2026-12-07T01:10:00Z');
  it('lists the newest first, up to the limit', () => expect(newestRows(leases, now, 2).map((r) => r.id)).toEqual([4, 3]));
  it('counts leases in delivery and their GPUs once (a resold lease runs on its parent\'s)', () => {
    const s = summarize(leases, now);
    expect(s.count).toBe(4);
    expect(s.inDelivery).toBe(2);
    expect(s.gpusInDelivery).toBe(512);
    expect(s.paid).toBe(1_075_200_000n);
    expect(s.escrow).toBe(1_075_200_000n + 210_000_000n + 2_150_400_000n);
  });
});

describe('readLeases', () => {
  const pages = (total: number, size: number) => async (after: number): Promise<LeasePage> => {
    const ids = Array.from({ length: total }, (_, i) => i + 1).filter((id) => id > after).slice(0, size);
    const last = ids.at(-1);
    return { leases: ids.map((id) => lease(id)), next: last !== undefined && last < total ? last : null };
  };
  it('follows next to the last page', async () => {
    const r = await readLeases(pages(25, 10));
    expect(r.leases.map((l) => l.id)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(r.more).toBe(false);
  });
  it('stops at the bound and says there are more', async () => {
    const r = await readLeases(pages(25, 10), 20);
    expect(r.leases.length).toBe(20);
    expect(r.more).toBe(true);
  });
  it('reads an empty list', async () => expect(await readLeases(pages(0, 10))).toEqual({ leases: [], more: false }));
});
