// Display of figures that are not money: power, counts, rates, hashes. Money is formatted in money.ts.

/** kW with a unit that fits (kW below 1 MW, MW above), one decimal. */
export function formatPower(kw: number): string {
  if (!Number.isFinite(kw)) return '—';
  return Math.abs(kw) >= 1000 ? `${(kw / 1000).toFixed(2)} MW` : `${kw.toFixed(1)} kW`;
}

/** An integer with thousands separators. */
export function formatCount(n: number): string {
  return Math.trunc(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A hash shortened for a screen: its first and last characters. */
export function shortHash(hex: string, keep = 10): string {
  return hex.length <= keep * 2 + 1 ? hex : `${hex.slice(0, keep)}…${hex.slice(-keep)}`;
}
