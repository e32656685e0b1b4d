import { describe, expect, it } from 'vitest';
import { formatPrice, formatUsd, parseUsd, toMicro } from './money';

describe('formatUsd', () => {
  it('shows whole dollars with cents', () => expect(formatUsd(25_000_000)).toBe('$25.00'));
  it('keeps every micro-dollar an amount has', () => expect(formatUsd(1_234_567)).toBe('$1.234567'));
  it('trims zeros only down to the cents', () => expect(formatUsd(1_500_000)).toBe('$1.50'));
  it('shows one micro-dollar', () => expect(formatUsd(1)).toBe('$0.000001'));
  it('groups thousands', () => expect(formatUsd(1_234_567_890_000)).toBe('$1,234,567.89'));
  it('puts the sign before the dollar', () => expect(formatUsd(-5_000_000)).toBe('-$5.00'));
  it('formats zero', () => expect(formatUsd(0)).toBe('$0.00'));
  it('is exact past 2^53 from a decimal string', () =>
    expect(formatUsd('9223372036854775807')).toBe('$9,223,372,036,854.775807'));
  it('takes a BigInt', () => expect(formatUsd(10n ** 15n + 1n)).toBe('$1,000,000,000.000001'));
  it('can show whole dollars without decimals', () => expect(formatUsd(7_000_000, 0)).toBe('$7'));
  it('refuses a fraction of a micro-dollar', () => expect(() => formatUsd(1.5)).toThrow(RangeError));
  it('refuses an unsafe number (it would not be exact)', () => expect(() => formatUsd(2 ** 60)).toThrow(RangeError));
  it('refuses a string that is not an integer', () => expect(() => formatUsd('12.5')).toThrow(RangeError));
});

describe('formatPrice', () => {
  it('names the unit', () => expect(formatPrice(2_000_000)).toBe('$2.00/GPU-h'));
  it('takes another unit', () => expect(formatPrice(400_000, 'share')).toBe('$0.40/share'));
});

describe('parseUsd', () => {
  it('reads whole dollars', () => expect(parseUsd('2')).toBe(2_000_000n));
  it('reads cents and a dollar sign with separators', () => expect(parseUsd('$1,234.56')).toBe(1_234_560_000n));
  it('reads one micro-dollar', () => expect(parseUsd('0.000001')).toBe(1n));
  it('refuses seven decimals', () => expect(parseUsd('0.0000001')).toBeNull());
  it('refuses words and negatives', () => {
    expect(parseUsd('two')).toBeNull();
    expect(parseUsd('-1')).toBeNull();
  });
  it('round-trips with formatUsd', () => expect(formatUsd(parseUsd('1234.000009')!)).toBe('$1,234.000009'));
});

describe('toMicro', () => {
  it('reads numbers and strings alike', () => expect(toMicro(42)).toBe(toMicro('42')));
});
