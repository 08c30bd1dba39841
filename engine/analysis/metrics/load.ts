/**
 * Expert load: how the tokens of one MoE layer are spread over its experts.
 * Inputs are one layer's routing as `ids` [N·k] (N tokens, k experts each).
 */

/** c_e = number of tokens whose top-k includes expert e (each rank counts once). */
export function expertCounts(ids: Int32Array, E: number): Float64Array {
  const c = new Float64Array(E);
  for (const e of ids) c[e]!++;
  return c;
}

/** share_e = c_e / Σ_j c_j; sums to 1 (uniform routing: 1/E each). */
export function loadShare(counts: Float64Array): Float64Array {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total > 0 ? c / total : 0));
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length > 0 ? s / xs.length : 0;
}

/**
 * Coefficient of variation CV = σ / μ of per-expert loads, with the population σ
 * (σ² = (1/E) Σ_e (c_e − μ)²). 0 for perfect balance. Shazeer et al. 2017, "Outrageously Large
 * Neural Networks" (the importance loss is w · CV²).
 */
export function coefficientOfVariation(loads: ArrayLike<number>): number {
  const mu = mean(loads);
  if (mu === 0) return 0;
  let v = 0;
  for (let i = 0; i < loads.length; i++) v += (loads[i]! - mu) ** 2;
  return Math.sqrt(v / loads.length) / mu;
}

/**
 * max_e c_e / mean_e c_e: 1 for perfect balance, E when one expert takes everything. DeepSeek's
 * MaxVio is this minus one (Wang et al. 2024, "Auxiliary-Loss-Free Load Balancing Strategy for
 * Mixture-of-Experts").
 */
export function maxOverMean(loads: ArrayLike<number>): number {
  const mu = mean(loads);
  if (mu === 0) return 0;
  let max = -Infinity;
  for (let i = 0; i < loads.length; i++) max = Math.max(max, loads[i]!);
  return max / mu;
}

/**
 * Expected CV of counts when N tokens each pick k of E experts uniformly at random:
 * each c_e ~ Binomial(N, k/E) around the fixed mean Nk/E, so E[σ²] = N(k/E)(1 − k/E) and
 * CV ≈ √((E − k) / (N k)). A measured CV near this is indistinguishable from chance balance.
 */
export function randomLoadCv(E: number, k: number, N: number): number {
  return N > 0 ? Math.sqrt((E - k) / (N * k)) : 0;
}
