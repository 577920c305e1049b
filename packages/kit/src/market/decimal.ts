// Prices are decimals. On the wire they are doubles rounded to the
// instrument's tick size; inside, arithmetic is done on integers of minor
// units (price * 10^decimals), so no client ever sees 123.45000000001.

/** Number of decimals needed to write `tickSize` exactly (0.25 -> 2, 0.005 -> 3). */
export function decimalsOf(tickSize: number): number {
  for (let d = 0; d <= 10; d++) {
    const scaled = tickSize * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9) return d;
  }
  throw new Error(`tick size ${tickSize} needs more than 10 decimals`);
}

/** Price -> integer minor units. */
export function toUnits(price: number, decimals: number): number {
  return Math.round(price * 10 ** decimals);
}

/** Integer minor units -> the double nearest to the decimal (prints as the decimal). */
export function fromUnits(units: number, decimals: number): number {
  return Number((units / 10 ** decimals).toFixed(decimals));
}

/** Rounds `price` to the nearest multiple of the tick (tickUnits minor units). */
export function roundToTickUnits(price: number, decimals: number, tickUnits: number): number {
  return Math.round(toUnits(price, decimals) / tickUnits) * tickUnits;
}

/** True when `price` sits on the tick grid (within float noise). */
export function isOnTick(price: number, decimals: number, tickUnits: number): boolean {
  const units = price * 10 ** decimals;
  const rounded = Math.round(units);
  return Math.abs(units - rounded) < 1e-6 * Math.max(1, Math.abs(units)) && rounded % tickUnits === 0;
}

/** Rounds to `decimals` places and returns a clean double (for ratios such as change %). */
export function round(value: number, decimals: number): number {
  return Number(value.toFixed(decimals));
}
