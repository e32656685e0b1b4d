// Nodes: the inference fleet (#/nodes) — a matrix of round trips from every region requests may come from to each region
// where nodes run (the router's own latency data), and per node its price, load, health and the power state of the site
// it sits at — and one node (#/nodes/{id}) with its signed epoch reports and a Verify button that checks them in this
// browser (src/reports.ts: Ed25519 in WebCrypto, SHA-256 chain, shapes, totals), exactly as `computegrid verify
// --node-reports` does. Every figure is an API field; the routing table and the reports are public, the site power
// state is shown to operators and providers.

import { ApiError, get } from '../api';
import { h, refreshEvery, tableHead } from '../dom';
import { formatCount, formatPower, shortHash } from '../format';
import { formatRtt, latencyMatrix, type LatencyView } from '../latency';
import { formatUsd } from '../money';
import { verifyReports, type EpochReport, type NodeReportsDocument, type Verdict } from '../reports';
import { utcMinute } from '../sites';

interface NodeView {
  id: string; region: string; models: string[]; price_micro_usd_per_1k_tokens: number; capacity: number; inflight: number; queue: number;
  ewma_model_ms: number; healthy: boolean; failed: boolean; last_heartbeat: string;
}
interface SitePower { price_micro_usd_per_mwh: number; peak_hour: boolean; emergency: boolean; miner_headroom_kw: number; interconnect_headroom_kw: number }
interface SiteOfNode { name: string; power: SitePower | null; nodes: { node_id: string; gpus: number; leased_gpus: number; utilization: number; measured: boolean; it_kw: number }[] }

const REFRESH_MS = 3000;
const enc = encodeURIComponent;

/** Renders #/nodes or, with an id, #/nodes/{id}; returns the function that stops its refreshing. */
export function nodesPage(root: HTMLElement, id: string | null): () => void {
  return id === null ? fleetPage(root) : nodePage(root, id);
}

// The sites and their listed nodes, or null when the caller may not see sites (customers).
async function sitesOrNull(): Promise<SiteOfNode[] | null> {
  try {
    return await get<SiteOfNode[]>('/api/energy/sites');
  } catch (e) {
    if (e instanceof ApiError && (e.status === 403 || e.status === 401)) return null;
    throw e;
  }
}

function siteOf(sites: SiteOfNode[] | null, node: string): { site: SiteOfNode; load: SiteOfNode['nodes'][number] } | null {
  for (const site of sites ?? []) {
    const load = site.nodes.find((n) => n.node_id === node);
    if (load !== undefined) return { site, load };
  }
  return null;
}

function powerText(p: SitePower | null): string {
  if (p === null) return 'no interval decided yet';
  const flags = [p.emergency ? 'grid emergency' : '', p.peak_hour ? '4CP hour' : ''].filter((x) => x !== '');
  return `${formatUsd(p.price_micro_usd_per_mwh)}/MWh · headroom ${formatPower(p.interconnect_headroom_kw)}${flags.length > 0 ? ` · ${flags.join(', ')}` : ''}`;
}

const health = (n: NodeView): string => (n.failed ? 'failed' : n.healthy ? 'healthy' : 'unhealthy');

const every = (load: () => Promise<void>, message: HTMLElement): (() => void) => refreshEvery(load, message, REFRESH_MS);

