import { describe, expect, it } from 'vitest';
import { parseApiTime } from './candles';
import { formatNanoUsd, nodeNames, revenueSeries, shareOfSupply } from './tokens';
import { dailySeries, daysMatchTotals, type UsageDay } from './usage';

describe('revenueSeries', () => {
  it('orders the hours and places revenue per share in USD', () => {
    const [xs, ys] = revenueSeries([
      { start: '2026-12-06T11:00:00Z', revenue_micro_usd: 5, cumulative_micro_usd: 15, revenue_per_share_micro_usd: 0, revenue_per_share_nano_usd: 1_500 },
      { start: '2026-12-06T10:00:00Z', revenue_micro_usd: 10, cumulative_micro_usd: 10, revenue_per_share_micro_usd: 0, revenue_per_share_nano_usd: 1_000 },
    ], parseApiTime);
    expect(xs).toEqual([Date.UTC(2026, 11, 6, 10) / 1000, Date.UTC(2026, 11, 6, 11) / 1000]);
    expect(ys).toEqual([1, 1.5]);
  });
});

describe('nodeNames', () => {
  it('reads the node\'s principal from its revenue account\'s low 64 bits', () => {
    const account = ((1n << 127n) | (2201n << 112n) | 17n).toString();
    const names = nodeNames([{ id: 'fra-1', region: 'frankfurt', revenue_account: account }, { id: 'x', region: 'y', revenue_account: null }]);
    expect(names.get(17)).toEqual({ name: 'fra-1', region: 'frankfurt' });
    expect(names.size).toBe(1);
  });
});

describe('shareOfSupply', () => {
  it('rounds down to hundredths of a percent', () => expect(shareOfSupply(1, 3)).toBe('33.33 %'));
  it('shows a whole supply', () => expect(shareOfSupply(1_000, 1_000)).toBe('100.00 %'));
  it('shows a tiny holding', () => expect(shareOfSupply(1, 1_000_000)).toBe('0.00 %'));
  it('has no share of nothing', () => expect(shareOfSupply(0, 0)).toBe('—'));
});

const day = (d: string, requests: number, tokens: number, spend: number): UsageDay => ({ day: d, requests, tokens, spend_micro_usd: spend });

describe('dailySeries', () => {
  it('fills the range\'s days without requests with zeros', () => {
    const from = parseApiTime('2026-12-01T06:00:00Z');
    const to = parseApiTime('2026-12-04T00:00:00Z'); // exclusive: the 3rd is the last day
    const [xs, requests, spend, tokens] = dailySeries([day('2026-12-02T00:00:00Z', 3, 30, 300)], from, to, parseApiTime);
    expect(xs).toEqual([1, 2, 3].map((d) => Date.UTC(2026, 11, d) / 1000));
    expect(requests).toEqual([0, 3, 0]);
    expect(spend).toEqual([0, 300, 0]);
    expect(tokens).toEqual([0, 30, 0]);
  });
  it('keeps the newest days when the range is longer than asked', () => {
    const [xs] = dailySeries([], parseApiTime('2026-01-01T00:00:00Z'), parseApiTime('2026-12-06T12:00:00Z'), parseApiTime, 7);
    expect(xs.length).toBe(7);
    expect(xs.at(-1)).toBe(Date.UTC(2026, 11, 6) / 1000);
  });
});

describe('daysMatchTotals', () => {
  const days = [day('2026-12-01T00:00:00Z', 2, 20, 200), day('2026-12-02T00:00:00Z', 1, 5, 50)];
  it('accepts days that add up', () => expect(daysMatchTotals(days, { requests: 3, tokens: 25, spend_micro_usd: 250 })).toBe(true));
  it('refuses a micro-dollar off', () => expect(daysMatchTotals(days, { requests: 3, tokens: 25, spend_micro_usd: 251 })).toBe(false));
});

describe('formatNanoUsd', () => {
  it('shows a fraction of a micro-dollar exactly', () => expect(formatNanoUsd(375)).toBe('$0.000000375'));
  it('keeps cents for whole amounts', () => expect(formatNanoUsd(2_500_000_000)).toBe('$2.50'));
  it('groups thousands', () => expect(formatNanoUsd(1_234_000_000_000n)).toBe('$1,234.00'));
  it('shows zero', () => expect(formatNanoUsd(0)).toBe('$0.00'));
});
