import { describe, expect, it } from 'vitest';
import { formatEvent, formatMinutes, leasedTotals, nextHourLabel, rackCounts, reasonLabel, siteNodeRows, stackedSeries, type HistoryPoint, type Rack, type SiteNode } from './sites';

const point = (minute: number, ai: number, miners: number, curtailed: number, price: number | null): HistoryPoint => ({
  series_time_utc: `2021-08-24T05:${String(minute).padStart(2, '0')}:00Z`, interval: minute / 15, price_usd_per_mwh: price,
  ai_kw: ai, miner_kw: miners, curtailed_kw: curtailed, peak_guard: false, emergency: false, miners_on: 0, reason: curtailed > 0 ? 'price' : null,
});

describe('sites', () => {
  it('stacks GPUs, miners and curtailed power as bands, with the price beside them', () => {
    const s = stackedSeries([point(0, 100, 50, 0, null), point(15, 120, 0, 55.5, 31.2)]);
    expect(s.x).toEqual([Date.UTC(2021, 7, 24, 5, 0) / 1000, Date.UTC(2021, 7, 24, 5, 15) / 1000]);
    expect(s.gpuTop).toEqual([100, 120]);
    expect(s.minersTop).toEqual([150, 120]);
    expect(s.curtailedTop).toEqual([150, 175.5]);
    expect(s.curtailed).toEqual([0, 55.5]);
    expect(s.price).toEqual([null, 31.2]);
    expect(stackedSeries([]).x).toEqual([]);
  });

  it('formats an event: start, duration of its intervals, reason in words, power', () => {
    const row = formatEvent({ start_utc: '2021-08-24T20:00:00Z', last_interval_utc: '2021-08-24T20:45:00Z', intervals: 9, reason: 'peak_risk', curtailed_kw: 1234.5, max_curtailed_kw: 2000, ongoing: true }, 15);
    expect(row).toEqual({ start: '2021-08-24 20:00 UTC', duration: '2 h 15 min', reason: '4CP peak risk', curtailed: '1.23 MW', peak: '2.00 MW', state: 'ongoing' });
    expect(formatEvent({ start_utc: '2021-08-24T20:00:00Z', last_interval_utc: '2021-08-24T20:00:00Z', intervals: 1, reason: 'ai_load', curtailed_kw: 10, max_curtailed_kw: 10, ongoing: false }, 5).duration).toBe('5 min');
  });

  it('names each reason and keeps an unknown one as it came', () => {
    expect(reasonLabel('emergency')).toBe('grid emergency');
    expect(reasonLabel('limits')).toBe('limits (ramp, whole racks)');
    expect(reasonLabel('solar_eclipse')).toBe('solar_eclipse');
    expect(reasonLabel(null)).toBe('—');
  });

  it('formats durations in minutes, hours and days', () => {
    expect(formatMinutes(45)).toBe('45 min');
    expect(formatMinutes(120)).toBe('2 h');
    expect(formatMinutes(60 * 24 * 2)).toBe('2 d');
    expect(formatMinutes(60 * 27)).toBe('1 d 3 h');
  });

  it('counts racks by state per group', () => {
    const rack = (group: number, state: string): Rack => ({ index: 0, group, model: 'S21', state, machines: 10, machines_running: 0, power_kw: null, temperature_c: null, down_reason: null });
    const c = rackCounts([rack(0, 'Hashing'), rack(0, 'Hashing'), rack(0, 'Down'), rack(1, 'Sleeping'), rack(1, 'WakingUp'), rack(1, 'Unknown')]);
    expect(c.get(0)).toEqual({ on: 2, waking: 0, off: 0, down: 1, unknown: 0 });
    expect(c.get(1)).toEqual({ on: 0, waking: 1, off: 1, down: 0, unknown: 1 });
  });
});

describe('site nodes', () => {
  const node = (over: Partial<SiteNode> = {}): SiteNode => ({
    node_id: 'dal-1', gpus: 16_384, inference_gpus: 1_024, leased_gpus: 0, leased_next_hour_gpus: 7_616, next_hour_utc: '2026-12-07T03:00:00+00:00',
    utilization: 0.25, measured: true, it_kw: 179.2, ...over,
  });

  it('names the next hour from the API, and nothing when no node was measured', () => {
    expect(nextHourLabel([node()])).toBe('03:00 UTC');
    expect(nextHourLabel([node({ next_hour_utc: null }), node({ next_hour_utc: '2026-12-07T23:00:00Z' })])).toBe('23:00 UTC');
    expect(nextHourLabel([node({ next_hour_utc: null })])).toBe('');
    expect(nextHourLabel([])).toBe('');
  });

  it('formats each node with its leased shares and says when one was not measured', () => {
    expect(siteNodeRows([node()])).toEqual([{ id: 'dal-1', gpus: '16,384', pool: '1,024', leasedNow: '0 (0 %)', leasedNext: '7,616 (46 %)', utilization: '25 %', itKw: 179.2 }]);
    const [unmeasured] = siteNodeRows([node({ measured: false, leased_gpus: 16_384, next_hour_utc: null })]);
    expect(unmeasured?.leasedNow).toBe('not measured (counted at full power)');
    expect(unmeasured?.leasedNext).toBe('—');
  });

  it('adds the leased GPUs of all nodes, now and next hour', () => {
    expect(leasedTotals([node({ leased_gpus: 100 }), node({ node_id: 'dal-2', gpus: 64, leased_gpus: 8, leased_next_hour_gpus: 4 })])).toEqual({ now: 108, next: 7_620, gpus: 16_448 });
    expect(leasedTotals([])).toEqual({ now: 0, next: 0, gpus: 0 });
  });
});