function fleetPage(root: HTMLElement): () => void {
  const message = h('p', { id: 'nodes-message', role: 'status' });
  const nodesBody = h('tbody');
  const matrixHead = h('thead');
  const matrixBody = h('tbody');
  const snapshot = h('p', { class: 'muted' });
  const th = tableHead;
  root.replaceChildren(h('h1', {}, 'Nodes'), message,
    h('section', { class: 'panel', 'aria-labelledby': 'fleet-h' }, h('h2', { id: 'fleet-h' }, 'Fleet'),
      h('div', { class: 'scroll' }, h('table', { id: 'node-list' },
        th(['Node', 'Region', 'Price / 1k tokens', 'Running / capacity', 'Queue', 'Model time', 'Health', 'Site', 'Site power']), nodesBody))),
    h('section', { class: 'panel wide', 'aria-labelledby': 'matrix-h' }, h('h2', { id: 'matrix-h' }, 'Round trip from each region to the node regions'), snapshot,
      h('div', { class: 'scroll' }, h('table', { id: 'latency-matrix', class: 'matrix' }, matrixHead, matrixBody))));
  let latency: LatencyView | null = null;
  return every(async () => {
    const [list, sites] = await Promise.all([get<{ nodes: NodeView[] }>('/api/inference/nodes'), sitesOrNull()]);
    latency ??= await get<LatencyView>('/api/inference/latency');
    nodesBody.replaceChildren(...list.nodes.map((n) => {
      const at = siteOf(sites, n.id);
      return h('tr', { 'data-node': n.id },
        h('th', { scope: 'row' }, h('a', { href: `#/nodes/${enc(n.id)}` }, n.id)), h('td', {}, n.region),
        h('td', { class: 'num' }, formatUsd(n.price_micro_usd_per_1k_tokens)), h('td', { class: 'num' }, `${n.inflight} / ${n.capacity}`),
        h('td', { class: 'num' }, formatCount(n.queue)), h('td', { class: 'num' }, `${n.ewma_model_ms.toFixed(1)} ms`),
        h('td', { class: health(n) }, health(n)),
        h('td', {}, at === null ? (sites === null ? '(operators, providers)' : '—') : h('a', { href: `#/sites/${enc(at.site.name)}` }, at.site.name)),
        h('td', {}, at === null ? '—' : powerText(at.site.power)));
    }));
    const m = latencyMatrix(latency, list.nodes);
    snapshot.textContent = `The router's data (${latency.snapshot === null ? 'built in' : `snapshot ${latency.snapshot}`}); the nearest node region of each row is marked.`;
    matrixHead.replaceChildren(h('tr', {}, h('th', { scope: 'col' }, 'From \\ to'),
      ...m.columns.map((c) => h('th', { scope: 'col', title: c.nodes.join(', ') }, `${c.name} (${c.nodes.join(', ')})`))));
    matrixBody.replaceChildren(...m.rows.map((r) => h('tr', { 'data-region': r.region }, h('th', { scope: 'row' }, r.name),
      ...r.rttUs.map((us, i) => h('td', { class: i === r.nearest ? 'num nearest' : 'num', 'data-value': us === null ? undefined : String(us) }, formatRtt(us))))));
    root.dataset.ready = 'true';
  }, message);
}

