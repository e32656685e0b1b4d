// Usage: the signed-in customer's paid requests and spend, like OpenAI's usage page, from GET /api/inference/usage
// (read back from the ledger: each request's charge, node, tokens and fee). Totals and the per-day chart come from the
// first page's `days` and `totals`; the table pages with `next` ("More"). Operators see every request, or one
// customer's with its id. The keys the requests are made with are managed on the Keys page.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, get } from '../api';
import { parseApiTime } from '../candles';
import { card, h, setFigure, tableHead } from '../dom';
import { formatCount } from '../format';
import { formatUsd } from '../money';
import { dailySeries, type UsagePage, type UsageRequest } from '../usage';

/** Renders the page; returns the function that removes its chart. */
export function usagePage(root: HTMLElement, scope: string): () => void {
  const range = h('select', { id: 'usage-range', 'aria-label': 'Range' },
    h('option', { value: '7' }, 'last 7 days'), h('option', { value: '30', selected: true }, 'last 30 days'), h('option', { value: '90' }, 'last 90 days'));
  const customer = h('input', { id: 'usage-customer', inputmode: 'numeric', 'aria-label': 'Customer id (empty: every request)', placeholder: 'customer id (all)', pattern: '\\d*' });
  const form = h('form', { class: 'toolbar', 'aria-label': 'Usage range' }, h('label', { for: 'usage-range' }, 'Range '), range,
    scope === 'operator' ? customer : null, h('button', { type: 'submit' }, 'Show'));
  const requests = card('Requests', 'usage-requests');
  const tokens = card('Tokens', 'usage-tokens');
  const spend = card('Spend', 'usage-spend');
  const chartBox = h('div', { class: 'chart', id: 'usage-chart', role: 'img', 'aria-label': 'Spend and requests per day' });
  const body = h('tbody');
  const more = h('button', { type: 'button', id: 'usage-more', 'aria-label': 'Load more requests', hidden: true }, 'More');
  const message = h('p', { id: 'usage-message', role: 'status' });
  root.replaceChildren(h('h1', {}, 'Usage'),
    h('p', { class: 'muted' }, 'Paid requests and spend, read back from the ledger (each charge with its node, tokens and fee). Requests are made with API keys: ',
      h('a', { href: '#/keys' }, 'manage your keys'), '.'),
    form, h('div', { class: 'cards' }, requests.root, tokens.root, spend.root), message,
    h('section', { class: 'panel', 'aria-labelledby': 'usage-days-h' }, h('h2', { id: 'usage-days-h' }, 'Per day (UTC)'), chartBox),
    h('section', { class: 'panel wide', 'aria-labelledby': 'usage-table-h' }, h('h2', { id: 'usage-table-h' }, 'Requests, newest first'),
      h('div', { class: 'scroll' }, h('table', { id: 'usage-table' },
        tableHead(['Time (UTC)', 'Model', 'Node', 'Tokens', 'Cost', 'Fee', 'Paid by', 'Transfer']), body)),
      more));

  let plot: uPlot | null = null;
  let query = '';
  let next: string | null = null;
  const resize = (): void => plot?.setSize({ width: chartBox.clientWidth, height: 220 });
  window.addEventListener('resize', resize);

  const row = (r: UsageRequest): HTMLElement => h('tr', { 'data-transfer': r.transfer_id },
    h('td', {}, r.time.slice(0, 19).replace('T', ' ')), h('td', {}, r.model ?? '—'),
    h('td', {}, r.node_id ?? (r.node === null ? '—' : `node ${r.node}`)),
    h('td', { class: 'num', 'data-value': r.tokens === null ? undefined : String(r.tokens) }, r.tokens === null ? 'unknown' : formatCount(r.tokens)),
    h('td', { class: 'num', 'data-value': String(r.cost_micro_usd) }, formatUsd(r.cost_micro_usd)),
    h('td', { class: 'num' }, formatUsd(r.fee_micro_usd)), h('td', {}, r.paid_by === 'x402' ? 'x402' : 'API key'),
    h('td', { class: 'mono', title: r.transfer_id }, r.transfer_id.length > 14 ? `…${r.transfer_id.slice(-12)}` : r.transfer_id));

  const draw = (page: UsagePage): void => {
    const [xs, count, micro] = dailySeries(page.days ?? [], parseApiTime(page.from), parseApiTime(page.to), parseApiTime);
    chartBox.dataset.days = String((page.days ?? []).length);
    plot?.destroy();
    plot = new uPlot({
      width: chartBox.clientWidth || 600, height: 220,
      scales: { usd: {}, n: {} },
      axes: [{ stroke: '#94a3b8' }, { scale: 'usd', stroke: '#94a3b8', size: 96, values: (_u, v) => v.map((x) => `$${x}`) }, { scale: 'n', side: 1, stroke: '#94a3b8' }],
      series: [{}, { label: 'spend (USD)', scale: 'usd', stroke: '#38bdf8', fill: 'rgba(56,189,248,0.25)', paths: uPlot.paths.bars!({ size: [0.7, 40] }) },
        { label: 'requests', scale: 'n', stroke: '#22c55e', points: { show: true } }],
    }, [xs, micro.map((m) => m / 1e6), count], chartBox);
  };

  const load = async (first: boolean): Promise<void> => {
    more.disabled = true;
    try {
      const page = await get<UsagePage>(`/api/inference/usage?${query}${first || next === null ? '' : `&after=${encodeURIComponent(next)}`}`);
      if (first) {
        body.replaceChildren();
        const t = page.totals ?? { requests: 0, tokens: 0, spend_micro_usd: 0 };
        setFigure(requests.value, formatCount(t.requests), t.requests);
        setFigure(tokens.value, formatCount(t.tokens), t.tokens);
        setFigure(spend.value, formatUsd(t.spend_micro_usd), t.spend_micro_usd);
        spend.note.textContent = `${page.from.slice(0, 10)} → ${page.to.slice(0, 16).replace('T', ' ')} UTC`;
        message.textContent = page.complete ? '' : 'This range holds more history than one query reads: the figures cover its newer part.';
        query += `&to=${encodeURIComponent(page.to)}`; // later pages continue in the same range
        root.dataset.from = page.from;
        root.dataset.to = page.to;
        draw(page);
      }
      body.append(...page.requests.map(row));
      if (first && page.requests.length === 0) body.append(h('tr', {}, h('td', { colspan: '8', class: 'muted' }, 'No paid requests in this range.')));
      next = page.next;
      more.hidden = next === null;
    } catch (e) {
      message.textContent = e instanceof ApiError ? e.message : String(e);
    }
    more.disabled = false;
    root.dataset.ready = 'true';
  };
  const start = (): void => {
    root.dataset.ready = 'false';
    const from = new Date(Date.now() - Number(range.value) * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const who = scope === 'operator' && customer.value.trim() !== '' ? `&customer=${encodeURIComponent(customer.value.trim())}` : '';
    query = `limit=50&from=${encodeURIComponent(from)}${who}`;
    next = null;
    void load(true);
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    start();
  });
  more.addEventListener('click', () => void load(false));
  start();
  return () => {
    window.removeEventListener('resize', resize);
    plot?.destroy();
  };
}
