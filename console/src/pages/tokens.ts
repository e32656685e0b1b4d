// Tokens: node shares. #/tokens lists every node that issued shares (GET /api/shares, public), the caller's holdings
// (GET /api/shares/holdings) and a balance proof of one of the caller's accounts checked in this browser (../proof.ts)
// against the root anchored on chain — read by the browser itself from the chain's RPC — or, without a chain, against
// the server's latest checkpoint. #/tokens/{node}: one node's supply, holders, revenue per share by hour (uPlot), and
// for a holder its entitlement, claimed and owed revenue with a Claim button (POST /api/shares/{node}/claims).
// Public per node: supply, holder count, price, revenue. Who holds the shares is not public (the API gives counts, not
// holders), so the page shows the count and the caller's own holding only.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, get, post } from '../api';
import { parseApiTime } from '../candles';
import { h, tableHead } from '../dom';
import { formatCount } from '../format';
import { formatUsd } from '../money';
import { ProofPanel } from './proof-panel';
import { formatNanoUsd, nodeNames, revenueSeries, shareOfSupply, type RevenuePoint, type RoutingNode } from '../tokens';

interface ShareNode { node: number; issuer: number; supply: number; symbol: string; issued_at: string; holders: number; vwap_micro_usd: number }
interface Holding { node: number; symbol: string; shares: number; free: number; offered: number; pledged: number }
interface Entitlement {
  node: number; holder: number; shares: number; entitled_micro_usd: number; claimed_micro_usd: number; owed_micro_usd: number;
  auto_claim_threshold_micro_usd: number; pool_revenue_micro_usd: number; supply: number; revenue_per_share_micro_usd: number;
}
interface Claim { node: number; amount_micro_usd: number; owed_before_micro_usd: number; transfer_id: string; account: string }

const columns = (...names: string[]): HTMLElement => tableHead(names);

/** Renders #/tokens (no node) or #/tokens/{node}; returns the function that stops its chart. */
export function tokensPage(root: HTMLElement, scope: string, arg: string | null | undefined): () => void {
  if (typeof arg === 'string' && /^\d+$/.test(arg)) return nodePage(root, scope, Number(arg));
  const listBody = h('tbody');
  const holdBody = h('tbody');
  const message = h('p', { id: 'tokens-message', role: 'status' });
  const proof = new ProofPanel();
  const holdings = h('section', { class: 'panel', 'aria-labelledby': 'holdings-h' }, h('h2', { id: 'holdings-h' }, 'Your shares'),
    h('div', { class: 'scroll' }, h('table', { id: 'holdings' }, columns('Node', 'Symbol', 'Shares', 'Free', 'Offered', 'Pledged'), holdBody)));
  root.replaceChildren(h('h1', {}, 'Tokens'),
    h('p', { class: 'muted' }, 'Node shares: each node\'s fixed supply earns its part of the node\'s revenue. Who holds them is private: the count of holders is public, the holders are not.'),
    h('section', { class: 'panel', 'aria-labelledby': 'share-nodes-h' }, h('h2', { id: 'share-nodes-h' }, 'Nodes with shares'),
      h('div', { class: 'scroll' }, h('table', { id: 'share-nodes' }, columns('Node', 'Symbol', 'Supply', 'Holders', 'VWAP / share', 'Issued'), listBody))),
    message, holdings, proof.root);
  let stopped = false;
  void (async () => {
    try {
      const [list, routing] = await Promise.all([get<{ nodes: ShareNode[] }>('/api/shares'), get<{ nodes: RoutingNode[] }>('/api/inference/nodes')]);
      const names = nodeNames(routing.nodes);
      listBody.replaceChildren(...list.nodes.map((n) => h('tr', { 'data-node': String(n.node) },
        h('th', { scope: 'row' }, h('a', { href: `#/tokens/${n.node}`, 'aria-label': `Shares of node ${names.get(n.node)?.name ?? n.node}` }, names.get(n.node)?.name ?? `node ${n.node}`)),
        h('td', { class: 'mono' }, n.symbol), h('td', { class: 'num', 'data-value': String(n.supply) }, formatCount(n.supply)),
        h('td', { class: 'num', 'data-value': String(n.holders) }, formatCount(n.holders)),
        h('td', { class: 'num' }, n.vwap_micro_usd > 0 ? formatUsd(n.vwap_micro_usd) : '—'), h('td', {}, n.issued_at.slice(0, 19).replace('T', ' ')))));
      if (list.nodes.length === 0) message.textContent = 'No node has issued shares yet.';
      if (scope === 'operator') holdings.hidden = true;
      else {
        const mine = await get<{ holdings: Holding[] }>('/api/shares/holdings');
        holdBody.replaceChildren(...mine.holdings.map((x) => h('tr', { 'data-node': String(x.node) },
          h('th', { scope: 'row' }, h('a', { href: `#/tokens/${x.node}` }, names.get(x.node)?.name ?? `node ${x.node}`)), h('td', { class: 'mono' }, x.symbol),
          h('td', { class: 'num', 'data-value': String(x.shares) }, formatCount(x.shares)), h('td', { class: 'num' }, formatCount(x.free)),
          h('td', { class: 'num' }, formatCount(x.offered)), h('td', { class: 'num' }, formatCount(x.pledged)))));
        if (mine.holdings.length === 0) holdBody.append(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'You hold no shares.')));
      }
      await proof.load();
    } catch (e) {
      message.textContent = e instanceof ApiError ? e.message : String(e);
    }
    if (!stopped) root.dataset.ready = 'true';
  })();
  return () => {
    stopped = true;
  };
}

