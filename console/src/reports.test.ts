import { describe, expect, it } from 'vitest';
import fixture from './fixtures/node-reports.json';
import { canonical, checkShape, GENESIS_HASH, reportHash, verifyReports, type NodeReportsDocument } from './reports';

// The fixture is a chain the C# side signed (tests/ComputeGrid.Server.Tests/WebConsole/NodeReportsFixtureTests.cs, which
// also requires this file to be exactly what the server serves); each test tampers with its own copy.
const fresh = (): NodeReportsDocument => structuredClone(fixture) as NodeReportsDocument;
const report = (doc: NodeReportsDocument, i: number) => {
  const r = doc.reports[i];
  if (r === undefined) throw new Error(`no report ${i}`);
  return r;
};

describe('node reports verified in the browser', () => {
  it('accepts the chain the server signed', async () => {
    expect(await verifyReports(fresh())).toEqual({ ok: true, reports: 3 });
  });

  it('rebuilds the canonical bytes whose SHA-256 is the C# hash', async () => {
    const doc = fresh();
    for (const r of doc.reports) expect(await reportHash(r)).toBe(r.hash);
    const bytes = canonical(report(doc, 0));
    expect(new TextDecoder().decode(bytes.slice(0, 27))).toBe('computegrid-epoch-report/v1');
    // domain 27 + principal 8 + id (2 + 5) + 3 × 8 + 4 + 2 × 8 + 4 + 2 × 8 + 1 + optional null 1 + 8 + optional 9 + 2 × null 1 + 32
    expect(bytes.length).toBe(27 + 8 + 7 + 24 + 4 + 16 + 4 + 16 + 1 + 1 + 8 + 9 + 1 + 1 + 32);
  });

  it('fails a changed figure on its signature (the figures still agree with each other)', async () => {
    const doc = fresh();
    report(doc, 1).utilization_bp += 1;
    expect(await verifyReports(doc)).toMatchObject({ ok: false, index: 1, epoch: report(doc, 1).epoch, check: 'signature', verified: 1 });
  });

  it('fails a changed revenue on its shape first: its derived figure no longer recomputes', async () => {
    const doc = fresh();
    report(doc, 2).revenue_micro_usd += 1_000_000;
    const v = await verifyReports(doc);
    expect(v).toMatchObject({ ok: false, index: 2, check: 'shape' });
    if (!v.ok) expect(v.reason).toContain('revenue_per_gpu_hour_micro_usd');
  });

  it('fails a signature of another report', async () => {
    const doc = fresh();
    report(doc, 2).signature = report(doc, 1).signature;
    expect(await verifyReports(doc)).toMatchObject({ ok: false, index: 2, check: 'signature' });
  });

  it('fails a report dropped from the middle on the chain', async () => {
    const doc = fresh();
    doc.reports.splice(1, 1);
    expect(await verifyReports(doc)).toMatchObject({ ok: false, index: 1, check: 'chain' });
  });

  it('fails a first report that is not the node\'s first', async () => {
    const doc = fresh();
    doc.reports.shift();
    const v = await verifyReports(doc);
    expect(v).toMatchObject({ ok: false, index: 0, check: 'chain' });
    if (!v.ok) expect(v.reason).toContain('64 zeros');
  });

  it('fails totals that are not the sums', async () => {
    const doc = fresh();
    doc.totals.revenue_micro_usd += 1;
    const v = await verifyReports(doc);
    expect(v).toMatchObject({ ok: false, index: -1, check: 'shape', verified: 3 });
    if (!v.ok) expect(v.reason).toContain('revenue_micro_usd');
  });

  it('fails another node\'s key, and a report naming another node', async () => {
    const other = fresh();
    other.public_key = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
    expect(await verifyReports(other)).toMatchObject({ ok: false, check: 'signature' });
    const renamed = fresh();
    report(renamed, 0).node_id = 'dal-1';
    expect(await verifyReports(renamed)).toMatchObject({ ok: false, index: 0, check: 'identity' });
    const short = fresh();
    short.public_key = btoa('short');
    expect(await verifyReports(short)).toMatchObject({ ok: false, index: -1, check: 'signature', reason: 'public_key is not a 32-byte Ed25519 key' });
  });

  it('checks each window is its epoch', async () => {
    const doc = fresh();
    report(doc, 0).epoch += 1;
    expect(await verifyReports(doc)).toMatchObject({ ok: false, index: 0, check: 'shape' });
  });

  it('checks shapes as EpochFigures does', () => {
    const r = report(fresh(), 1);
    expect(checkShape(r)).toBeNull();
    expect(checkShape({ ...r, uptime_s: 3601 })).toBe("uptime_s must be 0 to the epoch's 3600 s");
    expect(checkShape({ ...r, energy_source: 'guessed' })).toBe('energy_source must be "measured" or "modeled"');
    expect(checkShape({ ...r, tokens_per_joule_milli: 1 })).toMatch(/^tokens_per_joule_milli is 1, its figures give \d+$/);
    expect(checkShape({ ...r, previous_hash: GENESIS_HASH.slice(1) })).toBe('previous_hash must be 64 hex digits');
  });

  it('verifies an empty chain with zero totals', async () => {
    const doc = fresh();
    doc.reports = [];
    doc.totals = { reports: 0, requests: 0, tokens: 0, uptime_s: 0, energy_j: 0, revenue_micro_usd: 0 };
    expect(await verifyReports(doc)).toEqual({ ok: true, reports: 0 });
  });
});
