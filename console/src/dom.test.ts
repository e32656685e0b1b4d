import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { refreshEvery } from './dom';

// refreshEvery touches only the message's text, so a plain object stands in for the element.
const message = (): HTMLElement => ({ textContent: 'stale' }) as unknown as HTMLElement;

describe('refreshEvery', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('loads now, shows a failed round and clears it when a later round succeeds', async () => {
    const m = message();
    const outcomes = [new Error('down'), null, null];
    let calls = 0;
    const stop = refreshEvery(async () => {
      const o = outcomes[calls++];
      if (o) throw o;
    }, m, 1000);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    expect(m.textContent).toBe('down');
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(2);
    expect(m.textContent).toBe('');
    stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toBe(2);
  });

  it('waits the period after a round ends, not from when it began, and describes errors as asked', async () => {
    const m = message();
    let calls = 0;
    const stop = refreshEvery(async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 700)); // a slow round
      throw new Error('x');
    }, m, 1000, (e) => `failed: ${(e as Error).message}`);
    await vi.advanceTimersByTimeAsync(700);
    expect(m.textContent).toBe('failed: x');
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    stop();
  });
});
