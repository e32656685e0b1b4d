// Market: one instrument's depth chart, trade tape and candles, the compute price index, the signed-in principal's leases
// and their delivery (operators: everyone's; GET /api/exchange/leases, read again every few seconds), and — for a
// signed-in trader — its trading account, an order form and its open orders with a cancel button each. Data from the exchange's API
// (book, trades, candles, index, orders) and its live stream (GET /api/exchange/stream?symbol=, `trade` and `book`
// events); prices are integer micro-USD, shown exactly.

import { CandlestickSeries, createChart, type IChartApi, type ISeriesApi, type UTCTimestamp } from 'lightweight-charts';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, del, get, post } from '../api';
import { applyTrades, fromApi, type ApiCandle, type ApiTrade, type Candle } from '../candles';
import { cumulativeDepth, type DepthLevel } from '../depth';
import { h, tableHead } from '../dom';
import { formatCount } from '../format';
import { newestRows, readLeases, summarize, type LeasePage } from '../leases';
import { formatPrice, formatUsd, parseUsd } from '../money';
import { subscribe } from '../stream';

interface Instrument { id: number; symbol: string; gpu: string; region: string; kind: string; min_price: number; max_price: number; tick: number; hours: number; trading: boolean }
interface Book { symbol: string; bids: DepthLevel[]; asks: DepthLevel[] }
interface Trade extends ApiTrade { symbol: string; taker_side: string }
interface OpenOrder { order_id: number; symbol: string; side: string; price: number; remaining: number; hold_amount: number }
interface IndexClass { gpu: string; vwap: number | null; volume: number; trades: number }

