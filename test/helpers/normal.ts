/** Standard normal draws from a uniform source (Box–Muller), for test and benchmark weights. */
import type { Random } from '../../engine/generate/sampling.ts';

export function normalFrom(random: Random): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
