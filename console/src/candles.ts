// Candles: the API's OHLCV (GET /api/exchange/candles/{symbol}) brought up to date with live trades from the exchange's
// stream between two fetches, by the server's own rule: a trade belongs to the candle whose interval contains its
// timestamp (open time = the timestamp rounded down to the interval). Prices stay integers of micro-USD.

/** A candle as the API gives it (times RFC 3339). */
export interface ApiCandle {
  open_time: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  notional: number;
  trades: number;
}

/** A trade as the API gives it. */
export interface ApiTrade {
  sequence: number;
  price: number;
  quantity: number;
  timestamp: string;
}

/** A candle keyed by its open time in Unix seconds (what the chart library takes). */
export interface Candle {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
}

/** Interval lengths by the API's names. */
export const INTERVAL_SECONDS: Readonly<Record<string, number>> = { '1m': 60, '1h': 3600, '1d': 86400 };

/** Unix nanoseconds of an RFC 3339 time with up to nine decimals (as the API writes them), exactly, as a BigInt. */
export function parseApiTime(text: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (m === null) throw new RangeError(`not an RFC 3339 time: '${text}'`);
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) throw new RangeError(`not an RFC 3339 time: '${text}'`);
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** The API's candles as the chart's, oldest first. */
export function fromApi(candles: readonly ApiCandle[]): Candle[] {
  return candles
    .map((c) => ({ time: Number(parseApiTime(c.open_time) / 1_000_000_000n), open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume, trades: c.trades }))
    .sort((a, b) => a.time - b.time);
}

/**
 * Folds trades into candles (a new array; the input is not changed): a trade in an existing candle's interval updates its
 * high, low, close, volume and count; a later one opens a new candle. Trades already counted (sequence at or below
 * `afterSequence`, e.g. those the fetched candles include) are skipped.
 */
export function applyTrades(candles: readonly Candle[], trades: readonly ApiTrade[], intervalSeconds: number, afterSequence = -1): Candle[] {
  const out = candles.map((c) => ({ ...c }));
  const ordered = [...trades].filter((t) => t.sequence > afterSequence).sort((a, b) => a.sequence - b.sequence);
  for (const t of ordered) {
    const seconds = Number(parseApiTime(t.timestamp) / 1_000_000_000n);
    const open = seconds - (seconds % intervalSeconds);
    const last = out[out.length - 1];
    if (last !== undefined && last.time === open) {
      last.high = Math.max(last.high, t.price);
      last.low = Math.min(last.low, t.price);
      last.close = t.price;
      last.volume += t.quantity;
      last.trades += 1;
    } else if (last === undefined || open > last.time) {
      out.push({ time: open, open: t.price, high: t.price, low: t.price, close: t.price, volume: t.quantity, trades: 1 });
    }
    // A trade older than the last candle is already in a fetched candle: the API's candles are the record.
  }
  return out;
}
