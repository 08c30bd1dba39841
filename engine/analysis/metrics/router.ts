/**
 * The router's own distribution: how sure it is (entropy) and how much of its probability the
 * selected experts hold (top-k mass).
 */

/** H(p) = −Σ_e p_e ln p_e, in nats; 0 when certain, ln E when uniform (Shannon 1948). */
export function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i]!;
    if (x > 0) h -= x * Math.log(x);
  }
  return h;
}

/** The largest possible router entropy, ln E: the uniform-router baseline. */
export function maxEntropy(E: number): number {
  return Math.log(E);
}

/**
 * Top-k mass per token: m = Σ_{e ∈ selected} p_e, from `selected` [N·k] (each selected expert's
 * router probability): how much of the router's distribution the computed experts carry, 1 − m
 * being what top-k routing drops. 1 when the router puts everything on its choices; k/E for a
 * uniform router.
 */
export function topKMass(selected: Float32Array, k: number): Float64Array {
  const N = selected.length / k;
  const out = new Float64Array(N);
  for (let t = 0; t < N; t++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += selected[t * k + j]!;
    out[t] = s;
  }
  return out;
}

export function meanOf(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length > 0 ? s / xs.length : NaN;
}
