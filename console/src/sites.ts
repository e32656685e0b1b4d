// A live site's recent past as the API gives it (GET /api/energy/sites/{name}/history and /events), turned into what
// the Sites page draws: the power split stacked under the price, and curtailment events in words. The figures are the
// API's; this module only arranges them (cumulative tops for the stacked areas) and names them.

import { formatPower } from './format';

/** Why miners were held off (the server's reason, named where the site decides). */
export type CurtailmentReason = 'price' | 'peak_risk' | 'emergency' | 'ai_load' | 'limits';

/** One decided interval. */
export interface HistoryPoint {
  series_time_utc: string;
  interval: number;
  price_usd_per_mwh: number | null;
  ai_kw: number;
  miner_kw: number;
  curtailed_kw: number;
  peak_guard: boolean;
  emergency: boolean;
  miners_on: number;
  reason: CurtailmentReason | null;
}

/** GET /api/energy/sites/{name}/history. */
export interface SiteHistory {
  site: string;
  interval_minutes: number;
  capacity: number;
  points: HistoryPoint[];
}

/** One curtailment event. */
export interface CurtailmentEvent {
  start_utc: string;
  last_interval_utc: string;
  intervals: number;
  reason: CurtailmentReason;
  curtailed_kw: number;
  max_curtailed_kw: number;
  ongoing: boolean;
}

/** GET /api/energy/sites/{name}/events. */
export interface SiteEvents {
  site: string;
  capacity: number;
  events: CurtailmentEvent[];
}

/** Each reason in words. */
export const REASON_LABELS: Readonly<Record<CurtailmentReason, string>> = {
  price: 'price (mining margin negative)',
  peak_risk: '4CP peak risk',
  emergency: 'grid emergency',
  ai_load: 'AI load (interconnect full)',
  limits: 'limits (ramp, whole racks)',
};

/** The reason in words; an unknown one as it came. */
export function reasonLabel(reason: string | null): string {
  if (reason === null) return '—';
  return (REASON_LABELS as Record<string, string>)[reason] ?? reason;
}

/**
 * The history as stacked series for a chart: x in Unix seconds, and for each area the top of its band (GPUs at the
 * bottom, miners on them, curtailed on top), so each area drawn from zero in the order total → GPUs+miners → GPUs shows
 * its own band; the bands themselves come along for the legend, and the price for its own axis.
 */
export interface Stacked {
  x: number[];
  gpuTop: number[];
  minersTop: number[];
  curtailedTop: number[];
  gpu: number[];
  miners: number[];
  curtailed: number[];
  price: (number | null)[];
}

/** Builds the stacked series, oldest first (the API's order). */
export function stackedSeries(points: readonly HistoryPoint[]): Stacked {
  const s: Stacked = { x: [], gpuTop: [], minersTop: [], curtailedTop: [], gpu: [], miners: [], curtailed: [], price: [] };
  for (const p of points) {
    s.x.push(Date.parse(p.series_time_utc) / 1000);
    s.gpu.push(p.ai_kw);
    s.miners.push(p.miner_kw);
    s.curtailed.push(p.curtailed_kw);
    s.gpuTop.push(p.ai_kw);
    s.minersTop.push(p.ai_kw + p.miner_kw);
    s.curtailedTop.push(p.ai_kw + p.miner_kw + p.curtailed_kw);
    s.price.push(p.price_usd_per_mwh);
  }
  return s;
}

/** An API time as `2021-08-24 05:00 UTC`. */
export function utcMinute(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return m === null ? iso : `${m[1]} ${m[2]} UTC`;
}

