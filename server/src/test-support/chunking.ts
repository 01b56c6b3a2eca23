/** Feeding bytes in awkward chunk sizes, to prove streaming parsers do not depend on chunk boundaries. */

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Feeds `buf` in chunks whose sizes come from `size()`; yields to the event loop now and then. */
export async function* chunked(buf: Buffer, size: () => number): AsyncGenerator<Buffer> {
  let i = 0;
  let n = 0;
  while (i < buf.length) {
    const s = Math.max(1, Math.floor(size()));
    yield buf.subarray(i, i + s);
    i += s;
    if (++n % 4096 === 0) await new Promise((r) => setImmediate(r));
  }
}

export const fixed = (n: number) => () => n;
