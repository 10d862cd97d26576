/**
 * xorshift32: a tiny seeded generator, uniform in [0, 1). Every random choice the fault tests make
 * comes from one of these, so a failure reproduces from the seed the test prints.
 */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}