/** A duration of whole minutes as `45 min`, `2 h 15 min`, `1 d 3 h`. */
export function formatMinutes(minutes: number): string {
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 24 * 60) return minutes % 60 === 0 ? `${minutes / 60} h` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  const hours = Math.floor(minutes / 60);
  return hours % 24 === 0 ? `${hours / 24} d` : `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** An event as the page's table shows it. */
export interface EventRow {
  start: string;
  duration: string;
  reason: string;
  curtailed: string;
  peak: string;
  state: string;
}

/** Formats an event; its duration is its intervals × the interval's length (so far, while ongoing). */
export function formatEvent(e: CurtailmentEvent, intervalMinutes: number): EventRow {
  return {
    start: utcMinute(e.start_utc),
    duration: formatMinutes(e.intervals * intervalMinutes),
    reason: reasonLabel(e.reason),
    curtailed: formatPower(e.curtailed_kw),
    peak: formatPower(e.max_curtailed_kw),
    state: e.ongoing ? 'ongoing' : 'ended',
  };
}

/** A rack as GET /api/energy/sites/{name}/miners lists it (the fields the page uses). */
export interface Rack {
  index: number;
  group: number;
  model: string;
  state: string;
  machines: number;
  machines_running: number;
  power_kw: number | null;
  temperature_c: number | null;
  down_reason: string | null;
}

/** What a rack is doing: on, waking (between off and on), off, down; unknown before the driver first reached it. */
export type RackState = 'on' | 'waking' | 'off' | 'down' | 'unknown';

/** The driver's state as on (hashing), waking (booting or ramping), off (asleep), down (not answering) or unknown. */
export function rackState(state: string): RackState {
  switch (state) {
    case 'Hashing':
      return 'on';
    case 'Down':
      return 'down';
    case 'Sleeping':
      return 'off';
    case 'WakingUp':
      return 'waking';
    default:
      return 'unknown';
  }
}

/** Racks counted by state, per group (in group order). */
export function rackCounts(racks: readonly Rack[]): Map<number, Record<RackState, number>> {
  const out = new Map<number, Record<RackState, number>>();
  for (const r of racks) {
    const c = out.get(r.group) ?? { on: 0, waking: 0, off: 0, down: 0, unknown: 0 };
    c[rackState(r.state)]++;
    out.set(r.group, c);
  }
  return out;
}

/** A GPU node of a live site as GET /api/energy/sites/{name} lists it (its measured load at the last decided interval). */
export interface SiteNode {
  node_id: string;
  gpus: number;
  inference_gpus: number;
  leased_gpus: number;
  leased_next_hour_gpus: number;
  next_hour_utc: string | null;
  utilization: number;
  measured: boolean;
  it_kw: number;
}

/** A node as the site page's GPU panel shows it. */
export interface SiteNodeRow {
  id: string;
  gpus: string;
  pool: string;
  leasedNow: string;
  leasedNext: string;
  utilization: string;
  itKw: number;
}

/** The hour a node's "next hour" figure is for, `HH:00 UTC`, or an empty string when it was not measured. */
export function nextHourLabel(nodes: readonly SiteNode[]): string {
  const at = nodes.find((n) => n.next_hour_utc !== null)?.next_hour_utc;
  const m = at === undefined || at === null ? null : /T(\d{2}):/.exec(at);
  return m === null ? '' : `${m[1]}:00 UTC`;
}

/** The GPU panel's rows: counts with thousands separators, the share of each node's GPUs leased now and next hour. */
export function siteNodeRows(nodes: readonly SiteNode[]): SiteNodeRow[] {
  const n = (x: number): string => x.toLocaleString('en-US');
  const share = (x: number, of: number): string => (of > 0 ? ` (${Math.round((100 * x) / of)} %)` : '');
  return nodes.map((x) => ({
    id: x.node_id,
    gpus: n(x.gpus),
    pool: n(x.inference_gpus),
    leasedNow: x.measured ? n(x.leased_gpus) + share(x.leased_gpus, x.gpus) : 'not measured (counted at full power)',
    leasedNext: x.next_hour_utc === null ? '—' : n(x.leased_next_hour_gpus) + share(x.leased_next_hour_gpus, x.gpus),
    utilization: `${Math.round(100 * x.utilization)} %`,
    itKw: x.it_kw,
  }));
}

/** GPUs leased now and for the next hour over all of a site's nodes. */
export function leasedTotals(nodes: readonly SiteNode[]): { now: number; next: number; gpus: number } {
  return nodes.reduce((t, x) => ({ now: t.now + x.leased_gpus, next: t.next + x.leased_next_hour_gpus, gpus: t.gpus + x.gpus }), { now: 0, next: 0, gpus: 0 });
}
