import { describe, expect, it } from 'vitest';
import { cumulativeDepth } from './depth';

describe('cumulativeDepth', () => {
  it('accumulates bids from the highest price down and asks from the lowest up', () => {
    const d = cumulativeDepth(
      [{ price: 2_000_000, quantity: 4, orders: 1 }, { price: 1_900_000, quantity: 6, orders: 2 }],
      [{ price: 2_100_000, quantity: 3, orders: 1 }, { price: 2_200_000, quantity: 5, orders: 1 }],
    );
    expect(d.bids).toEqual([{ price: 1_900_000, cumulative: 10 }, { price: 2_000_000, cumulative: 4 }]);
    expect(d.asks).toEqual([{ price: 2_100_000, cumulative: 3 }, { price: 2_200_000, cumulative: 8 }]);
    expect(d.spread).toBe(100_000);
  });

  it('takes levels in any order and merges equal prices', () => {
    const d = cumulativeDepth([], [{ price: 5, quantity: 1, orders: 1 }, { price: 3, quantity: 2, orders: 1 }, { price: 5, quantity: 4, orders: 2 }]);
    expect(d.asks).toEqual([{ price: 3, cumulative: 2 }, { price: 5, cumulative: 7 }]);
  });

  it('has no spread when a side is empty', () => {
    expect(cumulativeDepth([{ price: 1, quantity: 1, orders: 1 }], []).spread).toBeNull();
    expect(cumulativeDepth([], []).bids).toEqual([]);
  });

  it('refuses a negative or fractional quantity', () => {
    expect(() => cumulativeDepth([{ price: 1, quantity: -1, orders: 1 }], [])).toThrow(RangeError);
    expect(() => cumulativeDepth([], [{ price: 1, quantity: 0.5, orders: 1 }])).toThrow(RangeError);
  });
});
