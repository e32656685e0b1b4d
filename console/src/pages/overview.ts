// Overview: the figures of GET /api/console/overview, pushed by GET /api/stream about once a second. Every number on
// this page is a field of the latest event, formatted; the page computes none of them. The sample's seq is shown (and
// kept in data-seq) so a reader, or a test, can match the page against the API at the same sample.

import { card, h, setFigure, tableHead } from '../dom';
import { formatCount, formatPower, shortHash } from '../format';
import { formatPrice, formatUsd } from '../money';
import type { Overview } from '../overview-types';
import { subscribe } from '../stream';

/** Renders the page into `root`; returns the function that stops its stream. */
export function overviewPage(root: HTMLElement): () => void {
  const requests = card('Requests / s', 'fig-requests');
  const spend = card('Spend / s', 'fig-spend');
  const revInference = card('Revenue / s — inference', 'fig-rev-inference');
  const revLeases = card('Revenue / s — leases', 'fig-rev-leases');
  const revMining = card('Revenue / s — mining', 'fig-rev-mining');
  const power = card('Power — all sites', 'fig-power');
  const trades = card('Trades', 'fig-trades');
  const invariants = card('Money invariants', 'fig-invariants');
  const checkpoint = card('Latest checkpoint root', 'fig-checkpoint');
  const anchor = card('On-chain anchor', 'fig-anchor');
  const own = card('Your balance', 'fig-own');
  const ledger = card('Ledger', 'fig-ledger');
  const status = h('p', { class: 'stream-state', id: 'stream-state', role: 'status' }, 'connecting…');
  const seq = h('span', { id: 'overview-seq' }, '—');
  const sitesBody = h('tbody');
  const sites = h('section', { class: 'wide', 'aria-labelledby': 'sites-h' }, h('h2', { id: 'sites-h' }, 'Power by site'),
    h('div', { class: 'scroll' }, h('table', { id: 'sites-table' },
      tableHead(['Site', 'Replayed time', 'Price', 'GPUs', 'Miners', 'Facility', 'Interconnect', 'State']),
      sitesBody)));
  const grid = h('div', { class: 'cards' });
  root.replaceChildren(
    h('h1', {}, 'Overview'),
    h('p', { class: 'muted' }, 'Sample ', seq, ' · pushed by the server about once a second · ', status),
    grid, sites);

  const show = (o: Overview): void => {
    seq.textContent = String(o.seq);
    root.dataset.seq = String(o.seq);
    grid.replaceChildren();
    if (o.requests !== null) {
      grid.append(requests.root, spend.root);
      setFigure(requests.value, o.requests.per_second.toFixed(2), o.requests.per_second);
      requests.note.textContent = `${formatCount(o.requests.total)} charged in all`;
      setFigure(spend.value, formatUsd(o.requests.spent_micro_usd_per_second), o.requests.spent_micro_usd_per_second);
      spend.note.textContent = `${formatUsd(o.requests.spent_micro_usd)} in all`;
    }
    if (o.revenue !== null) {
      grid.append(revInference.root, revLeases.root, revMining.root);
      setFigure(revInference.value, formatUsd(o.revenue.inference_micro_usd_per_second), o.revenue.inference_micro_usd_per_second);
      revInference.note.textContent = `${formatUsd(o.revenue.inference_micro_usd)} in all`;
      setFigure(revLeases.value, formatUsd(o.revenue.leases_micro_usd_per_second), o.revenue.leases_micro_usd_per_second);
      revLeases.note.textContent = `${formatUsd(o.revenue.leases_micro_usd)} in all`;
      setFigure(revMining.value, formatUsd(o.revenue.mining_micro_usd_per_second), o.revenue.mining_micro_usd_per_second);
      revMining.note.textContent = `${formatUsd(o.revenue.mining_micro_usd)} in all`;
    }
    if (o.power !== null) {
      grid.append(power.root);
      setFigure(power.value, formatPower(o.power.facility_kw), o.power.facility_kw);
      power.note.textContent = `GPUs ${formatPower(o.power.ai_kw)} · miners ${formatPower(o.power.miners_kw)} · limit ${formatPower(o.power.interconnect_kw)}`;
      sitesBody.replaceChildren(...o.power.sites.map((s) => h('tr', { 'data-site': s.name },
        h('th', { scope: 'row' }, s.name),
        h('td', {}, s.series_time.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC')),
        h('td', { class: 'num', 'data-value': s.price_usd_per_mwh === null ? undefined : String(s.price_usd_per_mwh) }, s.price_usd_per_mwh === null ? '—' : `$${s.price_usd_per_mwh.toFixed(2)}/MWh`),
        h('td', { class: 'num' }, formatPower(s.ai_kw)),
        h('td', { class: 'num', 'data-value': String(s.miners_kw) }, formatPower(s.miners_kw)),
        h('td', { class: 'num' }, formatPower(s.facility_kw)),
        h('td', { class: 'num' }, formatPower(s.interconnect_kw)),
        h('td', {}, [s.emergency ? 'grid emergency' : '', s.peak_guard ? '4CP guard' : '', s.miners_down > 0 ? `${s.miners_down} racks down` : ''].filter((x) => x !== '').join(', ') || 'normal'))));
      sites.hidden = false;
    } else {
      sites.hidden = true;
    }
    if (o.own !== null) {
      grid.append(own.root);
      const balance = o.scope === 'provider' ? o.own.revenue_micro_usd : o.own.balance_micro_usd;
      setFigure(own.value, formatUsd(balance), balance);
      own.note.textContent = `trading ${formatUsd(o.own.trading_micro_usd)} (held ${formatUsd(o.own.trading_held_micro_usd)})` +
        (o.scope === 'customer' ? ` · held by requests ${formatUsd(o.own.held_micro_usd)}` : '');
    }
    grid.append(trades.root, checkpoint.root, anchor.root);
    setFigure(trades.value, formatCount(o.trades.count), o.trades.count);
    trades.note.textContent = `${o.trades.per_minute.toFixed(2)}/min · ${formatUsd(o.trades.notional_micro_usd)} traded` +
      (o.trades.last_price === null ? '' : ` · last ${formatPrice(o.trades.last_price, 'unit')}`);
    // The ledger's size and invariants: an operator's figures (a customer or provider sees the checkpoint, which it can prove against).
    const inv = o.ledger.invariants;
    if (inv !== null) {
      grid.append(invariants.root);
      setFigure(invariants.value, inv.ok ? 'hold' : 'BROKEN', inv.ok ? 'ok' : 'broken');
      invariants.value.classList.toggle('bad', !inv.ok);
      invariants.value.classList.toggle('good', inv.ok);
      invariants.note.textContent = inv.ok ? `debits = credits in ${inv.assets} assets, ${formatCount(inv.accounts)} accounts within their limits` : (inv.broken ?? '');
    }
    if (o.ledger.checkpoint !== null) {
      setFigure(checkpoint.value, shortHash(o.ledger.checkpoint.root), o.ledger.checkpoint.root);
      checkpoint.value.title = o.ledger.checkpoint.root;
      checkpoint.note.textContent = `at op ${formatCount(o.ledger.checkpoint.op)}`;
    } else {
      setFigure(checkpoint.value, 'none yet', null);
    }
    if (o.ledger.anchor !== null) {
      setFigure(anchor.value, `op ${formatCount(o.ledger.anchor.op)}`, o.ledger.anchor.op);
      anchor.note.textContent = `${shortHash(o.ledger.anchor.root)} in tx ${shortHash(o.ledger.anchor.transaction_hash, 6)} (block ${o.ledger.anchor.block_number})`;
    } else {
      setFigure(anchor.value, 'not anchored', null);
      anchor.note.textContent = 'the server runs without a chain, or none is anchored yet';
    }
    if (o.ledger.op !== null) {
      grid.append(ledger.root);
      setFigure(ledger.value, `op ${formatCount(o.ledger.op)}`, o.ledger.op);
      ledger.note.textContent = `${formatCount(o.ledger.transfers ?? 0)} transfers · ${formatCount(o.ledger.accounts ?? 0)} accounts`;
    }
  };

  return subscribe('/api/stream', {
    onEvent: (e) => {
      if (e.event === 'overview') show(JSON.parse(e.data) as Overview);
    },
    onState: (s) => {
      status.textContent = s;
    },
  });
}
