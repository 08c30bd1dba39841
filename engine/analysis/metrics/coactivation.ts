/**
 * Co-activation: which experts are chosen together for the same token.
 */

/**
 * P(j | i) = N(i, j) / N(i) over all pairs i ≠ j in each token's top-k, where N(i) counts tokens
 * routed to i and N(i, j) tokens routed to both. Muennighoff et al. 2024, "OLMoE", §5
 * (co-activation). Returns [E·E], row i = condition; the diagonal is 0. Uniform routing gives
 * (k − 1) / (E − 1) off the diagonal.
 */
export function coactivation(ids: Int32Array, k: number, E: number): Float64Array {
  const pair = new Float64Array(E * E);
  const single = new Float64Array(E);
  const N = ids.length / k;
  for (let t = 0; t < N; t++) {
    for (let a = 0; a < k; a++) {
      const i = ids[t * k + a]!;
      single[i]!++;
      for (let b = 0; b < k; b++) if (b !== a) pair[i * E + ids[t * k + b]!]!++;
    }
  }
  for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) pair[i * E + j] = single[i]! > 0 ? pair[i * E + j]! / single[i]! : 0;
  return pair;
}

/** P(j | i) for uniformly random top-k: (k − 1) / (E − 1). */
export function randomCoactivation(E: number, k: number): number {
  return E > 1 ? (k - 1) / (E - 1) : 0;
}

export interface Pair {
  readonly i: number;
  readonly j: number;
  readonly p: number;
}

/**
 * The n largest entries of an [E·E] matrix, largest first. Within one layer (co-activation) the
 * diagonal means nothing and is left out; between layers (transitions) expert i of one layer and
 * expert i of the next are different experts, so `withDiagonal` keeps it.
 */
export function topPairs(m: Float64Array, E: number, n: number, withDiagonal = false): Pair[] {
  const out: Pair[] = [];
  for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) if ((withDiagonal || i !== j) && m[i * E + j]! > 0) out.push({ i, j, p: m[i * E + j]! });
  return out.sort((a, b) => b.p - a.p || a.i - b.i || a.j - b.j).slice(0, n);
}
