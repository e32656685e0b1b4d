// Money arrives from the API as integers of micro-USD (USDC's minor units): JSON numbers, or decimal strings for values
// past 2^53. It is formatted here with BigInt arithmetic only, so what the page shows is exactly what the ledger holds:
// no binary floating point ever touches an amount.

/** Micro-USD per USD. */
export const MICRO_PER_USD = 1_000_000n;

/** Reads an amount of minor units from the API (a safe integer or a string of decimal digits) as a BigInt; throws on anything else. */
export function toMicro(value: number | string | bigint): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`not an exact integer amount: ${value}`);
    return BigInt(value);
  }
  if (!/^-?\d+$/.test(value)) throw new RangeError(`not an integer amount: '${value}'`);
  return BigInt(value);
}

/**
 * Formats micro-USD as dollars, exactly: "$1,234.50", "$0.000123", "-$5.00". At least `minDecimals` decimals
 * (cents by default), more when the amount has them, never rounded.
 */
export function formatUsd(value: number | string | bigint, minDecimals = 2): string {
  const micro = toMicro(value);
  const negative = micro < 0n;
  const abs = negative ? -micro : micro;
  const whole = abs / MICRO_PER_USD;
  let fraction = (abs % MICRO_PER_USD).toString().padStart(6, '0');
  while (fraction.length > minDecimals && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}$${grouped}${fraction.length > 0 ? '.' + fraction : ''}`;
}

/** A price in micro-USD per unit (GPU-hour, share), e.g. "$2.00/GPU-h". */
export function formatPrice(value: number | string | bigint, unit = 'GPU-h'): string {
  return `${formatUsd(value)}/${unit}`;
}

/**
 * Reads dollars typed by a person ("2", "2.5", "$1,234.56", "0.000001") as micro-USD, exactly; null when it is not an
 * amount or has more than six decimals (a micro-dollar is the smallest unit).
 */
export function parseUsd(text: string): bigint | null {
  const t = text.trim().replace(/^\$/, '').replace(/,/g, '');
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(t);
  if (m === null) return null;
  const whole = BigInt(m[1] ?? '0');
  const fraction = BigInt((m[2] ?? '').padEnd(6, '0'));
  return whole * MICRO_PER_USD + fraction;
}