function nodePage(root: HTMLElement, scope: string, node: number): () => void {
  const title = h('h1', {}, `Shares of node ${node}`);
  const facts = h('dl', { class: 'facts', id: 'share-facts' });
  const chartBox = h('div', { class: 'chart', id: 'revenue-chart', role: 'img', 'aria-label': 'Cumulative revenue per share by hour' });
  const hoursBody = h('tbody');
  const mine = h('section', { class: 'panel', 'aria-labelledby': 'entitlement-h' });
  const message = h('p', { id: 'tokens-message', role: 'status' });
  root.replaceChildren(title, h('p', {}, h('a', { href: '#/tokens' }, '← all nodes with shares')), message,
    h('div', { class: 'market' },
      h('section', { class: 'panel', 'aria-labelledby': 'facts-h' }, h('h2', { id: 'facts-h' }, 'The node\'s shares'), facts),
      mine,
      h('section', { class: 'panel', 'aria-labelledby': 'revenue-h' }, h('h2', { id: 'revenue-h' }, 'Revenue per share (cumulative)'), chartBox),
      h('section', { class: 'panel', 'aria-labelledby': 'hours-h' }, h('h2', { id: 'hours-h' }, 'Revenue by hour'),
        h('div', { class: 'scroll tape' }, h('table', { id: 'revenue-hours' }, columns('Hour (UTC)', 'Revenue', 'Cumulative', 'Per share'), hoursBody)))));
  let plot: uPlot | null = null;
  const resize = (): void => plot?.setSize({ width: chartBox.clientWidth, height: 240 });
  window.addEventListener('resize', resize);

  const fact = (label: string, id: string, text: string, raw: string | number): HTMLElement[] => [h('dt', {}, label), h('dd', { id, 'data-value': String(raw) }, text)];
  const showEntitlement = (e: Entitlement): void => {
    const claim = h('button', { type: 'button', id: 'claim', 'aria-label': `Claim the revenue node ${node} owes you`, disabled: e.owed_micro_usd <= 0 }, 'Claim');
    const result = h('p', { id: 'claim-message', role: 'status' });
    claim.addEventListener('click', () => void (async () => {
      claim.disabled = true;
      try {
        const c = await post<Claim>(`/api/shares/${node}/claims`, {});
        result.textContent = `Claimed ${formatUsd(c.amount_micro_usd)} into your balance (transfer ${c.transfer_id}).`;
        result.dataset.claimed = String(c.amount_micro_usd);
      } catch (err) {
        result.textContent = err instanceof ApiError ? err.message : String(err);
      }
      showEntitlement(await get<Entitlement>(`/api/shares/${node}/entitlement`));
      mine.append(result);
    })());
    mine.replaceChildren(h('h2', { id: 'entitlement-h' }, 'Your revenue of this node'),
      h('dl', { class: 'facts', id: 'entitlement' },
        ...fact('Your shares', 'ent-shares', `${formatCount(e.shares)} (${shareOfSupply(e.shares, e.supply)} of the supply)`, e.shares),
        ...fact('Entitled', 'ent-entitled', formatUsd(e.entitled_micro_usd), e.entitled_micro_usd),
        ...fact('Claimed', 'ent-claimed', formatUsd(e.claimed_micro_usd), e.claimed_micro_usd),
        ...fact('Owed', 'ent-owed', formatUsd(e.owed_micro_usd), e.owed_micro_usd),
        ...fact('Auto-claim at', 'ent-auto', e.auto_claim_threshold_micro_usd > 0 ? formatUsd(e.auto_claim_threshold_micro_usd) : 'off', e.auto_claim_threshold_micro_usd)),
      claim);
  };

  void (async () => {
    try {
      const [info, revenue, routing] = await Promise.all([get<ShareNode>(`/api/shares/${node}`), get<{ supply: number; points: RevenuePoint[] }>(`/api/shares/${node}/revenue`),
        get<{ nodes: RoutingNode[] }>('/api/inference/nodes')]);
      const name = nodeNames(routing.nodes).get(node);
      title.textContent = `Shares of ${name === undefined ? `node ${node}` : `${name.name} (${name.region})`}`;
      const last = revenue.points.at(-1);
      facts.replaceChildren(
        ...fact('Symbol', 'share-symbol', info.symbol, info.symbol),
        ...fact('Supply', 'share-supply', formatCount(info.supply), info.supply),
        ...fact('Holders', 'share-holders', formatCount(info.holders), info.holders),
        ...fact('VWAP', 'share-vwap', info.vwap_micro_usd > 0 ? `${formatUsd(info.vwap_micro_usd)} / share` : 'no trades yet', info.vwap_micro_usd),
        ...fact('Revenue to holders', 'share-revenue', formatUsd(last?.cumulative_micro_usd ?? 0), last?.cumulative_micro_usd ?? 0),
        ...fact('Per share', 'share-per-share', formatNanoUsd(last?.revenue_per_share_nano_usd ?? 0), last?.revenue_per_share_nano_usd ?? 0));
      hoursBody.replaceChildren(...[...revenue.points].reverse().map((p) => h('tr', {},
        h('td', {}, p.start.slice(0, 16).replace('T', ' ')), h('td', { class: 'num' }, formatUsd(p.revenue_micro_usd)),
        h('td', { class: 'num' }, formatUsd(p.cumulative_micro_usd)), h('td', { class: 'num' }, formatNanoUsd(p.revenue_per_share_nano_usd)))));
      const data = revenueSeries(revenue.points, parseApiTime);
      chartBox.dataset.points = String(data[0].length);
      if (data[0].length === 0) chartBox.replaceChildren(h('p', { class: 'muted' }, 'No revenue yet: the pool has received nothing.'));
      else plot = new uPlot({
        width: chartBox.clientWidth || 600, height: 240,
        // One hour alone would stretch the time axis over years: an hour each side of it.
        scales: { x: { time: true, range: (_u, min, max) => (min === max ? [min - 3600, max + 3600] : [min, max]) } },
        axes: [{ stroke: '#94a3b8' }, { stroke: '#94a3b8', size: 70, label: 'micro-USD per share' }],
        series: [{}, { label: 'per share (micro-USD)', stroke: '#38bdf8', fill: 'rgba(56,189,248,0.15)', points: { show: true } }],
      }, data, chartBox);
      if (scope === 'operator') mine.replaceChildren(h('h2', { id: 'entitlement-h' }, 'Holders\' revenue'), h('p', { class: 'muted' }, 'Operators hold no shares; each holder sees its own entitlement here.'));
      else showEntitlement(await get<Entitlement>(`/api/shares/${node}/entitlement`));
      root.dataset.ready = 'true';
    } catch (e) {
      message.textContent = e instanceof ApiError ? e.message : String(e);
      root.dataset.ready = 'true';
    }
  })();
  return () => {
    window.removeEventListener('resize', resize);
    plot?.destroy();
  };
}
