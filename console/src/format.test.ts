import { describe, expect, it } from 'vitest';
import { formatCount, formatPower, shortHash } from './format';

describe('format', () => {
  it('shows kW below a megawatt and MW above', () => {
    expect(formatPower(950.04)).toBe('950.0 kW');
    expect(formatPower(12_345)).toBe('12.35 MW');
    expect(formatPower(Number.NaN)).toBe('—');
  });
  it('groups counts', () => expect(formatCount(1234567)).toBe('1,234,567'));
  it('shortens a long hash and keeps a short one', () => {
    expect(shortHash('a'.repeat(64), 4)).toBe('aaaa…aaaa');
    expect(shortHash('abcd', 4)).toBe('abcd');
  });
});
