/**
 * Cross-layer expert transitions: given the experts a token used at one MoE layer, which it uses
 * at the next. Yao et al. 2024, "Exploiting Inter-Layer Expert Affinity for Accelerating
 * Mixture-of-Experts Model Inference" (IPDPS).
 */

/**
 * P(j at layer b | i at layer a) = N(i → j) / N_a(i), over every pair (i in the token's top-k at
 * a, j in its top-k at b); rows sum to k. `idsA`, `idsB` [N·k] are the same N tokens at the two
 * layers. Independent uniform routing gives k / E everywhere. Returns [E·E], row = i.
 */
export function layerTransitions(idsA: Int32Array, idsB: Int32Array, k: number, E: number): Float64Array {
  const m = new Float64Array(E * E);
  const from = new Float64Array(E);
  const N = idsA.length / k;
  for (let t = 0; t < N; t++) {
    for (let a = 0; a < k; a++) {
      const i = idsA[t * k + a]!;
      from[i]!++;
      for (let b = 0; b < k; b++) m[i * E + idsB[t * k + b]!]!++;
    }
  }
  for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) m[i * E + j] = from[i]! > 0 ? m[i * E + j]! / from[i]! : 0;
  return m;
}

/** P(j | i) across layers for independent uniform routing: k / E. */
export function randomTransition(E: number, k: number): number {
  return k / E;
}
