/**
 * Specialization: whether experts serve particular domains or particular tokens more than chance.
 */

/**
 * Domain specialization share_D(e) = N_D(e) / N_D: the fraction of a domain's tokens whose
 * top-k includes expert e (Σ_e share_D(e) = k). Muennighoff et al. 2024, "OLMoE: Open
 * Mixture-of-Experts Language Models", §5 (domain specialization); Jiang et al. 2024,
 * "Mixtral of Experts", §5. Uniform routing gives k/E for every expert and domain.
 *
 * `ids` [N·k] is one layer's routing, `group` [N] each token's domain (0 … G−1). Returns [G·E].
 */
export function domainShare(ids: Int32Array, k: number, E: number, group: Int32Array, G: number): { share: Float64Array; tokens: Float64Array } {
  const count = new Float64Array(G * E);
  const tokens = new Float64Array(G);
  for (let t = 0; t < group.length; t++) {
    const g = group[t]!;
    tokens[g]!++;
    for (let j = 0; j < k; j++) count[g * E + ids[t * k + j]!]!++;
  }
  for (let g = 0; g < G; g++) for (let e = 0; e < E; e++) count[g * E + e] = tokens[g]! > 0 ? count[g * E + e]! / tokens[g]! : 0;
  return { share: count, tokens };
}

/** The uniform-routing value of share_D(e): k / E. */
export function randomDomainShare(E: number, k: number): number {
  return k / E;
}

export interface VocabularySpecialization {
  /** Token ids with at least `minCount` occurrences, ascending. */
  readonly tokenIds: Int32Array;
  /** N(x): occurrences of each. */
  readonly counts: Float64Array;
  /** max_e N(x→e) / N(x). */
  readonly specialization: Float64Array;
  /** The argmax expert (lowest id on ties). */
  readonly topExpert: Int32Array;
  /** Mean specialization over those tokens (NaN when none qualifies). */
  readonly mean: number;
}

/**
 * Vocabulary specialization, OLMoE's definition (Muennighoff et al. 2024, §5): for each token id x
 * seen at least `minCount` (10) times, max_e N(x→e) / N(x), where N(x→e) counts occurrences of x
 * whose top-k includes e. 1 means one expert always takes x. For uniform routing each expert
 * gets x with probability k/E; the maximum over experts is higher at finite N(x).
 */
export function vocabularySpecialization(ids: Int32Array, k: number, E: number, tokenIds: Int32Array, minCount = 10): VocabularySpecialization {
  const byToken = new Map<number, Float64Array>();
  const counts = new Map<number, number>();
  for (let t = 0; t < tokenIds.length; t++) {
    const x = tokenIds[t]!;
    let c = byToken.get(x);
    if (!c) byToken.set(x, (c = new Float64Array(E)));
    counts.set(x, (counts.get(x) ?? 0) + 1);
    for (let j = 0; j < k; j++) c[ids[t * k + j]!]!++;
  }
  const kept = [...counts.entries()].filter(([, n]) => n >= minCount).map(([x]) => x).sort((a, b) => a - b);
  const spec = new Float64Array(kept.length);
  const top = new Int32Array(kept.length);
  const n = new Float64Array(kept.length);
  kept.forEach((x, i) => {
    const c = byToken.get(x)!;
    let best = 0;
    for (let e = 1; e < E; e++) if (c[e]! > c[best]!) best = e;
    n[i] = counts.get(x)!;
    spec[i] = c[best]! / n[i]!;
    top[i] = best;
  });
  const mean = spec.length > 0 ? spec.reduce((a, b) => a + b, 0) / spec.length : NaN;
  return { tokenIds: Int32Array.from(kept), counts: n, specialization: spec, topExpert: top, mean };
}
