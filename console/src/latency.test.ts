import { describe, expect, it } from 'vitest';
import { formatRtt, latencyMatrix, type LatencyView } from './latency';

const data: LatencyView = {
  regions: [{ id: 'dallas', name: 'Dallas' }, { id: 'frankfurt', name: 'Frankfurt' }, { id: 'tokyo', name: 'Tokyo' }],
  snapshot: '2025-01-01',
  rtt_us: [
    [1000, 105_400, 130_000],
    [105_400, 1000, 226_250],
    [130_000, 226_250, 1000],
  ],
};

describe('latency matrix', () => {
  it('has a row per region and a column per node region in the data\'s order, nodes grouped', () => {
    const m = latencyMatrix(data, [{ id: 'tok-1', region: 'tokyo' }, { id: 'dal-1', region: 'dallas' }, { id: 'dal-2', region: 'dallas' }]);
    expect(m.columns).toEqual([{ region: 'dallas', name: 'Dallas', nodes: ['dal-1', 'dal-2'] }, { region: 'tokyo', name: 'Tokyo', nodes: ['tok-1'] }]);
    expect(m.rows.map((r) => r.region)).toEqual(['dallas', 'frankfurt', 'tokyo']);
    expect(m.rows[1]).toEqual({ region: 'frankfurt', name: 'Frankfurt', rttUs: [105_400, 226_250], nearest: 0 });
    expect(m.rows[2]?.nearest).toBe(1);
  });

  it('leaves a node region the data lacks empty, last', () => {
    const m = latencyMatrix(data, [{ id: 'x-1', region: 'atlantis' }, { id: 'fra-1', region: 'frankfurt' }]);
    expect(m.columns.map((c) => c.region)).toEqual(['frankfurt', 'atlantis']);
    expect(m.rows[0]?.rttUs).toEqual([105_400, null]);
    expect(latencyMatrix(data, [{ id: 'x-1', region: 'atlantis' }]).rows[0]?.nearest).toBe(-1);
  });

  it('shows microseconds as milliseconds', () => {
    expect(formatRtt(1000)).toBe('1 ms');
    expect(formatRtt(105_400)).toBe('105.4 ms');
    expect(formatRtt(226_250)).toBe('226.3 ms');
    expect(formatRtt(null)).toBe('—');
  });
});
