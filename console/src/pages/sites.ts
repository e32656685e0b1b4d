// Sites: every live hybrid site (#/sites) and one site in detail (#/sites/{name}): its power split over time (GPUs,
// miners, curtailed) stacked under the price, its miner groups and racks (on, waking, off, down), its curtailment events
// with their reason, its economics beside the naive baselines, and its P&L read from the ledger. Every figure is a
// field of GET /api/energy/sites…, refreshed every few seconds; the page arranges and formats, it computes none.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, get } from '../api';
import { h, refreshEvery, setFigure, tableHead } from '../dom';
import { formatCount, formatPower } from '../format';
import { formatUsd } from '../money';
import { formatEvent, leasedTotals, nextHourLabel, rackCounts, rackState, reasonLabel, siteNodeRows, stackedSeries, utcMinute, type Rack, type SiteEvents, type SiteHistory, type SiteNode } from '../sites';

interface Group {
  model: string; miners: number; racks: number; target_miners: number; machines_running: number; hashrate_ths: number; power_kw: number; breakeven_usd_per_mwh: number;
}
interface Economics {
  value_micro_usd: number; ai_revenue_micro_usd: number; mining_revenue_micro_usd: number; energy_cost_micro_usd: number; peak_charge_micro_usd: number;
  restart_wear_micro_usd: number; curtailed_mwh: number; restarts: number;
}
interface Baseline {
  name: string; value_micro_usd: number; mining_revenue_micro_usd: number; energy_cost_micro_usd: number; peak_charge_micro_usd: number; restart_wear_micro_usd: number; curtailed_mwh: number;
}
interface SiteState {
  name: string; market: string; series_time_utc: string; speed: number; interval: number; intervals: number; last_price_usd_per_mwh: number | null;
  emergency: boolean; peak_guard_active: boolean; ai_facility_kw: number; miner_facility_kw: number; facility_kw: number; interconnect_kw: number;
  curtailed_miner_kw: number; miners_down: number; groups: Group[]; economics: Economics; baselines?: Baseline[];
  nodes: SiteNode[];
}
interface Pnl {
  intervals: number; ai_revenue_micro_usd: number; mining_revenue_micro_usd: number; mining_revenue_satoshis: number; energy_cost_micro_usd: number;
  peak_charge_micro_usd: number; restart_wear_micro_usd: number; value_micro_usd?: number;
}

const REFRESH_MS = 3000;
const price = (p: number | null): string => (p === null ? '—' : `$${p.toFixed(2)}/MWh`);
const enc = encodeURIComponent;

// The GPUs card's note: what is leased now and what is sold for the next hour, over the site's nodes.
function gpuNote(nodes: SiteNode[]): string {
  if (nodes.length === 0) return 'from the site file\'s schedule';
  const t = leasedTotals(nodes);
  const next = nextHourLabel(nodes);
  return `${t.now.toLocaleString('en-US')} of ${t.gpus.toLocaleString('en-US')} leased now${next === '' ? '' : ` · ${t.next.toLocaleString('en-US')} from ${next}`}`;
}

/** Renders #/sites or, with a name, #/sites/{name}; returns the function that stops its refreshing. */
export function sitesPage(root: HTMLElement, name: string | null): () => void {
  return name === null ? listPage(root) : sitePage(root, name);
}

// Refreshes with `load` every REFRESH_MS until stopped (dom.refreshEvery); a 403 says who may see sites.
const every = (load: () => Promise<void>, message: HTMLElement): (() => void) =>
  refreshEvery(load, message, REFRESH_MS, (e) => (e instanceof ApiError && e.status === 403 ? 'Sites are shown to operators and providers (read scope).' : e instanceof Error ? e.message : String(e)));

function listPage(root: HTMLElement): () => void {
  const body = h('tbody');
  const message = h('p', { id: 'sites-message', role: 'status' });
  root.replaceChildren(h('h1', {}, 'Sites'),
    h('p', { class: 'muted' }, 'Live hybrid sites: GPUs served first, miners run while they pay, curtailed on price, 4CP risk, emergencies and AI load.'), message,
    h('div', { class: 'scroll' }, h('table', { id: 'site-list' },
      tableHead(['Site', 'Market', 'Replayed time', 'Price', 'GPUs', 'Miners', 'Curtailed', 'Interconnect', 'Value so far']), body)));
  return every(async () => {
    const sites = await get<SiteState[]>('/api/energy/sites');
    body.replaceChildren(...sites.map((s) => h('tr', { 'data-site': s.name },
      h('th', { scope: 'row' }, h('a', { href: `#/sites/${enc(s.name)}` }, s.name)),
      h('td', {}, s.market), h('td', {}, utcMinute(s.series_time_utc)), h('td', { class: 'num' }, price(s.last_price_usd_per_mwh)),
      h('td', { class: 'num' }, formatPower(s.ai_facility_kw)), h('td', { class: 'num' }, formatPower(s.miner_facility_kw)),
      h('td', { class: 'num' }, formatPower(s.curtailed_miner_kw)), h('td', { class: 'num' }, formatPower(s.interconnect_kw)),
      h('td', { class: 'num' }, formatUsd(s.economics.value_micro_usd)))));
    root.dataset.ready = 'true';
  }, message);
}

