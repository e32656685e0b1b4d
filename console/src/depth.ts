// Market depth from the API's L2 book (GET /api/exchange/book/{symbol}, and each `book` event of the exchange's
// stream): levels best first, each {price, quantity, orders}. The depth chart plots, at each price, the quantity one
// could trade up to it: bids accumulate from the best (highest) price down, asks from the best (lowest) price up.

/** One level of the book as the API gives it (price in micro-USD per unit, quantity in units). */
export interface DepthLevel {
  price: number;
  quantity: number;
  orders: number;
}

/** A point of the depth chart. */
export interface DepthPoint {
  price: number;
  cumulative: number;
}

/** Both sides of the depth chart, each sorted by ascending price (as a chart's x axis wants). */
export interface Depth {
  bids: DepthPoint[];
  asks: DepthPoint[];
  /** Best ask − best bid (micro-USD), or null when a side is empty. */
  spread: number | null;
}

/** Accumulates each side from its best price outward; levels may come in any order, and equal prices are merged. */
export function cumulativeDepth(bids: readonly DepthLevel[], asks: readonly DepthLevel[]): Depth {
  const bidSide = accumulate(merge(bids).sort((a, b) => b.price - a.price)).reverse();
  const askSide = accumulate(merge(asks).sort((a, b) => a.price - b.price));
  const bestBid = bidSide.length > 0 ? bidSide[bidSide.length - 1]!.price : null;
  const bestAsk = askSide.length > 0 ? askSide[0]!.price : null;
  return { bids: bidSide, asks: askSide, spread: bestBid !== null && bestAsk !== null ? bestAsk - bestBid : null };
}

function merge(levels: readonly DepthLevel[]): DepthLevel[] {
  const byPrice = new Map<number, DepthLevel>();
  for (const l of levels) {
    if (!Number.isSafeInteger(l.price) || !Number.isSafeInteger(l.quantity) || l.quantity < 0) throw new RangeError(`bad level ${JSON.stringify(l)}`);
    const had = byPrice.get(l.price);
    byPrice.set(l.price, had ? { price: l.price, quantity: had.quantity + l.quantity, orders: had.orders + l.orders } : { ...l });
  }
  return [...byPrice.values()];
}

function accumulate(sorted: readonly DepthLevel[]): DepthPoint[] {
  let total = 0;
  return sorted.map((l) => {
    total += l.quantity;
    if (!Number.isSafeInteger(total)) throw new RangeError('depth total is past 2^53');
    return { price: l.price, cumulative: total };
  });
}