/** Renders the page; returns the function that stops its streams and charts. */
export function marketPage(root: HTMLElement, scope: string): () => void {
  const stops: (() => void)[] = [];
  const select = h('select', { id: 'instrument', 'aria-label': 'Instrument' });
  const indexBody = h('tbody');
  const tapeBody = h('tbody');
  const depthBox = h('div', { class: 'chart', id: 'depth-chart', role: 'img', 'aria-label': 'Depth chart: cumulative quantity bid and offered by price' });
  const candleBox = h('div', { class: 'chart', id: 'candle-chart', role: 'img', 'aria-label': 'Candles: one-minute open, high, low and close' });
  const spread = h('p', { class: 'muted', id: 'spread' });
  const trader = h('section', { class: 'panel', 'aria-labelledby': 'trade-h' });
  const leasesSummary = h('p', { id: 'leases-summary', class: 'muted', role: 'status' });
  const leasesBody = h('tbody');
  const leasesPanel = h('section', { class: 'panel wide', 'aria-labelledby': 'leases-h' },
    h('h2', { id: 'leases-h' }, scope === 'operator' ? 'Leases (everyone\'s) and their delivery' : 'Your leases and their delivery'), leasesSummary,
    h('div', { class: 'scroll leases' }, h('table', { id: 'leases', 'aria-describedby': 'leases-summary' },
      tableHead(['Lease', 'Instrument', 'GPUs', 'Window (UTC)', 'State', 'Delivered', 'Paid', 'In escrow']), leasesBody)));
  root.replaceChildren(
    h('h1', {}, 'Market'),
    h('div', { class: 'toolbar' }, h('label', { for: 'instrument' }, 'Instrument '), select),
    h('div', { class: 'market' },
      h('section', { class: 'panel', 'aria-labelledby': 'depth-h' }, h('h2', { id: 'depth-h' }, 'Depth'), depthBox, spread),
      h('section', { class: 'panel', 'aria-labelledby': 'candles-h' }, h('h2', { id: 'candles-h' }, 'Candles (1 m)'), candleBox),
      h('section', { class: 'panel', 'aria-labelledby': 'tape-h' }, h('h2', { id: 'tape-h' }, 'Trade tape'),
        h('div', { class: 'scroll tape' }, h('table', { id: 'tape' }, tableHead(['Time', 'Side', 'Price', 'Qty']), tapeBody))),
      trader,
      leasesPanel,
      h('section', { class: 'panel', 'aria-labelledby': 'index-h' }, h('h2', { id: 'index-h' }, 'Compute price index (24 h VWAP)'),
        h('table', { id: 'index' }, tableHead(['GPU', 'VWAP', 'Volume', 'Trades']), indexBody))));

  // ---- charts
  const candleChart: IChartApi = createChart(candleBox, { height: 260, layout: { background: { color: 'transparent' }, textColor: '#cbd5e1' }, grid: { vertLines: { color: '#1e293b' }, horzLines: { color: '#1e293b' } }, timeScale: { timeVisible: true } });
  const candleSeries: ISeriesApi<'Candlestick'> = candleChart.addSeries(CandlestickSeries, { priceFormat: { type: 'custom', formatter: (p: number) => formatUsd(Math.round(p * 1e6)), minMove: 0.000001 } });
  let candles: Candle[] = [];
  let depthPlot: uPlot | null = null;
  const resize = (): void => {
    candleChart.applyOptions({ width: candleBox.clientWidth });
    depthPlot?.setSize({ width: depthBox.clientWidth, height: 240 });
  };
  window.addEventListener('resize', resize);
  stops.push(() => window.removeEventListener('resize', resize), () => candleChart.remove(), () => depthPlot?.destroy());

  const drawDepth = (book: Book): void => {
    const d = cumulativeDepth(book.bids, book.asks);
    spread.textContent = d.spread === null ? 'one side of the book is empty' : `spread ${formatUsd(d.spread)}`;
    depthBox.dataset.bids = String(book.bids.length);
    depthBox.dataset.asks = String(book.asks.length);
    // One x axis of prices (USD for display), bids and asks as two stepped areas.
    const xs = [...d.bids.map((p) => p.price), ...d.asks.map((p) => p.price)];
    const bids = [...d.bids.map((p) => p.cumulative), ...d.asks.map(() => null)];
    const asks = [...d.bids.map(() => null), ...d.asks.map((p) => p.cumulative)];
    const data: uPlot.AlignedData = [xs.map((x) => x / 1e6), bids, asks];
    depthPlot?.destroy();
    depthPlot = new uPlot({
      width: depthBox.clientWidth || 400, height: 240,
      scales: { x: { time: false } },
      axes: [{ stroke: '#cbd5e1', values: (_u, v) => v.map((x) => `$${x.toFixed(2)}`) }, { stroke: '#cbd5e1' }],
      series: [{ label: 'price' },
        { label: 'bids', stroke: '#22c55e', fill: 'rgba(34,197,94,0.2)', paths: uPlot.paths.stepped!({ align: 1 }) },
        { label: 'asks', stroke: '#ef4444', fill: 'rgba(239,68,68,0.2)', paths: uPlot.paths.stepped!({ align: -1 }) }],
    }, data, depthBox);
  };

  const addTape = (trades: Trade[]): void => {
    for (const t of trades) {
      tapeBody.prepend(h('tr', { 'data-seq': String(t.sequence) },
        h('td', {}, t.timestamp.slice(11, 19)), h('td', { class: t.taker_side }, t.taker_side),
        h('td', { class: 'num', 'data-value': String(t.price) }, formatUsd(t.price)), h('td', { class: 'num' }, formatCount(t.quantity))));
    }
    while (tapeBody.children.length > 100) tapeBody.lastElementChild?.remove();
  };

  // ---- one instrument at a time
  let stopFeed: (() => void) | null = null;
  const open = async (symbol: string): Promise<void> => {
    stopFeed?.();
    root.dataset.symbol = symbol;
    const enc = encodeURIComponent(symbol);
    const [book, tape, c] = await Promise.all([
      get<Book>(`/api/exchange/book/${enc}?depth=50`),
      get<{ trades: Trade[] }>(`/api/exchange/trades/${enc}?limit=50`),
      get<{ candles: ApiCandle[] }>(`/api/exchange/candles/${enc}?interval=1m&limit=500`),
    ]);
    drawDepth(book);
    tapeBody.replaceChildren();
    addTape([...tape.trades].reverse());
    const lastSeq = tape.trades.reduce((m, t) => Math.max(m, t.sequence), -1);
    candles = fromApi(c.candles);
    candleSeries.setData(candles.map(toChart));
    resize();
    stopFeed = subscribe(`/api/exchange/stream?symbol=${enc}&depth=50`, {
      onEvent: (e) => {
        if (e.event === 'book') drawDepth(JSON.parse(e.data) as Book);
        if (e.event === 'trade') {
          const t = JSON.parse(e.data) as Trade;
          addTape([t]);
          candles = applyTrades(candles, [t], 60, lastSeq);
          candleSeries.setData(candles.map(toChart));
        }
      },
    });
  };
  stops.push(() => stopFeed?.());

  select.addEventListener('change', () => void open(select.value).then(refreshOrders));

  const loadIndex = async (): Promise<void> => {
    const idx = await get<{ classes: IndexClass[] }>('/api/exchange/index');
    indexBody.replaceChildren(...idx.classes.map((c) => h('tr', {}, h('th', { scope: 'row' }, c.gpu),
      h('td', { class: 'num' }, c.vwap === null ? '—' : formatPrice(c.vwap)), h('td', { class: 'num' }, formatCount(c.volume)), h('td', { class: 'num' }, formatCount(c.trades)))));
  };

  // ---- the trader's part
  const ordersBody = h('tbody');
  const account = h('p', { id: 'trading-account', class: 'muted' });
  const message = h('p', { id: 'order-message', role: 'status' });
  const refreshOrders = async (): Promise<void> => {
    if (scope === 'operator') return;
    const [acct, orders] = await Promise.all([
      get<{ available: number; held: number; open_orders: number }>('/api/exchange/account'),
      get<{ orders: OpenOrder[] }>('/api/exchange/orders'),
    ]);
    account.textContent = `Trading account: ${formatUsd(acct.available)} available, ${formatUsd(acct.held)} held by ${acct.open_orders} open orders`;
    account.dataset.available = String(acct.available);
    ordersBody.replaceChildren(...orders.orders.map((o) => h('tr', { 'data-order': String(o.order_id) },
      h('td', {}, String(o.order_id)), h('td', {}, o.symbol), h('td', {}, o.side), h('td', { class: 'num' }, formatUsd(o.price)), h('td', { class: 'num' }, formatCount(o.remaining)),
      h('td', {}, cancelButton(o.order_id)))));
  };
  const cancelButton = (id: number): HTMLButtonElement => {
    const b = h('button', { type: 'button', 'aria-label': `Cancel order ${id}` }, 'Cancel');
    b.addEventListener('click', () => void (async () => {
      try {
        await del(`/api/exchange/orders/${id}`);
        message.textContent = `Order ${id} cancelled.`;
      } catch (e) {
        message.textContent = e instanceof ApiError ? e.message : String(e);
      }
      await refreshOrders();
    })());
    return b;
  };
  if (scope === 'operator') {
    trader.replaceChildren(h('h2', { id: 'trade-h' }, 'Trade'), h('p', { class: 'muted' }, 'Operators do not trade: sign in with a customer or provider key (trade scope) to place orders.'));
  } else {
    const side = h('select', { id: 'order-side', 'aria-label': 'Side' }, h('option', { value: 'buy' }, 'Buy'), h('option', { value: 'sell' }, 'Sell'));
    const price = h('input', { id: 'order-price', 'aria-label': 'Limit price (USD per unit)', inputmode: 'decimal', placeholder: 'price, USD', required: true });
    const qty = h('input', { id: 'order-quantity', 'aria-label': 'Quantity (GPU-hours or shares)', inputmode: 'numeric', placeholder: 'quantity', required: true });
    const form = h('form', { class: 'order-form', 'aria-label': 'Place a limit order' }, side, price, qty, h('button', { type: 'submit' }, 'Place order'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void (async () => {
        const micro = parseUsd(price.value);
        const quantity = Number(qty.value);
        if (micro === null || micro > BigInt(Number.MAX_SAFE_INTEGER) || !Number.isSafeInteger(quantity) || quantity <= 0) {
          message.textContent = 'Enter a price in dollars (up to six decimals) and a whole quantity.';
          return;
        }
        try {
          const r = await post<{ order_id: number; status: string; remaining: number; fills: unknown[] }>('/api/exchange/orders',
            { instrument: select.value, side: side.value, price: Number(micro), quantity });
          message.textContent = `Order ${r.order_id}: ${r.status}, ${r.fills.length} fills, ${formatCount(r.remaining)} remaining.`;
          message.dataset.order = String(r.order_id);
        } catch (e) {
          message.textContent = e instanceof ApiError ? e.message : String(e);
        }
        await refreshOrders();
      })();
    });
    trader.replaceChildren(h('h2', { id: 'trade-h' }, 'Trade'), account, form, message,
      h('div', { class: 'scroll' }, h('table', { id: 'open-orders' }, tableHead(['Id', 'Instrument', 'Side', 'Price', 'Remaining', '']), ordersBody)));
  }

  // ---- leases: read whole (up to a bound) every few seconds, the newest shown; delivery is metered once a minute
  const refreshLeases = async (): Promise<void> => {
    const { leases, more } = await readLeases((after) => get<LeasePage>(`/api/exchange/leases?limit=1000&after=${after}`));
    const now = BigInt(Date.now()) * 1_000_000n;
    const s = summarize(leases, now);
    leasesPanel.dataset.count = String(s.count);
    leasesPanel.dataset.gpusInDelivery = String(s.gpusInDelivery);
    leasesSummary.textContent = `${more ? 'At least ' : ''}${formatCount(s.count)} leases; ${formatCount(s.inDelivery)} in delivery now on ${formatCount(s.gpusInDelivery)} GPUs; `
      + `${formatUsd(s.paid)} paid to providers so far, ${formatUsd(s.escrow)} in escrow.${s.count > LEASE_ROWS ? ` The newest ${LEASE_ROWS} are listed.` : ''}`;
    leasesBody.replaceChildren(...newestRows(leases, now, LEASE_ROWS).map((r) => h('tr', { 'data-lease': String(r.id) },
      h('td', {}, String(r.id)), h('td', {}, r.symbol), h('td', { class: 'num', 'data-value': String(r.gpus) }, formatCount(r.gpus)),
      h('td', {}, `${r.start.slice(5, 16).replace('T', ' ')} – ${r.end.slice(11, 16)}`), h('td', { class: 'state' }, r.state),
      h('td', { class: 'num', 'data-value': String(r.deliveredGpuHours) }, `${formatCount(r.deliveredGpuHours)} of ${formatCount(r.gpuHours)} GPU-h`),
      h('td', { class: 'num', 'data-value': r.paid.toString() }, formatUsd(r.paid)), h('td', { class: 'num', 'data-value': r.escrow.toString() }, formatUsd(r.escrow)))));
  };
  let leasesBusy = false;
  const leasesTimer = window.setInterval(() => {
    if (leasesBusy) return; // a slow read is not stacked under the next
    leasesBusy = true;
    refreshLeases().catch((e: unknown) => { leasesSummary.textContent = e instanceof Error ? e.message : String(e); }).finally(() => { leasesBusy = false; });
  }, LEASES_EVERY_MS);
  stops.push(() => window.clearInterval(leasesTimer));

  void (async () => {
    const page = await get<{ instruments: Instrument[] }>('/api/exchange/instruments?limit=200');
    select.replaceChildren(...page.instruments.map((i) => h('option', { value: i.symbol }, i.symbol)));
    const first = page.instruments[0];
    if (first !== undefined) await open(first.symbol);
    await Promise.all([loadIndex(), refreshOrders(), refreshLeases()]);
    root.dataset.ready = 'true';
  })().catch((e: unknown) => {
    message.textContent = e instanceof Error ? e.message : String(e);
  });
  return () => stops.forEach((s) => s());
}

/** How many of the newest leases the panel lists. */
const LEASE_ROWS = 50;

/** How often the leases are read again (ms): their delivery is metered once a minute, new ones trade every few seconds. */
const LEASES_EVERY_MS = 5_000;

function toChart(c: Candle): { time: UTCTimestamp; open: number; high: number; low: number; close: number } {
  // The chart library plots numbers: dollars for the axis, the labels formatted back to exact micro-USD above.
  return { time: c.time as UTCTimestamp, open: c.open / 1e6, high: c.high / 1e6, low: c.low / 1e6, close: c.close / 1e6 };
}
