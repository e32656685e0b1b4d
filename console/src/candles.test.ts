import { describe, expect, it } from 'vitest';
import { applyTrades, fromApi, parseApiTime } from './candles';

const trade = (sequence: number, price: number, quantity: number, timestamp: string) => ({ sequence, price, quantity, timestamp });

describe('parseApiTime', () => {
  it('keeps nanoseconds exactly', () => expect(parseApiTime('2026-12-06T14:00:00.000000001Z')).toBe(1_796_565_600_000_000_001n));
  it('reads an offset', () => expect(parseApiTime('2026-12-06T15:00:00+01:00')).toBe(parseApiTime('2026-12-06T14:00:00Z')));
  it('refuses other shapes', () => expect(() => parseApiTime('2026-12-06 14:00')).toThrow(RangeError));
});

describe('applyTrades', () => {
  const base = fromApi([{ open_time: '2026-12-06T14:00:00Z', open: 100, high: 120, low: 90, close: 110, volume: 5, notional: 0, trades: 2 }]);

  it('updates the open candle with a trade inside its minute', () => {
    const out = applyTrades(base, [trade(3, 130, 2, '2026-12-06T14:00:59.999Z')], 60);
    expect(out).toEqual([{ time: base[0]!.time, open: 100, high: 130, low: 90, close: 130, volume: 7, trades: 3 }]);
    expect(base[0]!.close).toBe(110); // the input is not changed
  });

  it('opens a new candle at the minute a later trade falls in', () => {
    const out = applyTrades(base, [trade(3, 80, 1, '2026-12-06T14:02:30Z'), trade(4, 85, 1, '2026-12-06T14:02:31Z')], 60);
    expect(out[1]).toEqual({ time: base[0]!.time + 120, open: 80, high: 85, low: 80, close: 85, volume: 2, trades: 2 });
  });

  it('applies trades in sequence order and skips those the fetched candles hold', () => {
    const out = applyTrades([], [trade(5, 7, 1, '2026-12-06T14:00:02Z'), trade(4, 6, 1, '2026-12-06T14:00:01Z'), trade(2, 1, 1, '2026-12-06T14:00:00Z')], 60, 3);
    expect(out).toEqual([{ time: Number(parseApiTime('2026-12-06T14:00:00Z') / 1_000_000_000n), open: 6, high: 7, low: 6, close: 7, volume: 2, trades: 2 }]);
  });

  it('rounds an hour interval down to the hour', () => {
    const out = applyTrades([], [trade(1, 5, 1, '2026-12-06T14:59:59Z')], 3600);
    expect(new Date(out[0]!.time * 1000).toISOString()).toBe('2026-12-06T14:00:00.000Z');
  });
});
