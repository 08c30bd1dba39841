/**
 * Consecutive tokens: how often a token goes to the experts its predecessor went to.
 * Jiang et al. 2024, "Mixtral of Experts", §5 (routing analysis: repeated assignments of
 * consecutive tokens, first choice and first-or-second choice).
 */

export interface ConsecutiveRates {
  /** Pairs of consecutive positions with routing. */
  readonly pairs: number;
  /** Fraction of pairs whose top-1 (rank 0) experts are equal. */
  readonly sameTop1: number;
  /** Fraction of pairs whose top-k sets share at least one expert. */
  readonly anyOverlap: number;
}

/**
 * `ids` [N·k] is one layer's routing for N positions; `run` and `position` [N] say where each
 * came from. A pair is (t, t + 1) of the same run, both routed (rows need not be sorted).
 */
export function consecutiveRates(ids: Int32Array, k: number, run: Int32Array, position: Int32Array): ConsecutiveRates {
  // (run, position) as one exact number: positions are int32, runs far fewer than 2^21.
  const key = (r: number, p: number) => r * 2 ** 32 + p;
  const at = new Map<number, number>();
  for (let t = 0; t < run.length; t++) at.set(key(run[t]!, position[t]!), t);
  let pairs = 0;
  let same = 0;
  let overlap = 0;
  for (let t = 0; t < run.length; t++) {
    const u = at.get(key(run[t]!, position[t]! + 1));
    if (u === undefined) continue;
    pairs++;
    if (ids[t * k] === ids[u * k]) same++;
    let hit = false;
    for (let a = 0; a < k && !hit; a++) for (let b = 0; b < k && !hit; b++) if (ids[t * k + a] === ids[u * k + b]) hit = true;
    if (hit) overlap++;
  }
  return { pairs, sameTop1: pairs > 0 ? same / pairs : NaN, anyOverlap: pairs > 0 ? overlap / pairs : NaN };
}

/** Binomial coefficient C(n, r), exact for the small n of expert counts. */
export function binomial(n: number, r: number): number {
  if (r < 0 || r > n) return 0;
  let c = 1;
  for (let i = 1; i <= r; i++) c = (c * (n - r + i)) / i;
  return c;
}

/** P(same top-1) for independent uniform routing: 1 / E. */
export function randomSameTop1(E: number): number {
  return 1 / E;
}

/**
 * P(two independent uniform top-k sets intersect) = 1 − C(E − k, k) / C(E, k): the second set
 * misses the first in C(E − k, k) of its C(E, k) equally likely choices. E = 8, k = 2: 13/28.
 */
export function randomOverlap(E: number, k: number): number {
  return 1 - binomial(E - k, k) / binomial(E, k);
}