function nodePage(root: HTMLElement, id: string): () => void {
  const message = h('p', { id: 'nodes-message', role: 'status' });
  const facts = h('dl', { class: 'facts', id: 'node-facts' });
  const reportsBody = h('tbody');
  const totals = h('p', { class: 'muted', id: 'report-totals' });
  const flagged = h('ul', { id: 'flagged' });
  const verify = h('button', { type: 'button', id: 'verify-reports', 'aria-label': "Verify the node's signed reports in this browser" }, 'Verify');
  const tamper = h('input', { type: 'checkbox', id: 'tamper' });
  const result = h('p', { id: 'verify-result', role: 'status', 'aria-live': 'polite' });
  const th = tableHead;
  root.replaceChildren(h('p', {}, h('a', { href: '#/nodes' }, '← All nodes')), h('h1', {}, `Node ${id}`), message, facts,
    h('section', { class: 'panel wide', 'aria-labelledby': 'reports-h' }, h('h2', { id: 'reports-h' }, 'Signed epoch reports'),
      h('p', { class: 'muted' }, "Each report is hashed (SHA-256 over its canonical bytes), signed by the node's Ed25519 key and chained to the one before. Verify checks them here, with WebCrypto: nothing is sent anywhere."),
      h('div', { class: 'toolbar' }, verify, h('label', { for: 'tamper' }, tamper, ' tamper with a copy first (one more request in the latest report)')), result, totals,
      h('div', { class: 'scroll tape' }, h('table', { id: 'reports' },
        th(['Epoch', 'Window', 'Requests', 'Tokens', 'Utilization', 'Uptime', 'Energy', 'Revenue', 'Hash', 'Check']), reportsBody)),
      h('h3', {}, 'Flagged submissions'), flagged));

  let doc: NodeReportsDocument | null = null;
  const rows = new Map<number, HTMLElement>();
  const showReports = (d: NodeReportsDocument): void => {
    const changed = doc === null || doc.reports.length !== d.reports.length || doc.flagged.length !== d.flagged.length;
    doc = d;
    if (!changed) return;
    rows.clear();
    // Newest first on screen; the chain is verified oldest first.
    reportsBody.replaceChildren(...[...d.reports].reverse().map((r: EpochReport, i) => {
      const tr = h('tr', { 'data-epoch': String(r.epoch) }, h('td', { class: 'num' }, String(r.epoch)), h('td', {}, `${utcMinute(r.start)} +${d.epoch_seconds / 60} min`),
        h('td', { class: 'num' }, formatCount(r.requests)), h('td', { class: 'num' }, formatCount(r.tokens)), h('td', { class: 'num' }, `${(r.utilization_bp / 100).toFixed(2)} %`),
        h('td', { class: 'num' }, `${formatCount(r.uptime_s)} s`), h('td', { class: 'num' }, `${formatCount(r.energy_j)} J (${r.energy_source})`),
        h('td', { class: 'num' }, formatUsd(r.revenue_micro_usd)), h('td', { class: 'mono', title: r.hash }, shortHash(r.hash, 6)), h('td', { class: 'check' }, ''));
      rows.set(d.reports.length - 1 - i, tr);
      return tr;
    }));
    const t = d.totals;
    totals.textContent = `${formatCount(t.reports)} reports · ${formatCount(t.requests)} requests · ${formatCount(t.tokens)} tokens · ${formatUsd(t.revenue_micro_usd)} revenue · ${formatCount(t.energy_j)} J · epochs of ${d.epoch_seconds} s · key ${shortHash(d.public_key, 8)}`;
    totals.dataset.reports = String(t.reports);
    flagged.replaceChildren(...(d.flagged.length === 0 ? [h('li', { class: 'muted' }, 'none')] : d.flagged.map((f) => h('li', {}, `epoch ${f.epoch}: ${f.check} — ${f.reason}`))));
    verify.disabled = false;
  };

  const showVerdict = (v: Verdict, tampered: boolean): void => {
    for (const tr of rows.values()) {
      const cell = tr.querySelector('td.check');
      if (cell !== null) cell.textContent = '';
      tr.classList.remove('bad-row');
    }
    result.dataset.verdict = v.ok ? 'ok' : 'failed';
    result.dataset.tampered = String(tampered);
    result.classList.toggle('good', v.ok);
    result.classList.toggle('bad', !v.ok);
    if (v.ok) {
      result.removeAttribute('data-check');
      result.textContent = `Verified: ${v.reports} reports signed by the node's key, chained from its first, their figures and totals exact.`;
      for (const tr of rows.values()) {
        const cell = tr.querySelector('td.check');
        if (cell !== null) cell.textContent = '✓';
      }
      return;
    }
    result.dataset.check = v.check;
    result.textContent = `Failed: ${v.index < 0 ? 'the document' : `report ${v.index} (epoch ${v.epoch})`} — ${v.check}: ${v.reason}.` + (tampered ? ' (a tampered copy, as asked)' : '');
    for (let i = 0; i < v.verified; i++) {
      const cell = rows.get(i)?.querySelector('td.check');
      if (cell) cell.textContent = '✓';
    }
    const bad = rows.get(v.index);
    bad?.classList.add('bad-row');
    const cell = bad?.querySelector('td.check');
    if (cell) cell.textContent = `✗ ${v.check}`;
  };

  verify.disabled = true;
  verify.addEventListener('click', () => void (async () => {
    if (doc === null) return;
    verify.disabled = true;
    result.textContent = 'verifying…';
    try {
      const copy = structuredClone(doc);
      const last = copy.reports[copy.reports.length - 1];
      if (tamper.checked && last !== undefined) last.requests += 1;
      showVerdict(await verifyReports(copy), tamper.checked && last !== undefined);
    } catch (e) {
      result.dataset.verdict = 'error';
      result.textContent = `Could not verify in this browser: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      verify.disabled = false;
    }
  })());

  return every(async () => {
    const [list, sites, reports] = await Promise.all([get<{ nodes: NodeView[] }>('/api/inference/nodes'), sitesOrNull(),
      get<NodeReportsDocument>(`/api/nodes/${enc(id)}/reports`).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      })]);
    const n = list.nodes.find((x) => x.id === id);
    const at = siteOf(sites, id);
    const fact = (label: string, value: string, key: string): HTMLElement[] => [h('dt', {}, label), h('dd', { 'data-fact': key }, value)];
    facts.replaceChildren(
      ...(n === undefined ? fact('Routing', 'not in the routing table now', 'routing') : [
        ...fact('Region', n.region, 'region'), ...fact('Models', n.models.join(', '), 'models'),
        ...fact('Price', `${formatUsd(n.price_micro_usd_per_1k_tokens)} per 1,000 tokens`, 'price'),
        ...fact('Load', `${n.inflight} running of ${n.capacity}, ${n.queue} queued, model ${n.ewma_model_ms.toFixed(1)} ms`, 'load'),
        ...fact('Health', `${health(n)} · last heartbeat ${utcMinute(n.last_heartbeat)}`, 'health')]),
      ...(at === null ? fact('Site', sites === null ? 'shown to operators and providers' : 'not at a live site', 'site') : [
        ...fact('Site', at.site.name, 'site'),
        ...fact('At the site', `${at.load.gpus} GPUs, ${at.load.leased_gpus} leased, utilization ${(at.load.utilization * 100).toFixed(1)} %${at.load.measured ? '' : ' (not measured: counted at full power)'}, ${formatPower(at.load.it_kw)} IT`, 'site-load'),
        ...fact('Site power', powerText(at.site.power), 'site-power')]));
    if (reports === null) {
      result.textContent = 'This node is not admitted: it has no reports.';
      verify.disabled = true;
    } else showReports(reports);
    root.dataset.ready = 'true';
  }, message);
}