function sitePage(root: HTMLElement, name: string): () => void {
  const message = h('p', { id: 'sites-message', role: 'status' });
  const headline = h('p', { class: 'muted', id: 'site-headline' });
  const latest = h('div', { class: 'cards', id: 'site-latest' });
  const chartBox = h('div', { class: 'chart', id: 'power-chart', role: 'img', 'aria-label': 'Power split over time: GPUs, miners and curtailed miners stacked, in kW, and the power price in USD per MWh' });
  const groupsBody = h('tbody');
  const gpuBody = h('tbody');
  const gpuHead = tableHead(['Node', 'GPUs', 'Inference pool', 'Leased now', 'Leased next hour', 'Inference busy', 'IT power']);
  const nextHourTh = gpuHead.querySelectorAll('th')[4];
  const racksBox = h('div', { class: 'racks', id: 'racks', role: 'list', 'aria-label': 'Racks by state' });
  const eventsBody = h('tbody');
  const economicsBody = h('tbody');
  const pnlBody = h('tbody');
  const th = tableHead;
  root.replaceChildren(
    h('p', {}, h('a', { href: '#/sites' }, '← All sites')),
    h('h1', {}, `Site ${name}`), headline, message, latest,
    h('div', { class: 'market' },
      h('section', { class: 'panel wide-panel', 'aria-labelledby': 'power-h' }, h('h2', { id: 'power-h' }, 'Power split and price'), chartBox),
      h('section', { class: 'panel', 'aria-labelledby': 'gpu-nodes-h' }, h('h2', { id: 'gpu-nodes-h' }, 'GPU nodes'),
        h('div', { class: 'scroll' }, h('table', { id: 'gpu-nodes' }, gpuHead, gpuBody)),
        h('p', { class: 'muted' }, 'Leased GPUs are firm load while their hour is delivered; leases sold for the next hour (the exchange\'s clock) are load known to come. Inference runs on the pool, a request taking its share of it.')),
      h('section', { class: 'panel', 'aria-labelledby': 'groups-h' }, h('h2', { id: 'groups-h' }, 'Miners'),
        h('div', { class: 'scroll' }, h('table', { id: 'groups' }, th(['Model', 'Miners', 'Decided on', 'Running', 'Racks on / waking / off / down', 'Power', 'Hash rate', 'Breakeven']), groupsBody)),
        racksBox, h('p', { class: 'muted legend' }, h('span', { class: 'rack on' }), ' on ', h('span', { class: 'rack waking' }), ' waking ',
          h('span', { class: 'rack off' }), ' off ', h('span', { class: 'rack down' }), ' down')),
      h('section', { class: 'panel', 'aria-labelledby': 'events-h' }, h('h2', { id: 'events-h' }, 'Curtailment events'),
        h('div', { class: 'scroll tape' }, h('table', { id: 'events' }, th(['Start', 'Lasted', 'Reason', 'Held off', 'Most', '']), eventsBody))),
      h('section', { class: 'panel', 'aria-labelledby': 'economics-h' }, h('h2', { id: 'economics-h' }, 'Economics against the baselines (since the replay began)'),
        h('div', { class: 'scroll' }, h('table', { id: 'economics' }, th(['Strategy', 'Value', 'Mining', 'Energy', '4CP charges', 'Restart wear', 'Curtailed']), economicsBody))),
      h('section', { class: 'panel', 'aria-labelledby': 'pnl-h' }, h('h2', { id: 'pnl-h' }, 'P&L from the ledger'),
        h('table', { id: 'pnl' }, pnlBody))));

  let plot: uPlot | null = null;
  const resize = (): void => plot?.setSize({ width: chartBox.clientWidth, height: 280 });
  window.addEventListener('resize', resize);

  const draw = (history: SiteHistory): void => {
    const s = stackedSeries(history.points);
    const data: uPlot.AlignedData = [s.x, s.curtailedTop, s.minersTop, s.gpuTop, s.price];
    const bands = [null, s.curtailed, s.miners, s.gpu];
    if (plot !== null) {
      plot.setData(data);
      return;
    }
    const kw = (_u: uPlot, _v: number | null, si: number, i: number | null): string => {
      const band = bands[si];
      const v = i === null || band === null || band === undefined ? undefined : band[i];
      return v === undefined ? '—' : formatPower(v);
    };
    plot = new uPlot({
      width: chartBox.clientWidth || 600, height: 280,
      scales: { x: { time: true }, kw: { auto: true }, usd: { auto: true } },
      axes: [
        { stroke: '#cbd5e1' },
        { scale: 'kw', stroke: '#cbd5e1', values: (_u, v) => v.map((x) => formatPower(x)), size: 84 },
        { scale: 'usd', side: 1, stroke: '#fbbf24', values: (_u, v) => v.map((x) => `$${x}`), grid: { show: false } },
      ],
      series: [{ label: 'UTC' },
        { label: 'curtailed', scale: 'kw', stroke: '#64748b', fill: 'rgba(100,116,139,0.35)', value: kw },
        { label: 'miners', scale: 'kw', stroke: '#22c55e', fill: 'rgba(34,197,94,0.45)', value: kw },
        { label: 'GPUs', scale: 'kw', stroke: '#38bdf8', fill: 'rgba(56,189,248,0.55)', value: kw },
        { label: 'price', scale: 'usd', stroke: '#fbbf24', width: 1.5, value: (_u, v) => price(v) }],
    }, data, chartBox);
  };

  const show = (s: SiteState, history: SiteHistory, events: SiteEvents, racks: Rack[], pnl: Pnl | null): void => {
    headline.textContent = `${s.market} · replayed at ${s.speed}× · interval ${formatCount(s.interval)} of ${formatCount(s.intervals)} · ` +
      (s.emergency ? 'grid emergency' : s.peak_guard_active ? '4CP guard' : 'normal');
    const last = history.points[history.points.length - 1];
    // The latest decided interval, as /history gives it (data-interval and each figure's data-value, for a reader or a test).
    latest.replaceChildren();
    if (last !== undefined) {
      latest.dataset.interval = String(last.interval);
      const fig = (label: string, id: string, text: string, raw: string | number | null, note = ''): HTMLElement => {
        const value = h('div', { class: 'value', id });
        setFigure(value, text, raw);
        return h('section', { class: 'card', 'aria-labelledby': `${id}-label` }, h('h3', { id: `${id}-label` }, label), value, h('div', { class: 'note' }, note));
      };
      latest.append(
        fig('Interval', 'site-interval', utcMinute(last.series_time_utc), last.interval, last.reason === null ? 'whole fleet on' : `held off: ${reasonLabel(last.reason)}`),
        fig('Price known', 'site-price', price(last.price_usd_per_mwh), last.price_usd_per_mwh),
        fig('GPUs', 'site-ai', formatPower(last.ai_kw), last.ai_kw, gpuNote(s.nodes)),
        fig('Miners', 'site-miners', formatPower(last.miner_kw), last.miner_kw, `${formatCount(last.miners_on)} machines on`),
        fig('Curtailed', 'site-curtailed', formatPower(last.curtailed_kw), last.curtailed_kw),
        fig('Interconnect', 'site-interconnect', formatPower(s.interconnect_kw), s.interconnect_kw, `facility ${formatPower(s.facility_kw)} now`));
    }
    draw(history);

    const next = nextHourLabel(s.nodes);
    if (nextHourTh !== undefined) nextHourTh.textContent = next === '' ? 'Leased next hour' : `Leased from ${next}`;
    gpuBody.replaceChildren(...siteNodeRows(s.nodes).map((r) => h('tr', { 'data-node': r.id },
      h('th', { scope: 'row' }, h('a', { href: `#/nodes/${enc(r.id)}` }, r.id)), h('td', { class: 'num' }, r.gpus), h('td', { class: 'num' }, r.pool),
      h('td', { class: 'num' }, r.leasedNow), h('td', { class: 'num' }, r.leasedNext), h('td', { class: 'num' }, r.utilization), h('td', { class: 'num', 'data-value': String(r.itKw) }, formatPower(r.itKw)))));
    if (s.nodes.length === 0) gpuBody.append(h('tr', {}, h('td', { colspan: '7', class: 'muted' }, 'This site lists no GPU node: its GPU load follows the site file\'s schedule.')));

    const counts = rackCounts(racks);
    groupsBody.replaceChildren(...s.groups.map((g, i) => {
      const c = counts.get(i) ?? { on: 0, waking: 0, off: 0, down: 0, unknown: 0 };
      return h('tr', {}, h('th', { scope: 'row' }, g.model), h('td', { class: 'num' }, formatCount(g.miners)), h('td', { class: 'num' }, formatCount(g.target_miners)),
        h('td', { class: 'num' }, formatCount(g.machines_running)), h('td', { class: 'num', 'data-racks': `${c.on}/${c.waking}/${c.off}/${c.down}` }, `${c.on} / ${c.waking} / ${c.off} / ${c.down}`),
        h('td', { class: 'num' }, formatPower(g.power_kw)), h('td', { class: 'num' }, `${formatCount(g.hashrate_ths)} TH/s`), h('td', { class: 'num' }, price(g.breakeven_usd_per_mwh)));
    }));
    racksBox.replaceChildren(...racks.map((r) => h('span', {
      class: `rack ${rackState(r.state)}`, role: 'listitem',
      title: `rack ${r.index}: ${r.machines} × ${r.model}, ${r.state}${r.power_kw === null ? '' : `, ${formatPower(r.power_kw)}`}${r.down_reason === null ? '' : ` (${r.down_reason})`}`,
      'aria-label': `rack ${r.index} ${rackState(r.state)}`,
    })));

    eventsBody.replaceChildren(...events.events.map((e) => {
      const row = formatEvent(e, history.interval_minutes);
      return h('tr', { 'data-reason': e.reason }, h('td', {}, row.start), h('td', {}, row.duration), h('td', {}, row.reason),
        h('td', { class: 'num' }, row.curtailed), h('td', { class: 'num' }, row.peak), h('td', {}, row.state));
    }));
    if (events.events.length === 0) eventsBody.append(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No miner held off yet.')));

    const e = s.economics;
    const money = (v: number): HTMLElement => h('td', { class: 'num' }, formatUsd(v));
    economicsBody.replaceChildren(
      h('tr', { 'data-strategy': 'controller' }, h('th', { scope: 'row' }, 'controller (live)'), money(e.value_micro_usd), money(e.mining_revenue_micro_usd), money(e.energy_cost_micro_usd),
        money(e.peak_charge_micro_usd), money(e.restart_wear_micro_usd), h('td', { class: 'num' }, `${e.curtailed_mwh} MWh`)),
      ...(s.baselines ?? []).map((b) => h('tr', { 'data-strategy': b.name }, h('th', { scope: 'row' }, b.name), money(b.value_micro_usd), money(b.mining_revenue_micro_usd),
        money(b.energy_cost_micro_usd), money(b.peak_charge_micro_usd), money(b.restart_wear_micro_usd), h('td', { class: 'num' }, `${b.curtailed_mwh} MWh`))));

    if (pnl === null) pnlBody.replaceChildren(h('tr', {}, h('td', { class: 'muted' }, 'This site is not booked in the ledger.')));
    else {
      // Costs as the ledger books them: positive when the site paid.
      const line = (label: string, v: number): HTMLElement => h('tr', {}, h('th', { scope: 'row' }, label), h('td', { class: 'num', 'data-value': String(v) }, formatUsd(v)));
      pnlBody.replaceChildren(line('AI revenue', pnl.ai_revenue_micro_usd), line('Mining revenue', pnl.mining_revenue_micro_usd),
        h('tr', {}, h('th', { scope: 'row' }, 'Mining revenue (satoshis)'), h('td', { class: 'num' }, formatCount(pnl.mining_revenue_satoshis))),
        line('Energy cost', pnl.energy_cost_micro_usd), line('4CP charges', pnl.peak_charge_micro_usd), line('Restart wear', pnl.restart_wear_micro_usd),
        h('tr', {}, h('th', { scope: 'row' }, 'Intervals booked'), h('td', { class: 'num' }, formatCount(pnl.intervals))));
      if (pnl.value_micro_usd !== undefined) pnlBody.append(line('Value', pnl.value_micro_usd));
    }
    root.dataset.ready = 'true';
  };

  const stop = every(async () => {
    const base = `/api/energy/sites/${enc(name)}`;
    const [state, history, events, racks, pnl] = await Promise.all([
      get<SiteState>(base), get<SiteHistory>(`${base}/history?limit=288`), get<SiteEvents>(`${base}/events?limit=50`), get<Rack[]>(`${base}/miners`),
      get<Pnl>(`${base}/pnl`).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }),
    ]);
    show(state, history, events, racks, pnl);
  }, message);
  return () => {
    stop();
    window.removeEventListener('resize', resize);
    plot?.destroy();
  };
}
