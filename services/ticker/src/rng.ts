// A small seeded PRNG (mulberry32): the same seed gives the same sequence on
// every machine and Node version, which Math.random cannot promise. Not for
// anything secret; plenty for a market simulation.
export type Rng = () => number;

/** Returns a function yielding floats in [0, 1), determined by `seed` (any 32-bit integer). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] (both included). */
export function randomInt(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}
